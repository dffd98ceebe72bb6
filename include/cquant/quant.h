/* Quantizers behind one interface. A quantizer sees float matrices and statistics, never files
 * or tensor names. Its result is the unpacked form every packer takes: integer codes, per-group
 * scales and zero points, and g_idx. */
#ifndef CQUANT_QUANT_H
#define CQUANT_QUANT_H

#include "cquant/dtype.h"
#include "cquant/error.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct cq_qconfig {
    int bits;            /* 2, 3, 4 or 8 */
    int group_size;      /* input columns per group; -1 = one group per row */
    bool sym;            /* symmetric grid (zero = 2^(bits-1)) */
    bool mse;            /* MSE clip search (notes §E.12): norm 2.4, grid 100, max shrink 0.8 */
    /* gptq */
    bool act_order;      /* visit columns by decreasing diag(H) */
    bool static_groups;  /* group parameters fitted up front on original columns */
    double damp;         /* fraction of mean(diag H) added to the diagonal (default 0.01) */
    int block_size;      /* lazy-update block width (default 128) */
    int max_damp_tries;  /* Cholesky attempts in all, damping x10 after each failure (default 6) */
    int threads;         /* worker threads for the row-parallel parts; 0 = online CPUs. Results
                            are bit-identical for any value (rows are independent). BLAS/LAPACK
                            threads are OpenBLAS's own (OPENBLAS_NUM_THREADS). */
} cq_qconfig;

/* bits 4, group 128, sym, no mse, no act-order, no static groups, damp 0.01, block 128,
 * 6 damping attempts, threads 0. */
void cq_qconfig_defaults(cq_qconfig *cfg);
/* Check the options themselves (bits, group size, damping) before any work.
 * Returns CQ_OK or CQ_E_USAGE with a message naming the option. */
int cq_qconfig_check(const cq_qconfig *cfg, cq_error *err);

/* Unpacked quantized matrix W[rows x cols] (rows = out features, cols = in features).
 * Dequantized: W[r][c] = scale[g][r] * (q[r][c] - zero[g][r]) with g = g_idx[c]. */
typedef struct cq_qresult {
    int64_t rows, cols;
    int bits;
    int group_size;      /* as configured (-1 = per row) */
    int64_t n_groups;
    bool sym;
    uint8_t *q;          /* [rows * cols], row-major, codes in [0, 2^bits) */
    float *scale;        /* [n_groups * rows]: scale[g * rows + r] */
    uint8_t *zero;       /* [n_groups * rows]: zero[g * rows + r], in [0, 2^bits) (128 for 8-bit sym) */
    int32_t *g_idx;      /* [cols] group of each input column */
    /* diagnostics */
    double loss;         /* GPTQ: sum (w-q)^2 / (2 d^2) as the reference prints; RTN: 0 */
    double damp_used;    /* GPTQ: final damping fraction */
    int damp_tries;      /* GPTQ: Cholesky attempts */
    int64_t dead_cols;   /* GPTQ: columns with H_ii == 0 */
    double secs_inverse; /* GPTQ wall time: damped Cholesky + inverse factor */
    double secs_columns; /* GPTQ wall time: in-block column loop (quantize + error feedback) */
    double secs_update;  /* GPTQ wall time: lazy trailing updates (one sgemm per block) */
} cq_qresult;

/* Allocate the arrays of *r for a rows x cols matrix (n_groups from cfg->group_size) and zero
 * the diagnostics. Returns CQ_OK, CQ_E_USAGE (bad dims) or CQ_E_NOMEM; on failure *r is
 * released. The caller owns *r and frees it with cq_qresult_release. */
int cq_qresult_alloc(cq_qresult *r, int64_t rows, int64_t cols, const cq_qconfig *cfg,
                     cq_error *err);
/* Free the arrays and zero *r. NULL-safe; safe on a zeroed struct. */
void cq_qresult_release(cq_qresult *r);
/* out[rows * cols] = dequantized weights (f32), computed as the reference does:
 * scale * (q - zero) in float32. */
void cq_qresult_dequant(const cq_qresult *r, float *out);

/* Statistics a calibrated method may need. */
typedef struct cq_qstats {
    const double *hessian;  /* [cols * cols] H = (2/n) sum x x^T, or NULL */
    int64_t n_samples;
} cq_qstats;

enum { CQ_NEED_HESSIAN = 1u << 0 };

typedef struct cq_quantizer {
    const char *name;       /* "rtn" | "gptq" */
    const char *summary;
    unsigned needs;
    bool keeps_w;           /* run() leaves w unchanged (callers need not reload it) */
    /* w[rows*cols] may be modified (GPTQ leaves its working copy there). */
    int (*run)(const cq_qconfig *cfg, float *w, int64_t rows, int64_t cols,
               const cq_qstats *stats, cq_qresult *out, cq_error *err);
} cq_quantizer;

extern const cq_quantizer cq_quantizer_rtn;
extern const cq_quantizer cq_quantizer_gptq;
/* The quantizer called `name`, or NULL. */
const cq_quantizer *cq_quantizer_find(const char *name);
/* The table behind cq_quantizer_find: n entries (for --help and for tests that loop over it). */
const cq_quantizer *const *cq_quantizer_list(int *n);

/* RTN min-max (notes §B.4) per row or per group; round half to even; optional MSE clip search.
 * Allocates *out (release with cq_qresult_release). Returns CQ_OK, CQ_E_USAGE, CQ_E_NUMERIC
 * (NaN/Inf in w) or CQ_E_NOMEM; on failure *out is released. Thread-safe. */
int cq_rtn_quantize(const cq_qconfig *cfg, const float *w, int64_t rows, int64_t cols,
                    cq_qresult *out, cq_error *err);
/* Groups (contiguous columns of group_size, or whole rows with -1) of w [rows x cols] whose
 * values are all equal: all-zero rows and groups and constant groups, whose grid is degenerate
 * (docs/reliability.md, Numeric faults). Reported per Linear as "zero_range_groups". */
int64_t cq_zero_range_groups(const float *w, int64_t rows, int64_t cols, int group_size);

/* Per-row sums of the weight-error metric, each array [rows] (report/werr.c adds them up in
 * row order: cq_werr_from_rows). */
typedef struct cq_row_err {
    double *se, *sw, *mx; /* sum (w - wq)^2, sum w^2, max |w - wq| */
    unsigned char *nan;   /* some w - wq was NaN */
} cq_row_err;

/* cq_rtn_quantize straight from a stored F32/F16/BF16 tensor (`src`, row-major), fused with the
 * error measurement: each row is converted into a small buffer and quantized, and its error
 * against the F16-rounded scales (what every layout stores) summed while it is in cache. The
 * same codes as cq_rtn_quantize, its scales already rounded to F16, and the same sums as
 * cq_weight_error_q, in one pass over the input instead of four over an f32 copy. re's arrays
 * are the caller's ([rows] each); *zero_range gets cq_zero_range_groups' count. Returns CQ_OK,
 * CQ_E_UNSUPPORTED (another dtype), CQ_E_NUMERIC (a NaN/Inf row: the two-pass path names it),
 * CQ_E_USAGE or CQ_E_NOMEM; on failure *out is released. Thread-safe. */
int cq_rtn_quantize_stored(const cq_qconfig *cfg, cq_dtype dt, const void *src, int64_t rows,
                           int64_t cols, cq_qresult *out, cq_row_err *re, int64_t *zero_range,
                           cq_error *err);
/* GPTQ (notes §E). h[cols*cols] is the Hessian (row-major, symmetric) and is only read.
 * On success w holds the fake-quantized weights Q (= cq_qresult_dequant(out)) in the original
 * column order; on failure w is unspecified. Allocates *out as cq_rtn_quantize does.
 * Returns CQ_OK, CQ_E_USAGE, CQ_E_NUMERIC (NaN/Inf in w or h, or H not positive definite after
 * cfg->max_damp_tries attempts; the message names no layer: the caller prefixes it) or
 * CQ_E_NOMEM. Thread-safe (uses cfg->threads workers plus OpenBLAS's threads). */
int cq_gptq_quantize(const cq_qconfig *cfg, float *w, int64_t rows, int64_t cols,
                     const double *h, cq_qresult *out, cq_error *err);

#endif
