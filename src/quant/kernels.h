/* Inner loops of RTN and of the weight-error metric, over one contiguous run of a row. Each has
 * a portable version and an AVX2 one picked at run time (core/cpu.h); the two give the same
 * bits, sums included (the portable sums use the AVX2 lane order), which the tests check with
 * cq_cpu_force_baseline. */
#ifndef CQ_QUANT_KERNELS_H
#define CQ_QUANT_KERNELS_H

#include <stdbool.h>
#include <stdint.h>

/* No NaN or Inf in x[0..n). */
bool cq_k_all_finite(const float *x, int64_t n);

/* min(0, x...) and max(0, x...) of finite x (notes §B.4 step 1). The sign of a zero result may
 * differ from a sequential scan's; no caller can tell (-0 and +0 fit the same grid). */
void cq_k_minmax(const float *x, int64_t n, float *lo, float *hi);

/* q[i] = cq_grid_code(x[i], scale, zero, maxq) for finite x. */
void cq_k_codes(const float *x, int64_t n, float scale, float zero, float maxq, uint8_t *q);

/* Error sums of w against scale * (q - zero) (computed in float32, as cq_qresult_dequant does),
 * in double. Element i of a run goes to lane i % 8 of se/sw, so the order of additions is fixed
 * by the data layout, not by the code path or thread count. */
typedef struct cq_k_err {
    double se[8];  /* sum (w - wq)^2 */
    double sw[8];  /* sum w^2 */
    double max_abs;
    bool nan;      /* some w - wq was NaN */
} cq_k_err;

void cq_k_err_add(cq_k_err *e, const float *w, const uint8_t *q, int64_t n, float scale,
                  float zero);

struct cq_row_err;
/* Row r's entry of re's arrays (cquant/quant.h): the lanes of e added in lane order. */
void cq_k_err_row(const cq_k_err *e, const struct cq_row_err *re, int64_t r);

/* cq_k_minmax, returning false (lo/hi then unspecified) when x holds NaN or Inf: the finiteness
 * check and the range in one pass. */
bool cq_k_minmax_finite(const float *x, int64_t n, float *lo, float *hi);

#endif
