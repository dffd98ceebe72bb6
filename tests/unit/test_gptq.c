/* GPTQ against an independent reference written here: §E of the notes implemented unblocked,
 * column by column, in float64 (naive Cholesky, explicit inverse, upper Cholesky of the inverse
 * — the reference's three-step route, not cquant's reversal trick), no calls into src/quant.
 *
 * Code comparison: the two implementations round different numbers (float32 working matrix and
 * float32 U in cquant, double here), so a value within TIE_TOL of a rounding tie may legitimately
 * go either way. When that happens the reference adopts cquant's code (otherwise the two rows
 * would follow different error-feedback paths and every later code would be incomparable) and
 * counts a near-tie. Any other difference is a failure. Near-ties must stay <= 0.1% of codes. */
#include "cq_test.h"
#include "cq_rand.h"
#include "cq_testutil.h"
#include "cquant/quant.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define TIE_TOL 1e-3 /* in units of one quantization step; float32 drift is ~1e-5 steps */

static uint64_t rng = 0x2545F4914F6CDD1Dull;

/* H = (2/n) X^T X for n = 2*cols tokens of correlated activations: a shared factor, an AR(1)
 * chain along channels, and 4 outlier channels x20 — the structure real LLM inputs have. */
static double *make_hessian(int64_t cols)
{
    int64_t n = 2 * cols;
    double *x = malloc((size_t)(n * cols) * sizeof *x), *h = calloc((size_t)(cols * cols), 8);
    for (int64_t t = 0; t < n; t++) {
        double f = cq_rand_normal(&rng), prev = 0;
        for (int64_t c = 0; c < cols; c++) {
            prev = 0.6 * prev + cq_rand_normal(&rng);
            x[t * cols + c] = (prev + 0.5 * f) * (c % 97 == 5 ? 20.0 : 1.0);
        }
    }
    for (int64_t t = 0; t < n; t++)
        for (int64_t i = 0; i < cols; i++)
            for (int64_t j = 0; j < cols; j++)
                h[i * cols + j] += x[t * cols + i] * x[t * cols + j];
    for (int64_t i = 0; i < cols * cols; i++)
        h[i] *= 2.0 / (double)n;
    free(x);
    return h;
}

static float *make_weights(int64_t rows, int64_t cols)
{
    float *w = malloc((size_t)(rows * cols) * sizeof *w);
    for (int64_t i = 0; i < rows * cols; i++)
        w[i] = (float)(0.02 * cq_rand_normal(&rng) * (cq_rand_uniform(&rng) < 0.005 ? 10.0 : 1.0));
    for (int64_t c = 0; c < cols; c++) /* an all-positive row: the sym quirk of §B.4 */
        w[c] = fabsf(w[c]);
    return w;
}

/* ---- the reference ---- */

typedef struct ref_out {
    double *scale, *zero; /* [n_groups * rows] as cq_qresult lays them out */
    int32_t *g_idx;
    uint8_t *q;           /* [rows * cols] original column order */
    double loss, damp_used;
    int damp_tries;
    int64_t ties, mismatches, dead;
} ref_out;

static void ref_fit(const double *x, int64_t n, int bits, bool sym, double zhint, double *scale,
                    double *zero, int64_t *ties)
{
    double maxq = (double)((1 << bits) - 1), lo;
    *scale = cq_test_minmax_scale(x, n, bits, sym, &lo);
    if (sym) {
        *zero = (maxq + 1) / 2;
        return;
    }
    double t = -lo / *scale;
    *zero = nearbyint(t);
    if (*zero != zhint && fabs(t - floor(t) - 0.5) < TIE_TOL && fabs(*zero - zhint) == 1) {
        *zero = zhint;
        (*ties)++;
    }
}

/* Lower Cholesky in place (row-major); 0 if not positive definite. */
static int ref_chol(double *a, int64_t n)
{
    for (int64_t j = 0; j < n; j++) {
        double d = a[j * n + j];
        for (int64_t k = 0; k < j; k++)
            d -= a[j * n + k] * a[j * n + k];
        if (!(d > 0))
            return 0;
        a[j * n + j] = sqrt(d);
        for (int64_t i = j + 1; i < n; i++) {
            double s = a[i * n + j];
            for (int64_t k = 0; k < j; k++)
                s -= a[i * n + k] * a[j * n + k];
            a[i * n + j] = s / a[j * n + j];
        }
        for (int64_t i = 0; i < j; i++)
            a[i * n + j] = 0;
    }
    return 1;
}

/* U upper with U^T U = inv(A): chol, explicit inverse, then chol of the inverse (§E.7). */
static int ref_inverse_upper(const double *a, int64_t n, double *u)
{
    double *l = malloc((size_t)(n * n) * 8), *li = calloc((size_t)(n * n), 8);
    memcpy(l, a, (size_t)(n * n) * 8);
    int ok = ref_chol(l, n);
    for (int64_t j = 0; ok && j < n; j++) { /* li = inv(L), column j by forward substitution */
        for (int64_t i = j; i < n; i++) {
            double s = i == j ? 1.0 : 0.0;
            for (int64_t k = j; k < i; k++)
                s -= l[i * n + k] * li[k * n + j];
            li[i * n + j] = s / l[i * n + i];
        }
    }
    for (int64_t i = 0; ok && i < n; i++) /* inv(A) = li^T li, into l */
        for (int64_t j = 0; j < n; j++) {
            double s = 0;
            for (int64_t k = i > j ? i : j; k < n; k++)
                s += li[k * n + i] * li[k * n + j];
            l[i * n + j] = s;
        }
    for (int64_t i = 0; ok && i < n; i++) { /* upper Cholesky of inv(A): U^T U = inv(A) */
        for (int64_t j = i; j < n; j++) {
            double s = l[i * n + j];
            for (int64_t k = 0; k < i; k++)
                s -= u[k * n + i] * u[k * n + j];
            if (i == j) {
                if (!(s > 0)) {
                    ok = 0;
                    break;
                }
                u[i * n + i] = sqrt(s);
            } else {
                u[i * n + j] = s / u[i * n + i];
            }
        }
        for (int64_t j = 0; j < i; j++)
            u[i * n + j] = 0;
    }
    free(l);
    free(li);
    return ok;
}

typedef struct ref_cfg {
    int bits, group, block, tries;
    bool sym, act, stat;
    double damp;
} ref_cfg;

/* §E, unblocked. `hint` are cquant's codes (original order) used only at near-ties. */
static void ref_gptq(const ref_cfg *c, const float *w0, int64_t rows, int64_t cols,
                     const double *h0, const cq_qresult *hint, ref_out *o)
{
    int64_t n = cols, gs = c->group < 0 ? cols : c->group, ng = (cols + gs - 1) / gs;
    double maxq = (double)((1 << c->bits) - 1);
    double *w = malloc((size_t)(rows * n) * 8), *wl = malloc((size_t)(rows * n) * 8);
    double *h = malloc((size_t)(n * n) * 8), *a = malloc((size_t)(n * n) * 8);
    double *u = calloc((size_t)(n * n), 8), *tmp = malloc((size_t)n * 8);
    int64_t *perm = malloc((size_t)n * 8);
    memset(o, 0, sizeof *o);
    o->scale = calloc((size_t)(ng * rows), 8);
    o->zero = calloc((size_t)(ng * rows), 8);
    o->g_idx = calloc((size_t)n, 4);
    o->q = calloc((size_t)(rows * n), 1);
    for (int64_t i = 0; i < rows * n; i++)
        w[i] = w0[i];
    memcpy(h, h0, (size_t)(n * n) * 8);
    bool refit = c->group > 0 && !c->stat, stat = c->group > 0 && c->stat;
    if (!refit && !stat) /* §E.2: fitted before dead columns are zeroed */
        for (int64_t r = 0; r < rows; r++)
            ref_fit(w + r * n, n, c->bits, c->sym, hint->zero[r], &o->scale[r], &o->zero[r],
                    &o->ties);
    for (int64_t j = 0; j < n; j++) /* §E.3 */
        if (h[j * n + j] == 0) {
            h[j * n + j] = 1;
            o->dead++;
            for (int64_t r = 0; r < rows; r++)
                w[r * n + j] = 0;
        }
    for (int64_t g = 0; stat && g < ng; g++) /* §E.4 */
        for (int64_t r = 0; r < rows; r++) {
            int64_t c0 = g * gs, len = n - c0 < gs ? n - c0 : gs;
            ref_fit(w + r * n + c0, len, c->bits, c->sym, hint->zero[g * rows + r],
                    &o->scale[g * rows + r], &o->zero[g * rows + r], &o->ties);
        }
    for (int64_t j = 0; j < n; j++) /* §E.5: selection sort, strict > keeps ties in order */
        perm[j] = j;
    for (int64_t i = 0; c->act && i < n; i++) {
        int64_t best = i;
        for (int64_t j = i + 1; j < n; j++)
            if (h[perm[j] * n + perm[j]] > h[perm[best] * n + perm[best]])
                best = j;
        int64_t t = perm[best];
        memmove(perm + i + 1, perm + i, (size_t)(best - i) * 8);
        perm[i] = t;
    }
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t j = 0; j < n; j++)
            tmp[j] = w[r * n + perm[j]];
        memcpy(w + r * n, tmp, (size_t)n * 8);
    }
    double mean = 0, damp = c->damp;
    for (int64_t j = 0; j < n; j++)
        mean += h[j * n + j] / (double)n;
    for (o->damp_tries = 1;; o->damp_tries++, damp *= 10) { /* §E.6-7 + retry */
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < n; j++)
                a[i * n + j] = h[perm[i] * n + perm[j]] + (i == j ? damp * mean : 0.0);
        o->damp_used = damp;
        if (ref_inverse_upper(a, n, u) || o->damp_tries == c->tries)
            break;
    }
    for (int64_t i = 0; i < n; i++) { /* §E.8, one column at a time */
        if (i % c->block == 0) /* the matrix a refit reads lags to the block start */
            memcpy(wl, w, (size_t)(rows * n) * 8);
        for (int64_t r = 0; r < rows; r++) {
            double *row = w + r * n;
            int64_t g = stat ? perm[i] / gs : (refit ? i / gs : 0), k = g * rows + r;
            if (refit && i % gs == 0)
                ref_fit(wl + r * n + i, n - i < gs ? n - i : gs, c->bits, c->sym, hint->zero[k],
                        &o->scale[k], &o->zero[k], &o->ties);
            double s = o->scale[k], z = o->zero[k], t = row[i] / s;
            double q = fmin(fmax(nearbyint(t) + z, 0), maxq), qc = hint->q[r * n + perm[i]];
            if (q != qc) {
                if (fabs(t - floor(t) - 0.5) < TIE_TOL && fabs(q - qc) == 1) {
                    q = qc;
                    o->ties++;
                } else {
                    o->mismatches++;
                }
            }
            o->q[r * n + perm[i]] = (uint8_t)q;
            double d = u[i * n + i], diff = row[i] - s * (q - z), e = diff / d;
            o->loss += diff * diff / (d * d) / 2;
            for (int64_t j = i + 1; j < n; j++)
                row[j] -= e * u[i * n + j];
        }
    }
    for (int64_t j = 0; j < n; j++) /* §B.5 */
        for (int64_t p = 0; p < n; p++)
            if (perm[p] == j)
                o->g_idx[j] = (int32_t)(refit ? p / gs : (stat ? j / gs : 0));
    free(w);
    free(wl);
    free(h);
    free(a);
    free(u);
    free(tmp);
    free(perm);
}

static void ref_free(ref_out *o)
{
    free(o->scale);
    free(o->zero);
    free(o->g_idx);
    free(o->q);
}

static cq_qconfig to_cfg(const ref_cfg *c)
{
    cq_qconfig q;
    cq_qconfig_defaults(&q);
    q.bits = c->bits;
    q.group_size = c->group;
    q.sym = c->sym;
    q.act_order = c->act;
    q.static_groups = c->stat;
    q.block_size = c->block;
    q.damp = c->damp;
    q.max_damp_tries = c->tries;
    return q;
}

static int64_t total_codes, total_ties;
static double worst_loss_rel;

/* Run cquant and the reference on one case; compare codes, params, g_idx, loss, and w = Q. */
static void compare(const ref_cfg *c, int64_t rows, int64_t cols, const double *h)
{
    float *w0 = make_weights(rows, cols), *w = malloc((size_t)(rows * cols) * 4);
    memcpy(w, w0, (size_t)(rows * cols) * 4);
    cq_qconfig cfg = to_cfg(c);
    cq_qresult r;
    cq_error err = CQ_ERROR_INIT;
    int rc = cq_gptq_quantize(&cfg, w, rows, cols, h, &r, &err);
    CQ_CHECK_OK(rc, &err);
    if (rc != CQ_OK)
        return;
    ref_out o;
    ref_gptq(c, w0, rows, cols, h, &r, &o);
    int64_t badp = 0, badg = 0, badw = 0;
    for (int64_t k = 0; k < r.n_groups * rows; k++)
        badp += fabs(r.scale[k] - o.scale[k]) > 1e-4 * o.scale[k] || r.zero[k] != o.zero[k];
    for (int64_t j = 0; j < cols; j++)
        badg += r.g_idx[j] != o.g_idx[j];
    float *dq = malloc((size_t)(rows * cols) * 4);
    cq_qresult_dequant(&r, dq);
    badw = memcmp(dq, w, (size_t)(rows * cols) * 4) != 0;
    double rel = fabs(r.loss - o.loss) / o.loss;
    total_codes += rows * cols;
    total_ties += o.ties;
    worst_loss_rel = rel > worst_loss_rel ? rel : worst_loss_rel;
    if (o.mismatches || badp || badg || badw || o.ties * 1000 > rows * cols || rel > 1e-4)
        CQ_FAIL("%lldx%lld b%d g%d blk%d sym%d act%d static%d: %lld code mismatches, %lld "
                "near-ties, %lld params, %lld g_idx, w!=Q %lld, loss %.9g vs %.9g (rel %.2e)",
                (long long)rows, (long long)cols, c->bits, c->group, c->block, c->sym, c->act,
                c->stat, (long long)o.mismatches, (long long)o.ties, (long long)badp,
                (long long)badg, (long long)badw, r.loss, o.loss, rel);
    CQ_CHECK_EQ_INT(r.damp_tries, o.damp_tries);
    free(dq);
    ref_free(&o);
    cq_qresult_release(&r);
    free(w);
    free(w0);
}

CQ_TEST(matches_float64_reference)
{
    static const struct {
        int64_t rows, cols;
        ref_cfg c;
    } cases[] = {
        {64, 256, {4, 128, 128, 6, true, false, false, 0.01}},
        {64, 256, {4, 32, 128, 6, false, false, false, 0.01}}, /* groups start mid-block */
        {64, 256, {3, -1, 64, 6, false, false, false, 0.01}},
        {64, 256, {8, 64, 128, 6, true, false, false, 0.01}},
        {96, 384, {4, 128, 128, 6, true, true, false, 0.01}},
        {96, 384, {4, 32, 64, 6, false, true, true, 0.01}},
        {96, 384, {8, -1, 128, 6, true, true, false, 0.01}},
        {96, 384, {3, 128, 256, 6, false, true, false, 0.1}}, /* block > group */
        {128, 200, {2, 128, 32, 6, false, false, false, 0.01}},
        {128, 200, {4, 32, 48, 6, true, true, false, 0.01}},  /* groups straddle blocks */
        {128, 200, {2, 32, 128, 6, true, false, true, 0.01}},
        {128, 200, {8, 96, 80, 6, false, true, true, 0.01}},
    };
    double *h[3] = {make_hessian(256), make_hessian(384), make_hessian(200)};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t cols = cases[i].cols;
        compare(&cases[i].c, cases[i].rows, cols, h[cols == 256 ? 0 : (cols == 384 ? 1 : 2)]);
    }
    fprintf(stderr, "gptq vs float64 reference: %lld codes, %lld near-ties (%.4f%% identical), "
            "worst loss rel diff %.2e\n", (long long)total_codes, (long long)total_ties,
            100.0 * (double)(total_codes - total_ties) / (double)total_codes, worst_loss_rel);
    CQ_CHECK(total_ties * 1000 <= total_codes);
    for (int i = 0; i < 3; i++)
        free(h[i]);
}

/* GPTQ minimises the output error tr((W-Q) H (W-Q)^T); on a correlated H with outlier channels
 * it must beat RTN on the same grid by a clear margin (typically 2-4x here). */
CQ_TEST(beats_rtn_on_output_error)
{
    int64_t rows = 64, cols = 256;
    double *h = make_hessian(cols);
    float *w0 = make_weights(rows, cols), *w = malloc((size_t)(rows * cols) * 4);
    float *qr = malloc((size_t)(rows * cols) * 4);
    static const int groups[] = {-1, 32};
    for (int gi = 0; gi < 2; gi++) {
        for (int act = 0; act < 2; act++) {
            cq_qconfig cfg;
            cq_qconfig_defaults(&cfg);
            cfg.group_size = groups[gi];
            cfg.act_order = act;
            cq_qresult g, r;
            cq_error err = CQ_ERROR_INIT;
            memcpy(w, w0, (size_t)(rows * cols) * 4);
            CQ_CHECK_OK(cq_gptq_quantize(&cfg, w, rows, cols, h, &g, &err), &err);
            CQ_CHECK_OK(cq_rtn_quantize(&cfg, w0, rows, cols, &r, &err), &err);
            cq_qresult_dequant(&r, qr);
            double eg = cq_test_output_error(w0, w, rows, cols, h);
            double er = cq_test_output_error(w0, qr, rows, cols, h);
            if (!(eg < 0.8 * er))
                CQ_FAIL("g%d act%d: gptq output error %.6g not < 0.8 x rtn %.6g", groups[gi], act,
                        eg, er);
            cq_qresult_release(&g);
            cq_qresult_release(&r);
        }
    }
    free(qr);
    free(w);
    free(w0);
    free(h);
}

/* cquant's GPTQ with C's options on fresh make_weights(rows, cols), which must succeed; returns
 * the weights as it left them (the caller frees them and releases *r). */
static float *quantize_ok(const ref_cfg *c, int64_t rows, int64_t cols, const double *h,
                          cq_qresult *r)
{
    cq_qconfig cfg = to_cfg(c);
    float *w = make_weights(rows, cols);
    cq_error err = CQ_ERROR_INIT;
    CQ_CHECK_OK(cq_gptq_quantize(&cfg, w, rows, cols, h, r, &err), &err);
    return w;
}

/* Columns with H_ii == 0 (and their zero off-diagonals) are dead: W column zeroed, code = zero
 * point, no loss from them; the rest still matches the reference. */
CQ_TEST(dead_columns)
{
    int64_t rows = 32, cols = 128;
    double *h = make_hessian(cols);
    static const int64_t dead[] = {0, 7, 64, 127};
    for (int i = 0; i < 4; i++)
        for (int64_t j = 0; j < cols; j++)
            h[dead[i] * cols + j] = h[j * cols + dead[i]] = 0.0;
    ref_cfg c = {4, 32, 128, 6, false, true, false, 0.01};
    compare(&c, rows, cols, h);
    cq_qresult r;
    float *w = quantize_ok(&c, rows, cols, h, &r);
    CQ_CHECK_EQ_INT(r.dead_cols, 4);
    int bad = 0;
    for (int i = 0; i < 4; i++)
        for (int64_t k = 0; k < rows; k++)
            bad += w[k * cols + dead[i]] != 0.0f;
    CQ_CHECK_EQ_INT(bad, 0);
    cq_qresult_release(&r);
    free(w);
    free(h);
}

/* A singular, indefinite H (rank 16 < 64, minus 5% of its mean diagonal): damping 0.01 leaves
 * it indefinite, 0.1 makes it positive definite. The retry must be taken and reported, and the
 * result must still match the reference run with the same policy. */
CQ_TEST(indefinite_hessian_retries)
{
    int64_t cols = 64, n = 16, rows = 16;
    double *x = malloc((size_t)(n * cols) * 8), *h = calloc((size_t)(cols * cols), 8), mean = 0;
    for (int64_t i = 0; i < n * cols; i++)
        x[i] = cq_rand_normal(&rng);
    for (int64_t t = 0; t < n; t++)
        for (int64_t i = 0; i < cols; i++)
            for (int64_t j = 0; j < cols; j++)
                h[i * cols + j] += x[t * cols + i] * x[t * cols + j] / (double)n;
    for (int64_t i = 0; i < cols; i++)
        mean += h[i * cols + i] / (double)cols;
    for (int64_t i = 0; i < cols; i++)
        h[i * cols + i] -= 0.05 * mean;
    ref_cfg c = {4, -1, 128, 6, true, false, false, 0.01};
    cq_qconfig cfg = to_cfg(&c);
    cq_qresult r;
    float *w = quantize_ok(&c, rows, cols, h, &r);
    CQ_CHECK_EQ_INT(r.damp_tries, 2);
    CQ_CHECK_NEAR(r.damp_used, 0.1, 1e-12);
    CQ_CHECK(r.damp_used > cfg.damp);
    cq_qresult_release(&r);
    compare(&c, rows, cols, h);
    /* Never positive definite: -I. Every attempt fails -> CQ_E_NUMERIC naming the cause. */
    for (int64_t i = 0; i < cols * cols; i++)
        h[i] = i % (cols + 1) == 0 ? -1.0 : 0.0;
    cfg.max_damp_tries = 3;
    cq_error err = CQ_ERROR_INIT;
    CQ_CHECK_EQ_INT(cq_gptq_quantize(&cfg, w, rows, cols, h, &r, &err), CQ_E_NUMERIC);
    CQ_CHECK(strstr(err.msg, "positive definite") != NULL && strstr(err.msg, "3") != NULL);
    CQ_CHECK(r.q == NULL);
    free(w);
    free(x);
    free(h);
}

CQ_TEST(non_finite_inputs)
{
    int64_t rows = 8, cols = 32;
    double *h = make_hessian(cols);
    float *w = make_weights(rows, cols);
    cq_qconfig cfg;
    cq_qconfig_defaults(&cfg);
    cq_qresult r;
    cq_error err = CQ_ERROR_INIT;
    h[3 * cols + 5] = NAN;
    CQ_CHECK_EQ_INT(cq_gptq_quantize(&cfg, w, rows, cols, h, &r, &err), CQ_E_NUMERIC);
    CQ_CHECK(strstr(err.msg, "hessian") != NULL);
    h[3 * cols + 5] = INFINITY;
    cq_error_clear(&err);
    CQ_CHECK_EQ_INT(cq_gptq_quantize(&cfg, w, rows, cols, h, &r, &err), CQ_E_NUMERIC);
    h[3 * cols + 5] = 0.0;
    w[17] = NAN;
    cq_error_clear(&err);
    CQ_CHECK_EQ_INT(cq_gptq_quantize(&cfg, w, rows, cols, h, &r, &err), CQ_E_NUMERIC);
    CQ_CHECK(strstr(err.msg, "weight") != NULL);
    cq_error_clear(&err);
    CQ_CHECK_EQ_INT(cq_gptq_quantize(&cfg, w, rows, cols, NULL, &r, &err), CQ_E_USAGE);
    cq_qresult_release(&r);
    free(w);
    free(h);
}

/* Rows are partitioned across threads but each row is computed by one thread alone: 1, 2 and 3
 * threads must give the same bytes (codes, params, loss, returned Q). */
CQ_TEST(deterministic_across_threads)
{
    int64_t rows = 67, cols = 160;
    double *h = make_hessian(cols);
    float *w0 = make_weights(rows, cols), *w[3];
    cq_qresult r[3];
    cq_qconfig cfg;
    cq_qconfig_defaults(&cfg);
    cfg.group_size = 32;
    cfg.act_order = true;
    cfg.block_size = 64;
    for (int t = 0; t < 3; t++) {
        cq_error err = CQ_ERROR_INIT;
        w[t] = malloc((size_t)(rows * cols) * 4);
        memcpy(w[t], w0, (size_t)(rows * cols) * 4);
        cfg.threads = t + 1;
        CQ_CHECK_OK(cq_gptq_quantize(&cfg, w[t], rows, cols, h, &r[t], &err), &err);
    }
    for (int t = 1; t < 3; t++) {
        CQ_CHECK(memcmp(r[0].q, r[t].q, (size_t)(rows * cols)) == 0);
        CQ_CHECK(memcmp(r[0].scale, r[t].scale, (size_t)(r[0].n_groups * rows) * 4) == 0);
        CQ_CHECK(memcmp(r[0].zero, r[t].zero, (size_t)(r[0].n_groups * rows)) == 0);
        CQ_CHECK(memcmp(w[0], w[t], (size_t)(rows * cols) * 4) == 0);
        CQ_CHECK(r[0].loss == r[t].loss);
    }
    for (int t = 0; t < 3; t++) {
        cq_qresult_release(&r[t]);
        free(w[t]);
    }
    free(w0);
    free(h);
}
