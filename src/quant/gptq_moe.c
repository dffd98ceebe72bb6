/* GPTQ for a sparse MoE layer (see gptq_moe.h, docs/moe.md).
 *
 * As GPTQModel and llm-compressor do, an expert's Hessian sums x·xᵀ over the calibration tokens
 * the router sent to it (H = 2/n_seq · Σ x xᵀ, the dense layers' scale; the routing weight is
 * not applied: it multiplies the expert's output, not its input). The shared expert sees every
 * token. Order (true-sequential, GPTQModel's subsets for MoE): one pass collects every expert's
 * gate/up Hessian and counts its tokens, those Linears are quantized, then one pass over the
 * quantized gate/up collects the down Hessians. Without true-sequential both are collected in
 * the first pass.
 *
 * Fallback: an expert routed fewer than min_tokens tokens (always one with none) gets, for its
 * Hessian only, the statistics of ALL the layer's tokens as if routed to it: its gate/up use
 * the Hessian of the block's input over every token, its down the Hessian of its own SwiGLU
 * activations of every token (cq_llama_moe_all_tokens). The forward keeps the real routing, so
 * the next layer's input is unchanged by the fallback. */
#include "quant/gptq_moe.h"

#include "cquant/checked.h"
#include "linalg/det.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

struct gptq_moe {
    const cq_model_config *cfg;
    int64_t slots, n_seq, tokens, min_tokens;
    bool ts;
    double **hg, **hd;          /* per slot: gate/up input, down input (upper, then full) */
    double *hall;               /* the block input over every token */
    int64_t *routed;            /* per slot, from the gate/up point */
    unsigned char *all;         /* [n_experts] fallback decisions of the current layer */
    bool on_gu, on_dn;          /* which points accumulate in this pass */
    const unsigned char *dn_only; /* non-NULL: only these experts' down points accumulate */
    int stop_after;
    float *tmp;
};

int64_t cq_gptq_moe_min_tokens(const cq_model_config *cfg, const cq_gptq_model_opts *o)
{
    /* Below hidden/8 routed tokens the routed Hessian spans under 1/8 of the input space: GPTQ
     * would fit its error feedback to a handful of points and leave the rest to damping. */
    int64_t t = o->moe_min_tokens > 0 ? o->moe_min_tokens : cfg->hidden / 8;
    return t > 0 ? t : 1;
}

static int64_t width(const cq_model_config *cfg, int64_t slot)
{
    return slot == cfg->n_experts ? cfg->shared_intermediate : cfg->moe_intermediate;
}

static int64_t n_slots(const cq_model_config *cfg)
{
    return cfg->n_experts + (cfg->shared_intermediate > 0 ? 1 : 0);
}

size_t gptq_moe_plan_bytes(const cq_model_config *cfg)
{
    if (cfg->n_experts <= 0)
        return 0;
    int64_t S = n_slots(cfg), H = cfg->hidden, maxc = H, sum = (S + 1) * H * H;
    for (int64_t s = 0; s < S; s++) {
        sum += width(cfg, s) * width(cfg, s);
        maxc = width(cfg, s) > maxc ? width(cfg, s) : maxc;
    }
    return (size_t)sum * sizeof(double) + (size_t)(maxc * maxc) * sizeof(float);
}

static double *dalloc(int64_t n, bool *fail)
{
    size_t b;
    double *p = NULL;
    if (n >= 0 && !cq_mul_size((size_t)n, sizeof(double), &b))
        p = malloc(b ? b : 1);
    if (!p)
        *fail = true;
    return p;
}

int gptq_moe_new(gptq_moe **out, const cq_model_config *cfg, const cq_gptq_model_opts *o,
                 int64_t n_seq, int64_t seqlen, cq_error *err)
{
    *out = NULL;
    gptq_moe *g = calloc(1, sizeof *g);
    if (!g)
        return cq_errorf(err, CQ_E_NOMEM, "out of memory");
    g->cfg = cfg;
    g->slots = n_slots(cfg);
    g->n_seq = n_seq;
    g->tokens = n_seq * seqlen;
    g->min_tokens = cq_gptq_moe_min_tokens(cfg, o);
    g->ts = o->true_sequential;
    int64_t H = cfg->hidden, maxc = H;
    bool fail = !(g->hg = calloc((size_t)g->slots, sizeof *g->hg)) ||
                !(g->hd = calloc((size_t)g->slots, sizeof *g->hd)) ||
                !(g->routed = calloc((size_t)g->slots, sizeof *g->routed)) ||
                !(g->all = calloc((size_t)cfg->n_experts, 1));
    for (int64_t s = 0; s < g->slots && !fail; s++) {
        g->hg[s] = dalloc(H * H, &fail);
        g->hd[s] = dalloc(width(cfg, s) * width(cfg, s), &fail);
        maxc = width(cfg, s) > maxc ? width(cfg, s) : maxc;
    }
    if (!fail)
        g->hall = dalloc(H * H, &fail);
    if (!fail && !(g->tmp = malloc((size_t)(maxc * maxc) * sizeof(float))))
        fail = true;
    if (fail) {
        gptq_moe_free(g);
        return cq_errorf(err, CQ_E_NOMEM, "out of memory for %lld experts' Hessians",
                         (long long)cfg->n_experts);
    }
    *out = g;
    return CQ_OK;
}

void gptq_moe_free(gptq_moe *g)
{
    if (!g)
        return;
    for (int64_t s = 0; s < g->slots; s++) {
        free(g->hg ? g->hg[s] : NULL);
        free(g->hd ? g->hd[s] : NULL);
    }
    free(g->hg);
    free(g->hd);
    free(g->hall);
    free(g->routed);
    free(g->all);
    free(g->tmp);
    free(g);
}

static bool finite_rows(const float *x, int64_t n)
{
    float acc = 0.0f;
    for (int64_t i = 0; i < n; i++)
        acc += x[i] * 0.0f; /* NaN or Inf anywhere makes it NaN */
    return acc == 0.0f;
}

/* h (upper triangle) += xᵀx */
static int accumulate(gptq_moe *g, double *h, const float *x, int64_t n, int64_t cols)
{
    if (n > INT32_MAX)
        return CQ_E_INTERNAL;
    if (!finite_rows(x, n * cols))
        return CQ_E_NUMERIC;
    cq_det_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)cols, (int)n, 1.0f, x, (int)cols,
                 0.0f, g->tmp, (int)cols);
    for (int64_t i = 0; i < cols; i++)
        for (int64_t j = i; j < cols; j++)
            h[i * cols + j] += g->tmp[i * cols + j];
    return CQ_OK;
}

int gptq_moe_hook(void *ctx, int which, const float *x, int64_t n, int64_t cols)
{
    gptq_moe *g = ctx;
    const cq_model_config *c = g->cfg;
    int rc = CQ_OK;
    if (which == CQ_HOOK_GATEUP_IN) {
        if (cols != c->hidden)
            return CQ_E_INTERNAL;
        return g->on_gu ? accumulate(g, g->hall, x, n, cols) : CQ_OK;
    }
    int64_t slot = (which - CQ_HOOK_MOE_BASE) / 2, part = (which - CQ_HOOK_MOE_BASE) % 2;
    if (which < CQ_HOOK_MOE_BASE || slot >= g->slots ||
        cols != (part ? width(c, slot) : c->hidden))
        return CQ_E_INTERNAL;
    if (part == 0 && g->on_gu) {
        g->routed[slot] += n;
        rc = accumulate(g, g->hg[slot], x, n, cols);
    }
    bool dn = part == 1 && g->on_dn && (!g->dn_only || (slot < c->n_experts && g->dn_only[slot]));
    if (dn)
        rc = accumulate(g, g->hd[slot], x, n, cols);
    if (rc != CQ_OK)
        return rc;
    return which == g->stop_after ? CQ_HOOK_SKIP : CQ_OK;
}

/* Mirror the upper triangle and scale by 2/n_seq (as the dense Hessians). */
static void finish(double *h, int64_t cols, int64_t n_seq)
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

static void zero(double *h, int64_t cols) { memset(h, 0, (size_t)(cols * cols) * sizeof *h); }

static bool fallback(const gptq_moe *g, int64_t slot)
{
    return slot < g->cfg->n_experts && g->all[slot];
}

static cq_gptq_lin_stats tag_of(const gptq_moe *g, int64_t slot)
{
    cq_gptq_lin_stats t;
    memset(&t, 0, sizeof t);
    t.expert = (int)slot;
    t.routed_tokens = g->routed[slot];
    t.moe_fallback = fallback(g, slot);
    t.hessian_tokens = t.moe_fallback ? g->tokens : g->routed[slot];
    return t;
}

static int quantize_part(gptq_moe *g, const gptq_moe_env *env, int64_t layer, int part,
                         cq_error *err)
{
    int rc = CQ_OK;
    int parts[2] = {part == CQ_MOE_DOWN ? CQ_MOE_DOWN : CQ_MOE_GATE, CQ_MOE_UP};
    int np = part == CQ_MOE_DOWN ? 1 : 2;
    for (int64_t s = 0; s < g->slots && rc == CQ_OK; s++) {
        const double *h = part == CQ_MOE_DOWN ? g->hd[s] : fallback(g, s) ? g->hall : g->hg[s];
        cq_gptq_lin_stats tag = tag_of(g, s);
        for (int k = 0; k < np && rc == CQ_OK; k++) {
            int lin = (int)CQ_LIN_EXPERT(s, parts[k]);
            if (env->wants(env->ctx, layer, lin))
                rc = env->quantize(env->ctx, layer, lin, h, &tag, err);
        }
    }
    return rc;
}

static bool any_wanted(const gptq_moe *g, const gptq_moe_env *env, int64_t layer)
{
    for (int64_t s = 0; s < g->slots; s++)
        for (int p = 0; p < 3; p++)
            if (env->wants(env->ctx, layer, (int)CQ_LIN_EXPERT(s, p)))
                return true;
    return false;
}

/* A pass collecting the down Hessians (of the fallback experts only when only_fallback), with
 * the fallback experts seeing every token. */
static int down_pass(gptq_moe *g, const gptq_moe_env *env, int64_t layer, bool only_fallback,
                     cq_error *err)
{
    int last = -1;
    for (int64_t s = 0; s < g->slots; s++)
        if (!only_fallback || fallback(g, s)) {
            zero(g->hd[s], width(g->cfg, s));
            last = (int)s;
        }
    g->on_gu = false;
    g->on_dn = true;
    g->dn_only = only_fallback ? g->all : NULL;
    g->stop_after = CQ_HOOK_EXPERT(last, 1);
    cq_llama_moe_all_tokens(env->m, g->all);
    int rc = env->pass(env->ctx, layer, err);
    cq_llama_moe_all_tokens(env->m, NULL);
    g->dn_only = NULL;
    return rc;
}

int gptq_moe_layer(gptq_moe *g, const gptq_moe_env *env, int64_t layer, cq_error *err)
{
    const cq_model_config *c = g->cfg;
    int64_t H = c->hidden, E = c->n_experts;
    if (!any_wanted(g, env, layer))
        return CQ_OK;
    zero(g->hall, H);
    for (int64_t s = 0; s < g->slots; s++) {
        zero(g->hg[s], H);
        zero(g->hd[s], width(c, s));
        g->routed[s] = 0;
    }
    memset(g->all, 0, (size_t)E);
    g->on_gu = true;
    g->on_dn = !g->ts;
    g->stop_after = CQ_HOOK_EXPERT(g->slots - 1, g->ts ? 0 : 1);
    int rc = env->pass(env->ctx, layer, err);
    bool any = false;
    for (int64_t e = 0; e < E; e++) {
        g->all[e] = g->routed[e] < g->min_tokens;
        any = any || g->all[e];
    }
    if (rc == CQ_OK && !g->ts && any) /* the fallback experts' down statistics over all tokens */
        rc = down_pass(g, env, layer, true, err);
    if (rc != CQ_OK)
        return rc;
    finish(g->hall, H, g->n_seq);
    for (int64_t s = 0; s < g->slots; s++) {
        finish(g->hg[s], H, g->n_seq);
        if (!g->ts)
            finish(g->hd[s], width(c, s), g->n_seq);
    }
    rc = quantize_part(g, env, layer, CQ_MOE_GATE, err);
    if (rc == CQ_OK && g->ts) { /* down inputs from the quantized gate/up */
        rc = down_pass(g, env, layer, false, err);
        for (int64_t s = 0; s < g->slots && rc == CQ_OK; s++)
            finish(g->hd[s], width(c, s), g->n_seq);
    }
    if (rc == CQ_OK)
        rc = quantize_part(g, env, layer, CQ_MOE_DOWN, err);
    return rc;
}
