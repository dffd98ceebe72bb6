/* Calibration windows: selection (GPTQ "random", AWQ "concat"), Python-exact random numbers,
 * the calib.bin file (safetensors: input_ids I32 [n, seqlen] + __metadata__, docs/calib.md),
 * and (calib_text.c) text/jsonl(.gz) inputs tokenized on the fly with the model's tokenizer. */
#ifndef CQUANT_CALIB_H
#define CQUANT_CALIB_H

#include "cquant/error.h"

#include <stddef.h>
#include <stdint.h>

/* MT19937 seeded exactly as CPython's random.seed(int): init_by_array over the 32-bit words of
 * the seed. With cq_mt_randint it reproduces random.randint for the same seed and calls. */
typedef struct cq_mt19937 {
    uint32_t mt[624];
    int idx;
} cq_mt19937;

void cq_mt_seed(cq_mt19937 *r, uint64_t seed);
uint32_t cq_mt_next(cq_mt19937 *r);
/* random.getrandbits(k) for 1 <= k <= 64. */
uint64_t cq_mt_getrandbits(cq_mt19937 *r, int k);
/* random.randint(a, b) (inclusive; _randbelow by rejection on getrandbits). Requires a <= b. */
int64_t cq_mt_randint(cq_mt19937 *r, int64_t a, int64_t b);

typedef struct cq_calib {
    int32_t *ids;          /* [n x seqlen], owned */
    int64_t n, seqlen;
    /* __metadata__ (written as given, filled on read when present) */
    char mode[16];         /* "random" | "concat" | "split" */
    char tokenizer_hash[80];
    char sources[4096];    /* JSON array [{"file": basename, "sha256": hex}, ...] */
    uint64_t seed;
    int bos;               /* 1: BOS was added when tokenizing, 0: not, -1: not recorded */
} cq_calib;

void cq_calib_release(cq_calib *c);

/* GPTQ's protocol (notes §G.1, wikitext2 variant): random.seed(seed), then n times
 * i = randint(0, len − seqlen − 1) and the window stream[i, i+seqlen). Needs len > seqlen. */
int cq_calib_random(const int32_t *stream, int64_t len, int64_t n, int64_t seqlen,
                    uint64_t seed, cq_calib *out, cq_error *err);

/* A document of a text: [off, off+len) after stripping surrounding whitespace. */
typedef struct cq_doc_span {
    size_t off, len;
} cq_doc_span;

/* Split text into documents at blank lines (lines of only whitespace); empty documents are
 * dropped. *spans is allocated here (free()). */
int cq_calib_split_docs(const char *text, size_t len, cq_doc_span **spans, int64_t *n,
                        cq_error *err);

/* AutoAWQ's protocol (notes §F.7): documents in order, skipping empty ones and those longer
 * than max_doc_len tokens, until max_docs are accepted; concatenated and cut into blocks of
 * `block` tokens, the remainder dropped (so n = total // block, possibly below max_docs).
 * Defaults in AutoAWQ: block 512, max_docs 128, max_doc_len 512. */
int cq_calib_concat(const int32_t *const *docs, const int64_t *lens, int64_t n_docs,
                    int64_t block, int64_t max_docs, int64_t max_doc_len, cq_calib *out,
                    cq_error *err);

/* Read input_ids [n, seqlen] (I32 or I64) from any safetensors file; every id must lie in
 * [0, vocab) (vocab <= 0: no check). */
int cq_calib_read(const char *path, int64_t vocab, cq_calib *out, cq_error *err);
/* Write PATH (written beside it under a temporary name, then renamed). */
int cq_calib_write(const char *path, const cq_calib *c, cq_error *err);

/* ---- text inputs (calib_text.c) ---- */

/* CQ_CALIB_SPLIT: as CONCAT but no document is skipped for its length (a long one spans
 * several blocks), and n counts blocks, not documents (docs/calib.md, docs/awq.md). */
typedef enum cq_calib_mode {
    CQ_CALIB_RANDOM = 0,
    CQ_CALIB_CONCAT = 1,
    CQ_CALIB_SPLIT = 2
} cq_calib_mode;

/* Largest decompressed text accepted from one file (a guard against gzip bombs). */
#define CQ_TEXT_MAX_BYTES ((size_t)1 << 30)

/* Text of the files PATHS[0..n_paths): each read whole, gunzipped when it starts with the gzip
 * magic 1f 8b (whatever its name), and, when its name ends in .jsonl or .jsonl.gz, replaced by
 * the "text" field of every non-empty line. Texts (files, jsonl lines) are joined with "\n\n",
 * as GPTQ joins WikiText. When docs is non-NULL it receives the documents of the concat
 * protocol as spans of *text: a plain file split at blank lines (cq_calib_split_docs), a jsonl
 * line's text stripped; empty ones dropped. When sources is non-NULL it receives the JSON
 * array of basenames and sha256 of the bytes on disk (as calib.bin's metadata). Empty input,
 * bad gzip or JSON, invalid UTF-8 -> CQ_E_FORMAT naming the file; *text is NUL-terminated and
 * malloc'd; *docs is malloc'd (free() both). */
int cq_text_read(const char *const *paths, int n_paths, char **text, size_t *len,
                 cq_doc_span **docs, int64_t *n_docs, char *sources, size_t sources_cap,
                 cq_error *err);

/* Is PATH a safetensors file (8-byte header length, then '{')? Text never looks like one. */
int cq_calib_is_safetensors(const char *path);

typedef struct cq_calib_text_opts {
    cq_calib_mode mode;  /* CQ_CALIB_RANDOM (GPTQ, default) or CQ_CALIB_CONCAT (AutoAWQ) */
    int64_t n;           /* random: windows; concat: most documents accepted; 0 = 128 */
    int64_t seqlen;      /* 0 = random: max_position_embeddings capped at 2048 (2048 when
                            unknown); concat: 512 (block size and longest document kept) */
    uint64_t seed;       /* random.seed(seed) (random mode only) */
    int bos;             /* -1 = the mode's default: random none (the stream of the WikiText
                            eval protocol), concat a BOS per document (AutoAWQ's
                            tokenizer.encode); 0 = never; 1 = random: one BOS at the start of
                            the stream (GPTQ's tokenizer(text)), concat: per document */
} cq_calib_text_opts;

/* The defaults above: {CQ_CALIB_RANDOM, 128, 0, 0, -1}. */
cq_calib_text_opts cq_calib_text_defaults(void);
/* The window length opts resolve to for a model of max_position_embeddings max_pos (0 when
 * unknown). */
int64_t cq_calib_default_seqlen(const cq_calib_text_opts *opt, int64_t max_pos);

struct cq_tokenizer;
/* Tokenize PATHS (cq_text_read) with TOK and select windows by opt->mode; fills out's
 * metadata (tokenizer_hash, sources, seed, mode, bos). max_pos: the model's
 * max_position_embeddings (0 = unknown). Too little text -> CQ_E_FORMAT naming the files. */
int cq_calib_from_text_tok(const struct cq_tokenizer *tok, int64_t max_pos,
                           const char *const *paths, int n_paths,
                           const cq_calib_text_opts *opt, cq_calib *out, cq_error *err);
/* As cq_calib_from_text_tok with MODEL_DIR's tokenizer and config.json. */
int cq_calib_from_text(const char *model_dir, const char *const *paths, int n_paths,
                       const cq_calib_text_opts *opt, cq_calib *out, cq_error *err);

/* Compare the calibration's tokenizer_hash with MODEL_DIR's tokenizer (the sha256 of its
 * tokenizer.json, as cq_tokenizer_hash). Logs one warning (cq_warn) naming CALIB_PATH when
 * the hash is missing, differs, or the model has no tokenizer.json. Returns CQ_CALIB_TOK_*. */
enum { CQ_CALIB_TOK_MATCH = 0, CQ_CALIB_TOK_MISSING = 1, CQ_CALIB_TOK_MISMATCH = 2,
       CQ_CALIB_TOK_NO_MODEL_TOKENIZER = 3 };
int cq_calib_check_tokenizer(const cq_calib *c, const char *calib_path, const char *model_dir);

/* What a calibrating command takes as CALIB: one safetensors file (cq_calib_read with the
 * model's vocab, then cq_calib_check_tokenizer), or text files tokenized on the fly
 * (cq_calib_from_text with opt; opt NULL = cq_calib_text_defaults()). */
int cq_calib_load(const char *model_dir, const char *const *paths, int n_paths,
                  const cq_calib_text_opts *opt, cq_calib *out, cq_error *err);

#endif
