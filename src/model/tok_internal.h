/* Tokenizer internals shared by tokenizer.c (loading, API), tok_encode.c (BPE) and
 * regex_pretok.c (pre-tokenizer regexes). Not a public header. */
#ifndef CQ_MODEL_TOK_INTERNAL_H
#define CQ_MODEL_TOK_INTERNAL_H

#include "cquant/error.h"
#include "cquant/tokenizer.h"

#include <stddef.h>
#include <stdint.h>

/* Bump allocator for token strings: blocks are never moved, so pointers stay valid. */
typedef struct tok_block tok_block;
typedef struct tok_arena {
    tok_block *head;
} tok_arena;
/* Copy len bytes plus a NUL; NULL when out of memory. */
char *tok_arena_dup(tok_arena *a, const char *s, size_t len);
void tok_arena_free(tok_arena *a);

/* Byte string -> int64 map, open addressing. Keys are borrowed (must outlive the map). */
typedef struct tok_sent {
    const char *key;
    uint32_t len;
    uint32_t hash;
    int64_t val;
} tok_sent;
typedef struct tok_strmap {
    tok_sent *e;
    size_t cap, n;
} tok_strmap;
/* Insert or overwrite; grows as needed. Returns 0, or -1 when out of memory or len > 2^31. */
int tok_strmap_put(tok_strmap *m, const char *key, size_t len, int64_t val);
/* 1 and *val when present, else 0. */
int tok_strmap_get(const tok_strmap *m, const char *key, size_t len, int64_t *val);
void tok_strmap_free(tok_strmap *m);

/* (left id, right id) -> (rank, merged id) for BPE merges. */
typedef struct tok_pent {
    uint64_t key;
    int32_t rank, new_id;
    int used;
} tok_pent;
typedef struct tok_pairmap {
    tok_pent *e;
    size_t cap, n;
} tok_pairmap;
int tok_pairmap_put(tok_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t new_id);
const tok_pent *tok_pairmap_get(const tok_pairmap *m, int32_t a, int32_t b);
void tok_pairmap_free(tok_pairmap *m);

/* Fill t from the parsed tokenizer.json (tok_json.c); errors name path. */
typedef struct cJSON cJSON;
int tok_load_json(cq_tokenizer *t, const cJSON *root, const char *path, cq_error *err);

/* Pre-tokenizer regexes implemented by hand (regex_pretok.c). */
enum { TOK_RE_GPT2 = 1, TOK_RE_LLAMA3 = 2, TOK_RE_QWEN2 = 3 };
/* The regex kind whose pattern text is `pattern`, or 0 when not one we implement. */
int tok_regex_kind(const char *pattern);
/* End offset of the regex match that starts at pos (text is valid UTF-8, pos < len). These
 * regexes match every character, so pieces are consecutive matches with no gaps. */
size_t tok_regex_next(int kind, const char *s, size_t len, size_t pos);

/* One pre-tokenizer split level, applied in order. */
enum { TOK_SPLIT_REGEX = 1, TOK_SPLIT_METASPACE = 2 };
typedef struct tok_split {
    int kind, regex;
} tok_split;

enum { TOK_NORM_PREPEND = 1, TOK_NORM_REPLACE = 2, TOK_NORM_NFC = 3 };
typedef struct tok_norm {
    int kind;
    const char *a, *b; /* prepend: a; replace: a -> b */
    size_t alen, blen;
} tok_norm;

typedef struct tok_added {
    const char *content;
    size_t len;
    int32_t id;
    int special, lstrip, rstrip, single_word, normalized;
} tok_added;

enum { TOK_DEC_NONE = 0, TOK_DEC_BYTELEVEL = 1, TOK_DEC_SPIECE = 2 };
enum { TOK_PREPEND_NEVER = 0, TOK_PREPEND_FIRST = 1, TOK_PREPEND_ALWAYS = 2 };

#define TOK_MAX_SPLITS 4
#define TOK_MAX_NORMS 8
#define TOK_MAX_TEMPLATE 8

struct cq_tokenizer {
    tok_arena arena;
    tok_strmap vocab; /* token string -> id (model vocab and added tokens) */
    const char **id_tok;
    uint32_t *id_len;
    int64_t n_ids; /* max id + 1 */
    tok_pairmap merges;
    tok_added *added;
    int n_added;
    uint8_t added_first[256]; /* 1 when some added token starts with this byte */
    tok_norm norm[TOK_MAX_NORMS];
    int n_norm;
    tok_split split[TOK_MAX_SPLITS];
    int n_split;
    int byte_level, bl_prefix_space;
    int metaspace, ms_prepend;
    const char *ms_rep;
    size_t ms_rep_len;
    int byte_fallback, fuse_unk, ignore_merges;
    int32_t unk_id;
    const char *cont_prefix, *eow_suffix; /* NULL when unset or empty */
    size_t cont_prefix_len, eow_suffix_len;
    int32_t byte_fb_id[256]; /* "<0xXX>" ids, -1 when missing */
    char byte_char[256][3];  /* GPT-2 bytes_to_unicode as UTF-8 */
    uint8_t byte_char_len[256];
    int16_t char_byte[512]; /* inverse for code points < 512, -1 elsewhere */
    int32_t prefix_ids[TOK_MAX_TEMPLATE], suffix_ids[TOK_MAX_TEMPLATE];
    int n_prefix, n_suffix;
    int32_t bos_id, eos_id;
    int decoder, dec_strip;
    char hash[65];
};

typedef struct tok_sym {
    int32_t id, prev, next, alive;
} tok_sym;

typedef struct tok_hent {
    int32_t rank, pos, new_id;
} tok_hent;

typedef struct tok_buf {
    char *p;
    size_t n, cap;
} tok_buf;

/* Per-call encoder state: output ids, the word cache, BPE and normalizer scratch. */
typedef struct tok_enc {
    const cq_tokenizer *t;
    int32_t *ids;
    size_t n, cap;
    tok_strmap cache;
    tok_arena cache_keys;
    int32_t *pool;
    size_t pool_n, pool_cap;
    tok_sym *syms;
    size_t syms_cap;
    tok_hent *heap;
    size_t heap_n, heap_cap;
    tok_buf nb[2], word;
    cq_error *err;
} tok_enc;

int tok_nomem(tok_enc *c);
/* Grow *p (elements of size sz) to hold at least need elements; -1 on overflow or no memory. */
int tok_grow(void **p, size_t *cap, size_t need, size_t sz);
int tok_emit(tok_enc *c, int32_t id);
int tok_buf_put(tok_buf *b, const char *s, size_t n);
/* BPE-merge one pre-tokenized word and append its ids (tok_bpe.c). */
int tok_bpe_word(tok_enc *c, const char *w, size_t len);

#endif
