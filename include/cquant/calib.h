/* Calibration windows: selection (GPTQ "random", AWQ "concat"), Python-exact random numbers,
 * and the calib.bin file (safetensors: input_ids I32 [n, seqlen] + __metadata__).
 * Token ids come from the tokenizer; nothing here tokenizes. */
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
    char mode[16];         /* "random" | "concat" */
    char tokenizer_hash[80];
    char sources[512];
    uint64_t seed;
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

#endif
