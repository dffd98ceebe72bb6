/* AWQ over a whole decoder model (notes §F.1, §F.2; OPT as AutoAWQ's OPT model: q/k/v after
 * self_attn_layer_norm, out_proj after v, fc1 after final_layer_norm inspected alone, fc2 after
 * fc1; post-LN OPT scales only out_proj and fc2, since its norms also feed the residual
 * stream and the q/k/v input comes from the previous layer): layer by layer, the FP forward records
 * every Linear group's input and yields the next layer's input in full precision; the four scale
 * searches see the unmodified layer; then every scale is folded, the recorded inputs divided by
 * their scales, and clipping searched on the scaled weights and inputs (not for q/k).
 *
 * Under mpirun every rank runs the forward over all tokens; the four scale searches and the
 * five clip searches of a layer (most of the time) are dealt round-robin to the ranks and
 * their results (scales, clip values, report numbers) broadcast. Each search runs whole on one
 * rank exactly as in one process, so the bytes do not depend on the number of ranks. */
#include "cquant/awq.h"

#include "cquant/checked.h"
#include "cquant/dist.h"
#include "quant/awq_moe.h"
#include "quant/grid.h"
#include "quant/par.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Tokens per forward chunk: the MLP's gate/up activations of 512 tokens stay in cache between
 * the GEMMs and the SwiGLU pass (4096 tokens spill: 16 MB each at intermediate 1024), which the
 * 22 evaluations per group repeat. Raised to seqlen by cq_llama_create when longer. */
#define AWQ_CHUNK_TOKENS 512

static const char *const group_names[CQ_AWQ_N_GROUPS] = {
    "self_attn.q_k_v", "self_attn.o_proj", "mlp.gate_up", "mlp.down_proj"};

const char *cq_awq_group_name(int g)
{
    return g >= 0 && g < CQ_AWQ_N_GROUPS ? group_names[g] : "?";
}

/* The recorded input of each hook point for every calibration token. */
typedef struct rec {
    float *x[4];
    int64_t cols[4], filled[4], tokens;
    int bad;  /* hook point whose input held NaN/Inf, or -1 */
} rec;

static bool finite_all(const float *x, int64_t n)
{
    float acc = 0.0f;
    for (int64_t i = 0; i < n; i++)
        acc += x[i] * 0.0f; /* NaN*0 and Inf*0 are NaN: one branch for the whole chunk */
    return acc == 0.0f;
}

static int rec_hook(void *ctx, int which, const float *x, int64_t n, int64_t cols)
{
    rec *r = ctx;
    if (which < 0 || which > 3 || cols != r->cols[which] || r->filled[which] + n > r->tokens)
        return CQ_E_INTERNAL;
    if (!finite_all(x, n * cols)) {
        r->bad = which;
        return CQ_E_NUMERIC;
    }
    memcpy(r->x[which] + r->filled[which] * cols, x, (size_t)(n * cols) * sizeof(float));
    r->filled[which] += n;
    return CQ_OK;
}

typedef struct drv drv;
static int rec_any(void *ctx, int which, const float *x, int64_t n, int64_t cols);

typedef struct drv {
    const cq_model_config *cfg;
    const cq_qconfig *q;
    const cq_awq_opts *o;
    cq_llama *m;
    int64_t n_seq, seqlen, tokens;
    cq_layer_weights w;
    rec in;
    float *hidden, *next;
    float *s[CQ_AWQ_N_GROUPS];
    awq_moe *moe;              /* configs with experts */
} drv;

/* The dense points into rec, the expert points into the MoE state. */
static int rec_any(void *ctx, int which, const float *x, int64_t n, int64_t cols)
{
    drv *d = ctx;
    if (which >= CQ_HOOK_MOE_BASE)
        return d->moe ? awq_moe_hook(d->moe, which, x, n, cols) : CQ_E_INTERNAL;
    return rec_hook(&d->in, which, x, n, cols);
}

/* The fallback statistics' forward (awq_moe_env): same weights, so the same output. */
static int moe_forward(void *ctx, cq_error *err)
{
    drv *d = ctx;
    return cq_layer_forward(d->m, &d->w, d->hidden, d->next, d->n_seq, d->seqlen, awq_moe_hook,
                            d->moe, err);
}

/* Module-to-inspect evaluations: the layer with the group's Linears replaced. */
typedef struct blk {
    drv *d;
    int group;
    const float *x;
} blk;

/* Linears of each group (absent ones skipped: OPT has no gate) and its hook point. */
static const int group_lins[CQ_AWQ_N_GROUPS][4] = {
    {CQ_LIN_Q, CQ_LIN_K, CQ_LIN_V, -1},
    {CQ_LIN_O, -1, -1, -1},
    {CQ_LIN_GATE, CQ_LIN_UP, -1, -1},
    {CQ_LIN_DOWN, -1, -1, -1},
};
static const int group_hook[CQ_AWQ_N_GROUPS] = {CQ_HOOK_QKV_IN, CQ_HOOK_O_IN, CQ_HOOK_GATEUP_IN,
                                                CQ_HOOK_DOWN_IN};

/* The present Linears of group g into lins; returns their count. */
static int group_members(const cq_model_config *cfg, int g, int *lins)
{
    int n = 0;
    for (int k = 0; k < 4 && group_lins[g][k] >= 0; k++)
        if (cq_linear_present(cfg, group_lins[g][k]))
            lins[n++] = group_lins[g][k];
    return n;
}

/* The layer with group b->group's Linears replaced by ws, through the attention or MLP. */
static cq_layer_weights with_group(const blk *b, float *const *ws)
{
    cq_layer_weights lw = b->d->w;
    int lins[4], n = group_members(b->d->cfg, b->group, lins);
    for (int k = 0; k < n; k++)
        lw.lin[lins[k]] = ws[k];
    return lw;
}

static int attn_block(void *ctx, float *const *ws, float *out, cq_error *err)
{
    blk *b = ctx;
    cq_layer_weights lw = with_group(b, ws);
    return cq_attn_forward(b->d->m, &lw, b->x, out, b->d->n_seq, b->d->seqlen, err);
}

static int mlp_block(void *ctx, float *const *ws, float *out, cq_error *err)
{
    blk *b = ctx;
    cq_layer_weights lw = with_group(b, ws);
    return cq_mlp_forward(b->d->m, &lw, b->x, out, b->d->tokens, err);
}

static bool vo_match(const cq_model_config *cfg)
{
    int64_t vr, vc, orr, oc;
    cq_linear_shape(cfg, CQ_LIN_V, &vr, &vc);
    cq_linear_shape(cfg, CQ_LIN_O, &orr, &oc);
    return vr == orr && vc == oc;
}

/* Is group g searched? Its input op must be one the scales fold into: not v->o of unequal
 * shapes, and not a post-LN norm (which also feeds the residual) or the previous layer. */
static bool group_runs(const cq_model_config *cfg, int g)
{
    if (g == CQ_AWQ_G_O)
        return vo_match(cfg);
    return !(cfg->post_ln && (g == CQ_AWQ_G_QKV || g == CQ_AWQ_G_GATEUP));
}

static int search_group(drv *d, int g, cq_awq_layer_report *rep, cq_error *err)
{
    float *ws[4];
    int64_t rows[4], cols = 0;
    int lins[4], n = group_members(d->cfg, g, lins);
    for (int k = 0; k < n; k++) {
        ws[k] = d->w.lin[lins[k]];
        cq_linear_shape(d->cfg, lins[k], &rows[k], &cols);
    }
    const float *x = d->in.x[group_hook[g]];
    blk b = {d, g, x};
    cq_awq_group grp = {.x = x, .tokens = d->tokens, .cols = cols, .n_linear = n, .w = ws,
                        .rows = rows, .block_ctx = &b, .out_elems = d->tokens * d->cfg->hidden};
    grp.block = g == CQ_AWQ_G_QKV ? attn_block : g == CQ_AWQ_G_GATEUP ? mlp_block : NULL;
    if (g == CQ_AWQ_G_GATEUP && n == 1) /* OPT's fc1 is inspected alone, as AutoAWQ does */
        grp.block = NULL;
    cq_awq_scale_result res = {.scales = d->s[g]};
    double t0 = cq_par_now();
    int rc = cq_awq_search_scale(d->q, d->o, &grp, &res, err);
    if (rc != CQ_OK) {
        cq_error_prefix(err, "layer %lld %s", (long long)rep->layer, group_names[g]);
        return rc;
    }
    rep->group[g].done = true;
    rep->group[g].ratio = res.ratio;
    rep->group[g].loss_before = res.loss_before;
    rep->group[g].loss_after = res.loss_after;
    rep->group[g].seconds = cq_par_now() - t0;
    return CQ_OK;
}

/* The present Linears of group g with their rows, for folding. */
static int group_weights(drv *d, int g, float **ws, int64_t *rows)
{
    int64_t cols;
    int lins[4], n = group_members(d->cfg, g, lins);
    for (int k = 0; k < n; k++) {
        ws[k] = d->w.lin[lins[k]];
        cq_linear_shape(d->cfg, lins[k], &rows[k], &cols);
    }
    return n;
}

/* §F.5 plus step 4 of §F.1: fold every searched scale, divide the recorded inputs. */
static void fold_all(drv *d, const cq_awq_layer_report *rep)
{
    const cq_model_config *c = d->cfg;
    cq_layer_weights *w = &d->w;
    int64_t H = c->hidden, I = c->intermediate, qd = c->n_heads * c->head_dim;
    int64_t kd = c->n_kv_heads * c->head_dim, rows[4];
    float *ws[4];
    int n;
    if (rep->group[CQ_AWQ_G_QKV].done) {
        n = group_weights(d, CQ_AWQ_G_QKV, ws, rows);
        cq_awq_fold_norm(w->in_norm, w->in_norm_bias, H, ws, rows, n, d->s[CQ_AWQ_G_QKV]);
    }
    if (rep->group[CQ_AWQ_G_O].done)
        cq_awq_fold_linear(w->lin[CQ_LIN_V], w->bias[CQ_LIN_V], kd, H, w->lin[CQ_LIN_O], H, qd,
                           d->s[CQ_AWQ_G_O]);
    if (rep->group[CQ_AWQ_G_GATEUP].done) {
        n = group_weights(d, CQ_AWQ_G_GATEUP, ws, rows);
        cq_awq_fold_norm(w->post_norm, w->post_norm_bias, H, ws, rows, n,
                         d->s[CQ_AWQ_G_GATEUP]);
    }
    if (rep->group[CQ_AWQ_G_DOWN].done)
        cq_awq_fold_linear(w->lin[CQ_LIN_UP], w->bias[CQ_LIN_UP], I, H, w->lin[CQ_LIN_DOWN], H,
                           I, d->s[CQ_AWQ_G_DOWN]);
    for (int g = 0; g < CQ_AWQ_N_GROUPS; g++)
        if (rep->group[g].done)
            cq_awq_scale_input(d->in.x[group_hook[g]], d->tokens, d->in.cols[group_hook[g]],
                               d->s[g]);
}

/* §F.6 for one Linear: search the clip values mv[rows x groups] and report the mean shrink
 * (the clamp itself is clip_apply, on every rank). */
static int clip_search(drv *d, int lin, float *mv, cq_awq_layer_report *rep, cq_error *err)
{
    int64_t rows, cols;
    cq_linear_shape(d->cfg, lin, &rows, &cols);
    int64_t group = d->q->group_size > 0 ? d->q->group_size : cols;
    const float *w = d->w.lin[lin];
    int rc = cq_awq_search_clip(d->q, d->o, w, rows, cols, d->in.x[cq_linear_hook_point(lin)],
                                d->tokens, mv, err);
    if (rc == CQ_OK) {
        rep->lin[lin].clipped = true;
        rep->lin[lin].mean_shrink = cq_awq_mean_shrink(w, rows, cols, group, mv);
    }
    return rc;
}

static int64_t clip_values(const drv *d, int lin)
{
    int64_t rows, cols;
    cq_linear_shape(d->cfg, lin, &rows, &cols);
    int64_t group = d->q->group_size > 0 ? d->q->group_size : cols;
    return rows * ((cols + group - 1) / group);
}

static void clip_apply(drv *d, int lin, const float *mv)
{
    int64_t rows, cols;
    cq_linear_shape(d->cfg, lin, &rows, &cols);
    int64_t group = d->q->group_size > 0 ? d->q->group_size : cols;
    cq_awq_apply_clip(d->w.lin[lin], rows, cols, group, mv);
}

static int rec_alloc(drv *d, cq_error *err)
{
    const cq_model_config *c = d->cfg;
    bool dense = false; /* a sparse layer's down inputs are the experts' (awq_moe.c) */
    for (int64_t l = 0; l < c->n_layers; l++)
        dense = dense || !cq_layer_is_moe(c, l);
    int64_t cols[4] = {c->hidden, c->n_heads * c->head_dim, c->hidden,
                       dense ? c->intermediate : 0};
    d->in.tokens = d->tokens;
    for (int i = 0; i < 4; i++) {
        d->in.cols[i] = cols[i];
        if (!(d->in.x[i] = malloc((size_t)(d->tokens * cols[i]) * sizeof(float) + 1)))
            return cq_errorf(err, CQ_E_NOMEM, "out of memory recording %lld calibration tokens",
                             (long long)d->tokens);
    }
    for (int g = 0; g < CQ_AWQ_N_GROUPS; g++)
        if (!(d->s[g] = malloc((size_t)cols[group_hook[g]] * sizeof(float) + 1)))
            return cq_errorf(err, CQ_E_NOMEM, "out of memory");
    size_t hb = (size_t)(d->tokens * c->hidden) * sizeof(float);
    if (!(d->hidden = malloc(hb)) || !(d->next = malloc(hb)))
        return cq_errorf(err, CQ_E_NOMEM, "out of memory for %lld hidden states",
                         (long long)d->tokens);
    return CQ_OK;
}

static void drv_release(drv *d)
{
    for (int i = 0; i < 4; i++)
        free(d->in.x[i]);
    for (int g = 0; g < CQ_AWQ_N_GROUPS; g++)
        free(d->s[g]);
    free(d->hidden);
    free(d->next);
    cq_layer_release(&d->w);
    cq_llama_free(d->m);
    awq_moe_free(d->moe);
}

/* NaN/Inf weights would only surface as "every scale ratio gave a NaN loss"; name the Linear
 * and the first bad value instead, as rtn and gptq do. */
static int check_weights(const drv *d, int64_t layer, cq_error *err)
{
    for (int lin = 0; lin < CQ_LIN_COUNT; lin++) {
        int64_t rows, cols;
        if (!d->w.lin[lin] || !cq_linear_present(d->cfg, lin))
            continue; /* OPT has no gate; a sparse layer's experts are checked by awq_moe.c */
        cq_linear_shape(d->cfg, lin, &rows, &cols);
        int rc = cq_check_finite(d->w.lin[lin], rows * cols, err);
        if (rc != CQ_OK) {
            cq_error_prefix(err, "layer %lld %s", (long long)layer,
                            cq_arch_linear_name(d->cfg, lin));
            return rc;
        }
    }
    return CQ_OK;
}

static const int clipped_lins[] = {CQ_LIN_V, CQ_LIN_O, CQ_LIN_GATE, CQ_LIN_UP, CQ_LIN_DOWN};
enum { N_CLIPPED = sizeof clipped_lins / sizeof *clipped_lins };

/* The scale searches, round-robin over the ranks; every rank gets every result. */
/* A sparse layer's MLP groups are the MoE block's (awq_moe.c). */
static int scales_all(drv *d, bool sparse, cq_awq_layer_report *rep, int *turn, cq_error *err)
{
    int owner[CQ_AWQ_N_GROUPS], me = cq_dist_rank(), rc = CQ_OK;
    for (int g = 0; g < CQ_AWQ_N_GROUPS; g++) {
        bool runs = group_runs(d->cfg, g) && !(sparse && g >= CQ_AWQ_G_GATEUP);
        owner[g] = runs ? (*turn)++ % cq_dist_size() : -1;
        if (owner[g] == me && rc == CQ_OK)
            rc = search_group(d, g, rep, err);
    }
    rc = cq_dist_agree(rc, err);
    for (int g = 0; g < CQ_AWQ_N_GROUPS && rc == CQ_OK; g++)
        if (owner[g] >= 0) {
            rc = cq_dist_bcast(d->s[g], (size_t)d->in.cols[group_hook[g]] * sizeof(float),
                               owner[g], err);
            if (rc == CQ_OK)
                rc = cq_dist_bcast(&rep->group[g], sizeof rep->group[g], owner[g], err);
        }
    return rc;
}

/* The clip searches, likewise; then every rank clamps. */
static int clips_all(drv *d, bool sparse, cq_awq_layer_report *rep, int *turn, cq_error *err)
{
    float *mv[N_CLIPPED] = {0};
    int owner[N_CLIPPED], me = cq_dist_rank(), rc = CQ_OK;
    for (int i = 0; i < N_CLIPPED && rc == CQ_OK; i++) {
        int lin = clipped_lins[i];
        /* OPT has no gate; a sparse layer's experts are clipped by awq_moe.c */
        owner[i] = cq_linear_present(d->cfg, lin) && !(sparse && lin >= CQ_LIN_GATE)
                       ? (*turn)++ % cq_dist_size()
                       : -1;
        if (owner[i] < 0)
            continue;
        if (!(mv[i] = malloc((size_t)clip_values(d, lin) * sizeof(float))))
            rc = cq_errorf(err, CQ_E_NOMEM, "out of memory clipping %s",
                           cq_arch_linear_name(d->cfg, lin));
        else if (owner[i] == me)
            rc = clip_search(d, lin, mv[i], rep, err);
    }
    rc = cq_dist_agree(rc, err);
    for (int i = 0; i < N_CLIPPED && rc == CQ_OK; i++) {
        int lin = clipped_lins[i];
        if (owner[i] < 0)
            continue;
        rc = cq_dist_bcast(mv[i], (size_t)clip_values(d, lin) * sizeof(float), owner[i], err);
        if (rc == CQ_OK)
            rc = cq_dist_bcast(&rep->lin[lin], sizeof rep->lin[lin], owner[i], err);
        if (rc == CQ_OK)
            clip_apply(d, lin, mv[i]);
    }
    for (int i = 0; i < N_CLIPPED; i++)
        free(mv[i]);
    return rc;
}

static int one_layer(drv *d, const cq_st_model *st, int64_t l, cq_awq_layer_fn fn, void *ctx,
                     cq_error *err)
{
    cq_awq_layer_report rep;
    memset(&rep, 0, sizeof rep);
    rep.layer = l;
    memset(d->in.filled, 0, sizeof d->in.filled);
    d->in.bad = -1;
    int turn = 0;
    int rc = cq_layer_load(&d->w, d->cfg, st, l, err);
    bool sparse = d->w.sparse;
    awq_moe_env env = {.m = d->m, .w = &d->w, .x_block = d->in.x[CQ_HOOK_GATEUP_IN],
                       .tokens = d->tokens, .ctx = d, .forward = moe_forward};
    if (rc == CQ_OK && sparse)
        awq_moe_begin(d->moe);
    if (rc == CQ_OK)
        rc = check_weights(d, l, err);
    if (rc == CQ_OK)
        rc = cq_layer_forward(d->m, &d->w, d->hidden, d->next, d->n_seq, d->seqlen, rec_any, d,
                              err);
    if (rc != CQ_OK && d->in.bad >= 0) {
        static const char *const points[4] = {"self_attn.q_proj/k_proj/v_proj",
                                              "self_attn.o_proj", "mlp.gate_proj/up_proj",
                                              "mlp.down_proj"};
        *err = (cq_error)CQ_ERROR_INIT; /* replace the forward's generic hook message */
        rc = cq_errorf(err, CQ_E_NUMERIC,
                       "layer %lld: non-finite calibration activations at the input of %s",
                       (long long)l, points[d->in.bad]);
    }
    /* every rank runs the MoE part whole (same inputs, same bytes); only the dense searches
     * are dealt */
    if (rc == CQ_OK && sparse)
        rc = awq_moe_prepare(d->moe, &env, err);
    rc = cq_dist_agree(rc, err);
    if (rc == CQ_OK)
        rc = scales_all(d, sparse, &rep, &turn, err);
    if (rc == CQ_OK)
        fold_all(d, &rep);
    if (rc == CQ_OK && sparse)
        rc = awq_moe_layer(d->moe, &env, &rep, err);
    rc = cq_dist_agree(rc, err);
    if (rc == CQ_OK && d->o->clip)
        rc = clips_all(d, sparse, &rep, &turn, err);
    if (rc == CQ_OK)
        rc = fn(ctx, l, &d->w, &rep, err);
    rc = cq_dist_agree(rc, err);
    float *t = d->hidden; /* the FP output feeds the next layer */
    d->hidden = d->next;
    d->next = t;
    return rc;
}

int cq_awq_model_run(const cq_model_config *cfg, const cq_st_model *st, const int32_t *ids,
                     int64_t n_seq, int64_t seqlen, const cq_qconfig *q, const cq_awq_opts *o,
                     cq_awq_layer_fn fn, void *ctx, cq_error *err)
{
    drv d;
    memset(&d, 0, sizeof d);
    d.cfg = cfg;
    d.q = q;
    d.o = o;
    d.n_seq = n_seq;
    d.seqlen = seqlen;
    if (n_seq < 1 || seqlen < 1 || cq_mul_i64(n_seq, seqlen, &d.tokens) != 0)
        return cq_errorf(err, CQ_E_USAGE, "awq: no calibration tokens (%lld x %lld)",
                         (long long)n_seq, (long long)seqlen);
    int rc = cq_qconfig_check(q, err);
    if (rc == CQ_OK)
        rc = cq_llama_create(&d.m, cfg, seqlen, AWQ_CHUNK_TOKENS, err);
    if (rc == CQ_OK)
        rc = rec_alloc(&d, err);
    if (rc == CQ_OK && cfg->n_experts > 0)
        rc = awq_moe_new(&d.moe, cfg, q, o, d.tokens, err);
    if (rc == CQ_OK)
        rc = cq_embed_seqs(cfg, st, ids, n_seq, seqlen, d.hidden, err);
    for (int64_t l = 0; l < cfg->n_layers && rc == CQ_OK; l++)
        rc = one_layer(&d, st, l, fn, ctx, err);
    drv_release(&d);
    return rc;
}

/* ---- memory plan ---- */

static size_t sat_add(size_t a, size_t b)
{
    return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

static size_t sat_mul(size_t a, size_t b)
{
    size_t r;
    return cq_mul_size(a, b, &r) ? SIZE_MAX : r;
}

/* An upper bound of the heap cq_awq_model_run allocates, from the buffers above and in awq.c:
 * the recorded inputs of the four hook points, the hidden states twice, one layer's f32
 * weights, the forward scratch (chunk of max(512, seqlen) tokens), and the worst group's search
 * workspace (the f32 and f64 Gram matrices, two weight-sized products, the FP and trial outputs
 * of every token, the trial weights) or clip workspace, whichever is larger. */
size_t cq_awq_model_plan(const cq_model_config *c, int64_t n_seq, int64_t seqlen)
{
    size_t T = sat_mul((size_t)(n_seq > 0 ? n_seq : 0), (size_t)(seqlen > 0 ? seqlen : 0));
    size_t H = (size_t)c->hidden, I = (size_t)c->intermediate;
    size_t qd = (size_t)(c->n_heads * c->head_dim), kd = (size_t)(c->n_kv_heads * c->head_dim);
    size_t f = sizeof(float), chunk = seqlen > AWQ_CHUNK_TOKENS ? (size_t)seqlen : AWQ_CHUNK_TOKENS;
    size_t p = sat_mul(sat_mul(T, H + qd + H + I), f);  /* recorded inputs */
    p = sat_add(p, sat_mul(sat_mul(T, 2 * H), f));      /* hidden, next */
    size_t lw = 0;
    for (int l = 0; l < CQ_LIN_COUNT; l++) {
        int64_t rows, cols;
        cq_linear_shape(c, l, &rows, &cols);
        lw = sat_add(lw, (size_t)(rows * cols));
    }
    p = sat_add(p, sat_mul(lw + 2 * H, f));
    size_t fwd = sat_add(sat_mul(chunk, 3 * H + 2 * I + qd + 2 * kd),
                         sat_mul((size_t)seqlen, (size_t)seqlen));
    p = sat_add(p, sat_mul(fwd, f));
    /* groups: (cols, rows of all its Linears, rows of the first) */
    const size_t g[4][3] = {{H, qd + 2 * kd, qd}, {qd, H, H}, {H, 2 * I, I}, {I, H, H}};
    size_t worst = 0;
    for (int i = 0; i < 4; i++) {
        size_t C = g[i][0], R = g[i][1];
        size_t w = sat_mul(sat_mul(C, C), 4 + 8 + 4);            /* part, acc, gram */
        w = sat_add(w, sat_mul(sat_mul(g[i][2], C), 2 * f));     /* dw, p */
        w = sat_add(w, sat_mul(sat_mul(T, R), 2 * f));           /* fp_out, out */
        w = sat_add(w, sat_mul(sat_mul(R, C), f));               /* trial weights */
        w = sat_add(w, sat_mul(C, 4 * f));
        worst = w > worst ? w : worst;
    }
    return sat_add(p, worst);
}
