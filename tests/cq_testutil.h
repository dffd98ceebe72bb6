/* Shared helpers for the unit tests (linked into each of them with cq_test.c): whole-file and
 * JSON reading, an independent safetensors reader with the little-endian and half-precision
 * decoders the end-to-end tests check the product's output files with, the float64/float32
 * references of the min-max grid (notes §B.4) and of a layer's output error, random
 * cq_qresult fixtures, and the WikiText ids / model opening of the perplexity tests. */
#ifndef CQ_TESTUTIL_H
#define CQ_TESTUTIL_H

#include "cquant/model.h"
#include "cquant/quant.h"
#include "cquant/safetensors.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cJSON;

/* The whole file at PATH, malloc'd with one NUL byte after its SIZE bytes (so text can be used
 * as a string); NULL when it cannot be read. */
void *cq_test_slurp(const char *path, size_t *size);
/* The JSON file at PATH parsed (cJSON_Delete it); NULL when it cannot be read or parsed. */
struct cJSON *cq_test_load_json(const char *path);

/* A whole safetensors file in memory with its parsed header. This reader deliberately shares
 * no code with the product's (src/io/safetensors_read.c): it is the independent decoder the
 * tests check the product's files against, so one bug cannot hide itself on both sides. It is
 * not hardened against hostile files (test outputs and ../shared models only). */
typedef struct cq_test_stfile {
    unsigned char *buf;
    size_t size, data_off;
    struct cJSON *hdr;
} cq_test_stfile;

/* Reads PATH; 0 on success, -1 (and *f zeroed, nothing to free) on any failure. */
int cq_test_st_load(cq_test_stfile *f, const char *path);
/* NULL-safe; leaves *f zeroed. */
void cq_test_st_free(cq_test_stfile *f);
/* Tensor NAME's data, or NULL when absent or out of bounds. SHAPE gets the first two dims
 * (1 for missing ones); DTYPE and NDIM may be NULL. */
const unsigned char *cq_test_st_get(const cq_test_stfile *f, const char *name,
                                    const char **dtype, int64_t shape[2], int *ndim);

/* Element I of a little-endian uint32 / uint16 array. */
uint32_t cq_test_rd32(const unsigned char *p, size_t i);
uint16_t cq_test_rd16(const unsigned char *p, size_t i);
/* bf16 is the top half of an f32. */
float cq_test_bf16_value(uint16_t h);
/* IEEE binary16 by definition (not by bit twiddling). */
double cq_test_f16_value(uint16_t h);
/* The f16 code nearest to a non-negative X (ties to even), by search over the monotone
 * positive codes: independent of any bit-twiddling converter. */
uint16_t cq_test_f16_round(float x);

/* §B.4's min-max range of N values, in double and independent of src/quant: lo = min(0, x),
 * hi = max(0, x); SYM makes it symmetric (hi = max(|lo|, hi), lo = -hi when lo < 0). */
void cq_test_minmax(const double *x, int64_t n, bool sym, double *lo, double *hi);
/* §B.4's grid: that range, (-1, 1) when it is all zero; returns the scale
 * (hi - lo) / (2^bits - 1) and sets *LO. */
double cq_test_minmax_scale(const double *x, int64_t n, int bits, bool sym, double *lo);
/* The same grid in float32, as the reference's torch code computes it: the scale and the zero
 * point (2^(bits-1) when SYM, else round(-lo / scale)). */
void cq_test_minmax_f32(const float *w, int64_t n, int bits, bool sym, float *scale,
                        float *zero);
/* tr((W - Q) H (W - Q)^T) in double: a layer's output error on the inputs whose (unscaled)
 * Gram matrix is H [cols x cols]; W and Q are [rows x cols]. */
/* max|got - ref| / max|ref| over n values (an output compared with its reference). */
double cq_test_max_rel_diff(const float *got, const float *ref, int64_t n);
double cq_test_output_error(const float *w, const float *q, int64_t rows, int64_t cols,
                            const double *h);

/* cq_qconfig_defaults with these five fields set. */
cq_qconfig cq_test_qconfig(int bits, int group, bool sym, bool act_order, bool static_groups);
/* A random cq_qresult for C (free it with cq_qresult_release), drawn from *RNG: codes, zeros
 * (the midpoint when sym) and scales that span f16's normal range and are not f16-exact, so
 * rounding to f16 is exercised. PERMUTE: act-order groups, g_idx = invperm[k] / G for a random
 * column permutation (notes §B.5). */
void cq_test_random_qresult(cq_qresult *r, const cq_qconfig *c, int64_t rows, int64_t cols,
                            bool permute, uint64_t *rng);

/* The joined WikiText-2 test text of ../shared tokenized with MODEL_DIR's tokenizer as MODEL.md
 * says (once, no BOS), checked to be its 384,593 ids. MODEL_DIR may be cq_test_shared_path's
 * buffer. CQ_OK, or the status after a failed check. */
int cq_test_wikitext_ids(const char *model_dir, int32_t **ids, int64_t *n);
/* DIR's config and safetensors, checked against each other (a failed check otherwise); the
 * library's progress lines are silenced for the test output. */
int cq_test_open_model(const char *dir, cq_model_config *cfg, cq_st_model **st);

#endif
