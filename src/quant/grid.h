/* The min-max grid shared by every quantizer (notes §B.4, §E.11, §E.12): fit a scale and zero
 * point per row of a slice, and map values to codes. Everything is float32, as the reference
 * computes it, so codes match bit for bit; only sums over a row (MSE search) use double. */
#ifndef CQ_QUANT_GRID_H
#define CQ_QUANT_GRID_H

#include "cquant/error.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct cq_grid {
    float maxq; /* 2^bits - 1 */
    bool sym;
    bool mse;   /* clip search of §E.12 */
} cq_grid;

void cq_grid_init(cq_grid *g, int bits, bool sym, bool mse);

/* Fit one row: x[0..n) -> *scale, *zero (zero is integral, stored as float like torch). */
void cq_grid_fit(const cq_grid *g, const float *x, int64_t n, float *scale, float *zero);

/* Fit rows [0, rows) of the slice starting at w (row stride ld, n columns). */
void cq_grid_fit_rows(const cq_grid *g, const float *w, int64_t ld, int64_t rows, int64_t n,
                      float *scale, float *zero);

/* clamp(rint(x / scale) + zero, 0, maxq). rint rounds half to even in the default FP
 * environment, as torch.round does; round() would not. */
static inline float cq_grid_code(float x, float scale, float zero, float maxq)
{
    float q = rintf(x / scale) + zero;
    return q < 0.0f ? 0.0f : (q > maxq ? maxq : q);
}

/* scale * (code - zero), the reference's fake-quantized value. */
static inline float cq_grid_dequant(float code, float scale, float zero)
{
    return scale * (code - zero);
}

/* CQ_E_NUMERIC if any of w[0..n) is NaN or Inf. */
int cq_check_finite(const float *w, int64_t n, cq_error *err);

#endif
