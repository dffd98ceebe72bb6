/* Vectorizable f32 loops of the forward pass (internal). */
#ifndef CQ_MODEL_VECMATH_H
#define CQ_MODEL_VECMATH_H

#include <stdint.h>

/* x[i] = exp(x[i] - sub), Cephes polynomial (~2 ulp); inputs below -87 give ~1e-38. */
void cq_vexp_sub(float *x, int64_t n, float sub);
/* Sum and max with 8 independent lanes (order differs from a sequential sum). */
float cq_vsum(const float *x, int64_t n);
float cq_vmax(const float *x, int64_t n);
/* g[i] = silu(g[i]) * u[i], silu(x) = x / (1 + exp(-x)). */
void cq_vsilu_mul(float *g, const float *u, int64_t n);

#endif
