/* Vectorizable f32 loops. libm's expf is one call per element and the clamps below are float
 * compares, which gcc refuses to if-convert under the default -ftrapping-math; this file (and
 * only it) is compiled without trapping math so that the loops vectorize. No code here relies
 * on floating-point exceptions. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

#include "model/vecmath.h"

#include <string.h>

static inline float exp_poly(float xin)
{
    /* Clamps written so that NaN lands inside the range too: otherwise n is NaN and its int
     * conversion and the exponent arithmetic below are undefined (UBSan: signed overflow, found
     * by tests/cli/hostile.sh with NaN weights through awq). NaN is restored at the end. */
    float x = xin < 88.0f ? xin : 88.0f;
    x = x > -87.0f ? x : -87.0f;
    /* n = round(x / ln 2) with the 1.5·2^23 trick (no roundps on baseline x86-64);
     * r = x − n·ln 2 in two parts (Cody-Waite) */
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) * (1 << 23);
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return xin != xin ? xin : y * scale;
}

void cq_vexp_sub(float *x, int64_t n, float sub)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = exp_poly(x[i] - sub);
}

float cq_vsum(const float *x, int64_t n)
{
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            acc[k] += x[i + k];
    float s = 0;
    for (; i < n; i++)
        s += x[i];
    for (int k = 0; k < 8; k++)
        s += acc[k];
    return s;
}

float cq_vmax(const float *x, int64_t n)
{
    float acc[8];
    for (int k = 0; k < 8; k++)
        acc[k] = x[0];
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            acc[k] = x[i + k] > acc[k] ? x[i + k] : acc[k];
    float m = acc[0];
    for (; i < n; i++)
        m = x[i] > m ? x[i] : m;
    for (int k = 1; k < 8; k++)
        m = acc[k] > m ? acc[k] : m;
    return m;
}

void cq_vsilu_mul(float *g, const float *u, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        g[i] = g[i] / (1.0f + exp_poly(-g[i])) * u[i];
}
