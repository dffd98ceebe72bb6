/* RTN on the min-max grid (notes §B.4): closed-form cases (on-grid values round-trip, ties go to
 * even, zero rows, the sym quirk) and random matrices against a naive double reimplementation
 * of §B.4 written here; plus the MSE clip search (§E.12), options and the registry. */
#include "cq_test.h"
#include "cq_rand.h"
#include "cq_testutil.h"
#include "cquant/quant.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x9E3779B97F4A7C15ull;

/* §B.4 in double, independent of src/quant. */
static void ref_fit(const double *x, int64_t n, int bits, bool sym, double *scale, double *zero)
{
    double maxq = (double)((1 << bits) - 1), lo;
    *scale = cq_test_minmax_scale(x, n, bits, sym, &lo);
    *zero = sym ? (maxq + 1) / 2 : nearbyint(-lo / *scale);
}

/* The reference reads the matrix in double. */
static double *to_double(const float *w, int64_t n)
{
    double *d = malloc((size_t)n * sizeof *d);
    for (int64_t i = 0; i < n; i++)
        d[i] = w[i];
    return d;
}

static cq_qconfig cfg_of(int bits, int group, bool sym)
{
    cq_qconfig c;
    cq_qconfig_defaults(&c);
    c.bits = bits;
    c.group_size = group;
    c.sym = sym;
    return c;
}

CQ_TEST(defaults_and_check)
{
    cq_qconfig c;
    cq_error err = CQ_ERROR_INIT;
    cq_qconfig_defaults(&c);
    CQ_CHECK_EQ_INT(c.bits, 4);
    CQ_CHECK_EQ_INT(c.group_size, 128);
    CQ_CHECK(c.sym);
    CQ_CHECK_NEAR(c.damp, 0.01, 0);
    CQ_CHECK_EQ_INT(c.block_size, 128);
    CQ_CHECK_EQ_INT(c.max_damp_tries, 6);
    CQ_CHECK_OK(cq_qconfig_check(&c, &err), &err);
    c.bits = 5;
    CQ_CHECK_EQ_INT(cq_qconfig_check(&c, &err), CQ_E_USAGE);
    CQ_CHECK(strstr(err.msg, "bits") != NULL);
    cq_qconfig_defaults(&c);
    c.group_size = 0;
    cq_error_clear(&err);
    CQ_CHECK_EQ_INT(cq_qconfig_check(&c, &err), CQ_E_USAGE);
    cq_qconfig_defaults(&c);
    c.damp = -1;
    cq_error_clear(&err);
    CQ_CHECK_EQ_INT(cq_qconfig_check(&c, &err), CQ_E_USAGE);
}

CQ_TEST(registry)
{
    int n = 0;
    const cq_quantizer *const *all = cq_quantizer_list(&n);
    CQ_CHECK_EQ_INT(n, 2);
    for (int i = 0; i < n; i++) {
        CQ_CHECK(cq_quantizer_find(all[i]->name) == all[i]);
        CQ_CHECK(all[i]->run != NULL && all[i]->summary != NULL);
    }
    CQ_CHECK(cq_quantizer_find("rtn") == &cq_quantizer_rtn);
    CQ_CHECK(cq_quantizer_find("gptq") == &cq_quantizer_gptq);
    CQ_CHECK(cq_quantizer_gptq.needs & CQ_NEED_HESSIAN);
    CQ_CHECK(cq_quantizer_find("awq-nope") == NULL);
    CQ_CHECK(cq_quantizer_find(NULL) == NULL);
}

/* Values s*(q - z) with q spanning 0..maxq define exactly that grid (s a power of two keeps
 * every step exact), so codes are q and dequantization gives the values back bit for bit. */
CQ_TEST(on_grid_round_trip)
{
    static const int bits[] = {2, 3, 4, 8};
    for (int b = 0; b < 4; b++) {
        int maxq = (1 << bits[b]) - 1, n = maxq + 1, z = maxq / 3;
        float *w = malloc((size_t)n * sizeof *w), *dq = malloc((size_t)n * sizeof *dq);
        for (int q = 0; q < n; q++)
            w[q] = 0.25f * (float)(q - z);
        cq_qconfig c = cfg_of(bits[b], -1, false);
        cq_qresult r;
        cq_error err = CQ_ERROR_INIT;
        CQ_CHECK_OK(cq_rtn_quantize(&c, w, 1, n, &r, &err), &err);
        CQ_CHECK_NEAR(r.scale[0], 0.25, 0);
        CQ_CHECK_EQ_INT(r.zero[0], z);
        cq_qresult_dequant(&r, dq);
        int bad = 0;
        for (int q = 0; q < n; q++)
            bad += r.q[q] != q || dq[q] != w[q];
        CQ_CHECK_EQ_INT(bad, 0);
        cq_qresult_release(&r);
        free(w);
        free(dq);
    }
}

/* Exact halves: x/scale = k + 0.5 must round to the even k (torch.round), not away from 0. */
CQ_TEST(ties_to_even)
{
    float w[8] = {0.0f, 15.0f, 0.5f, 1.5f, 2.5f, 3.5f, 12.5f, 13.5f}; /* scale 1, zero 0 */
    static const int want[8] = {0, 15, 0, 2, 2, 4, 12, 14};
    cq_qconfig c = cfg_of(4, -1, false);
    cq_qresult r;
    cq_error err = CQ_ERROR_INIT;
    CQ_CHECK_OK(cq_rtn_quantize(&c, w, 1, 8, &r, &err), &err);
    CQ_CHECK_NEAR(r.scale[0], 1.0, 0);
    CQ_CHECK_EQ_INT(r.zero[0], 0);
    for (int i = 0; i < 8; i++)
        CQ_CHECK_EQ_INT(r.q[i], want[i]);
    cq_qresult_release(&r);
}

/* xmin == xmax == 0 -> range [-1, 1]: scale 2/maxq; asym zero = rint(1/scale). In exact
 * arithmetic that is the tie maxq/2, but the reference computes it in float32, where
 * 1/fl(2/maxq) lands just below or above the half; so the expectation is the float32 formula. */
CQ_TEST(zero_rows)
{
    static const int bits[] = {2, 3, 4, 8};
    float w[2 * 40] = {0};
    for (int b = 0; b < 4; b++) {
        for (int sym = 0; sym < 2; sym++) {
            cq_qconfig c = cfg_of(bits[b], 16, sym);
            cq_qresult r;
            cq_error err = CQ_ERROR_INIT;
            CQ_CHECK_OK(cq_rtn_quantize(&c, w, 2, 40, &r, &err), &err);
            CQ_CHECK_EQ_INT(r.n_groups, 3);
            int maxq = (1 << bits[b]) - 1, bad = 0;
            volatile float fs = 2.0f / (float)maxq; /* volatile: no constant folding in double */
            int z = sym ? (maxq + 1) / 2 : (int)rintf(1.0f / fs);
            for (int g = 0; g < 6; g++)
                bad += r.zero[g] != z || r.scale[g] != 2.0f / (float)maxq;
            for (int i = 0; i < 80; i++)
                bad += r.q[i] != z;
            CQ_CHECK_EQ_INT(bad, 0);
            cq_qresult_release(&r);
        }
    }
}

/* QUIRK §B.4: a sym row with no negative value keeps xmin = 0: scale = max/maxq, zero 8, so
 * everything above 7 steps clips to code 15 (dequantized 7*scale). A row with a negative value
 * gets the symmetric range. */
CQ_TEST(sym_quirk_positive_rows)
{
    float w[2 * 4] = {0.0f, 0.3f, 1.0f, 1.5f, -2.0f, 0.5f, 1.0f, 0.0f};
    cq_qconfig c = cfg_of(4, -1, true);
    cq_qresult r;
    cq_error err = CQ_ERROR_INIT;
    float dq[8];
    CQ_CHECK_OK(cq_rtn_quantize(&c, w, 2, 4, &r, &err), &err);
    CQ_CHECK_NEAR(r.scale[0], 1.5f / 15.0f, 0);
    CQ_CHECK_EQ_INT(r.zero[0], 8);
    CQ_CHECK_EQ_INT(r.q[3], 15); /* 1.5/0.1 + 8 = 23 -> clamped */
    CQ_CHECK_EQ_INT(r.q[2], 15);
    CQ_CHECK_EQ_INT(r.q[1], 11);
    CQ_CHECK_NEAR(r.scale[1], 4.0f / 15.0f, 0);
    /* -2 / fl(4/15) = -7.4999998 in float32: code 1, not the tie-to-even 0 of exact math. */
    CQ_CHECK_EQ_INT(r.q[4], 1);
    cq_qresult_dequant(&r, dq);
    CQ_CHECK_NEAR(dq[3], 7.0f * (1.5f / 15.0f), 1e-7);
    CQ_CHECK_NEAR(dq[4], -7.0f * (4.0f / 15.0f), 1e-6);
    cq_qresult_release(&r);
}

/* Random Gaussian matrices with a few outliers against the double reference. A code may differ
 * only where x/scale sits within 1e-4 of a rounding tie (float32 vs double scale). */
static void compare_random(int64_t rows, int64_t cols, int bits, int group, bool sym)
{
    float *w = malloc((size_t)(rows * cols) * sizeof *w);
    for (int64_t i = 0; i < rows * cols; i++) {
        double x = cq_rand_normal(&rng);
        w[i] = (float)(x * (cq_rand_uniform(&rng) < 0.01 ? 8.0 : 1.0) + (sym ? 0.0 : 0.3));
    }
    for (int64_t c = 0; c < cols; c++) /* one all-positive row exercises the quirk */
        w[c] = fabsf(w[c]);
    cq_qconfig c = cfg_of(bits, group, sym);
    cq_qresult r;
    cq_error err = CQ_ERROR_INIT;
    CQ_CHECK_OK(cq_rtn_quantize(&c, w, rows, cols, &r, &err), &err);
    double *wd = to_double(w, rows * cols);
    int64_t gs = group == -1 ? cols : group, bad = 0, ties = 0, badg = 0, extremes = 0;
    double maxq = (double)((1 << bits) - 1);
    for (int64_t i = 0; i < rows; i++) {
        for (int64_t g = 0; g * gs < cols; g++) {
            int64_t c0 = g * gs, n = cols - c0 < gs ? cols - c0 : gs;
            double s, z;
            ref_fit(wd + i * cols + c0, n, bits, sym, &s, &z);
            badg += fabs(r.scale[g * rows + i] - s) > 1e-6 * s || r.zero[g * rows + i] != z;
            for (int64_t k = c0; k < c0 + n; k++) {
                double t = w[i * cols + k] / s;
                double q = fmin(fmax(nearbyint(t) + z, 0), maxq);
                if (r.q[i * cols + k] == q && r.g_idx[k] == g)
                    continue;
                /* sym: the negative extreme sits exactly on -maxq/2 in exact arithmetic, a tie
                 * that float32 (the reference's precision) breaks one way or the other. */
                if (sym && fabs(fabs(t) - maxq / 2) < 1e-4)
                    extremes++;
                else if (fabs(t - floor(t) - 0.5) < 1e-4)
                    ties++;
                else
                    bad++;
            }
        }
    }
    if (bad || badg)
        CQ_FAIL("rtn %lldx%lld b%d g%d sym%d: %lld codes, %lld group params differ", (long long)rows,
                (long long)cols, bits, group, sym, (long long)bad, (long long)badg);
    CQ_CHECK(extremes <= r.n_groups * rows);
    if (ties * 1000 > rows * cols)
        CQ_FAIL("b%d g%d sym%d: %lld near-ties", bits, group, sym, (long long)ties);
    cq_qresult_release(&r);
    free(wd);
    free(w);
}

CQ_TEST(random_against_double_reference)
{
    static const int bits[] = {2, 3, 4, 8}, groups[] = {-1, 32, 128};
    for (int b = 0; b < 4; b++)
        for (int g = 0; g < 3; g++)
            for (int sym = 0; sym < 2; sym++)
                compare_random(24, 200, bits[b], groups[g], sym);
}

/* §E.12 in double: shrink p = 1 - i/100, i < 80; keep the first strict minimum of
 * sum |q(x) - x|^2.4. Compared on the chosen scale and zero. */
static void ref_mse(const double *x, int n, int bits, bool sym, double *scale, double *zero)
{
    double maxq = (double)((1 << bits) - 1), lo, hi, best = INFINITY;
    cq_test_minmax(x, n, sym, &lo, &hi);
    for (int i = 0; i < 80; i++) {
        double p = 1.0 - i / 100.0, l = p * lo, h = p * hi, s = (h - l) / maxq;
        double z = sym ? (maxq + 1) / 2 : nearbyint(-l / s), e = 0;
        for (int k = 0; k < n; k++) {
            double q = fmin(fmax(nearbyint(x[k] / s) + z, 0), maxq);
            e += pow(fabs(s * (q - z) - x[k]), 2.4);
        }
        if (e < best) {
            best = e;
            *scale = s;
            *zero = z;
        }
    }
}

CQ_TEST(mse_clip_search)
{
    enum { R = 16, C = 96 };
    float *w = malloc(R * C * sizeof *w);
    for (int i = 0; i < R * C; i++)
        w[i] = (float)(cq_rand_normal(&rng) * (cq_rand_uniform(&rng) < 0.02 ? 6.0 : 1.0));
    double *wd = to_double(w, R * C);
    for (int sym = 0; sym < 2; sym++) {
        cq_qconfig c = cfg_of(3, 32, sym);
        c.mse = true;
        cq_qresult r, plain;
        cq_error err = CQ_ERROR_INIT;
        CQ_CHECK_OK(cq_rtn_quantize(&c, w, R, C, &r, &err), &err);
        c.mse = false;
        CQ_CHECK_OK(cq_rtn_quantize(&c, w, R, C, &plain, &err), &err);
        int bad = 0, shrunk = 0;
        for (int i = 0; i < R; i++) {
            for (int g = 0; g < 3; g++) {
                double s = 0, z = 0;
                ref_mse(wd + i * C + g * 32, 32, 3, sym, &s, &z);
                bad += fabs(r.scale[g * R + i] - s) > 1e-5 * s || r.zero[g * R + i] != z;
                shrunk += r.scale[g * R + i] < plain.scale[g * R + i];
            }
        }
        CQ_CHECK_EQ_INT(bad, 0);
        CQ_CHECK(shrunk > 0); /* outliers make clipping pay off somewhere */
        cq_qresult_release(&r);
        cq_qresult_release(&plain);
    }
    free(wd);
    free(w);
}

CQ_TEST(non_finite_rejected)
{
    float w[4] = {1.0f, NAN, 0.0f, 2.0f};
    cq_qconfig c = cfg_of(4, -1, true);
    cq_qresult r;
    cq_error err = CQ_ERROR_INIT;
    CQ_CHECK_EQ_INT(cq_rtn_quantize(&c, w, 1, 4, &r, &err), CQ_E_NUMERIC);
    CQ_CHECK(r.q == NULL);
    w[1] = INFINITY;
    cq_error_clear(&err);
    CQ_CHECK_EQ_INT(cq_rtn_quantize(&c, w, 2, 2, &r, &err), CQ_E_NUMERIC);
    cq_qresult_release(&r);
    cq_qresult_release(NULL);
}

