/* The sparse MoE block of Mixtral, Qwen2-MoE and Qwen3-MoE (docs/moe.md), as transformers
 * computes it in f32: router logits = x·Gᵀ; probabilities = softmax in f32; the top_k experts
 * by probability, renormalized over the k when norm_topk_prob (Mixtral always); every expert
 * e runs SwiGLU on the rows of its tokens and adds weight·output to them, experts in index
 * order; Qwen2-MoE then adds sigmoid(x·g_shared)·shared_expert(x). */
#include "model/moe.h"

#include "cquant/checked.h"
#include "model/vecmath.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cq_moe_scratch {
    int64_t tokens;
    float *logits, *probs;   /* [T x E], [E] */
    int32_t *idx;            /* [T x k] chosen experts */
    float *wt;               /* [T x k] their weights */
    int32_t *rows;           /* [T] tokens routed to the current expert */
    float *rw;               /* [T] their weights */
    float *xg, *y;           /* [T x hidden] gathered input, expert output */
    float *g, *u;            /* [T x max expert width] */
    float *sg;               /* [T] shared expert gate */
};

static bool has_shared(const cq_model_config *cfg) { return cfg->shared_intermediate > 0; }

static int64_t n_slots(const cq_model_config *cfg)
{
    return cfg->n_experts + (has_shared(cfg) ? 1 : 0);
}

bool cq_layer_is_moe(const cq_model_config *cfg, int64_t layer)
{
    if (cfg->n_experts <= 0 || layer < 0)
        return false;
    if (layer < (int64_t)(8 * sizeof cfg->mlp_only) && (cfg->mlp_only[layer / 8] >> (layer % 8)) & 1)
        return false;
    int64_t step = cfg->sparse_step > 0 ? cfg->sparse_step : 1;
    return (layer + 1) % step == 0;
}

bool cq_moe_has_dense_mlp(const cq_model_config *cfg)
{
    for (int64_t l = 0; l < cfg->n_layers; l++)
        if (!cq_layer_is_moe(cfg, l))
            return true;
    return cfg->n_layers == 0;
}

int cq_linear_end(const cq_model_config *cfg)
{
    return cfg->n_experts > 0 ? (int)CQ_LIN_EXPERT(n_slots(cfg), 0) : CQ_LIN_COUNT;
}

int cq_linear_expert(int which)
{
    return which >= CQ_LIN_MOE_BASE ? (which - CQ_LIN_MOE_BASE) / 3 : -1;
}

bool cq_layer_has_linear(const cq_model_config *cfg, int64_t layer, int which)
{
    if (which < 0 || which >= cq_linear_end(cfg))
        return false;
    if (which < CQ_LIN_GATE)
        return true;
    bool moe = cq_layer_is_moe(cfg, layer);
    return which < CQ_LIN_COUNT ? !moe : which >= CQ_LIN_MOE_BASE && moe;
}

void cq_moe_linear_shape(const cq_model_config *cfg, int which, int64_t *rows, int64_t *cols)
{
    int64_t slot = cq_linear_expert(which), part = (which - CQ_LIN_MOE_BASE) % 3;
    int64_t width = slot == cfg->n_experts ? cfg->shared_intermediate : cfg->moe_intermediate;
    *rows = part == CQ_MOE_DOWN ? cfg->hidden : width;
    *cols = part == CQ_MOE_DOWN ? width : cfg->hidden;
}

const char *cq_linear_module(const cq_model_config *cfg, int which, char *buf, size_t n)
{
    if (which < CQ_LIN_MOE_BASE) {
        const char *name = cq_arch_linear_name(cfg, which);
        snprintf(buf, n, "%s", name ? name : "?");
        return buf;
    }
    int64_t slot = cq_linear_expert(which);
    int part = (which - CQ_LIN_MOE_BASE) % 3;
    static const char *const mix[3] = {"w1", "w3", "w2"};
    static const char *const qw[3] = {"gate_proj", "up_proj", "down_proj"};
    if (cfg->moe_names == CQ_MOE_NAMES_MIXTRAL)
        snprintf(buf, n, "block_sparse_moe.experts.%lld.%s", (long long)slot, mix[part]);
    else if (slot == cfg->n_experts)
        snprintf(buf, n, "mlp.shared_expert.%s", qw[part]);
    else
        snprintf(buf, n, "mlp.experts.%lld.%s", (long long)slot, qw[part]);
    return buf;
}

float *cq_layer_linear(const cq_layer_weights *w, int which)
{
    if (which >= 0 && which < CQ_LIN_COUNT)
        return w->lin[which];
    int64_t i = which - CQ_LIN_MOE_BASE;
    return i >= 0 && w->moe.lin && i < 3 * w->moe.n_slots ? w->moe.lin[i] : NULL;
}

/* ---- weights ---- */

static float *alloc_f32(int64_t a, int64_t b)
{
    int64_t n;
    size_t bytes;
    if (cq_mul_i64(a, b, &n) || n < 0 || cq_mul_size((size_t)n, sizeof(float), &bytes))
        return NULL;
    return calloc(bytes ? bytes : 1, 1);
}

void cq_moe_release(cq_moe_weights *w)
{
    if (!w)
        return;
    for (int64_t i = 0; w->lin && i < 3 * w->n_slots; i++)
        if (i % 3 == CQ_MOE_DOWN)
            free(w->lin[i]);
    free(w->gate_up);
    free(w->lin);
    free(w->router);
    free(w->shared_gate);
    memset(w, 0, sizeof *w);
}

int cq_moe_alloc(cq_moe_weights *w, const cq_model_config *cfg)
{
    memset(w, 0, sizeof *w);
    if (cfg->n_experts <= 0)
        return CQ_OK;
    w->n_slots = n_slots(cfg);
    bool ok = (w->lin = calloc((size_t)(3 * w->n_slots), sizeof *w->lin)) != NULL;
    ok = ok && (w->router = alloc_f32(cfg->n_experts, cfg->hidden));
    if (ok && has_shared(cfg))
        ok = (w->shared_gate = alloc_f32(1, cfg->hidden)) != NULL;
    for (int64_t s = 0; s < w->n_slots; s++)
        w->gate_up_rows += 2 * (s == cfg->n_experts ? cfg->shared_intermediate
                                                    : cfg->moe_intermediate);
    ok = ok && (w->gate_up = alloc_f32(w->gate_up_rows, cfg->hidden));
    int64_t off = 0;
    for (int64_t i = 0; ok && i < 3 * w->n_slots; i++) {
        int64_t r, c;
        cq_moe_linear_shape(cfg, (int)(CQ_LIN_MOE_BASE + i), &r, &c);
        if (i % 3 == CQ_MOE_DOWN) {
            ok = (w->lin[i] = alloc_f32(r, c)) != NULL;
        } else {
            w->lin[i] = w->gate_up + off;
            off += r * c;
        }
    }
    if (!ok) {
        cq_moe_release(w);
        return CQ_E_NOMEM;
    }
    return CQ_OK;
}

const char *cq_moe_router_module(const cq_model_config *cfg)
{
    return cfg->moe_names == CQ_MOE_NAMES_MIXTRAL ? "block_sparse_moe.gate" : "mlp.gate";
}

/* ---- routing ---- */

void cq_moe_route(const cq_model_config *cfg, const float *logits, float *probs, int32_t *idx,
                  float *wt)
{
    int64_t E = cfg->n_experts, k = cfg->top_k;
    float mx = logits[0];
    for (int64_t e = 1; e < E; e++)
        mx = logits[e] > mx ? logits[e] : mx;
    float sum = 0.0f;
    for (int64_t e = 0; e < E; e++) {
        probs[e] = expf(logits[e] - mx);
        sum += probs[e];
    }
    for (int64_t e = 0; e < E; e++)
        probs[e] /= sum;
    /* k passes of "largest not yet taken": strict > keeps the lower index among equals */
    for (int64_t j = 0; j < k; j++) {
        int32_t best = -1;
        for (int64_t e = 0; e < E; e++) {
            bool taken = false;
            for (int64_t i = 0; i < j && !taken; i++)
                taken = idx[i] == e;
            if (!taken && (best < 0 || probs[e] > probs[best]))
                best = (int32_t)e;
        }
        idx[j] = best;
        wt[j] = probs[best];
    }
    if (!cfg->norm_topk_prob)
        return;
    float s = 0.0f;
    for (int64_t j = 0; j < k; j++)
        s += wt[j];
    for (int64_t j = 0; j < k; j++)
        wt[j] /= s;
}

/* ---- forward ---- */

cq_moe_scratch *cq_moe_scratch_new(const cq_model_config *cfg, int64_t T)
{
    cq_moe_scratch *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    int64_t wide = cfg->moe_intermediate > cfg->shared_intermediate ? cfg->moe_intermediate
                                                                     : cfg->shared_intermediate;
    s->tokens = T;
    bool ok = (s->logits = alloc_f32(T, cfg->n_experts)) && (s->probs = alloc_f32(1, cfg->n_experts));
    ok = ok && (s->idx = calloc((size_t)(T * cfg->top_k), sizeof *s->idx)) &&
         (s->wt = alloc_f32(T, cfg->top_k)) && (s->rows = calloc((size_t)T, sizeof *s->rows)) &&
         (s->rw = alloc_f32(T, 1)) && (s->xg = alloc_f32(T, cfg->hidden)) &&
         (s->y = alloc_f32(T, cfg->hidden)) && (s->g = alloc_f32(T, wide)) &&
         (s->u = alloc_f32(T, wide)) && (s->sg = alloc_f32(T, 1));
    if (!ok) {
        cq_moe_scratch_free(s);
        return NULL;
    }
    return s;
}

void cq_moe_scratch_free(cq_moe_scratch *s)
{
    if (!s)
        return;
    void *bufs[] = {s->logits, s->probs, s->idx, s->wt, s->rows, s->rw, s->xg, s->y, s->g,
                    s->u, s->sg};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        free(bufs[i]);
    free(s);
}

static int hook_at(cq_layer_hook hook, void *ctx, int which, const float *x, int64_t n,
                   int64_t cols, cq_error *err)
{
    int rc = hook && n > 0 ? hook(ctx, which, x, n, cols) : CQ_OK;
    if (rc == CQ_OK || rc == CQ_HOOK_SKIP)
        return rc;
    return cq_errorf(err, rc < 0 ? rc : CQ_E_INTERNAL, "layer hook stopped the forward pass");
}

/* act[n x width] = silu(x·W1ᵀ) · (x·W3ᵀ) of one expert slot, in s->g. */
static void swiglu(cq_moe_scratch *s, const cq_model_config *cfg, const cq_moe_weights *w,
                   int64_t slot, const float *x, int64_t n)
{
    int64_t r, c;
    cq_moe_linear_shape(cfg, (int)CQ_LIN_EXPERT(slot, CQ_MOE_GATE), &r, &c);
    cq_linear(x, n, c, w->lin[3 * slot + CQ_MOE_GATE], NULL, r, s->g);
    cq_linear(x, n, c, w->lin[3 * slot + CQ_MOE_UP], NULL, r, s->u);
    cq_vsilu_mul(s->g, s->u, n * r);
}

/* One routed expert over its tokens: out[t] += weight · expert(x[t]). */
static int run_expert(cq_moe_scratch *s, const cq_model_config *cfg, const cq_moe_weights *w,
                      bool all, const float *x, float *out, int64_t T, int64_t e,
                      cq_layer_hook hook, void *hctx, cq_error *err)
{
    int64_t H = cfg->hidden, I = cfg->moe_intermediate, n = 0, k = cfg->top_k;
    for (int64_t t = 0; t < T; t++)
        for (int64_t j = 0; j < k; j++)
            if (s->idx[t * k + j] == e) {
                s->rows[n] = (int32_t)t;
                s->rw[n++] = s->wt[t * k + j];
            }
    int rc = CQ_OK;
    if (all && hook) { /* the fallback's statistics: every token, output unused */
        swiglu(s, cfg, w, e, x, T);
        rc = hook_at(hook, hctx, CQ_HOOK_EXPERT(e, 1), s->g, T, I, err);
    }
    if (n == 0 || rc != CQ_OK)
        return rc;
    for (int64_t i = 0; i < n; i++)
        memcpy(s->xg + i * H, x + (int64_t)s->rows[i] * H, (size_t)H * sizeof(float));
    rc = hook_at(hook, hctx, CQ_HOOK_EXPERT(e, 0), s->xg, n, H, err);
    if (rc != CQ_OK)
        return rc;
    swiglu(s, cfg, w, e, s->xg, n);
    if (!all)
        rc = hook_at(hook, hctx, CQ_HOOK_EXPERT(e, 1), s->g, n, I, err);
    if (rc != CQ_OK)
        return rc;
    cq_linear(s->g, n, I, w->lin[3 * e + CQ_MOE_DOWN], NULL, H, s->y);
    for (int64_t i = 0; i < n; i++) {
        float *o = out + (int64_t)s->rows[i] * H;
        const float *y = s->y + i * H;
        float r = s->rw[i];
        for (int64_t j = 0; j < H; j++)
            o[j] += y[j] * r;
    }
    return CQ_OK;
}

/* Qwen2-MoE: out += sigmoid(x·g) · shared_expert(x). */
static int run_shared(cq_moe_scratch *s, const cq_model_config *cfg, const cq_moe_weights *w,
                      const float *x, float *out, int64_t T, cq_layer_hook hook, void *hctx,
                      cq_error *err)
{
    int64_t H = cfg->hidden, I = cfg->shared_intermediate, E = cfg->n_experts;
    int rc = hook_at(hook, hctx, CQ_HOOK_EXPERT(E, 0), x, T, H, err);
    if (rc != CQ_OK)
        return rc;
    swiglu(s, cfg, w, E, x, T);
    rc = hook_at(hook, hctx, CQ_HOOK_EXPERT(E, 1), s->g, T, I, err);
    if (rc != CQ_OK)
        return rc;
    cq_linear(s->g, T, I, w->lin[3 * E + CQ_MOE_DOWN], NULL, H, s->y);
    cq_linear(x, T, H, w->shared_gate, NULL, 1, s->sg);
    for (int64_t t = 0; t < T; t++) {
        float g = 1.0f / (1.0f + expf(-s->sg[t]));
        for (int64_t j = 0; j < H; j++)
            out[t * H + j] += g * s->y[t * H + j];
    }
    return CQ_OK;
}

int cq_moe_forward(cq_moe_scratch *s, const cq_model_config *cfg, const cq_moe_weights *w,
                   const unsigned char *all_tokens, const float *x, float *out, int64_t T,
                   cq_layer_hook hook, void *hook_ctx, cq_error *err)
{
    int64_t H = cfg->hidden, E = cfg->n_experts, k = cfg->top_k;
    if (T > s->tokens)
        return cq_errorf(err, CQ_E_INTERNAL, "moe chunk of %lld tokens exceeds its scratch",
                         (long long)T);
    cq_linear(x, T, H, w->router, NULL, E, s->logits);
    for (int64_t t = 0; t < T; t++)
        cq_moe_route(cfg, s->logits + t * E, s->probs, s->idx + t * k, s->wt + t * k);
    memset(out, 0, (size_t)(T * H) * sizeof(float));
    int rc = CQ_OK;
    for (int64_t e = 0; e < E && rc == CQ_OK; e++)
        rc = run_expert(s, cfg, w, all_tokens && all_tokens[e], x, out, T, e, hook, hook_ctx,
                        err);
    if (rc == CQ_OK && has_shared(cfg))
        rc = run_shared(s, cfg, w, x, out, T, hook, hook_ctx, err);
    return rc;
}
