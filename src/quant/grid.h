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

/* Round to nearest, ties to even, like rintf in the default FP environment and torch.round.
 * For |t| < 2^22 adding and subtracting 1.5 * 2^23 does exactly that (the sum lands in
 * [2^23, 2^24), where the spacing is 1). Larger |t| come back still larger than 2^21 with their
 * sign, which the clamp below maps exactly as it would map rint(t), since codes are <= 255.
 * Written out because without SSE4.1 (the x86-64 baseline) rintf is a libm call per element. */
static inline float cq_grid_rint(float t)
{
    const float magic = 12582912.0f; /* 1.5 * 2^23 */
    return (t + magic) - magic;
}

/* clamp(rint(x / scale) + zero, 0, maxq). */
static inline float cq_grid_code(float x, float scale, float zero, float maxq)
{
    float q = cq_grid_rint(x / scale) + zero;
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
