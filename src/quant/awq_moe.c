/* AWQ for a sparse MoE layer (docs/moe.md), as AutoAWQ's Mixtral / Qwen-MoE models:
 *   - gate/up: ONE scaling group of every expert's gate and up (w1/w3) and the shared expert's,
 *     after post_attention_layernorm, inspected through the whole MoE block (routing included);
 *     the scales fold into the norm and, unlike AutoAWQ, also into the router's and the shared
 *     expert gate's columns, which stay float: their logits, hence the routing, are unchanged;
 *   - down: one group per expert (w2 / down_proj after its up), on the activations of the
 *     tokens routed to it;
 *   - clipping of every expert Linear on its own inputs (routed rows).
 * Experts routed fewer than min_tokens calibration tokens (always those with none) use all
 * tokens instead for their down search and clipping: the block input of every token, and
 * their own activations of every token (a second forward with cq_llama_moe_all_tokens). */
#include "quant/awq_moe.h"

#include "cquant/checked.h"
#include "quant/par.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct rows {
    float *x;
    int64_t n, cap, cols;
} rows;

struct awq_moe {
    const cq_model_config *cfg;
    const cq_qconfig *q;
    const cq_awq_opts *o;
    int64_t slots, tokens, min_tokens;
    rows *gu, *dn;               /* recorded inputs per slot */
    int64_t *routed;
    unsigned char *all;          /* [n_experts] fallback */
    bool fallback_pass;          /* recording only the fallback experts' down inputs */
    float **trial;               /* [3·slots] lin pointers for the block evaluation */
    float *s_gu, **s_dn;         /* scales */
    cq_awq_expert_report *rep;
    cq_awq_moe_report moe_rep;
};

static int64_t width(const cq_model_config *c, int64_t slot)
{
    return slot == c->n_experts ? c->shared_intermediate : c->moe_intermediate;
}

int awq_moe_new(awq_moe **out, const cq_model_config *cfg, const cq_qconfig *q,
                const cq_awq_opts *o, int64_t tokens, cq_error *err)
{
    *out = NULL;
    awq_moe *g = calloc(1, sizeof *g);
    if (!g)
        return cq_errorf(err, CQ_E_NOMEM, "out of memory");
    g->cfg = cfg;
    g->q = q;
    g->o = o;
    g->slots = cfg->n_experts + (cfg->shared_intermediate > 0 ? 1 : 0);
    g->tokens = tokens;
    g->min_tokens = o->moe_min_tokens > 0 ? o->moe_min_tokens : cfg->hidden / 8;
    if (g->min_tokens < 1)
        g->min_tokens = 1;
    size_t S = (size_t)g->slots;
    bool ok = (g->gu = calloc(S, sizeof *g->gu)) && (g->dn = calloc(S, sizeof *g->dn)) &&
              (g->routed = calloc(S, sizeof *g->routed)) &&
              (g->all = calloc((size_t)cfg->n_experts, 1)) &&
              (g->trial = calloc(3 * S, sizeof *g->trial)) &&
              (g->s_gu = malloc((size_t)cfg->hidden * sizeof(float))) &&
              (g->s_dn = calloc(S, sizeof *g->s_dn)) && (g->rep = calloc(S, sizeof *g->rep));
    for (int64_t s = 0; ok && s < g->slots; s++) {
        g->gu[s].cols = cfg->hidden;
        g->dn[s].cols = width(cfg, s);
        ok = (g->s_dn[s] = malloc((size_t)width(cfg, s) * sizeof(float))) != NULL;
    }
    if (!ok) {
        awq_moe_free(g);
        return cq_errorf(err, CQ_E_NOMEM, "out of memory for the experts' AWQ state");
    }
    g->moe_rep = (cq_awq_moe_report){g->slots, g->min_tokens, g->rep};
    *out = g;
    return CQ_OK;
}

void awq_moe_free(awq_moe *g)
{
    if (!g)
        return;
    for (int64_t s = 0; s < g->slots; s++) {
        free(g->gu ? g->gu[s].x : NULL);
        free(g->dn ? g->dn[s].x : NULL);
        free(g->s_dn ? g->s_dn[s] : NULL);
    }
    void *p[] = {g->gu, g->dn, g->routed, g->all, g->trial, g->s_gu, g->s_dn, g->rep};
    for (size_t i = 0; i < sizeof p / sizeof *p; i++)
        free(p[i]);
    free(g);
}

void awq_moe_begin(awq_moe *g)
{
    for (int64_t s = 0; s < g->slots; s++) {
        g->gu[s].n = g->dn[s].n = 0;
        g->routed[s] = 0;
    }
    g->fallback_pass = false;
}

static int append(rows *r, const float *x, int64_t n)
{
    if (r->n + n > r->cap) {
        int64_t cap = r->cap ? r->cap : 256;
        while (cap < r->n + n)
            cap *= 2;
        size_t b;
        if (cq_mul_size((size_t)cap, (size_t)r->cols * sizeof(float), &b))
            return CQ_E_NOMEM;
        float *nx = realloc(r->x, b);
        if (!nx)
            return CQ_E_NOMEM;
        r->x = nx;
        r->cap = cap;
    }
    memcpy(r->x + r->n * r->cols, x, (size_t)(n * r->cols) * sizeof(float));
    r->n += n;
    return CQ_OK;
}

int awq_moe_hook(void *ctx, int which, const float *x, int64_t n, int64_t cols)
{
    awq_moe *g = ctx;
    if (which < CQ_HOOK_MOE_BASE)
        return CQ_OK;
    int64_t slot = (which - CQ_HOOK_MOE_BASE) / 2, part = (which - CQ_HOOK_MOE_BASE) % 2;
    if (slot >= g->slots || cols != (part ? g->dn[slot].cols : g->gu[slot].cols))
        return CQ_E_INTERNAL;
    if (g->fallback_pass) /* only the fallback experts' activations of every token */
        return part && slot < g->cfg->n_experts && g->all[slot] ? append(&g->dn[slot], x, n)
                                                                  : CQ_OK;
    if (part)
        return append(&g->dn[slot], x, n);
    g->routed[slot] += n;
    /* the shared expert's input is every token's: the recorded block input */
    return slot < g->cfg->n_experts ? append(&g->gu[slot], x, n) : CQ_OK;
}

static bool fallback(const awq_moe *g, int64_t slot)
{
    return slot < g->cfg->n_experts && g->all[slot];
}

/* The block with every gate/up replaced by the rows of the stacked trial matrix ws[0]. */
typedef struct blk {
    awq_moe *g;
    const awq_moe_env *env;
} blk;

static int moe_block(void *ctx, float *const *ws, float *out, cq_error *err)
{
    blk *b = ctx;
    const cq_layer_weights *w = b->env->w;
    cq_layer_weights lw = *w;
    for (int64_t i = 0; i < 3 * b->g->slots; i++)
        b->g->trial[i] = i % 3 == CQ_MOE_DOWN ? w->moe.lin[i]
                                              : ws[0] + (w->moe.lin[i] - w->moe.gate_up);
    lw.moe.lin = b->g->trial;
    return cq_mlp_forward(b->env->m, &lw, b->env->x_block, out, b->env->tokens, err);
}

static int search_gate_up(awq_moe *g, const awq_moe_env *env, cq_awq_layer_report *rep,
                          cq_error *err)
{
    cq_layer_weights *w = env->w;
    float *stack = w->moe.gate_up;
    int64_t R = w->moe.gate_up_rows;
    blk b = {g, env};
    cq_awq_group grp = {.x = env->x_block, .tokens = env->tokens, .cols = g->cfg->hidden,
                        .n_linear = 1, .w = &stack, .rows = &R, .block = moe_block,
                        .block_ctx = &b, .out_elems = env->tokens * g->cfg->hidden};
    cq_awq_scale_result res = {.scales = g->s_gu};
    double t0 = cq_par_now();
    int rc = cq_awq_search_scale(g->q, g->o, &grp, &res, err);
    if (rc != CQ_OK)
        return rc;
    rep->group[CQ_AWQ_G_GATEUP].done = true;
    rep->group[CQ_AWQ_G_GATEUP].ratio = res.ratio;
    rep->group[CQ_AWQ_G_GATEUP].loss_before = res.loss_before;
    rep->group[CQ_AWQ_G_GATEUP].loss_after = res.loss_after;
    rep->group[CQ_AWQ_G_GATEUP].seconds = cq_par_now() - t0;
    return CQ_OK;
}

static int search_down(awq_moe *g, const awq_moe_env *env, int64_t s, cq_error *err)
{
    const rows *x = &g->dn[s];
    float *w2 = env->w->moe.lin[3 * s + CQ_MOE_DOWN];
    int64_t H = g->cfg->hidden;
    cq_awq_group grp = {.x = x->x, .tokens = x->n, .cols = x->cols, .n_linear = 1, .w = &w2,
                        .rows = &H};
    cq_awq_scale_result res = {.scales = g->s_dn[s]};
    int rc = cq_awq_search_scale(g->q, g->o, &grp, &res, err);
    if (rc == CQ_OK) {
        g->rep[s].down_searched = true;
        g->rep[s].down_ratio = res.ratio;
        g->rep[s].down_loss_before = res.loss_before;
        g->rep[s].down_loss_after = res.loss_after;
    }
    return rc;
}

/* Fold the gate/up scales into the norm and every Linear reading it (router included); the
 * down scales into each expert's up rows and down columns; divide the recorded inputs. */
static int fold(awq_moe *g, const awq_moe_env *env, cq_error *err)
{
    const cq_model_config *c = g->cfg;
    cq_layer_weights *w = env->w;
    int64_t n = 0, H = c->hidden, cap = 2 * g->slots + 2;
    float **ws = malloc((size_t)cap * sizeof *ws);
    int64_t *r = malloc((size_t)cap * sizeof *r);
    if (!ws || !r) {
        free(ws);
        free(r);
        return cq_errorf(err, CQ_E_NOMEM, "out of memory");
    }
    ws[n] = w->moe.router;
    r[n++] = c->n_experts;
    for (int64_t s = 0; s < g->slots; s++)
        for (int p = CQ_MOE_GATE; p <= CQ_MOE_UP; p++) {
            ws[n] = w->moe.lin[3 * s + p];
            r[n++] = width(c, s);
        }
    if (w->moe.shared_gate) {
        ws[n] = w->moe.shared_gate;
        r[n++] = 1;
    }
    cq_awq_fold_norm(w->post_norm, w->post_norm_bias, H, ws, r, (int)n, g->s_gu);
    free(ws);
    free(r);
    cq_awq_scale_input(env->x_block, env->tokens, H, g->s_gu);
    for (int64_t s = 0; s < g->slots; s++) {
        int64_t I = width(c, s);
        cq_awq_scale_input(g->gu[s].x, g->gu[s].n, H, g->s_gu);
        if (!g->rep[s].down_searched)
            continue;
        cq_awq_fold_linear(w->moe.lin[3 * s + CQ_MOE_UP], NULL, I, H,
                           w->moe.lin[3 * s + CQ_MOE_DOWN], H, I, g->s_dn[s]);
        cq_awq_scale_input(g->dn[s].x, g->dn[s].n, I, g->s_dn[s]);
    }
    return CQ_OK;
}

/* §F.6 on one expert Linear; returns the mean shrink through *shrink. */
static int clip(awq_moe *g, float *w, int64_t rows_n, int64_t cols, const float *x, int64_t n,
                double *shrink, cq_error *err)
{
    int64_t group = g->q->group_size > 0 ? g->q->group_size : cols;
    int64_t ng = (cols + group - 1) / group;
    *shrink = 1.0;
    if (n < 1)
        return CQ_OK;
    float *mv = rows_n * ng <= 0 ? NULL : malloc((size_t)(rows_n * ng) * sizeof *mv);
    if (!mv)
        return cq_errorf(err, CQ_E_NOMEM, "out of memory clipping an expert");
    int rc = cq_awq_search_clip(g->q, g->o, w, rows_n, cols, x, n, mv, err);
    if (rc == CQ_OK) {
        *shrink = cq_awq_mean_shrink(w, rows_n, cols, group, mv); /* before clipping w */
        cq_awq_apply_clip(w, rows_n, cols, group, mv);
    }
    free(mv);
    return rc;
}

static int clip_all(awq_moe *g, const awq_moe_env *env, cq_error *err)
{
    const cq_model_config *c = g->cfg;
    int64_t H = c->hidden;
    int rc = CQ_OK;
    for (int64_t s = 0; s < g->slots && rc == CQ_OK; s++) {
        bool every = fallback(g, s) || s == c->n_experts;
        const float *xg = every ? env->x_block : g->gu[s].x;
        int64_t ng = every ? env->tokens : g->gu[s].n, I = width(c, s);
        for (int p = CQ_MOE_GATE; p <= CQ_MOE_UP && rc == CQ_OK; p++)
            rc = clip(g, env->w->moe.lin[3 * s + p], I, H, xg, ng, &g->rep[s].shrink[p], err);
        if (rc == CQ_OK)
            rc = clip(g, env->w->moe.lin[3 * s + CQ_MOE_DOWN], H, I, g->dn[s].x, g->dn[s].n,
                      &g->rep[s].shrink[CQ_MOE_DOWN], err);
    }
    return rc;
}

int awq_moe_prepare(awq_moe *g, const awq_moe_env *env, cq_error *err)
{
    const cq_model_config *c = g->cfg;
    bool any = false;
    for (int64_t s = 0; s < g->slots; s++) {
        cq_awq_expert_report *e = &g->rep[s];
        memset(e, 0, sizeof *e);
        e->routed_tokens = s < c->n_experts ? g->routed[s] : env->tokens;
        if (s < c->n_experts) {
            g->all[s] = g->routed[s] < g->min_tokens;
            any = any || g->all[s];
        }
        e->fallback = fallback(g, s);
        e->stat_tokens = e->fallback || s == c->n_experts ? env->tokens : g->routed[s];
    }
    int rc = CQ_OK;
    if (any) { /* the fallback experts' activations of every token */
        for (int64_t e = 0; e < c->n_experts; e++)
            if (g->all[e])
                g->dn[e].n = 0;
        g->fallback_pass = true;
        cq_llama_moe_all_tokens(env->m, g->all);
        rc = env->forward(env->ctx, err);
        cq_llama_moe_all_tokens(env->m, NULL);
        g->fallback_pass = false;
    }
    return rc;
}

int awq_moe_layer(awq_moe *g, const awq_moe_env *env, cq_awq_layer_report *rep, cq_error *err)
{
    int rc = search_gate_up(g, env, rep, err);
    for (int64_t s = 0; s < g->slots && rc == CQ_OK; s++)
        if (g->dn[s].n > 0)
            rc = search_down(g, env, s, err);
    if (rc == CQ_OK)
        rc = fold(g, env, err);
    if (rc == CQ_OK && g->o->clip)
        rc = clip_all(g, env, err);
    rep->moe = &g->moe_rep;
    return rc;
}
