/* Portable and AVX2 versions of the kernels in kernels.h. The AVX2 ones use only operations
 * that round like their scalar twins: divps/addps/subps/mulps (no FMA: target "avx2" alone
 * does not enable it, and C11 mode does not contract), min/max on non-NaN values, and exact
 * conversions. */
#include "quant/kernels.h"

#include "core/cpu.h"
#include "cquant/quant.h"
#include "quant/grid.h"

#include <float.h>
#include <math.h>

static bool all_finite_c(const float *x, int64_t n)
{
    /* No early exit, so the compiler can vectorize it; !(|x| <= FLT_MAX) is true for NaN. */
    int bad = 0;
    for (int64_t i = 0; i < n; i++)
        bad |= !(fabsf(x[i]) <= FLT_MAX);
    return !bad;
}

static void minmax_c(const float *x, int64_t n, float *lo, float *hi)
{
    float a = 0.0f, b = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        a = x[i] < a ? x[i] : a;
        b = x[i] > b ? x[i] : b;
    }
    *lo = a;
    *hi = b;
}

static void codes_c(const float *x, int64_t n, float scale, float zero, float maxq, uint8_t *q)
{
    for (int64_t i = 0; i < n; i++)
        q[i] = (uint8_t)cq_grid_code(x[i], scale, zero, maxq);
}

static void err_one(cq_k_err *e, int lane, float w, uint8_t q, float scale, float zero)
{
    float wq = scale * ((float)q - zero);
    double d = (double)w - (double)wq;
    e->se[lane] += d * d;
    e->sw[lane] += (double)w * (double)w;
    if (isnan(d))
        e->nan = true;
    else if (fabs(d) > e->max_abs)
        e->max_abs = fabs(d);
}

static void err_add_c(cq_k_err *e, const float *w, const uint8_t *q, int64_t n, float scale,
                      float zero)
{
    for (int64_t i = 0; i < n; i++)
        err_one(e, (int)(i & 7), w[i], q[i], scale, zero);
}

static bool minmax_finite_c(const float *x, int64_t n, float *lo, float *hi)
{
    if (!all_finite_c(x, n))
        return false;
    minmax_c(x, n, lo, hi);
    return true;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define AVX2 __attribute__((target("avx2")))

AVX2 static bool all_finite_avx2(const float *x, int64_t n)
{
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256 big = _mm256_set1_ps(FLT_MAX);
    __m256 bad = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 a = _mm256_and_ps(_mm256_loadu_ps(x + i), absmask);
        bad = _mm256_or_ps(bad, _mm256_cmp_ps(a, big, _CMP_NLE_UQ)); /* NaN too */
    }
    return _mm256_movemask_ps(bad) == 0 && all_finite_c(x + i, n - i);
}

/* Fold the lane minima/maxima A, B and the scalar tail x[0..n) into *lo, *hi (one reduction
 * order for every caller, so their results are the same bits). */
AVX2 static void minmax_finish(__m256 a, __m256 b, const float *x, int64_t n, float *lo,
                               float *hi)
{
    float la[8], lb[8], ta, tb;
    _mm256_storeu_ps(la, a);
    _mm256_storeu_ps(lb, b);
    minmax_c(x, n, &ta, &tb);
    for (int k = 0; k < 8; k++) {
        ta = la[k] < ta ? la[k] : ta;
        tb = lb[k] > tb ? lb[k] : tb;
    }
    *lo = ta;
    *hi = tb;
}

AVX2 static void minmax_avx2(const float *x, int64_t n, float *lo, float *hi)
{
    __m256 a = _mm256_setzero_ps(), b = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        a = _mm256_min_ps(a, v);
        b = _mm256_max_ps(b, v);
    }
    minmax_finish(a, b, x + i, n - i, lo, hi);
}

AVX2 static void codes_avx2(const float *x, int64_t n, float scale, float zero, float maxq,
                            uint8_t *q)
{
    const __m256 s = _mm256_set1_ps(scale), z = _mm256_set1_ps(zero);
    const __m256 mq = _mm256_set1_ps(maxq), magic = _mm256_set1_ps(12582912.0f);
    const __m256 zeros = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i c[2];
        for (int h = 0; h < 2; h++) {
            __m256 t = _mm256_div_ps(_mm256_loadu_ps(x + i + 8 * h), s);
            t = _mm256_sub_ps(_mm256_add_ps(t, magic), magic); /* cq_grid_rint */
            t = _mm256_add_ps(t, z);
            /* q < 0 ? 0 : (q > maxq ? maxq : q): max/min give the same for non-NaN q, a
             * -0 becoming +0 (code 0 either way) */
            t = _mm256_min_ps(_mm256_max_ps(t, zeros), mq);
            c[h] = _mm256_cvttps_epi32(t);
        }
        __m256i w16 = _mm256_packus_epi32(c[0], c[1]);  /* lanes: a0-3 b0-3 | a4-7 b4-7 */
        w16 = _mm256_permute4x64_epi64(w16, 0xD8);      /* a0-3 a4-7 | b0-3 b4-7 */
        __m128i b8 = _mm_packus_epi16(_mm256_castsi256_si128(w16),
                                      _mm256_extracti128_si256(w16, 1));
        _mm_storeu_si128((__m128i *)(q + i), b8);
    }
    codes_c(x + i, n - i, scale, zero, maxq, q + i);
}

AVX2 static void err_add_avx2(cq_k_err *e, const float *w, const uint8_t *q, int64_t n,
                              float scale, float zero)
{
    const __m256 s = _mm256_set1_ps(scale), z = _mm256_set1_ps(zero);
    const __m256d absmask = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7fffffffffffffffLL));
    __m256d se0 = _mm256_loadu_pd(e->se), se1 = _mm256_loadu_pd(e->se + 4);
    __m256d sw0 = _mm256_loadu_pd(e->sw), sw1 = _mm256_loadu_pd(e->sw + 4);
    __m256d mx = _mm256_set1_pd(e->max_abs), nan = _mm256_setzero_pd();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(w + i);
        __m128i q8 = _mm_loadl_epi64((const __m128i *)(q + i));
        __m256 qf = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(q8));
        __m256 wq = _mm256_mul_ps(s, _mm256_sub_ps(qf, z));
        __m256d x0 = _mm256_cvtps_pd(_mm256_castps256_ps128(x));
        __m256d x1 = _mm256_cvtps_pd(_mm256_extractf128_ps(x, 1));
        __m256d d0 = _mm256_sub_pd(x0, _mm256_cvtps_pd(_mm256_castps256_ps128(wq)));
        __m256d d1 = _mm256_sub_pd(x1, _mm256_cvtps_pd(_mm256_extractf128_ps(wq, 1)));
        se0 = _mm256_add_pd(se0, _mm256_mul_pd(d0, d0));
        se1 = _mm256_add_pd(se1, _mm256_mul_pd(d1, d1));
        sw0 = _mm256_add_pd(sw0, _mm256_mul_pd(x0, x0));
        sw1 = _mm256_add_pd(sw1, _mm256_mul_pd(x1, x1));
        nan = _mm256_or_pd(nan, _mm256_cmp_pd(d0, d1, _CMP_UNORD_Q));
        /* max_pd returns its second operand when one is NaN: NaN is tracked apart */
        mx = _mm256_max_pd(_mm256_max_pd(_mm256_and_pd(d0, absmask), _mm256_and_pd(d1, absmask)),
                           mx);
    }
    _mm256_storeu_pd(e->se, se0);
    _mm256_storeu_pd(e->se + 4, se1);
    _mm256_storeu_pd(e->sw, sw0);
    _mm256_storeu_pd(e->sw + 4, sw1);
    double m[4];
    _mm256_storeu_pd(m, mx);
    for (int k = 0; k < 4; k++)
        e->max_abs = m[k] > e->max_abs ? m[k] : e->max_abs;
    e->nan |= _mm256_movemask_pd(nan) != 0;
    for (; i < n; i++)
        err_one(e, (int)(i & 7), w[i], q[i], scale, zero);
}
AVX2 static bool minmax_finite_avx2(const float *x, int64_t n, float *lo, float *hi)
{
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256 big = _mm256_set1_ps(FLT_MAX);
    __m256 a = _mm256_setzero_ps(), b = _mm256_setzero_ps(), bad = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        bad = _mm256_or_ps(bad, _mm256_cmp_ps(_mm256_and_ps(v, absmask), big, _CMP_NLE_UQ));
        a = _mm256_min_ps(a, v);
        b = _mm256_max_ps(b, v);
    }
    if (_mm256_movemask_ps(bad) != 0 || !all_finite_c(x + i, n - i))
        return false;
    minmax_finish(a, b, x + i, n - i, lo, hi);
    return true;
}

#undef AVX2
#else
static bool all_finite_avx2(const float *x, int64_t n) { return all_finite_c(x, n); }
static void minmax_avx2(const float *x, int64_t n, float *lo, float *hi) { minmax_c(x, n, lo, hi); }
static void codes_avx2(const float *x, int64_t n, float scale, float zero, float maxq, uint8_t *q)
{
    codes_c(x, n, scale, zero, maxq, q);
}
static void err_add_avx2(cq_k_err *e, const float *w, const uint8_t *q, int64_t n, float scale,
                         float zero)
{
    err_add_c(e, w, q, n, scale, zero);
}
static bool minmax_finite_avx2(const float *x, int64_t n, float *lo, float *hi)
{
    return minmax_finite_c(x, n, lo, hi);
}
#endif

void cq_k_err_row(const cq_k_err *e, const cq_row_err *re, int64_t r)
{
    double se = 0.0, sw = 0.0;
    for (int l = 0; l < 8; l++) {
        se += e->se[l];
        sw += e->sw[l];
    }
    re->se[r] = se;
    re->sw[r] = sw;
    re->mx[r] = e->max_abs;
    re->nan[r] = e->nan;
}

bool cq_k_minmax_finite(const float *x, int64_t n, float *lo, float *hi)
{
    return cq_cpu_avx2() ? minmax_finite_avx2(x, n, lo, hi) : minmax_finite_c(x, n, lo, hi);
}

bool cq_k_all_finite(const float *x, int64_t n)
{
    return cq_cpu_avx2() ? all_finite_avx2(x, n) : all_finite_c(x, n);
}

void cq_k_minmax(const float *x, int64_t n, float *lo, float *hi)
{
    if (cq_cpu_avx2())
        minmax_avx2(x, n, lo, hi);
    else
        minmax_c(x, n, lo, hi);
}

void cq_k_codes(const float *x, int64_t n, float scale, float zero, float maxq, uint8_t *q)
{
    if (cq_cpu_avx2())
        codes_avx2(x, n, scale, zero, maxq, q);
    else
        codes_c(x, n, scale, zero, maxq, q);
}

void cq_k_err_add(cq_k_err *e, const float *w, const uint8_t *q, int64_t n, float scale,
                  float zero)
{
    if (cq_cpu_avx2())
        err_add_avx2(e, w, q, n, scale, zero);
    else
        err_add_c(e, w, q, n, scale, zero);
}
