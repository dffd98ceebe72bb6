/* Min-max fit (notes §B.4) and MSE clip search (§E.12). The steps and their float32 rounding
 * follow the reference quantizer's find_params, quirks included (see grid.h). */
#include "quant/grid.h"

void cq_grid_init(cq_grid *g, int bits, bool sym, bool mse)
{
    g->maxq = (float)((1 << bits) - 1);
    g->sym = sym;
    g->mse = mse;
}

static void minmax(const float *x, int64_t n, float *lo, float *hi)
{
    /* Zero is always inside the range (§B.4 step 1). */
    float a = 0.0f, b = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        a = x[i] < a ? x[i] : a;
        b = x[i] > b ? x[i] : b;
    }
    *lo = a;
    *hi = b;
}

/* Sum over the row of |quantize(x) - x|^norm. Accumulated in double: the reference sums in
 * float32 in an unspecified order, so neither order is "the" one; double makes ties between
 * candidate shrink factors depend on the values, not on summation order. */
static double clip_error(const cq_grid *g, const float *x, int64_t n, float scale, float zero)
{
    double e = 0.0;
    for (int64_t i = 0; i < n; i++) {
        float q = cq_grid_dequant(cq_grid_code(x[i], scale, zero, g->maxq), scale, zero);
        e += (double)powf(fabsf(q - x[i]), 2.4f);
    }
    return e;
}

/* §E.12: shrink the range by p = 1 - i/100 for i < 80, keep the first best (strict <). */
static void mse_search(const cq_grid *g, const float *x, int64_t n, float xmin, float xmax,
                       float *scale, float *zero)
{
    double best = INFINITY;
    for (int i = 0; i < 80; i++) {
        float p = (float)(1.0 - i / 100.0);
        float lo = p * xmin, hi = p * xmax;
        float s = (hi - lo) / g->maxq;
        float z = g->sym ? *zero : rintf(-lo / s);
        double e = clip_error(g, x, n, s, z);
        if (e < best) {
            best = e;
            *scale = s;
            *zero = z;
        }
    }
}

void cq_grid_fit(const cq_grid *g, const float *x, int64_t n, float *scale, float *zero)
{
    float xmin, xmax;
    minmax(x, n, &xmin, &xmax);
    if (g->sym) {
        float a = fabsf(xmin);
        xmax = a > xmax ? a : xmax;
        /* QUIRK (§B.4): an all-non-negative row keeps xmin = 0, so half the grid is unused. */
        if (xmin < 0.0f)
            xmin = -xmax;
    }
    if (xmin == 0.0f && xmax == 0.0f) {
        xmin = -1.0f;
        xmax = 1.0f;
    }
    *scale = (xmax - xmin) / g->maxq;
    if (!(*scale > 0.0f)) {
        /* Range below ~1e-37: the scale underflows to 0 and every code would be 0/0. The
         * reference produces NaN codes there; we treat the row as all-zero instead. */
        xmin = -1.0f;
        xmax = 1.0f;
        *scale = 2.0f / g->maxq;
    }
    *zero = g->sym ? (g->maxq + 1.0f) / 2.0f : rintf(-xmin / *scale);
    if (g->mse)
        mse_search(g, x, n, xmin, xmax, scale, zero);
}

/* NaN would make min/max and every code meaningless; Inf makes the scale Inf. */
int cq_check_finite(const float *w, int64_t n, cq_error *err)
{
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(w[i]))
            return cq_errorf(err, CQ_E_NUMERIC, "weight has a non-finite value at %lld",
                             (long long)i);
    return CQ_OK;
}

void cq_grid_fit_rows(const cq_grid *g, const float *w, int64_t ld, int64_t rows, int64_t n,
                      float *scale, float *zero)
{
    for (int64_t r = 0; r < rows; r++)
        cq_grid_fit(g, w + r * ld, n, &scale[r], &zero[r]);
}
