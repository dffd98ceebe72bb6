/* Tokenizer from a Hugging Face `tokenizer.json` (the `tokenizers` library format), in C.
 *
 * Supported: model BPE (vocab + merges in "a b" or ["a","b"] form, ignore_merges, byte_fallback,
 * unk/fuse_unk, continuing_subword_prefix/end_of_word_suffix); pre-tokenizers ByteLevel (GPT-2
 * regex), Split with the GPT-2, Llama-3 or Qwen2 regex (matched by pattern text, implemented by
 * hand), Metaspace, and Sequence of these; normalizers Prepend, Replace (string pattern), NFC
 * (accepted when the text is already NFC-stable) and Sequence; added tokens (split first,
 * longest match, lstrip/rstrip/single_word); post-processor TemplateProcessing (single).
 * Anything else is a CQ_E_UNSUPPORTED error at load, never a silent difference.
 * \p{L}/\p{N} come from Unicode 14.0 tables (scripts/gen_unicode_tables.py); \s is White_Space.
 * Added tokens are matched on the raw text (their `normalized` flag is not honoured separately).
 *
 * A loaded tokenizer is immutable: encode/decode may run concurrently on one object. */
#ifndef CQUANT_TOKENIZER_H
#define CQUANT_TOKENIZER_H

#include "cquant/error.h"

#include <stddef.h>
#include <stdint.h>

typedef struct cq_tokenizer cq_tokenizer;

/* Read DIR/tokenizer.json, and DIR/tokenizer_config.json + DIR/special_tokens_map.json when
 * present for bos/eos and add_bos_token/add_eos_token. */
int cq_tokenizer_load(cq_tokenizer **out, const char *dir, cq_error *err);
/* As cq_tokenizer_load from an explicit tokenizer.json path; config_dir may be NULL. */
int cq_tokenizer_load_file(cq_tokenizer **out, const char *json_path, const char *config_dir,
                           cq_error *err);
/* As cq_tokenizer_load_file from tokenizer.json bytes held in memory (LEN bytes, need not be
 * NUL-terminated); NAME names the source in messages. For fuzzing and tests. */
int cq_tokenizer_load_buffer(cq_tokenizer **out, const char *data, size_t len, const char *name,
                             const char *config_dir, cq_error *err);
void cq_tokenizer_free(cq_tokenizer *tok);

/* Encode len bytes of UTF-8 text (not NUL-terminated necessarily). With add_special, the
 * post-processor's tokens (e.g. BOS) are added. *ids is malloc'd (caller frees; may be NULL when
 * *n is 0). Malformed UTF-8 is a CQ_E_FORMAT error naming the byte offset. */
int cq_tokenizer_encode(const cq_tokenizer *tok, const char *text, size_t len, int add_special,
                        int32_t **ids, int64_t *n, cq_error *err);
/* Decode ids to UTF-8 text (special tokens included); *text is malloc'd and NUL-terminated. */
int cq_tokenizer_decode(const cq_tokenizer *tok, const int32_t *ids, int64_t n, char **text,
                        size_t *len, cq_error *err);

/* Max id + 1 over the model vocab and the added tokens. */
int64_t cq_tokenizer_vocab_size(const cq_tokenizer *tok);
/* BOS/EOS ids from tokenizer_config.json / special_tokens_map.json; -1 when unknown. */
int32_t cq_tokenizer_bos_id(const cq_tokenizer *tok);
int32_t cq_tokenizer_eos_id(const cq_tokenizer *tok);
/* 1 when encode with add_special puts BOS first. */
int cq_tokenizer_adds_bos(const cq_tokenizer *tok);
/* The token string of id (borrowed; NULL when id has none), and the id of a token (-1). */
const char *cq_tokenizer_token(const cq_tokenizer *tok, int32_t id);
int32_t cq_tokenizer_token_id(const cq_tokenizer *tok, const char *token);
/* sha256 of the tokenizer.json bytes as 64 lowercase hex characters (borrowed). */
const char *cq_tokenizer_hash(const cq_tokenizer *tok);

#endif
