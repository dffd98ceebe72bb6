/* AWQ: the pseudo-quantizer against a float64 reference, the scale search against an
 * independent brute force over the same ratios, folding exactness in float64, the clip search
 * against a brute force, and the whole-model driver on stories260K (folding without clipping
 * must leave the layer's FP output unchanged). */
#include "cq_test.h"
#include "cq_testutil.h"

#include "cquant/awq.h"
#include "cquant/model.h"
#include "cquant/safetensors.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static double urand(void) /* [0,1) */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

static double nrand(void)
{
    double u = urand() + 1e-12, v = urand();
    return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

static float *randn(int64_t n, double sd)
{
    float *v = malloc((size_t)n * sizeof *v);
    for (int64_t i = 0; i < n; i++)
        v[i] = (float)(nrand() * sd);
    return v;
}

/* Round half to even in double, written out (not rint) so the reference is independent. */
static double rhe(double x)
{
    double f = floor(x), d = x - f;
    if (d > 0.5)
        return f + 1;
    if (d < 0.5)
        return f;
    return fmod(f, 2.0) == 0 ? f : f + 1;
}

/* The §C.3 group quantizer, float64, asymmetric. Returns the dequantized values in out. */
static void ref_group(const float *w, int64_t n, int bits, double *scale, double *zero, int *q,
                      double *out)
{
    double mx = w[0], mn = w[0], maxq = (1 << bits) - 1;
    for (int64_t j = 1; j < n; j++) {
        mx = fmax(mx, w[j]);
        mn = fmin(mn, w[j]);
    }
    double s = fmax(mx - mn, 1e-5) / maxq, z = fmin(fmax(-rhe(mn / s), 0), maxq);
    for (int64_t j = 0; j < n; j++) {
        double c = fmin(fmax(rhe(w[j] / s) + z, 0), maxq);
        if (q)
            q[j] = (int)c;
        if (out)
            out[j] = (c - z) * s;
    }
    *scale = s;
    *zero = z;
}

static cq_qconfig awq_cfg(int bits, int group)
{
    cq_qconfig q;
    cq_qconfig_defaults(&q);
    q.bits = bits;
    q.group_size = group;
    q.sym = false;
    q.threads = 2;
    return q;
}

/* ---- quantizer ---- */

static void check_quantizer(int bits, int group)
{
    int64_t rows = 12, cols = 256, G = group > 0 ? group : cols, ng = cols / G;
    float *w = randn(rows * cols, 0.05);
    w[3] = 0.5f;                       /* an outlier */
    for (int64_t c = 0; c < G; c++)    /* an all-positive group: zero is not forced in range */
        w[1 * cols + c] = 1.0f + (float)c / (float)G;
    for (int64_t c = 0; c < G; c++)    /* a constant group: scale = 1e-5 / maxq */
        w[2 * cols + c] = -0.25f;
    cq_qconfig q = awq_cfg(bits, group);
    cq_qresult r = {0};
    cq_error err = CQ_ERROR_INIT;
    CQ_CHECK_OK(cq_awq_quantize(&q, w, rows, cols, &r, &err), &err);
    if (err.code)
        return;
    int *qr = malloc((size_t)G * sizeof *qr);
    int64_t mismatch = 0, near_tie = 0;
    for (int64_t row = 0; row < rows; row++)
        for (int64_t g = 0; g < ng; g++) {
            double s, z;
            const float *wg = w + row * cols + g * G;
            ref_group(wg, G, bits, &s, &z, qr, NULL);
            CQ_CHECK_NEAR(r.scale[g * rows + row], s, 1e-6 * s);
            CQ_CHECK_EQ_INT(r.zero[g * rows + row], (int)z);
            for (int64_t j = 0; j < G; j++) {
                if (r.q[row * cols + g * G + j] == qr[j])
                    continue;
                double t = wg[j] / s, d = fabs(t - floor(t) - 0.5);
                if (d < 1e-4)
                    near_tie++; /* f32 vs f64 division may land on either side of a tie */
                else
                    mismatch++;
            }
        }
    CQ_CHECK_EQ_INT(mismatch, 0);
    CQ_CHECK(near_tie <= 2);
    CQ_CHECK_EQ_INT(r.zero[0 * rows + 1], 0);  /* min 1.0 > 0: -round(min/scale) < 0 -> 0 */
    CQ_CHECK_NEAR(r.scale[0 * rows + 2], 1e-5 / ((1 << bits) - 1), 1e-12);
    for (int64_t c = 0; c < cols; c++)
        CQ_CHECK_EQ_INT(r.g_idx[c], c / G);
    /* fake quantization = dequantized result */
    float *fq = malloc((size_t)(rows * cols) * sizeof *fq), *dq = malloc(sizeof *dq * rows * cols);
    memcpy(fq, w, sizeof *fq * rows * cols);
    cq_awq_fake_quant(&q, fq, rows, cols);
    cq_qresult_dequant(&r, dq);
    int64_t diff = 0;
    for (int64_t i = 0; i < rows * cols; i++)
        diff += fq[i] != dq[i];
    CQ_CHECK_EQ_INT(diff, 0);
    free(fq);
    free(dq);
    free(qr);
    free(w);
    cq_qresult_release(&r);
}

CQ_TEST(quantizer_matches_float64_reference)
{
    check_quantizer(4, 128);
    check_quantizer(4, 64);
    check_quantizer(3, 128);
    check_quantizer(4, -1);
}

CQ_TEST(quantizer_refuses_nan)
{
    float w[8] = {0, 1, 2, NAN, 4, 5, 6, 7};
    cq_qconfig q = awq_cfg(4, 8);
    cq_qresult r = {0};
    cq_error err = CQ_ERROR_INIT;
    CQ_CHECK_EQ_INT(cq_awq_quantize(&q, w, 1, 8, &r, &err), CQ_E_NUMERIC);
    cq_qresult_release(&r);
}

/* ---- scale search ---- */

typedef struct synth {
    int64_t T, C, R;
    float *x, *w;
} synth;

/* A group whose input has a few channels with large |x| (the salient channels AWQ protects). */
static synth make_synth(int64_t tokens)
{
    synth s = {tokens, 256, 64, NULL, NULL};
    s.x = randn(s.T * s.C, 1.0);
    s.w = randn(s.R * s.C, 0.02);
    int64_t big[] = {3, 17, 100, 200, 201};
    for (int64_t t = 0; t < s.T; t++)
        for (size_t k = 0; k < sizeof big / sizeof *big; k++)
            s.x[t * s.C + big[k]] *= 25.0f;
    return s;
}

/* Brute force of §F.4 for a Linear-only block: statistics and scales in double, trial weights
 * with the float64 group quantizer, out = X·Wtᵀ in double. */
static void brute_losses(const synth *s, int n_grid, int G, double *loss, double *best_s)
{
    int64_t T = s->T, C = s->C, R = s->R;
    double *xm = calloc((size_t)C, sizeof *xm), *wm = calloc((size_t)C, sizeof *wm);
    double *sc = malloc((size_t)C * sizeof *sc), *wt = malloc(sizeof *wt * R * C);
    double *fp = malloc(sizeof *fp * T * R), *tmp = malloc(sizeof *tmp * C), best = INFINITY;
    float *ws = malloc(sizeof *ws * C);
    for (int64_t t = 0; t < T; t++)
        for (int64_t c = 0; c < C; c++)
            xm[c] += fabs(s->x[t * C + c]) / (double)T;
    for (int64_t r = 0; r < R; r++)
        for (int64_t g = 0; g < C / G; g++) {
            double mx = 0;
            for (int64_t j = 0; j < G; j++)
                mx = fmax(mx, fabs(s->w[r * C + g * G + j]));
            for (int64_t j = 0; j < G; j++)
                wm[g * G + j] += fabs(s->w[r * C + g * G + j]) / (mx + 1e-6) / (double)R;
        }
    for (int64_t t = 0; t < T; t++)
        for (int64_t r = 0; r < R; r++) {
            double a = 0;
            for (int64_t c = 0; c < C; c++)
                a += (double)s->x[t * C + c] * s->w[r * C + c];
            fp[t * R + r] = a;
        }
    for (int i = 0; i < n_grid; i++) {
        double ratio = (double)i / n_grid, mx = -INFINITY, mn = INFINITY;
        for (int64_t c = 0; c < C; c++) {
            sc[c] = fmax(pow(xm[c], ratio) / (pow(wm[c], 1 - ratio) + 1e-4), 1e-4);
            mx = fmax(mx, sc[c]);
            mn = fmin(mn, sc[c]);
        }
        for (int64_t c = 0; c < C; c++)
            sc[c] /= sqrt(mx * mn);
        for (int64_t r = 0; r < R; r++) {
            for (int64_t c = 0; c < C; c++)
                ws[c] = (float)(s->w[r * C + c] * sc[c]);
            for (int64_t g = 0; g < C / G; g++) {
                double a, b;
                ref_group(ws + g * G, G, 4, &a, &b, NULL, tmp + g * G);
            }
            for (int64_t c = 0; c < C; c++)
                wt[r * C + c] = tmp[c] / sc[c];
        }
        double e = 0;
        for (int64_t t = 0; t < T; t++)
            for (int64_t r = 0; r < R; r++) {
                double a = 0;
                for (int64_t c = 0; c < C; c++)
                    a += (double)s->x[t * C + c] * wt[r * C + c];
                e += (a - fp[t * R + r]) * (a - fp[t * R + r]);
            }
        loss[i] = e / (double)(T * R);
        if (loss[i] < best) {
            best = loss[i];
            memcpy(best_s, sc, sizeof *sc * C);
        }
    }
    free(xm), free(wm), free(sc), free(wt), free(fp), free(tmp), free(ws);
}

/* The same Linear as a user block callback: must give the built-in path's losses exactly. */
typedef struct lin_ctx {
    const synth *s;
} lin_ctx;

static int lin_block(void *ctx, float *const *w, float *out, cq_error *err)
{
    const synth *s = ((lin_ctx *)ctx)->s;
    cq_linear(s->x, s->T, s->C, w[0], NULL, s->R, out);
    return CQ_OK;
}

/* tokens 384: one sgemm per trial; 1024 (> 2·cols): the XᵀX path. */
static void check_search(int64_t tokens)
{
    synth s = make_synth(tokens);
    cq_qconfig q = awq_cfg(4, 128);
    cq_awq_opts o;
    cq_awq_opts_defaults(&o);
    o.threads = 2;
    float *sc = malloc(sizeof *sc * s.C), *sc2 = malloc(sizeof *sc2 * s.C);
    double losses[20], losses2[20], bl[20], *bs = malloc(sizeof *bs * s.C);
    float *const wl[1] = {s.w};
    int64_t rows[1] = {s.R};
    cq_awq_group g = {.x = s.x, .tokens = s.T, .cols = s.C, .n_linear = 1, .w = wl, .rows = rows};
    cq_awq_scale_result res = {.scales = sc, .losses = losses};
    cq_error err = CQ_ERROR_INIT;
    CQ_CHECK_OK(cq_awq_search_scale(&q, &o, &g, &res, &err), &err);
    brute_losses(&s, 20, 128, bl, bs);
    int bbest = 0;
    for (int i = 0; i < 20; i++) {
        CQ_CHECK_NEAR(losses[i], bl[i], 2e-3 * bl[i]);
        if (bl[i] < bl[bbest])
            bbest = i;
    }
    fprintf(stderr, "  synthetic: loss before %.6g, after %.6g (ratio %.2f), brute best %.2f\n",
            res.loss_before, res.loss_after, res.ratio, bbest / 20.0);
    CQ_CHECK(res.loss_after <= res.loss_before);
    CQ_CHECK(res.loss_after < 0.9 * res.loss_before); /* the salient channels matter here */
    CQ_CHECK_EQ_INT(res.best, bbest);
    for (int64_t c = 0; c < s.C; c++)
        CQ_CHECK_NEAR(sc[c], bs[c], 1e-4 * bs[c]);
    /* r = 0 with duo scaling is not s = 1 (notes §F.4): loss_before is its own evaluation */
    CQ_CHECK(losses[0] != res.loss_before);
    /* user block callback = built-in path */
    lin_ctx lc = {&s};
    g.block = lin_block;
    g.block_ctx = &lc;
    g.out_elems = s.T * s.R;
    cq_awq_scale_result res2 = {.scales = sc2, .losses = losses2};
    CQ_CHECK_OK(cq_awq_search_scale(&q, &o, &g, &res2, &err), &err);
    for (int i = 0; i < 20; i++) /* the XᵀX path agrees to rounding */
        CQ_CHECK_NEAR(losses2[i], losses[i], 1e-5 * losses[i]);
    CQ_CHECK_EQ_INT(res2.best, res.best);
    free(sc), free(sc2), free(bs), free(s.x), free(s.w);
}

CQ_TEST(scale_search_matches_brute_force)
{
    check_search(384);
    check_search(1024);
}

CQ_TEST(scale_search_refuses_bad_groups)
{
    cq_qconfig q = awq_cfg(4, 128);
    cq_awq_opts o;
    cq_awq_opts_defaults(&o);
    float x[4] = {0}, w[4] = {0}, s[4];
    float *const wl[2] = {w, w};
    int64_t rows[2] = {1, 1};
    cq_awq_group g = {.x = x, .tokens = 1, .cols = 4, .n_linear = 2, .w = wl, .rows = rows};
    cq_awq_scale_result res = {.scales = s};
    cq_error err = CQ_ERROR_INIT;
    CQ_CHECK_EQ_INT(cq_awq_search_scale(&q, &o, &g, &res, &err), CQ_E_USAGE);
}

/* ---- folding ---- */

static double rel_diff(const double *a, const double *b, int64_t n)
{
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        num = fmax(num, fabs(a[i] - b[i]));
        den = fmax(den, fabs(b[i]));
    }
    return num / den;
}

/* norm -> q/k (y = rmsnorm(x)·γ·Wᵀ) and up -> down (SwiGLU MLP), all in float64. */
static void block_f64(const float *x, const float *gamma, const float *wq, const float *wg,
                      const float *wu, const float *wd, int64_t T, int64_t H, int64_t I,
                      int64_t R, double *out_q, double *out_mlp)
{
    double *xn = malloc(sizeof *xn * H), *h = malloc(sizeof *h * I);
    for (int64_t t = 0; t < T; t++) {
        double ss = 0;
        for (int64_t c = 0; c < H; c++)
            ss += (double)x[t * H + c] * x[t * H + c];
        double rs = 1 / sqrt(ss / H + 1e-5);
        for (int64_t c = 0; c < H; c++)
            xn[c] = x[t * H + c] * rs * gamma[c];
        for (int64_t r = 0; r < R; r++) {
            double a = 0;
            for (int64_t c = 0; c < H; c++)
                a += xn[c] * wq[r * H + c];
            out_q[t * R + r] = a;
        }
        for (int64_t i = 0; i < I; i++) {
            double gg = 0, u = 0;
            for (int64_t c = 0; c < H; c++) {
                gg += xn[c] * wg[i * H + c];
                u += xn[c] * wu[i * H + c];
            }
            h[i] = gg / (1 + exp(-gg)) * u;
        }
        for (int64_t r = 0; r < H; r++) {
            double a = 0;
            for (int64_t i = 0; i < I; i++)
                a += h[i] * wd[r * I + i];
            out_mlp[t * H + r] = a;
        }
    }
    free(xn);
    free(h);
}

CQ_TEST(folding_is_exact)
{
    int64_t T = 32, H = 64, I = 96, R = 48;
    float *x = randn(T * H, 1), *gamma = randn(H, 1), *wq = randn(R * H, 0.1);
    float *wg = randn(I * H, 0.1), *wu = randn(I * H, 0.1), *wd = randn(H * I, 0.1);
    float *s1 = malloc(sizeof *s1 * H), *s2 = malloc(sizeof *s2 * I);
    for (int64_t c = 0; c < H; c++)
        s1[c] = (float)exp(nrand());
    for (int64_t c = 0; c < I; c++)
        s2[c] = (float)exp(nrand());
    double *q0 = malloc(sizeof *q0 * T * R), *m0 = malloc(sizeof *m0 * T * H);
    double *q1 = malloc(sizeof *q1 * T * R), *m1 = malloc(sizeof *m1 * T * H);
    block_f64(x, gamma, wq, wg, wu, wd, T, H, I, R, q0, m0);
    float *const lins[3] = {wq, wg, wu};
    int64_t rows[3] = {R, I, I};
    /* γ feeds q, gate and up here; fold s1 into all three and s2 from up into down */
    cq_awq_fold_norm(gamma, NULL, H, lins, rows, 3, s1);
    cq_awq_fold_linear(wu, NULL, I, H, wd, H, I, s2);
    block_f64(x, gamma, wq, wg, wu, wd, T, H, I, R, q1, m1);
    double dq = rel_diff(q1, q0, T * R), dm = rel_diff(m1, m0, T * H);
    fprintf(stderr, "  fold: norm->linear rel %.3g, linear->linear rel %.3g\n", dq, dm);
    CQ_CHECK(dq <= 1e-5);
    CQ_CHECK(dm <= 1e-5);
    /* the recorded input divided by s sees the scaled Linear as the original */
    float *xs = malloc(sizeof *xs * T * H);
    memcpy(xs, x, sizeof *xs * T * H);
    cq_awq_scale_input(xs, T, H, s1);
    CQ_CHECK_NEAR(xs[5] * s1[5], x[5], 1e-6 * fabs(x[5]) + 1e-12);
    free(x), free(gamma), free(wq), free(wg), free(wu), free(wd), free(s1), free(s2);
    free(q0), free(m0), free(q1), free(m1), free(xs);
}

/* ---- clipping ---- */

CQ_TEST(clip_search_matches_brute_force)
{
    int64_t R = 8, C = 64, G = 32, T = 1100, ng = C / G;
    float *w = randn(R * C, 0.05), *x = randn(T * C, 1.0), *mv = malloc(sizeof *mv * R * ng);
    w[7] = 0.6f; /* outliers make clipping worthwhile */
    w[3 * C + 40] = -0.5f;
    cq_qconfig q = awq_cfg(4, (int)G);
    cq_awq_opts o;
    cq_awq_opts_defaults(&o);
    cq_error err = CQ_ERROR_INIT;
    CQ_CHECK_OK(cq_awq_search_clip(&q, &o, w, R, C, x, T, mv, &err), &err);
    int64_t step = T / 512, ns = (T + step - 1) / step, shrunk = 0;
    double *dq = malloc(sizeof *dq * G);
    float *wc = malloc(sizeof *wc * G);
    for (int64_t r = 0; r < R; r++)
        for (int64_t g = 0; g < ng; g++) {
            const float *wg = w + r * C + g * G;
            double amax = 0, best_err = 1e9, best = 0, err_at_mv = -1;
            for (int64_t j = 0; j < G; j++)
                amax = fmax(amax, fabs(wg[j]));
            best = amax;
            for (int i = 0; i < 10; i++) {
                float m = (float)amax * (float)(1.0 - i / 20.0), a;
                for (int64_t j = 0; j < G; j++)
                    wc[j] = fminf(fmaxf(wg[j], -m), m);
                double s, z, e = 0;
                ref_group(wc, G, 4, &s, &z, NULL, dq);
                for (int64_t t = 0; t < ns; t++) {
                    double o0 = 0, o1 = 0;
                    for (int64_t j = 0; j < G; j++) {
                        o0 += (double)x[t * step * C + g * G + j] * wg[j];
                        o1 += (double)x[t * step * C + g * G + j] * dq[j];
                    }
                    e += (o1 - o0) * (o1 - o0);
                }
                e /= (double)ns;
                if (m == mv[r * ng + g])
                    err_at_mv = e;
                if (e < best_err) {
                    best_err = e;
                    best = m;
                }
                (void)a;
            }
            /* the chosen max is one of the grid and (up to f32 noise) the brute-force best */
            CQ_CHECK(err_at_mv >= 0);
            CQ_CHECK(err_at_mv <= best_err * (1 + 1e-3));
            if (fabs(err_at_mv - best_err) > 1e-3 * best_err)
                CQ_FAIL("row %lld group %lld: max %g vs brute %g", (long long)r, (long long)g,
                        mv[r * ng + g], best);
            shrunk += mv[r * ng + g] < (float)amax;
        }
    fprintf(stderr, "  clip: %lld of %lld groups shrunk\n", (long long)shrunk, (long long)(R * ng));
    CQ_CHECK(shrunk > 0);
    cq_awq_apply_clip(w, R, C, G, mv);
    for (int64_t r = 0; r < R; r++)
        for (int64_t c = 0; c < C; c++)
            CQ_CHECK(fabsf(w[r * C + c]) <= mv[r * ng + c / G]);
    free(w), free(x), free(mv), free(dq), free(wc);
}

/* ---- whole model ---- */

typedef struct drv_check {
    const cq_model_config *cfg;
    const cq_st_model *st;
    cq_llama *m;
    const float *hidden;   /* the FP input of the current layer */
    float *ref, *got;
    int64_t n_seq, seqlen, layers_seen;
    double worst;
    int loss_worse;   /* groups whose loss ended above plain quantization */
    int64_t o_done;   /* layers whose v->o group ran */
} drv_check;

/* Without clipping, the folded float weights must reproduce the original layer's output. */
static int on_layer(void *ctx, int64_t layer, const cq_layer_weights *w,
                    const cq_awq_layer_report *rep, cq_error *err)
{
    drv_check *c = ctx;
    cq_layer_weights orig = {0};
    int rc = cq_layer_load(&orig, c->cfg, c->st, layer, err);
    int64_t n = c->n_seq * c->seqlen * c->cfg->hidden;
    if (rc == CQ_OK)
        rc = cq_layer_forward(c->m, &orig, c->hidden, c->ref, c->n_seq, c->seqlen, NULL, NULL,
                              err);
    if (rc == CQ_OK)
        rc = cq_layer_forward(c->m, w, c->hidden, c->got, c->n_seq, c->seqlen, NULL, NULL, err);
    if (rc == CQ_OK)
        c->worst = fmax(c->worst, cq_test_max_rel_diff(c->got, c->ref, n));
    for (int g = 0; g < CQ_AWQ_N_GROUPS; g++)
        if (rep->group[g].done && rep->group[g].loss_after > rep->group[g].loss_before)
            c->loss_worse++;
    c->o_done += rep->group[CQ_AWQ_G_O].done;
    c->layers_seen++;
    memcpy((float *)c->hidden, c->ref, (size_t)n * sizeof(float)); /* FP propagation */
    cq_layer_release(&orig);
    return rc;
}

/* Run the driver without clipping over `path` and check every layer against its original. */
static void check_driver(const char *path, int group, double tol, int64_t *o_groups)
{
    cq_error err = CQ_ERROR_INIT;
    cq_st_model *st = NULL;
    cq_model_config cfg;
    if (cq_st_open(&st, path, &err) != CQ_OK || cq_config_load(cq_st_dir(st), &cfg, &err) != CQ_OK ||
        cq_config_check(&cfg, st, &err) != CQ_OK) {
        CQ_FAIL("open %s: %s", path, err.msg);
        cq_st_close(st);
        return;
    }
    int64_t n_seq = 3, seqlen = 64, T = n_seq * seqlen;
    int32_t *ids = malloc(sizeof *ids * T);
    for (int64_t i = 0; i < T; i++)
        ids[i] = (int32_t)(urand() * (double)cfg.vocab);
    drv_check c = {&cfg, st, NULL, NULL, NULL, NULL, n_seq, seqlen, 0, 0, 0, 0};
    float *hidden = malloc(sizeof *hidden * T * cfg.hidden);
    c.ref = malloc(sizeof(float) * T * cfg.hidden);
    c.got = malloc(sizeof(float) * T * cfg.hidden);
    c.hidden = hidden;
    CQ_CHECK_OK(cq_llama_create(&c.m, &cfg, seqlen, 0, &err), &err);
    CQ_CHECK_OK(cq_embed(&cfg, st, ids, T, hidden, &err), &err);
    cq_qconfig q = awq_cfg(4, group);
    cq_awq_opts o;
    cq_awq_opts_defaults(&o);
    o.clip = false;
    CQ_CHECK_OK(cq_awq_model_run(&cfg, st, ids, n_seq, seqlen, &q, &o, on_layer, &c, &err), &err);
    /* With duo scaling no ratio is s = 1, so AutoAWQ can end above plain quantization on a
     * group (it does not compare); on these toy models that happens now and then. */
    fprintf(stderr, "  %s: %lld layers, worst folded-vs-original rel %.3g, %d groups ended "
            "above plain quantization\n", path, (long long)c.layers_seen, c.worst, c.loss_worse);
    CQ_CHECK_EQ_INT(c.layers_seen, cfg.n_layers);
    CQ_CHECK(c.worst <= tol);
    *o_groups = c.o_done;
    cq_llama_free(c.m);
    free(ids), free(hidden), free(c.ref), free(c.got);
    cq_st_close(st);
}

CQ_TEST(model_driver_folds_exactly_on_stories260k)
{
    if (!cq_test_shared())
        return;
    int64_t o_groups = -1;
    check_driver(cq_test_shared_path("models/stories260K/hf"), -1, 1e-4, &o_groups);
    CQ_CHECK_EQ_INT(o_groups, 0); /* GQA: v_proj [32x64] vs o_proj [64x64], no v->o group */
}

/* A random multi-head (no GQA) Llama written with the cquant writer: the v->o group runs. */
static int write_mha(const char *dir, cq_error *err)
{
    enum { H = 32, I = 64, V = 64, L = 2 };
    char cfgp[4096];
    snprintf(cfgp, sizeof cfgp, "%s/config.json", dir);
    FILE *f = fopen(cfgp, "w");
    if (!f)
        return cq_errorf(err, CQ_E_IO, "cannot write %s", cfgp);
    fprintf(f, "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\","
               "\"hidden_size\":%d,\"intermediate_size\":%d,\"num_hidden_layers\":%d,"
               "\"num_attention_heads\":4,\"num_key_value_heads\":4,\"vocab_size\":%d,"
               "\"rms_norm_eps\":1e-5,\"tie_word_embeddings\":true}", H, I, L, V);
    fclose(f);
    const char *lin[7] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                          "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};
    int64_t shp[7][2] = {{H, H}, {H, H}, {H, H}, {H, H}, {I, H}, {I, H}, {H, I}};
    char names[3 + 9 * L][96];
    int64_t shapes[3 + 9 * L][2];
    int nd[3 + 9 * L], n = 0;
    snprintf(names[n], 96, "model.embed_tokens.weight"), shapes[n][0] = V, shapes[n][1] = H, nd[n++] = 2;
    snprintf(names[n], 96, "model.norm.weight"), shapes[n][0] = H, nd[n++] = 1;
    for (int l = 0; l < L; l++) {
        for (int k = 0; k < 7; k++) {
            snprintf(names[n], 96, "model.layers.%d.%s.weight", l, lin[k]);
            shapes[n][0] = shp[k][0], shapes[n][1] = shp[k][1], nd[n++] = 2;
        }
        snprintf(names[n], 96, "model.layers.%d.input_layernorm.weight", l), shapes[n][0] = H, nd[n++] = 1;
        snprintf(names[n], 96, "model.layers.%d.post_attention_layernorm.weight", l);
        shapes[n][0] = H, nd[n++] = 1;
    }
    cq_st_writer *w = NULL;
    int rc = cq_st_writer_create(&w, dir, 0, err);
    for (int i = 0; i < n && rc == CQ_OK; i++)
        rc = cq_st_writer_add(w, names[i], CQ_DT_F32, nd[i], shapes[i], err);
    if (rc == CQ_OK)
        rc = cq_st_writer_start(w, err);
    for (int i = 0; i < n && rc == CQ_OK; i++) {
        int64_t cnt = shapes[i][0] * (nd[i] == 2 ? shapes[i][1] : 1);
        float *v = randn(cnt, nd[i] == 2 ? 0.3 : 0.2);
        for (int64_t j = 0; nd[i] == 1 && j < cnt; j++)
            v[j] += 1.0f; /* norm weights near 1 */
        rc = cq_st_writer_write(w, names[i], v, (size_t)cnt * sizeof *v, err);
        free(v);
    }
    if (rc == CQ_OK)
        rc = cq_st_writer_finish(w, err);
    cq_st_writer_free(w);
    return rc;
}

CQ_TEST(model_driver_runs_v_to_o_without_gqa)
{
    cq_error err = CQ_ERROR_INIT;
    const char *dir = cq_test_tmpdir();
    CQ_CHECK_OK(write_mha(dir, &err), &err);
    if (err.code)
        return;
    int64_t o_groups = -1;
    check_driver(dir, 16, 1e-4, &o_groups);
    CQ_CHECK_EQ_INT(o_groups, 2);
}

/* The repo's cq-llama-tiny (the model `awq --then-gptq` is tested on, tests/unit/test_awq_gptq.c):
 * the folded scales leave every layer's float output unchanged to 1e-5 of its largest value. */
CQ_TEST(model_driver_folds_exactly_on_tiny)
{
    const char *src = getenv("CQ_SRC");
    if (!src) {
        CQ_FAIL("CQ_SRC must be set");
        return;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/data/models/cq-llama-tiny", src);
    int64_t o_groups = -1;
    check_driver(path, 128, 1e-5, &o_groups);
    CQ_CHECK_EQ_INT(o_groups, 0); /* GQA: v_proj [128x256] vs o_proj [256x256] */
}
