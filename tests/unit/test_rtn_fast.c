/* The fast paths of RTN and of the error metric give the same bytes as the portable ones and
 * for any thread count: codes, scales and zeros of cq_rtn_quantize with AVX2 (where present)
 * vs forced portable kernels vs 1..5 threads, on shapes whose rows and groups end in partial
 * vectors; cq_weight_error_q against the float64 metric of the dequantized matrix computed
 * here; and the first-bad-value message when a row holds NaN/Inf. */
#include "cq_test.h"
#include "cq_rand.h"
#include "core/cpu.h"
#include "cquant/quant.h"
#include "cquant/report.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x2545F4914F6CDD1Dull;

/* Values with outliers, exact zeros, all-positive and all-zero rows, and values placed on
 * rounding ties of the row's grid (where a wrong rounding mode would show). */
static float *make_w(int64_t rows, int64_t cols)
{
    float *w = malloc((size_t)(rows * cols) * sizeof *w);
    for (int64_t i = 0; i < rows * cols; i++) {
        double u = cq_rand_uniform(&rng);
        w[i] = (float)((cq_rand_uniform(&rng) - 0.5) * (u < 0.02 ? 40.0 : 2.0));
        if (u > 0.97)
            w[i] = 0.0f;
        else if (u > 0.95)
            /* ties at scale 1/8 */
            w[i] = (float)(floor((cq_rand_uniform(&rng) - 0.5) * 30) + 0.5) * 0.125f;
    }
    for (int64_t c = 0; c < cols; c++) {
        w[c] = fabsf(w[c]);               /* row 0 all >= 0: the sym quirk */
        w[cols + c] = rows > 2 ? 0.0f : w[cols + c]; /* row 1 all zero */
    }
    return w;
}

static bool same_result(const cq_qresult *a, const cq_qresult *b)
{
    size_t cells = (size_t)(a->rows * a->cols), gr = (size_t)(a->n_groups * a->rows);
    return a->rows == b->rows && a->n_groups == b->n_groups && !memcmp(a->q, b->q, cells) &&
           !memcmp(a->scale, b->scale, gr * sizeof(float)) && !memcmp(a->zero, b->zero, gr) &&
           !memcmp(a->g_idx, b->g_idx, (size_t)a->cols * sizeof(int32_t));
}

static void check_shape(int64_t rows, int64_t cols, int bits, int group, bool sym, bool mse)
{
    float *w = make_w(rows, cols);
    cq_qconfig c;
    cq_qconfig_defaults(&c);
    c.bits = bits, c.group_size = group, c.sym = sym, c.mse = mse, c.threads = 1;
    cq_error err = CQ_ERROR_INIT;
    cq_qresult ref, r;
    cq_cpu_force_baseline(true);
    CQ_CHECK_OK(cq_rtn_quantize(&c, w, rows, cols, &ref, &err), &err);
    cq_werr e_ref;
    CQ_CHECK_OK(cq_weight_error_q(w, &ref, 1, &e_ref, &err), &err);
    cq_cpu_force_baseline(false);
    for (int threads = 1; threads <= 5; threads++) {
        c.threads = threads;
        CQ_CHECK_OK(cq_rtn_quantize(&c, w, rows, cols, &r, &err), &err);
        if (!same_result(&ref, &r))
            CQ_FAIL("%lldx%lld b%d g%d sym%d mse%d threads %d: fast path differs from portable",
                    (long long)rows, (long long)cols, bits, group, sym, mse, threads);
        cq_werr e;
        CQ_CHECK_OK(cq_weight_error_q(w, &r, threads, &e, &err), &err);
        /* the metric's sums are fixed by the data layout: equal bits on either path */
        CQ_CHECK(e.sum_sq_err == e_ref.sum_sq_err && e.sum_sq_w == e_ref.sum_sq_w &&
                 e.max_abs == e_ref.max_abs && e.n == e_ref.n);
        cq_qresult_release(&r);
    }
    /* Independent check of the metric: float64 sums over the dequantized matrix. */
    float *dq = malloc((size_t)(rows * cols) * sizeof *dq);
    cq_qresult_dequant(&ref, dq);
    double se = 0, sw = 0, mx = 0;
    for (int64_t i = 0; i < rows * cols; i++) {
        double d = (double)w[i] - (double)dq[i];
        se += d * d;
        sw += (double)w[i] * w[i];
        mx = fmax(mx, fabs(d));
    }
    CQ_CHECK_NEAR(e_ref.sum_sq_err / se, 1.0, 1e-12);
    CQ_CHECK_NEAR(e_ref.sum_sq_w / sw, 1.0, 1e-12);
    CQ_CHECK_NEAR(e_ref.max_abs, mx, 0);
    CQ_CHECK_NEAR(e_ref.rel_fro, sqrt(se / sw), 1e-12 * sqrt(se / sw));
    free(dq);
    cq_qresult_release(&ref);
    free(w);
}

/* The one-pass path from a stored tensor (cq_rtn_quantize_stored) against the two passes it
 * replaces: cq_rtn_quantize on the same values converted to f32, scales rounded to F16, then
 * cq_weight_error_q against those scales; for F32, F16 and BF16 storage, portable and fast
 * kernels, 1..4 threads. */
static void check_stored(int64_t rows, int64_t cols, int bits, int group, bool sym, bool mse)
{
    static const cq_dtype dts[] = {CQ_DT_F32, CQ_DT_F16, CQ_DT_BF16};
    float *w0 = make_w(rows, cols), *w = malloc((size_t)(rows * cols) * sizeof *w);
    uint16_t *h = malloc((size_t)(rows * cols) * sizeof *h);
    double *sums = malloc((size_t)rows * 3 * sizeof *sums);
    unsigned char *nan = malloc((size_t)rows);
    cq_qconfig c;
    cq_qconfig_defaults(&c);
    c.bits = bits, c.group_size = group, c.sym = sym, c.mse = mse;
    cq_error err = CQ_ERROR_INIT;
    for (int d = 0; d < 3; d++) {
        const void *src = w0;
        for (int64_t i = 0; i < rows * cols; i++) {
            if (dts[d] == CQ_DT_F16)
                h[i] = cq_f32_to_f16(w0[i]);
            else if (dts[d] == CQ_DT_BF16)
                h[i] = cq_f32_to_bf16(w0[i]);
        }
        if (dts[d] != CQ_DT_F32)
            src = h;
        cq_convert_to_f32(dts[d], src, w, (size_t)(rows * cols));
        /* the two-pass reference */
        cq_qresult ref;
        c.threads = 1;
        CQ_CHECK_OK(cq_rtn_quantize(&c, w, rows, cols, &ref, &err), &err);
        for (int64_t i = 0; i < ref.n_groups * rows; i++)
            ref.scale[i] = cq_f16_to_f32(cq_f32_to_f16(ref.scale[i]));
        cq_werr e_ref;
        CQ_CHECK_OK(cq_weight_error_q(w, &ref, 1, &e_ref, &err), &err);
        int64_t zr_ref = 0, gs = group > 0 ? group : cols;
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c0 = 0; c0 < cols; c0 += gs) {
                int64_t n = cols - c0 < gs ? cols - c0 : gs, k = 1;
                while (k < n && w[r * cols + c0 + k] == w[r * cols + c0])
                    k++;
                zr_ref += k == n;
            }
        for (int fast = 0; fast < 2; fast++)
            for (int threads = 1; threads <= 4; threads++) {
                cq_cpu_force_baseline(!fast);
                c.threads = threads;
                cq_qresult r;
                cq_row_err re = {sums, sums + rows, sums + 2 * rows, nan};
                int64_t zr = -1;
                CQ_CHECK_OK(cq_rtn_quantize_stored(&c, dts[d], src, rows, cols, &r, &re, &zr,
                                                   &err), &err);
                cq_werr e;
                cq_werr_from_rows(&re, rows, cols, &e);
                if (!same_result(&ref, &r) || zr != zr_ref)
                    CQ_FAIL("%s %lldx%lld b%d g%d sym%d mse%d fast%d threads %d: stored path "
                            "differs", cq_dtype_info(dts[d])->name, (long long)rows,
                            (long long)cols, bits, group, sym, mse, fast, threads);
                CQ_CHECK(e.sum_sq_err == e_ref.sum_sq_err && e.sum_sq_w == e_ref.sum_sq_w &&
                         e.max_abs == e_ref.max_abs && e.n == e_ref.n &&
                         e.rel_fro == e_ref.rel_fro);
                cq_qresult_release(&r);
            }
        cq_cpu_force_baseline(false);
        cq_qresult_release(&ref);
    }
    free(w0);
    free(w);
    free(h);
    free(sums);
    free(nan);
}

CQ_TEST(stored_path_matches_two_passes)
{
    static const struct { int64_t rows, cols; int group; } shapes[] = {
        {7, 203, -1}, {9, 203, 20}, {16, 256, 128}, {5, 131, 32}, {3, 17, 5},
    };
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int b = 2; b <= 8; b *= 2)
            for (int sym = 0; sym < 2; sym++)
                check_stored(shapes[s].rows, shapes[s].cols, b, shapes[s].group, sym, false);
    check_stored(6, 100, 3, 32, false, true);
    /* a non-finite value: CQ_E_NUMERIC, nothing allocated (the caller's two-pass path names
     * it); a dtype it does not take: CQ_E_UNSUPPORTED */
    float bad[2 * 40];
    for (int i = 0; i < 80; i++)
        bad[i] = (float)i / 80.0f;
    bad[57] = NAN;
    cq_qconfig c;
    cq_qconfig_defaults(&c);
    cq_error err = CQ_ERROR_INIT;
    cq_qresult r = {0};
    double sums[6];
    unsigned char nan[2];
    cq_row_err re = {sums, sums + 2, sums + 4, nan};
    int64_t zr;
    c.group_size = 8;
    CQ_CHECK_EQ_INT(cq_rtn_quantize_stored(&c, CQ_DT_F32, bad, 2, 40, &r, &re, &zr, &err),
                    CQ_E_NUMERIC);
    CQ_CHECK(r.q == NULL && r.scale == NULL);
    bad[57] = INFINITY;
    CQ_CHECK_EQ_INT(cq_rtn_quantize_stored(&c, CQ_DT_F32, bad, 2, 40, &r, &re, &zr, &err),
                    CQ_E_NUMERIC);
    double d64[16] = {0};
    CQ_CHECK_EQ_INT(cq_rtn_quantize_stored(&c, CQ_DT_F64, d64, 2, 8, &r, &re, &zr, &err),
                    CQ_E_UNSUPPORTED);
}

CQ_TEST(fast_paths_match_portable_and_thread_counts)
{
    static const int bits[] = {2, 3, 4, 8};
    static const struct { int64_t rows, cols; int group; } shapes[] = {
        {7, 203, -1}, {9, 203, 20}, {16, 256, 128}, {5, 131, 32}, {3, 17, 5}, {33, 96, 96},
    };
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int b = 0; b < 4; b++)
            for (int sym = 0; sym < 2; sym++)
                check_shape(shapes[s].rows, shapes[s].cols, bits[b], shapes[s].group, sym,
                            false);
    check_shape(6, 100, 4, 32, false, true); /* MSE search: same fit on the fast path */
    check_shape(6, 100, 3, -1, true, true);
    printf("rtn kernels: AVX2 %s\n", cq_cpu_avx2() ? "present: fast and portable compared"
                                                    : "absent: portable path only");
}

CQ_TEST(error_metric_act_order_gidx)
{
    /* A permuted g_idx (as GPTQ act-order writes): runs of one column each. */
    enum { R = 4, C = 40 };
    float w[R * C];
    for (int i = 0; i < R * C; i++)
        w[i] = (float)(cq_rand_uniform(&rng) - 0.5);
    cq_qconfig c;
    cq_qconfig_defaults(&c);
    c.group_size = 8;
    cq_qresult r;
    cq_error err = CQ_ERROR_INIT;
    CQ_CHECK_OK(cq_qresult_alloc(&r, R, C, &c, &err), &err);
    for (int k = 0; k < C; k++)
        r.g_idx[k] = (k * 7) % 5;
    for (int i = 0; i < R * C; i++)
        r.q[i] = (uint8_t)(i % 16);
    for (int i = 0; i < 5 * R; i++) {
        r.scale[i] = 0.01f * (float)(i + 1);
        r.zero[i] = (uint8_t)(i % 16);
    }
    float dq[R * C];
    cq_qresult_dequant(&r, dq);
    cq_werr a, b;
    cq_weight_error(w, dq, R * C, &a);
    CQ_CHECK_OK(cq_weight_error_q(w, &r, 2, &b, &err), &err);
    CQ_CHECK_NEAR(b.sum_sq_err / a.sum_sq_err, 1.0, 1e-12);
    CQ_CHECK_NEAR(b.max_abs, a.max_abs, 0);
    CQ_CHECK_NEAR(b.mse / a.mse, 1.0, 1e-12);
    w[37] = NAN; /* NaN is reported, not dropped */
    CQ_CHECK_OK(cq_weight_error_q(w, &r, 1, &b, &err), &err);
    CQ_CHECK(isnan(b.max_abs));
    cq_qresult_release(&r);
}

CQ_TEST(non_finite_named_by_index)
{
    /* The first bad value is named whichever worker finds a bad row. */
    enum { R = 6, C = 37 };
    float *w = make_w(R, C);
    w[4 * C + 11] = INFINITY;
    w[2 * C + 36] = NAN;
    cq_qconfig c;
    cq_qconfig_defaults(&c);
    c.group_size = 8;
    for (int threads = 1; threads <= 3; threads++) {
        c.threads = threads;
        cq_qresult r;
        cq_error err = CQ_ERROR_INIT;
        CQ_CHECK_EQ_INT(cq_rtn_quantize(&c, w, R, C, &r, &err), CQ_E_NUMERIC);
        CQ_CHECK(r.q == NULL);
        CQ_CHECK(strstr(err.msg, "at 110") != NULL); /* 2 * 37 + 36 */
    }
    free(w);
}
