/* Whole-model GPTQ (see gptq_model.h). Hessians: each forward chunk's XᵀX is formed by one
 * ssyrk in float32 (upper triangle, half the flops of sgemm) and added into a float64
 * accumulator; the per-chunk sum has at most chunk_tokens terms, the running total over all
 * chunks is double (docs/algorithms.md has the numbers behind this choice). */
#include "cquant/gptq_model.h"

#include "cquant/checked.h"
#include "cquant/dtype.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { N_POINTS = 4 };

/* The Linears fed by each hook point, in the reference's true-sequential order (§E.13). */
static const int point_lins[N_POINTS][3] = {
    {CQ_LIN_K, CQ_LIN_V, CQ_LIN_Q},
    {CQ_LIN_O, -1, -1},
    {CQ_LIN_UP, CQ_LIN_GATE, -1},
    {CQ_LIN_DOWN, -1, -1},
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void cq_gptq_model_opts_defaults(cq_gptq_model_opts *o)
{
    memset(o, 0, sizeof *o);
    o->true_sequential = true;
}

/* ---- one Linear ---- */

/* tr(A·H·Aᵀ) of `rows` rows of A with H given in f32 (row blocks through sgemm; sums in
 * double). p is scratch [blk x cols]. */
static double trace_aha(const float *a, int64_t rows, int64_t cols, const float *hf, float *p,
                        int64_t blk)
{
    double tr = 0.0;
    for (int64_t r0 = 0; r0 < rows; r0 += blk) {
        int64_t nr = rows - r0 < blk ? rows - r0 : blk;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nr, (int)cols, (int)cols,
                    1.0f, a + r0 * cols, (int)cols, hf, (int)cols, 0.0f, p, (int)cols);
        const float *ar = a + r0 * cols;
        for (int64_t i = 0; i < nr * cols; i++)
            tr += (double)ar[i] * (double)p[i];
    }
    return tr;
}

static void round_scales_f16(cq_qresult *r)
{
    for (int64_t i = 0; i < r->n_groups * r->rows; i++)
        r->scale[i] = cq_f16_to_f32(cq_f32_to_f16(r->scale[i]));
}

/* The three traces (GPTQ, RTN, W itself) with one f32 copy of H. */
static int measure(const float *w, const float *qg, const float *qr_rtn, int64_t rows,
                   int64_t cols, const double *h, cq_gptq_lin_stats *st, cq_error *err)
{
    enum { BLK = 64 };
    size_t n2 = (size_t)cols * (size_t)cols, nw = (size_t)rows * (size_t)cols;
    float *hf = malloc(n2 * sizeof *hf), *p = malloc((size_t)BLK * (size_t)cols * sizeof *p);
    float *d = malloc(nw * sizeof *d);
    if (!hf || !p || !d) {
        free(hf);
        free(p);
        free(d);
        return cq_errorf(err, CQ_E_NOMEM, "out of memory measuring a %lld x %lld matrix",
                         (long long)rows, (long long)cols);
    }
    for (size_t i = 0; i < n2; i++)
        hf[i] = (float)h[i];
    double sw = 0.0, sd = 0.0;
    for (size_t i = 0; i < nw; i++) {
        d[i] = w[i] - qg[i];
        sw += (double)w[i] * w[i];
        sd += (double)d[i] * d[i];
    }
    st->gptq_loss = trace_aha(d, rows, cols, hf, p, BLK) / 2.0;
    for (size_t i = 0; i < nw; i++)
        d[i] = w[i] - qr_rtn[i];
    st->rtn_loss = trace_aha(d, rows, cols, hf, p, BLK) / 2.0;
    st->out_energy = trace_aha(w, rows, cols, hf, p, BLK) / 2.0;
    st->rel_weight_error = sw > 0 ? sqrt(sd / sw) : 0.0;
    st->rel_output_error = st->out_energy > 0 ? sqrt(st->gptq_loss / st->out_energy) : 0.0;
    st->rtn_rel_output_error = st->out_energy > 0 ? sqrt(st->rtn_loss / st->out_energy) : 0.0;
    free(hf);
    free(p);
    free(d);
    return CQ_OK;
}

int cq_gptq_linear(const cq_qconfig *q, const float *w, int64_t rows, int64_t cols,
                   const double *h, float *q_out, cq_qresult *qr, cq_gptq_lin_stats *st,
                   cq_error *err)
{
    double t0 = now_s();
    size_t nw;
    cq_qresult rq = {0};
    float *rtn_w = NULL;
    memset(st, 0, sizeof *st);
    if (cq_mul_size((size_t)rows, (size_t)cols, &nw) || cq_mul_size(nw, sizeof(float), &nw))
        return cq_errorf(err, CQ_E_USAGE, "matrix %lld x %lld is too large", (long long)rows,
                         (long long)cols);
    memcpy(q_out, w, nw);
    int rc = cq_gptq_quantize(q, q_out, rows, cols, h, qr, err);
    if (rc != CQ_OK)
        return rc;
    st->gptq_loss_ref = qr->loss;
    st->damp_used = qr->damp_used;
    st->damp_tries = qr->damp_tries;
    st->dead_cols = qr->dead_cols;
    /* Measure what the checkpoint holds: F16 scales, as every layout stores them. */
    round_scales_f16(qr);
    cq_qresult_dequant(qr, q_out);
    if ((rc = cq_rtn_quantize(q, w, rows, cols, &rq, err)) == CQ_OK) {
        round_scales_f16(&rq);
        if (!(rtn_w = malloc(nw)))
            rc = cq_errorf(err, CQ_E_NOMEM, "out of memory for the rtn comparison");
    }
    if (rc == CQ_OK) {
        cq_qresult_dequant(&rq, rtn_w);
        rc = measure(w, q_out, rtn_w, rows, cols, h, st, err);
    }
    free(rtn_w);
    cq_qresult_release(&rq);
    if (rc != CQ_OK)
        cq_qresult_release(qr);
    st->seconds = now_s() - t0;
    return rc;
}

/* ---- Hessian accumulation through the layer hook ---- */

typedef struct hacc {
    double *h[N_POINTS];   /* upper triangles accumulated, [cols x cols] */
    int64_t cols[N_POINTS];
    bool active[N_POINTS];
    int stop_after;        /* hook point after which the chunk is skipped, or -1 */
    float *tmp;            /* [max cols^2] one chunk's XᵀX */
    int bad_point;         /* non-finite input seen here, or -1 */
} hacc;

static bool all_finite(const float *x, int64_t n)
{
    float acc = 0.0f;
    for (int64_t i = 0; i < n; i++)
        acc += x[i] * 0.0f; /* NaN*0 and Inf*0 are NaN: one branch for the whole chunk */
    return acc == 0.0f;
}

static int hacc_hook(void *ctx, int which, const float *x, int64_t n, int64_t cols)
{
    hacc *a = ctx;
    if (which < 0 || which >= N_POINTS)
        return CQ_E_INTERNAL;
    if (a->active[which]) {
        if (cols != a->cols[which] || n > INT32_MAX)
            return CQ_E_INTERNAL;
        if (!all_finite(x, n * cols)) {
            a->bad_point = which;
            return CQ_E_NUMERIC;
        }
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)cols, (int)n, 1.0f, x,
                    (int)cols, 0.0f, a->tmp, (int)cols);
        double *h = a->h[which];
        for (int64_t i = 0; i < cols; i++)
            for (int64_t j = i; j < cols; j++)
                h[i * cols + j] += a->tmp[i * cols + j];
    }
    return which == a->stop_after ? CQ_HOOK_SKIP : CQ_OK;
}

/* Mirror the upper triangle and scale by 2/n_seq (§E.1). */
static void hacc_finish(double *h, int64_t cols, int64_t n_seq)
{
    double s = 2.0 / (double)n_seq;
    for (int64_t i = 0; i < cols; i++) {
        h[i * cols + i] *= s;
        for (int64_t j = i + 1; j < cols; j++) {
            h[i * cols + j] *= s;
            h[j * cols + i] = h[i * cols + j];
        }
    }
}

/* ---- the driver ---- */

typedef struct drv {
    const cq_model_config *cfg;
    const cq_st_model *st;
    const cq_qconfig *q;
    const cq_gptq_model_opts *o;
    const cq_gptq_hooks *hk;
    cq_llama *m;
    float *hidden, *scratch;   /* activations; one chunk of pass output */
    int64_t n_seq, seqlen, chunk_seqs;
    cq_layer_weights w;
    float *wq;                 /* quantized weights of one Linear (largest size) */
    hacc acc;
} drv;

static const char *point_name(int p)
{
    static const char *const names[N_POINTS] = {
        "self_attn.q_proj/k_proj/v_proj", "self_attn.o_proj", "mlp.gate_proj/up_proj",
        "mlp.down_proj"};
    return names[p];
}

static bool wants(const drv *d, int64_t layer, int lin)
{
    return !d->hk->wants || d->hk->wants(d->hk->ctx, layer, lin);
}

static bool point_wanted(const drv *d, int64_t layer, int p)
{
    for (int k = 0; k < 3 && point_lins[p][k] >= 0; k++)
        if (wants(d, layer, point_lins[p][k]))
            return true;
    return false;
}

/* One pass of the layer over every sequence; output to scratch (Hessian passes) or in place. */
static int layer_pass(drv *d, int64_t layer, bool in_place, cq_error *err)
{
    int64_t H = d->cfg->hidden, S = d->seqlen;
    int rc = CQ_OK;
    d->acc.bad_point = -1;
    for (int64_t s0 = 0; s0 < d->n_seq && rc == CQ_OK; s0 += d->chunk_seqs) {
        int64_t ns = d->n_seq - s0 < d->chunk_seqs ? d->n_seq - s0 : d->chunk_seqs;
        float *x = d->hidden + s0 * S * H;
        rc = cq_layer_forward(d->m, &d->w, x, in_place ? x : d->scratch, ns, S,
                              in_place ? NULL : hacc_hook, &d->acc, err);
    }
    if (rc != CQ_OK && d->acc.bad_point >= 0) {
        *err = (cq_error)CQ_ERROR_INIT; /* replace the forward's generic hook message */
        return cq_errorf(err, CQ_E_NUMERIC,
                         "layer %lld: non-finite calibration activations at the input of %s",
                         (long long)layer, point_name(d->acc.bad_point));
    }
    if (rc != CQ_OK)
        cq_error_prefix(err, "layer %lld", (long long)layer);
    return rc;
}

static int quantize_lin(drv *d, int64_t layer, int lin, const double *h, cq_error *err)
{
    int64_t rows, cols;
    cq_linear_shape(d->cfg, lin, &rows, &cols);
    cq_qresult qr = {0};
    cq_gptq_lin_stats st;
    int rc = cq_gptq_linear(d->q, d->w.lin[lin], rows, cols, h, d->wq, &qr, &st, err);
    if (rc == CQ_OK && d->hk->linear_done)
        rc = d->hk->linear_done(d->hk->ctx, layer, lin, d->w.lin[lin], &qr, &st, err);
    if (rc == CQ_OK) /* later passes see the quantized Linear (§E.13) */
        memcpy(d->w.lin[lin], d->wq, (size_t)(rows * cols) * sizeof(float));
    cq_qresult_release(&qr);
    if (rc != CQ_OK)
        cq_error_prefix(err, "layer %lld %s", (long long)layer, cq_linear_name(lin));
    return rc;
}

/* Collect the Hessians of the points in `mask` in one pass, then quantize their Linears. */
static int do_points(drv *d, int64_t layer, unsigned mask, cq_error *err)
{
    int last = -1;
    for (int p = 0; p < N_POINTS; p++) {
        d->acc.active[p] = (mask >> p) & 1u;
        if (d->acc.active[p]) {
            memset(d->acc.h[p], 0, (size_t)(d->acc.cols[p] * d->acc.cols[p]) * sizeof(double));
            last = p;
        }
    }
    d->acc.stop_after = last;
    int rc = layer_pass(d, layer, false, err);
    for (int p = 0; p < N_POINTS && rc == CQ_OK; p++) {
        if (!d->acc.active[p])
            continue;
        hacc_finish(d->acc.h[p], d->acc.cols[p], d->n_seq);
        for (int k = 0; k < 3 && point_lins[p][k] >= 0 && rc == CQ_OK; k++)
            if (wants(d, layer, point_lins[p][k]))
                rc = quantize_lin(d, layer, point_lins[p][k], d->acc.h[p], err);
    }
    return rc;
}

static int run_layer(drv *d, int64_t layer, cq_error *err)
{
    double t0 = now_s();
    int rc = cq_layer_load(&d->w, d->cfg, d->st, layer, err);
    if (rc == CQ_OK && d->hk->layer_loaded)
        rc = d->hk->layer_loaded(d->hk->ctx, layer, &d->w, err);
    if (d->o->true_sequential) {
        for (int p = 0; p < N_POINTS && rc == CQ_OK; p++)
            if (point_wanted(d, layer, p))
                rc = do_points(d, layer, 1u << p, err);
    } else if (rc == CQ_OK) {
        unsigned mask = 0;
        for (int p = 0; p < N_POINTS; p++)
            mask |= point_wanted(d, layer, p) ? 1u << p : 0u;
        if (mask)
            rc = do_points(d, layer, mask, err);
    }
    if (rc == CQ_OK)
        rc = layer_pass(d, layer, true, err);
    if (rc == CQ_OK && !all_finite(d->hidden, d->n_seq * d->seqlen * d->cfg->hidden))
        rc = cq_errorf(err, CQ_E_NUMERIC, "layer %lld: non-finite activations at its output",
                       (long long)layer);
    if (rc == CQ_OK && d->hk->layer_done)
        rc = d->hk->layer_done(d->hk->ctx, layer, d->hidden, now_s() - t0, err);
    return rc;
}

/* Tokens per forward chunk: the option (default 4096), at least one sequence, at most all of
 * them (the scratch is sized by the chunk: a small calibration set gets a small one). */
static int64_t effective_chunk(const cq_gptq_model_opts *o, int64_t n_seq, int64_t seqlen)
{
    int64_t chunk = o->chunk_tokens > 0 ? o->chunk_tokens : 4096;
    if (chunk > n_seq * seqlen)
        chunk = n_seq * seqlen;
    return chunk < seqlen ? seqlen : chunk;
}

static void *xmalloc(size_t a, size_t b, bool *fail)
{
    size_t n;
    void *p = NULL;
    if (cq_mul_size(a, b, &n) == 0)
        p = malloc(n ? n : 1);
    if (!p)
        *fail = true;
    return p;
}

static int drv_setup(drv *d, cq_error *err)
{
    const cq_model_config *c = d->cfg;
    int64_t maxc = 0, maxw = 0, rows, cols;
    for (int l = 0; l < CQ_LIN_COUNT; l++) {
        cq_linear_shape(c, l, &rows, &cols);
        maxw = rows * cols > maxw ? rows * cols : maxw;
    }
    for (int p = 0; p < N_POINTS; p++) {
        cq_linear_shape(c, point_lins[p][0], &rows, &cols);
        d->acc.cols[p] = cols;
        maxc = cols > maxc ? cols : maxc;
    }
    int64_t chunk = effective_chunk(d->o, d->n_seq, d->seqlen);
    d->chunk_seqs = chunk / d->seqlen;
    int rc = cq_llama_create(&d->m, c, d->seqlen, chunk, err);
    if (rc == CQ_OK)
        rc = cq_layer_alloc(&d->w, c, err);
    if (rc != CQ_OK)
        return rc;
    bool fail = false;
    d->scratch = xmalloc((size_t)(d->chunk_seqs * d->seqlen * c->hidden), sizeof(float), &fail);
    d->wq = xmalloc((size_t)maxw, sizeof(float), &fail);
    d->acc.tmp = xmalloc((size_t)(maxc * maxc), sizeof(float), &fail);
    /* true-sequential needs one accumulator at a time: the points share the largest one */
    for (int p = 0; p < N_POINTS && !fail; p++) {
        if (d->o->true_sequential && p > 0) {
            d->acc.h[p] = NULL;
            continue;
        }
        size_t n = d->o->true_sequential ? (size_t)(maxc * maxc)
                                         : (size_t)(d->acc.cols[p] * d->acc.cols[p]);
        d->acc.h[p] = xmalloc(n, sizeof(double), &fail);
    }
    if (d->o->true_sequential)
        for (int p = 1; p < N_POINTS; p++)
            d->acc.h[p] = d->acc.h[0];
    if (fail)
        return cq_errorf(err, CQ_E_NOMEM, "out of memory for the gptq work arrays");
    return CQ_OK;
}

static void drv_free(drv *d)
{
    cq_llama_free(d->m);
    cq_layer_release(&d->w);
    free(d->scratch);
    free(d->wq);
    free(d->acc.tmp);
    free(d->acc.h[0]);
    if (!d->o->true_sequential)
        for (int p = 1; p < N_POINTS; p++)
            free(d->acc.h[p]);
}

int cq_gptq_model_run(const cq_model_config *cfg, const cq_st_model *st, float *hidden,
                      int64_t n_seq, int64_t seqlen, int64_t first_layer, const cq_qconfig *q,
                      const cq_gptq_model_opts *o, const cq_gptq_hooks *hk, cq_error *err)
{
    if (n_seq < 1 || seqlen < 1 || first_layer < 0 || first_layer > cfg->n_layers)
        return cq_errorf(err, CQ_E_USAGE, "gptq: bad calibration shape %lld x %lld or layer %lld",
                         (long long)n_seq, (long long)seqlen, (long long)first_layer);
    drv d = {.cfg = cfg, .st = st, .q = q, .o = o, .hk = hk, .hidden = hidden, .n_seq = n_seq,
             .seqlen = seqlen};
    int rc = cq_qconfig_check(q, err);
    if (rc == CQ_OK)
        rc = drv_setup(&d, err);
    for (int64_t l = first_layer; l < cfg->n_layers && rc == CQ_OK; l++)
        rc = run_layer(&d, l, err);
    drv_free(&d);
    return rc;
}

/* ---- memory plan ---- */

void cq_gptq_model_plan(const cq_model_config *c, int64_t n_seq, int64_t seqlen,
                        const cq_gptq_model_opts *o, cq_gptq_plan *p)
{
    memset(p, 0, sizeof *p);
    int64_t rows, cols, maxc = 0, sumh = 0, lw = 0, worst = 0;
    for (int l = 0; l < CQ_LIN_COUNT; l++) {
        cq_linear_shape(c, l, &rows, &cols);
        lw += rows * cols;
        maxc = cols > maxc ? cols : maxc;
        /* cq_gptq_quantize: damped copy (f64) + U (f32) + row buffers; then the metrics:
         * H in f32, the difference matrix, the RTN copy and its codes */
        int64_t g = cols * cols * 8 + cols * cols * 4 + rows * cols * 2 + 4 * cols * 8;
        int64_t m = cols * cols * 4 + rows * cols * (4 + 4 + 1) + 64 * cols * 4;
        int64_t lin = (g > m ? g : m) + rows * cols * (4 + 1); /* + wq, qresult codes */
        worst = lin > worst ? lin : worst;
    }
    for (int pt = 0; pt < N_POINTS; pt++) {
        cq_linear_shape(c, point_lins[pt][0], &rows, &cols);
        sumh += cols * cols;
    }
    int64_t chunk = effective_chunk(o, n_seq, seqlen);
    int64_t qd = c->n_heads * c->head_dim, kd = c->n_kv_heads * c->head_dim;
    int64_t fwd = chunk * (3 * c->hidden + 2 * c->intermediate + qd + 2 * kd) + seqlen * seqlen;
    fwd += (chunk / seqlen) * seqlen * c->hidden; /* pass output scratch */
    p->activations = (size_t)(n_seq * seqlen * c->hidden) * sizeof(float);
    p->layer_weights = (size_t)(lw + 2 * c->hidden) * sizeof(float);
    p->hessians = (size_t)((o->true_sequential ? maxc * maxc : sumh) * 8 + maxc * maxc * 4);
    p->gptq_work = (size_t)worst;
    p->forward = (size_t)fwd * sizeof(float);
    p->total = p->activations + p->layer_weights + p->hessians + p->gptq_work + p->forward;
}
