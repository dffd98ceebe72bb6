/* AWQ pieces (notes §C.3, §F.3-§F.6): the group quantizer, statistics, the scale grid search,
 * folding and the clip search. Everything a trial computes is f32 as in the reference (which
 * runs in fp16/fp32); only sums of many terms (means, losses) are accumulated in double. */
#include "cquant/awq.h"

#include "linalg/det.h"
#include "quant/grid.h"
#include "quant/par.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void cq_awq_opts_defaults(cq_awq_opts *o)
{
    *o = (cq_awq_opts){.n_grid = 20, .duo_scaling = true, .clip = true, .clip_grid = 20,
                       .max_shrink = 0.5, .clip_tokens = 512, .threads = 0};
}

static int64_t group_of(const cq_qconfig *cfg, int64_t cols)
{
    return cfg->group_size > 0 ? cfg->group_size : cols;
}

/* ---- quantizer ---- */

/* Fit one group: the asymmetric grid takes the raw min/max (§C.3: zero is NOT forced into the
 * range, unlike GPTQ's §B.4); the symmetric one the absolute max. *zero is integral. */
static void fit_group(const float *w, int64_t n, int bits, bool sym, float *scale, float *zero)
{
    float mx = w[0], mn = w[0];
    for (int64_t j = 1; j < n; j++) {
        mx = w[j] > mx ? w[j] : mx;
        mn = w[j] < mn ? w[j] : mn;
    }
    if (sym) {
        float amax = fmaxf(fabsf(mx), fabsf(mn));
        *scale = fmaxf(amax, 1e-5f) / (float)((1 << (bits - 1)) - 1);
        *zero = (float)(1 << (bits - 1));
        return;
    }
    float maxq = (float)((1 << bits) - 1);
    *scale = fmaxf(mx - mn, 1e-5f) / maxq;
    float z = -rintf(mn / *scale);
    *zero = z < 0.0f ? 0.0f : (z > maxq ? maxq : z);
}

/* Code in [0, 2^bits): the symmetric grid clamps rint(w/s) to [-2^(b-1), 2^(b-1)-1] and
 * stores it offset by 2^(b-1), which is the same as cq_grid_code with zero = 2^(b-1). */
static inline float code_of(float w, float scale, float zero, int bits)
{
    return cq_grid_code(w, scale, zero, (float)((1 << bits) - 1));
}

typedef struct fq_ctx {
    const cq_qconfig *cfg;
    float *w;
    const float *src;   /* NULL: in place */
    const float *s;     /* NULL: no scaling; else trial Q(W·s)/s */
    int64_t cols, group;
    cq_qresult *out;    /* NULL: fake quantization only */
} fq_ctx;

static void fq_group(const fq_ctx *c, float *row, int64_t r, int64_t g, int64_t c0, int64_t n)
{
    float sc, z;
    fit_group(row + c0, n, c->cfg->bits, c->cfg->sym, &sc, &z);
    if (c->out) {
        c->out->scale[g * c->out->rows + r] = sc;
        c->out->zero[g * c->out->rows + r] = (uint8_t)z;
    }
    for (int64_t k = c0; k < c0 + n; k++) {
        float q = code_of(row[k], sc, z, c->cfg->bits);
        if (c->out)
            c->out->q[r * c->cols + k] = (uint8_t)q;
        row[k] = cq_grid_dequant(q, sc, z);
    }
}

static void fq_rows(void *p, int64_t r0, int64_t r1, int worker)
{
    const fq_ctx *c = p;
    for (int64_t r = r0; r < r1; r++) {
        float *row = c->w + r * c->cols;
        if (c->src)
            memcpy(row, c->src + r * c->cols, (size_t)c->cols * sizeof *row);
        if (c->s)
            for (int64_t k = 0; k < c->cols; k++)
                row[k] *= c->s[k];
        for (int64_t g = 0, c0 = 0; c0 < c->cols; g++, c0 += c->group)
            fq_group(c, row, r, g, c0, c->cols - c0 < c->group ? c->cols - c0 : c->group);
        if (c->s)
            for (int64_t k = 0; k < c->cols; k++)
                row[k] /= c->s[k];
    }
}

static void run_rows(const cq_qconfig *cfg, fq_ctx *c, int64_t rows)
{
    cq_par_rows(cq_par_workers(cfg->threads, rows), rows, fq_rows, c);
}

void cq_awq_fake_quant(const cq_qconfig *cfg, float *w, int64_t rows, int64_t cols)
{
    fq_ctx c = {cfg, w, NULL, NULL, cols, group_of(cfg, cols), NULL};
    run_rows(cfg, &c, rows);
}

int cq_awq_quantize(const cq_qconfig *cfg, const float *w, int64_t rows, int64_t cols,
                    cq_qresult *out, cq_error *err)
{
    int rc = cq_qconfig_check(cfg, err);
    if (rc == CQ_OK)
        rc = cq_check_finite(w, rows * cols, err);
    if (rc == CQ_OK)
        rc = cq_qresult_alloc(out, rows, cols, cfg, err);
    if (rc != CQ_OK)
        return rc;
    int64_t group = group_of(cfg, cols);
    float *tmp = malloc((size_t)rows * (size_t)cols * sizeof *tmp);
    if (!tmp) {
        cq_qresult_release(out);
        return cq_errorf(err, CQ_E_NOMEM, "out of memory (%lld x %lld weights)",
                         (long long)rows, (long long)cols);
    }
    for (int64_t k = 0; k < cols; k++)
        out->g_idx[k] = (int32_t)(k / group);
    fq_ctx c = {cfg, tmp, w, NULL, cols, group, out};
    run_rows(cfg, &c, rows);
    free(tmp);
    return CQ_OK;
}

static int awq_run(const cq_qconfig *cfg, float *w, int64_t rows, int64_t cols,
                   const cq_qstats *stats, cq_qresult *out, cq_error *err)
{
    return cq_awq_quantize(cfg, w, rows, cols, out, err);
}

const cq_quantizer cq_quantizer_awq = {
    .name = "awq",
    .summary = "activation-aware scaling and clipping, then min-max groups (AutoAWQ)",
    .needs = 0,
    .run = awq_run,
};

/* ---- statistics ---- */

int cq_awq_x_mean(const float *x, int64_t tokens, int64_t cols, float *x_mean, cq_error *err)
{
    double *acc = calloc((size_t)cols, sizeof *acc);
    if (!acc)
        return cq_errorf(err, CQ_E_NOMEM, "awq: out of memory for %lld channel means",
                         (long long)cols);
    for (int64_t t = 0; t < tokens; t++)
        for (int64_t c = 0; c < cols; c++)
            acc[c] += fabsf(x[t * cols + c]);
    for (int64_t c = 0; c < cols; c++)
        x_mean[c] = (float)(acc[c] / (double)(tokens > 0 ? tokens : 1));
    free(acc);
    return CQ_OK;
}

int cq_awq_w_mean(float *const *w, const int64_t *rows, int n, int64_t cols, int64_t group,
                  float *w_mean, cq_error *err)
{
    int64_t total = 0;
    double *acc = calloc((size_t)cols, sizeof *acc);
    if (!acc)
        return cq_errorf(err, CQ_E_NOMEM, "awq: out of memory for %lld channel means",
                         (long long)cols);
    if (group <= 0)
        group = cols;
    for (int i = 0; i < n; i++) {
        total += rows[i];
        for (int64_t r = 0; r < rows[i]; r++) {
            const float *row = w[i] + r * cols;
            for (int64_t c0 = 0; c0 < cols; c0 += group) {
                int64_t c1 = c0 + group < cols ? c0 + group : cols;
                float mx = 0;
                for (int64_t c = c0; c < c1; c++)
                    mx = fabsf(row[c]) > mx ? fabsf(row[c]) : mx;
                float d = mx + 1e-6f; /* AutoAWQ: |w| / (group max|w| + 1e-6) */
                for (int64_t c = c0; c < c1; c++)
                    acc[c] += fabsf(row[c]) / d;
            }
        }
    }
    for (int64_t c = 0; c < cols; c++)
        w_mean[c] = (float)(acc[c] / (double)(total > 0 ? total : 1));
    free(acc);
    return CQ_OK;
}

/* ---- scale search ---- */

void cq_awq_ratio_scales(const float *x_mean, const float *w_mean, int64_t cols, double ratio,
                         bool duo, float *s)
{
    /* torch: x.pow(ratio) / (w.pow(1 - ratio) + 1e-4), exponents formed in double */
    float r = (float)ratio, r1 = (float)(1.0 - ratio), smax = -INFINITY, smin = INFINITY;
    for (int64_t c = 0; c < cols; c++) {
        float v = powf(x_mean[c], r);
        if (duo)
            v = v / (powf(w_mean[c], r1) + 1e-4f);
        v = v < 1e-4f ? 1e-4f : v; /* torch clamp(min) keeps NaN; so does this compare */
        s[c] = v;
        smax = v > smax ? v : smax;
        smin = v < smin ? v : smin;
    }
    float norm = sqrtf(smax * smin);
    for (int64_t c = 0; c < cols; c++) {
        float v = s[c] / norm;
        s[c] = isfinite(v) ? v : 1.0f;
    }
}

typedef struct search_ws {
    float *fp_out, *out, *trial[CQ_AWQ_MAX_LINEARS];
    float *x_mean, *w_mean, *s;
    float *gram;    /* Linear-only groups with many tokens: XᵀX [cols x cols], else NULL */
    float *dw, *p;  /* [rows x cols]: W_trial - W, and (W_trial - W)·XᵀX */
} search_ws;

static void ws_release(search_ws *ws)
{
    free(ws->fp_out);
    free(ws->out);
    for (int i = 0; i < CQ_AWQ_MAX_LINEARS; i++)
        free(ws->trial[i]);
    free(ws->x_mean);
    free(ws->w_mean);
    free(ws->s);
    free(ws->gram);
    free(ws->dw);
    free(ws->p);
    memset(ws, 0, sizeof *ws);
}

/* For a Linear alone, mean((X·ΔWᵀ)²) = Σ_r Δw_r·(XᵀX)·Δw_rᵀ / (tokens·rows): with XᵀX formed
 * once, a trial costs rows·cols² instead of tokens·rows·cols, a gain when tokens > 2·cols (the
 * usual case: thousands of calibration tokens). */
static bool use_gram(const cq_awq_group *g)
{
    return !g->block && g->tokens > 2 * g->cols;
}

/* XᵀX: f32 syrk over chunks of 256 tokens (short sums stay accurate in f32) summed in double,
 * then rounded to f32 for the per-trial products. The loss is a sum of squares (no
 * cancellation in the terms that matter), so f32 products keep it to ~1e-6 relative. */
static int gram_build(search_ws *ws, const cq_awq_group *g, cq_error *err)
{
    int64_t C = g->cols, chunk = 256;
    float *part = malloc((size_t)(C * C) * sizeof *part);
    double *acc = calloc((size_t)(C * C), sizeof *acc);
    ws->gram = malloc((size_t)(C * C) * sizeof *ws->gram);
    ws->dw = malloc((size_t)(g->rows[0] * C) * sizeof *ws->dw);
    ws->p = malloc((size_t)(g->rows[0] * C) * sizeof *ws->p);
    if (!part || !acc || !ws->gram || !ws->dw || !ws->p) {
        free(part);
        free(acc);
        return cq_errorf(err, CQ_E_NOMEM, "out of memory for a %lld x %lld Gram matrix",
                         (long long)C, (long long)C);
    }
    for (int64_t t0 = 0; t0 < g->tokens; t0 += chunk) {
        int64_t n = g->tokens - t0 < chunk ? g->tokens - t0 : chunk;
        cq_det_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)C, (int)n, 1.0f, g->x + t0 * C,
                    (int)C, 0.0f, part, (int)C);
        for (int64_t i = 0; i < C; i++)
            for (int64_t j = i; j < C; j++)
                acc[i * C + j] += part[i * C + j];
    }
    for (int64_t i = 0; i < C; i++)
        for (int64_t j = i; j < C; j++)
            ws->gram[i * C + j] = ws->gram[j * C + i] = (float)acc[i * C + j];
    free(part);
    free(acc);
    return CQ_OK;
}

static double gram_loss(search_ws *ws, const cq_awq_group *g)
{
    int64_t R = g->rows[0], C = g->cols;
    for (int64_t i = 0; i < R * C; i++)
        ws->dw[i] = ws->trial[0][i] - g->w[0][i];
    cq_det_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)R, (int)C, (int)C, 1.0f,
                ws->dw, (int)C, ws->gram, (int)C, 0.0f, ws->p, (int)C);
    double s = 0;
    for (int64_t i = 0; i < R * C; i++)
        s += (double)ws->p[i] * ws->dw[i];
    return s / (double)(g->tokens * R);
}

static int64_t out_elems(const cq_awq_group *g)
{
    return g->block ? g->out_elems : g->tokens * g->rows[0];
}

static int ws_alloc(search_ws *ws, const cq_awq_group *g, cq_error *err)
{
    memset(ws, 0, sizeof *ws);
    size_t n = use_gram(g) ? 1 : (size_t)out_elems(g), cols = (size_t)g->cols;
    bool ok = (ws->fp_out = malloc(n * sizeof(float))) && (ws->out = malloc(n * sizeof(float))) &&
              (ws->x_mean = malloc(cols * sizeof(float))) &&
              (ws->w_mean = malloc(cols * sizeof(float))) && (ws->s = malloc(cols * sizeof(float)));
    for (int i = 0; ok && i < g->n_linear; i++)
        ok = (ws->trial[i] = malloc((size_t)g->rows[i] * cols * sizeof(float))) != NULL;
    if (ok && use_gram(g)) {
        int rc = gram_build(ws, g, err);
        if (rc != CQ_OK)
            ws_release(ws);
        return rc;
    }
    if (ok)
        return CQ_OK;
    ws_release(ws);
    return cq_errorf(err, CQ_E_NOMEM, "out of memory for the scale search (%zu outputs)", n);
}

static int eval_block(const cq_awq_group *g, float *const *w, float *out, cq_error *err)
{
    if (g->block)
        return g->block(g->block_ctx, w, out, err);
    cq_det_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)g->tokens, (int)g->rows[0],
                (int)g->cols, 1.0f, g->x, (int)g->cols, w[0], (int)g->cols, 0.0f, out,
                (int)g->rows[0]);
    return CQ_OK;
}

static double mse(const float *a, const float *b, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        s += d * d;
    }
    return s / (double)(n > 0 ? n : 1);
}

/* Trial weights Q(W·s)/s of every Linear (s NULL: plain Q(W)), then the loss vs fp_out. */
static int trial_loss(const cq_qconfig *q, const cq_awq_group *g, search_ws *ws, const float *s,
                      double *loss, cq_error *err)
{
    for (int i = 0; i < g->n_linear; i++) {
        fq_ctx c = {q, ws->trial[i], g->w[i], s, g->cols, group_of(q, g->cols), NULL};
        run_rows(q, &c, g->rows[i]);
    }
    if (ws->gram) {
        *loss = gram_loss(ws, g);
        return CQ_OK;
    }
    int rc = eval_block(g, ws->trial, ws->out, err);
    if (rc == CQ_OK)
        *loss = mse(ws->fp_out, ws->out, out_elems(g));
    return rc;
}

static int check_group(const cq_awq_opts *o, const cq_awq_group *g, cq_error *err)
{
    if (g->n_linear < 1 || g->n_linear > CQ_AWQ_MAX_LINEARS || (!g->block && g->n_linear != 1))
        return cq_errorf(err, CQ_E_USAGE, "awq: a scaling group holds 1..%d Linears (got %d)",
                         CQ_AWQ_MAX_LINEARS, g->n_linear);
    if (o->n_grid < 1 || o->n_grid > 1000)
        return cq_errorf(err, CQ_E_USAGE, "awq: grid must be in [1, 1000] (got %d)", o->n_grid);
    if (g->tokens < 1 || g->cols < 1 || out_elems(g) < 1)
        return cq_errorf(err, CQ_E_SHAPE, "awq: empty scaling group input");
    return CQ_OK;
}

/* The ratio loop: losses of each ratio, strict < keeps the first best. */
static int grid_loop(const cq_qconfig *q, const cq_awq_opts *o, const cq_awq_group *g,
                     search_ws *ws, cq_awq_scale_result *res, cq_error *err)
{
    double best = INFINITY;
    int rc = CQ_OK;
    res->best = -1;
    for (int i = 0; i < o->n_grid && rc == CQ_OK; i++) {
        double loss = NAN;
        cq_awq_ratio_scales(ws->x_mean, ws->w_mean, g->cols, (double)i / o->n_grid,
                            o->duo_scaling, ws->s);
        rc = trial_loss(q, g, ws, ws->s, &loss, err);
        if (res->losses)
            res->losses[i] = loss;
        if (rc == CQ_OK && loss < best) {
            best = loss;
            res->best = i;
            memcpy(res->scales, ws->s, (size_t)g->cols * sizeof(float));
        }
    }
    if (rc == CQ_OK && res->best < 0)
        return cq_errorf(err, CQ_E_NUMERIC, "awq: every scale ratio gave a NaN loss");
    res->ratio = (double)res->best / o->n_grid;
    res->loss_after = best;
    return rc;
}

int cq_awq_search_scale(const cq_qconfig *q, const cq_awq_opts *o, const cq_awq_group *g,
                        cq_awq_scale_result *res, cq_error *err)
{
    search_ws ws;
    int rc = check_group(o, g, err);
    if (rc != CQ_OK || (rc = ws_alloc(&ws, g, err)) != CQ_OK)
        return rc;
    if ((rc = cq_awq_x_mean(g->x, g->tokens, g->cols, ws.x_mean, err)) == CQ_OK)
        rc = cq_awq_w_mean(g->w, g->rows, g->n_linear, g->cols, group_of(q, g->cols), ws.w_mean,
                           err);
    /* the FP output once (the XᵀX path needs none), then plain quantization as "before" */
    if (rc == CQ_OK && !ws.gram)
        rc = eval_block(g, g->w, ws.fp_out, err);
    if (rc == CQ_OK)
        rc = trial_loss(q, g, &ws, NULL, &res->loss_before, err);
    if (rc == CQ_OK)
        rc = grid_loop(q, o, g, &ws, res, err);
    ws_release(&ws);
    return rc;
}

/* ---- folding ---- */

static void scale_cols(float *w, int64_t rows, int64_t cols, const float *s)
{
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++)
            w[r * cols + c] *= s[c];
}

void cq_awq_fold_norm(float *norm, float *norm_bias, int64_t cols, float *const *w,
                      const int64_t *rows, int n, const float *s)
{
    for (int64_t c = 0; c < cols; c++) {
        norm[c] /= s[c];
        if (norm_bias)
            norm_bias[c] /= s[c];
    }
    for (int i = 0; i < n; i++)
        scale_cols(w[i], rows[i], cols, s);
}

void cq_awq_fold_linear(float *prev, float *prev_bias, int64_t prev_rows, int64_t prev_cols,
                        float *next, int64_t next_rows, int64_t cols, const float *s)
{
    int64_t r0 = prev_rows - cols;
    for (int64_t r = 0; r < cols; r++) {
        float *row = prev + (r0 + r) * prev_cols;
        for (int64_t k = 0; k < prev_cols; k++)
            row[k] /= s[r];
        if (prev_bias)
            prev_bias[r0 + r] /= s[r];
    }
    scale_cols(next, next_rows, cols, s);
}

void cq_awq_scale_input(float *x, int64_t tokens, int64_t cols, const float *s)
{
    for (int64_t t = 0; t < tokens; t++)
        for (int64_t c = 0; c < cols; c++)
            x[t * cols + c] /= s[c];
}

/* ---- clipping ---- */

typedef struct clip_ws {
    float *xs;    /* sampled tokens [ns x cols] (x[::step]) */
    float *org;   /* [ns x rows]: the group's FP partial products */
    float *cur;   /* [ns x rows] */
    float *wq;    /* [rows x group] */
    float *amax;  /* [rows] */
    float *min_err;
} clip_ws;

static void clip_ws_release(clip_ws *ws)
{
    free(ws->xs);
    free(ws->org);
    free(ws->cur);
    free(ws->wq);
    free(ws->amax);
    free(ws->min_err);
}

/* Clamp one group to [-mv, mv] and fake-quantize it into wq[n]. */
static void clip_trial(const cq_qconfig *q, const float *w, int64_t n, float mv, float *wq)
{
    float sc, z;
    for (int64_t j = 0; j < n; j++)
        wq[j] = w[j] < -mv ? -mv : (w[j] > mv ? mv : w[j]);
    fit_group(wq, n, q->bits, q->sym, &sc, &z);
    for (int64_t j = 0; j < n; j++)
        wq[j] = cq_grid_dequant(code_of(wq[j], sc, z, q->bits), sc, z);
}

/* [ns x rows] = xs[:, c0:c0+n] · wᵀ (w rows of stride ldw): every output channel's partial dot
 * products over the group at once. */
static void group_products(const clip_ws *ws, int64_t ns, int64_t cols, int64_t c0, int64_t n,
                           const float *w, int64_t ldw, int64_t rows, float *out)
{
    cq_det_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)ns, (int)rows, (int)n, 1.0f,
                ws->xs + c0, (int)cols, w, (int)ldw, 0.0f, out, (int)rows);
}

/* One group column block g for all rows: the shrink loop of §F.6. */
static void clip_group(const cq_qconfig *q, const cq_awq_opts *o, const float *w, int64_t rows,
                       int64_t cols, int64_t ns, int64_t c0, int64_t n, clip_ws *ws,
                       float *best /* [rows], stride n_groups applied by the caller */)
{
    for (int64_t r = 0; r < rows; r++) {
        float a = 0;
        for (int64_t j = 0; j < n; j++)
            a = fabsf(w[r * cols + c0 + j]) > a ? fabsf(w[r * cols + c0 + j]) : a;
        ws->amax[r] = a;
        ws->min_err[r] = 1e9f;
        best[r] = a;
    }
    group_products(ws, ns, cols, c0, n, w + c0, cols, rows, ws->org);
    int steps = (int)(o->max_shrink * o->clip_grid);
    for (int i = 0; i < steps; i++) {
        /* torch: org_max_val * (1 - i_s / n_grid), the factor formed in double */
        float f = (float)(1.0 - (double)i / o->clip_grid);
        for (int64_t r = 0; r < rows; r++)
            clip_trial(q, w + r * cols + c0, n, ws->amax[r] * f, ws->wq + r * n);
        group_products(ws, ns, cols, c0, n, ws->wq, n, rows, ws->cur);
        for (int64_t r = 0; r < rows; r++) {
            double e = 0;
            for (int64_t t = 0; t < ns; t++) {
                float d = ws->cur[t * rows + r] - ws->org[t * rows + r];
                e += (double)d * d;
            }
            float err = (float)(e / (double)ns);
            if (err < ws->min_err[r]) {
                ws->min_err[r] = err;
                best[r] = ws->amax[r] * f;
            }
        }
    }
}

static int clip_ws_alloc(clip_ws *ws, int64_t rows, int64_t cols, int64_t ns, int64_t group,
                         cq_error *err)
{
    memset(ws, 0, sizeof *ws);
    size_t nr = (size_t)ns * (size_t)rows;
    if ((ws->xs = malloc((size_t)ns * (size_t)cols * sizeof(float))) &&
        (ws->org = malloc(nr * sizeof(float))) && (ws->cur = malloc(nr * sizeof(float))) &&
        (ws->wq = malloc((size_t)rows * (size_t)group * sizeof(float))) &&
        (ws->amax = malloc((size_t)rows * sizeof(float))) &&
        (ws->min_err = malloc((size_t)rows * sizeof(float))))
        return CQ_OK;
    clip_ws_release(ws);
    return cq_errorf(err, CQ_E_NOMEM, "awq clip: out of memory (%lld x %lld)", (long long)rows,
                     (long long)cols);
}

int cq_awq_search_clip(const cq_qconfig *q, const cq_awq_opts *o, const float *w, int64_t rows,
                       int64_t cols, const float *x, int64_t tokens, float *max_val,
                       cq_error *err)
{
    if (tokens < 1 || o->clip_tokens < 1 || o->clip_grid < 1 || rows < 1 || cols < 1)
        return cq_errorf(err, CQ_E_USAGE, "awq clip: no tokens, no weights or an empty grid");
    int64_t step = tokens / o->clip_tokens > 1 ? tokens / o->clip_tokens : 1;
    int64_t ns = (tokens + step - 1) / step, group = group_of(q, cols);
    int64_t n_groups = (cols + group - 1) / group;
    clip_ws ws;
    float *best = malloc((size_t)rows * sizeof *best);
    int rc = best ? clip_ws_alloc(&ws, rows, cols, ns, group, err)
                  : cq_errorf(err, CQ_E_NOMEM, "awq clip: out of memory");
    if (rc != CQ_OK) {
        free(best);
        return rc;
    }
    for (int64_t t = 0; t < ns; t++)
        memcpy(ws.xs + t * cols, x + t * step * cols, (size_t)cols * sizeof(float));
    for (int64_t g = 0; g < n_groups; g++) {
        int64_t c0 = g * group, n = cols - c0 < group ? cols - c0 : group;
        clip_group(q, o, w, rows, cols, ns, c0, n, &ws, best);
        for (int64_t r = 0; r < rows; r++)
            max_val[r * n_groups + g] = best[r];
    }
    clip_ws_release(&ws);
    free(best);
    return CQ_OK;
}

void cq_awq_apply_clip(float *w, int64_t rows, int64_t cols, int64_t group, const float *max_val)
{
    int64_t n_groups = (cols + group - 1) / group;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            float mv = max_val[r * n_groups + c / group], *v = &w[r * cols + c];
            *v = *v < -mv ? -mv : (*v > mv ? mv : *v);
        }
}

double cq_awq_mean_shrink(const float *w, int64_t rows, int64_t cols, int64_t group,
                          const float *max_val)
{
    int64_t ng = (cols + group - 1) / group;
    double sum = 0;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t g = 0; g < ng; g++) {
            float a = 0;
            for (int64_t k = g * group; k < cols && k < (g + 1) * group; k++)
                a = fabsf(w[r * cols + k]) > a ? fabsf(w[r * cols + k]) : a;
            sum += a > 0 ? max_val[r * ng + g] / a : 1.0;
        }
    return rows * ng > 0 ? sum / (double)(rows * ng) : 1.0;
}
