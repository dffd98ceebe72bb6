/* The f32 decoder layer: RMSNorm or LayerNorm, RoPE (rotate-half) or none (OPT's learned
 * positions are added at the embedding), optional per-head q/k RMSNorm (Qwen3), causal GQA
 * attention, SwiGLU or ReLU MLP; pre-LN, or post-LN for OPT-350m. Every Linear is one
 * cq_det_sgemm (the same bytes for any thread count) over a chunk of sequences; attention runs per sequence and head in row blocks so
 * that only the causal part of the score matrix is formed. */
#include "cquant/model.h"

#include "cquant/checked.h"
#include "cquant/dtype.h"
#include "linalg/det.h"
#include "model/moe.h"
#include "model/vecmath.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rows of scores formed at once: big enough for efficient sgemm, small enough for cache. */
#define ATTN_ROW_BLOCK 256
/* Target size of one logits chunk in cq_head_nll. */
#define LOGITS_CHUNK_BYTES (16u << 20)

struct cq_llama {
    cq_model_config cfg;
    int64_t max_seqlen, chunk_tokens, logit_rows;
    float *cos, *sin;            /* [max_seqlen x head_dim/2] */
    float *xn, *q, *k, *v, *att; /* per-chunk activations */
    float *gate, *up, *tmp;
    float *scores;               /* [ATTN_ROW_BLOCK x max_seqlen] */
    float *logits;               /* [logit_rows x vocab] */
    cq_moe_scratch *moe;         /* MoE block scratch (configs with experts) */
    const unsigned char *moe_all; /* cq_llama_moe_all_tokens */
};

static const char *const linear_names[CQ_LIN_COUNT] = {
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
    "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj",
};

const char *cq_linear_name(int which)
{
    return which >= 0 && which < CQ_LIN_COUNT ? linear_names[which] : "?";
}

void cq_linear_shape(const cq_model_config *cfg, int which, int64_t *rows, int64_t *cols)
{
    if (which >= CQ_LIN_MOE_BASE) {
        cq_moe_linear_shape(cfg, which, rows, cols);
        return;
    }
    int64_t qd = cfg->n_heads * cfg->head_dim, kd = cfg->n_kv_heads * cfg->head_dim;
    int64_t r[CQ_LIN_COUNT] = {qd, kd, kd, cfg->hidden, cfg->intermediate, cfg->intermediate,
                               cfg->hidden};
    int64_t c[CQ_LIN_COUNT] = {cfg->hidden, cfg->hidden, cfg->hidden, qd, cfg->hidden,
                               cfg->hidden, cfg->intermediate};
    *rows = r[which];
    *cols = c[which];
}

int cq_linear_hook_point(int which)
{
    if (which >= CQ_LIN_MOE_BASE)
        return CQ_HOOK_EXPERT(cq_linear_expert(which),
                              (which - CQ_LIN_MOE_BASE) % 3 == CQ_MOE_DOWN);
    static const int point[CQ_LIN_COUNT] = {CQ_HOOK_QKV_IN,    CQ_HOOK_QKV_IN,
                                            CQ_HOOK_QKV_IN,    CQ_HOOK_O_IN,
                                            CQ_HOOK_GATEUP_IN, CQ_HOOK_GATEUP_IN,
                                            CQ_HOOK_DOWN_IN};
    return point[which];
}

bool cq_linear_has_bias(const cq_model_config *cfg, int which)
{
    if (!cq_linear_present(cfg, which))
        return false;
    if (which <= CQ_LIN_V)
        return cfg->qkv_bias;
    return which == CQ_LIN_O ? cfg->o_bias : cfg->mlp_bias;
}

static bool has_rope(const cq_model_config *cfg) { return !(cfg->desc && cfg->desc->pos_embed); }

/* calloc of n floats with the size checked. */
static float *alloc_f32(int64_t n)
{
    size_t bytes;
    if (n < 0 || cq_mul_size((size_t)n, sizeof(float), &bytes))
        return NULL;
    return calloc(bytes ? bytes : 1, 1);
}

int cq_layer_alloc(cq_layer_weights *w, const cq_model_config *cfg, cq_error *err)
{
    memset(w, 0, sizeof *w);
    bool ok = cq_moe_alloc(&w->moe, cfg) == CQ_OK, dense = cq_moe_has_dense_mlp(cfg);
    int64_t H = cfg->hidden;
    for (int i = 0; i < CQ_LIN_COUNT; i++) {
        int64_t r, c, n;
        if (!cq_linear_present(cfg, i) || (i >= CQ_LIN_GATE && !dense))
            continue; /* absent in the architecture, or every layer is sparse */
        cq_linear_shape(cfg, i, &r, &c);
        ok = ok && cq_mul_i64(r, c, &n) == 0 && (w->lin[i] = alloc_f32(n));
        if (cq_linear_has_bias(cfg, i))
            ok = ok && (w->bias[i] = alloc_f32(r));
    }
    ok = ok && (w->in_norm = alloc_f32(H)) && (w->post_norm = alloc_f32(H));
    if (cfg->norm_bias)
        ok = ok && (w->in_norm_bias = alloc_f32(H)) && (w->post_norm_bias = alloc_f32(H));
    if (cfg->desc && cfg->desc->q_norm)
        ok = ok && (w->q_norm = alloc_f32(cfg->head_dim)) && (w->k_norm = alloc_f32(cfg->head_dim));
    if (!ok) {
        cq_layer_release(w);
        return cq_errorf(err, CQ_E_NOMEM, "out of memory for one decoder layer's f32 weights");
    }
    return CQ_OK;
}

void cq_layer_release(cq_layer_weights *w)
{
    if (!w)
        return;
    for (int i = 0; i < CQ_LIN_COUNT; i++) {
        free(w->lin[i]);
        free(w->bias[i]);
    }
    float *more[] = {w->in_norm, w->post_norm, w->in_norm_bias, w->post_norm_bias, w->q_norm,
                     w->k_norm};
    for (size_t i = 0; i < sizeof more / sizeof more[0]; i++)
        free(more[i]);
    cq_moe_release(&w->moe);
    memset(w, 0, sizeof *w);
}

void cq_head_release(cq_head_weights *h)
{
    if (!h)
        return;
    free(h->norm);
    free(h->lm_head);
    free(h->norm_bias);
    free(h->proj_out);
    memset(h, 0, sizeof *h);
}

/* ---- runtime context ---- */

/* cos/sin of pos·inv_freq with the float32 product HF forms (inv_freq @ position_ids). */
static void rope_tables(cq_llama *m)
{
    int64_t half = m->cfg.head_dim / 2;
    float *inv = m->tmp; /* scratch: tmp is at least hidden >= half floats */
    cq_rope_inv_freq(&m->cfg, inv);
    for (int64_t p = 0; p < m->max_seqlen; p++) {
        for (int64_t i = 0; i < half; i++) {
            float f = (float)p * inv[i];
            m->cos[p * half + i] = (float)cos((double)f);
            m->sin[p * half + i] = (float)sin((double)f);
        }
    }
}

int cq_llama_create(cq_llama **out, const cq_model_config *cfg, int64_t max_seqlen,
                    int64_t chunk_tokens, cq_error *err)
{
    *out = NULL;
    if (cfg->hidden < 1 || cfg->n_heads < 1 || cfg->n_kv_heads < 1 || cfg->intermediate < 1 ||
        cfg->vocab < 1 || cfg->head_dim < 1 || (has_rope(cfg) && cfg->head_dim % 2) ||
        cfg->n_heads % cfg->n_kv_heads || cfg->word_dim < 0)
        return cq_errorf(err, CQ_E_USAGE, "model configuration is not a valid decoder shape");
    if (max_seqlen < 1 || max_seqlen > (1 << 20))
        return cq_errorf(err, CQ_E_USAGE, "sequence length %lld out of range",
                         (long long)max_seqlen);
    cq_llama *m = calloc(1, sizeof *m);
    if (!m)
        return cq_errorf(err, CQ_E_NOMEM, "out of memory");
    m->cfg = *cfg;
    m->max_seqlen = max_seqlen;
    m->chunk_tokens = chunk_tokens > 0 ? chunk_tokens : 4096;
    if (m->chunk_tokens < max_seqlen)
        m->chunk_tokens = max_seqlen;
    m->logit_rows = (int64_t)(LOGITS_CHUNK_BYTES / sizeof(float)) / cfg->vocab;
    if (m->logit_rows < 1)
        m->logit_rows = 1;
    int64_t T = m->chunk_tokens, half = cfg->head_dim / 2;
    int64_t qd = cfg->n_heads * cfg->head_dim, kd = cfg->n_kv_heads * cfg->head_dim;
    int64_t wide = cfg->hidden > qd ? cfg->hidden : qd;
    wide = cq_word_dim(cfg) > wide ? cq_word_dim(cfg) : wide; /* project_out's output */
    if (m->logit_rows > T)
        m->logit_rows = T;
    /* Dims are bounded by cq_config_parse; T·dim is checked here before any product. */
    /* sgemm takes int dimensions */
    bool ok = T <= INT32_MAX && T <= INT64_MAX / 4 / (cfg->intermediate + wide + 1);
    /* the dense MLP's activations; a model whose layers are all sparse never uses them */
    int64_t big = ok && cq_moe_has_dense_mlp(cfg) ? T * cfg->intermediate : 1;
    ok = ok && (m->cos = alloc_f32(max_seqlen * half + 1)) &&
         (m->sin = alloc_f32(max_seqlen * half + 1));
    ok = ok && (m->xn = alloc_f32(T * cfg->hidden)) && (m->q = alloc_f32(T * qd)) &&
         (m->k = alloc_f32(T * kd)) && (m->v = alloc_f32(T * kd)) && (m->att = alloc_f32(T * qd));
    ok = ok && (m->gate = alloc_f32(big)) && (m->up = alloc_f32(big)) &&
         (m->tmp = alloc_f32(T * wide)) &&
         (m->scores = alloc_f32(ATTN_ROW_BLOCK * max_seqlen)) &&
         (m->logits = alloc_f32(m->logit_rows * cfg->vocab));
    ok = ok && (cfg->n_experts <= 0 || (m->moe = cq_moe_scratch_new(cfg, T)));
    if (!ok) {
        cq_llama_free(m);
        return cq_errorf(err, CQ_E_NOMEM, "out of memory for forward scratch (%lld tokens per "
                         "chunk)", (long long)T);
    }
    if (has_rope(cfg))
        rope_tables(m);
    *out = m;
    return CQ_OK;
}

void cq_llama_free(cq_llama *m)
{
    if (!m)
        return;
    float *bufs[] = {m->cos, m->sin, m->xn,  m->q,   m->k,      m->v,     m->att,
                     m->gate, m->up, m->tmp, m->scores, m->logits};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        free(bufs[i]);
    cq_moe_scratch_free(m->moe);
    free(m);
}

const cq_model_config *cq_llama_config(const cq_llama *m) { return &m->cfg; }

void cq_llama_moe_all_tokens(cq_llama *m, const unsigned char *all_tokens)
{
    m->moe_all = all_tokens;
}

/* ---- kernels ---- */

void cq_rmsnorm(const float *x, const float *w, float *y, int64_t n, int64_t hidden, double eps)
{
    for (int64_t t = 0; t < n; t++) {
        const float *xr = x + t * hidden;
        float *yr = y + t * hidden;
        double ss = 0;
        for (int64_t j = 0; j < hidden; j++)
            ss += (double)xr[j] * xr[j];
        /* HF: variance = mean(x²) in f32, then x * rsqrt(variance + eps), then weight * that. */
        float r = 1.0f / sqrtf((float)(ss / (double)hidden) + (float)eps);
        for (int64_t j = 0; j < hidden; j++)
            yr[j] = w[j] * (xr[j] * r);
    }
}

void cq_layernorm(const float *x, const float *w, const float *b, float *y, int64_t n,
                  int64_t hidden, double eps)
{
    for (int64_t t = 0; t < n; t++) {
        const float *xr = x + t * hidden;
        float *yr = y + t * hidden;
        double mean = 0, var = 0;
        for (int64_t j = 0; j < hidden; j++)
            mean += xr[j];
        mean /= (double)hidden;
        for (int64_t j = 0; j < hidden; j++)
            var += ((double)xr[j] - mean) * ((double)xr[j] - mean);
        /* torch: (x - mean) * rsqrt(var + eps) * w + b, biased variance, f32 */
        float mu = (float)mean, r = 1.0f / sqrtf((float)(var / (double)hidden) + (float)eps);
        for (int64_t j = 0; j < hidden; j++)
            yr[j] = (xr[j] - mu) * r * w[j] + (b ? b[j] : 0.0f);
    }
}

/* The architecture's norm of n rows of hidden values. */
static void norm_rows(const cq_llama *m, const float *x, const float *w, const float *b, float *y,
                      int64_t n)
{
    if (m->cfg.desc && m->cfg.desc->norm == CQ_NORM_LAYER)
        cq_layernorm(x, w, b, y, n, m->cfg.hidden, m->cfg.rms_eps);
    else
        cq_rmsnorm(x, w, y, n, m->cfg.hidden, m->cfg.rms_eps);
}

void cq_linear(const float *x, int64_t n, int64_t cols, const float *W, const float *bias,
               int64_t rows, float *y)
{
    cq_det_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)rows, (int)cols, 1.0f, x,
                (int)cols, W, (int)cols, 0.0f, y, (int)rows);
    if (!bias)
        return;
    for (int64_t t = 0; t < n; t++)
        for (int64_t j = 0; j < rows; j++)
            y[t * rows + j] += bias[j];
}

/* Rotate-half RoPE in place on [T x n_heads·head_dim]; token t is at position t % seqlen. */
static void rope_apply(const cq_llama *m, float *x, int64_t T, int64_t seqlen, int64_t n_heads)
{
    int64_t hd = m->cfg.head_dim, half = hd / 2, width = n_heads * hd;
    for (int64_t t = 0; t < T; t++) {
        const float *c = m->cos + (t % seqlen) * half, *s = m->sin + (t % seqlen) * half;
        for (int64_t h = 0; h < n_heads; h++) {
            float *a = x + t * width + h * hd, *b = a + half;
            for (int64_t i = 0; i < half; i++) {
                float x1 = a[i], x2 = b[i];
                a[i] = x1 * c[i] + (-x2) * s[i];
                b[i] = x2 * c[i] + x1 * s[i];
            }
        }
    }
}

/* Softmax of row i (query position) over keys [lo, i]; entries after i up to `width` are
 * zeroed so that the following sgemm over the block's columns ignores them. */
static void softmax_causal(float *row, int64_t lo, int64_t i, int64_t width)
{
    int64_t n = i + 1 - lo;
    float mx = cq_vmax(row + lo, n);
    cq_vexp_sub(row + lo, n, mx);
    float inv = 1.0f / cq_vsum(row + lo, n);
    for (int64_t j = 0; j < lo; j++)
        row[j] = 0;
    for (int64_t j = lo; j <= i; j++)
        row[j] *= inv;
    for (int64_t j = i + 1; j < width; j++)
        row[j] = 0;
}

/* One head of one sequence: att_h = softmax(Q Kᵀ / sqrt(hd) + causal) V, in row blocks. */
static void attn_head(cq_llama *m, const float *Q, const float *K, const float *V, float *out,
                      int64_t S)
{
    int64_t hd = m->cfg.head_dim, win = m->cfg.sliding_window;
    int64_t qd = m->cfg.n_heads * hd, kd = m->cfg.n_kv_heads * hd;
    float scale = 1.0f / sqrtf((float)hd);
    for (int64_t r0 = 0; r0 < S; r0 += ATTN_ROW_BLOCK) {
        int64_t rb = S - r0 < ATTN_ROW_BLOCK ? S - r0 : ATTN_ROW_BLOCK, width = r0 + rb;
        cq_det_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rb, (int)width, (int)hd, scale,
                    Q + r0 * qd, (int)qd, K, (int)kd, 0.0f, m->scores, (int)width);
        for (int64_t i = 0; i < rb; i++) {
            int64_t pos = r0 + i, lo = win > 0 && pos - win + 1 > 0 ? pos - win + 1 : 0;
            softmax_causal(m->scores + i * width, lo, pos, width);
        }
        cq_det_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rb, (int)hd, (int)width,
                    1.0f, m->scores, (int)width, V, (int)kd, 0.0f, out + r0 * qd, (int)qd);
    }
}

/* CQ_OK to go on, CQ_HOOK_SKIP (> 0) to skip the rest of the chunk, or a negative status. */
static int call_hook(cq_layer_hook hook, void *ctx, int which, const float *x, int64_t n,
                     int64_t cols, cq_error *err)
{
    int rc = hook ? hook(ctx, which, x, n, cols) : CQ_OK;
    if (rc == CQ_OK || rc == CQ_HOOK_SKIP)
        return rc;
    return cq_errorf(err, rc < 0 ? rc : CQ_E_INTERNAL, "layer hook stopped the forward pass");
}

/* Attention of ns sequences (T = ns·S tokens) from normed x into out (o_proj output). */
static int attn_chunk(cq_llama *m, const cq_layer_weights *w, const float *x, float *out,
                      int64_t ns, int64_t S, cq_layer_hook hook, void *hctx, cq_error *err)
{
    const cq_model_config *c = &m->cfg;
    int64_t T = ns * S, hd = c->head_dim, qd = c->n_heads * hd, kd = c->n_kv_heads * hd;
    int64_t group = c->n_heads / c->n_kv_heads;
    cq_linear(x, T, c->hidden, w->lin[CQ_LIN_Q], w->bias[CQ_LIN_Q], qd, m->q);
    cq_linear(x, T, c->hidden, w->lin[CQ_LIN_K], w->bias[CQ_LIN_K], kd, m->k);
    cq_linear(x, T, c->hidden, w->lin[CQ_LIN_V], w->bias[CQ_LIN_V], kd, m->v);
    if (w->q_norm) { /* Qwen3: RMSNorm of every head's q and k, before RoPE */
        cq_rmsnorm(m->q, w->q_norm, m->q, T * c->n_heads, hd, c->rms_eps);
        cq_rmsnorm(m->k, w->k_norm, m->k, T * c->n_kv_heads, hd, c->rms_eps);
    }
    if (has_rope(c)) {
        rope_apply(m, m->q, T, S, c->n_heads);
        rope_apply(m, m->k, T, S, c->n_kv_heads);
    }
    for (int64_t s = 0; s < ns; s++) {
        for (int64_t h = 0; h < c->n_heads; h++) {
            int64_t kvh = h / group; /* GQA: query heads share KV heads in consecutive groups */
            attn_head(m, m->q + s * S * qd + h * hd, m->k + s * S * kd + kvh * hd,
                      m->v + s * S * kd + kvh * hd, m->att + s * S * qd + h * hd, S);
        }
    }
    int rc = call_hook(hook, hctx, CQ_HOOK_O_IN, m->att, T, qd, err);
    if (rc == CQ_OK)
        cq_linear(m->att, T, qd, w->lin[CQ_LIN_O], w->bias[CQ_LIN_O], c->hidden, out);
    return rc;
}

static int mlp_chunk(cq_llama *m, const cq_layer_weights *w, const float *x, float *out,
                     int64_t T, cq_layer_hook hook, void *hctx, cq_error *err)
{
    const cq_model_config *c = &m->cfg;
    if (w->sparse)
        return cq_moe_forward(m->moe, c, &w->moe, m->moe_all, x, out, T, hook, hctx, err);
    int64_t inter = c->intermediate, n = T * inter;
    if (c->desc && c->desc->act == CQ_ACT_RELU) { /* OPT: fc2(relu(fc1(x))) */
        cq_linear(x, T, c->hidden, w->lin[CQ_LIN_UP], w->bias[CQ_LIN_UP], inter, m->gate);
        for (int64_t i = 0; i < n; i++)
            m->gate[i] = m->gate[i] > 0.0f ? m->gate[i] : 0.0f;
    } else {
        cq_linear(x, T, c->hidden, w->lin[CQ_LIN_GATE], w->bias[CQ_LIN_GATE], inter, m->gate);
        cq_linear(x, T, c->hidden, w->lin[CQ_LIN_UP], w->bias[CQ_LIN_UP], inter, m->up);
        cq_vsilu_mul(m->gate, m->up, n); /* SwiGLU: silu(gate) · up */
    }
    int rc = call_hook(hook, hctx, CQ_HOOK_DOWN_IN, m->gate, T, inter, err);
    if (rc == CQ_OK)
        cq_linear(m->gate, T, inter, w->lin[CQ_LIN_DOWN], w->bias[CQ_LIN_DOWN], c->hidden, out);
    return rc;
}

static int check_call(const cq_llama *m, int64_t n_seq, int64_t seqlen, cq_error *err)
{
    if (n_seq < 0 || seqlen < 1 || seqlen > m->max_seqlen)
        return cq_errorf(err, CQ_E_USAGE, "sequence length %lld exceeds the %lld the forward "
                         "context was created for", (long long)seqlen, (long long)m->max_seqlen);
    return CQ_OK;
}

/* Sequences per chunk: the scratch holds chunk_tokens tokens and seqlen <= chunk_tokens. */
static int64_t seqs_per_chunk(const cq_llama *m, int64_t seqlen) { return m->chunk_tokens / seqlen; }

static void add_rows(float *y, const float *a, const float *b, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = a[i] + b[i];
}

/* Pre-LN (Llama, OPT-125m): y = x + attn(n1(x)); y += mlp(n2(y)). */
static int chunk_pre_ln(cq_llama *m, const cq_layer_weights *w, const float *x, float *y,
                        int64_t ns, int64_t S, cq_layer_hook hook, void *hctx, cq_error *err)
{
    int64_t T = ns * S, H = m->cfg.hidden;
    norm_rows(m, x, w->in_norm, w->in_norm_bias, m->xn, T);
    int rc = call_hook(hook, hctx, CQ_HOOK_QKV_IN, m->xn, T, H, err);
    if (rc == CQ_OK)
        rc = attn_chunk(m, w, m->xn, m->tmp, ns, S, hook, hctx, err);
    if (rc == CQ_OK) {
        add_rows(y, x, m->tmp, T * H); /* in-place safe: row-disjoint chunks */
        norm_rows(m, y, w->post_norm, w->post_norm_bias, m->xn, T);
        rc = call_hook(hook, hctx, CQ_HOOK_GATEUP_IN, m->xn, T, H, err);
    }
    if (rc == CQ_OK)
        rc = mlp_chunk(m, w, m->xn, m->tmp, T, hook, hctx, err);
    if (rc == CQ_OK)
        add_rows(y, y, m->tmp, T * H);
    return rc;
}

/* Post-LN (OPT-350m): h = n1(x + attn(x)); y = n2(h + mlp(h)). */
static int chunk_post_ln(cq_llama *m, const cq_layer_weights *w, const float *x, float *y,
                         int64_t ns, int64_t S, cq_layer_hook hook, void *hctx, cq_error *err)
{
    int64_t T = ns * S, H = m->cfg.hidden;
    int rc = call_hook(hook, hctx, CQ_HOOK_QKV_IN, x, T, H, err);
    if (rc == CQ_OK)
        rc = attn_chunk(m, w, x, m->tmp, ns, S, hook, hctx, err);
    if (rc == CQ_OK) {
        add_rows(m->tmp, x, m->tmp, T * H);
        norm_rows(m, m->tmp, w->in_norm, w->in_norm_bias, m->xn, T);
        rc = call_hook(hook, hctx, CQ_HOOK_GATEUP_IN, m->xn, T, H, err);
    }
    if (rc == CQ_OK)
        rc = mlp_chunk(m, w, m->xn, m->tmp, T, hook, hctx, err);
    if (rc == CQ_OK) {
        add_rows(m->tmp, m->xn, m->tmp, T * H);
        norm_rows(m, m->tmp, w->post_norm, w->post_norm_bias, y, T);
    }
    return rc;
}

int cq_layer_forward(cq_llama *m, const cq_layer_weights *w, const float *in, float *out,
                     int64_t n_seq, int64_t seqlen, cq_layer_hook hook, void *hook_ctx,
                     cq_error *err)
{
    int rc = check_call(m, n_seq, seqlen, err);
    int64_t H = m->cfg.hidden, cs = seqs_per_chunk(m, seqlen);
    for (int64_t s0 = 0; s0 < n_seq && rc == CQ_OK; s0 += cs) {
        int64_t ns = n_seq - s0 < cs ? n_seq - s0 : cs;
        const float *x = in + s0 * seqlen * H;
        float *y = out + s0 * seqlen * H;
        rc = m->cfg.post_ln ? chunk_post_ln(m, w, x, y, ns, seqlen, hook, hook_ctx, err)
                            : chunk_pre_ln(m, w, x, y, ns, seqlen, hook, hook_ctx, err);
        if (rc == CQ_HOOK_SKIP) /* the hook has what it needs from this chunk */
            rc = CQ_OK;
    }
    return rc;
}

int cq_attn_forward(cq_llama *m, const cq_layer_weights *w, const float *x, float *out,
                    int64_t n_seq, int64_t seqlen, cq_error *err)
{
    int rc = check_call(m, n_seq, seqlen, err);
    int64_t H = m->cfg.hidden, cs = seqs_per_chunk(m, seqlen);
    for (int64_t s0 = 0; s0 < n_seq && rc == CQ_OK; s0 += cs) {
        int64_t ns = n_seq - s0 < cs ? n_seq - s0 : cs;
        rc = attn_chunk(m, w, x + s0 * seqlen * H, out + s0 * seqlen * H, ns, seqlen, NULL,
                        NULL, err);
    }
    return rc;
}

int cq_mlp_forward(cq_llama *m, const cq_layer_weights *w, const float *x, float *out,
                   int64_t n_tokens, cq_error *err)
{
    int64_t H = m->cfg.hidden;
    int rc = CQ_OK;
    for (int64_t t0 = 0; t0 < n_tokens && rc == CQ_OK; t0 += m->chunk_tokens) {
        int64_t T = n_tokens - t0 < m->chunk_tokens ? n_tokens - t0 : m->chunk_tokens;
        rc = mlp_chunk(m, w, x + t0 * H, out + t0 * H, T, NULL, NULL, err);
    }
    return rc;
}

/* ---- head ---- */

/* logits of rows [t0, t0+n) into out: final norm (when present) into m->xn, project_out (OPT)
 * into m->tmp, then lm_head. */
static void head_rows(cq_llama *m, const cq_head_weights *h, const float *hidden, int64_t n,
                      float *out)
{
    int64_t H = m->cfg.hidden, W = cq_word_dim(&m->cfg);
    const float *x = hidden;
    if (h->norm) {
        norm_rows(m, hidden, h->norm, h->norm_bias, m->xn, n);
        x = m->xn;
    }
    if (h->proj_out) {
        cq_linear(x, n, H, h->proj_out, NULL, W, m->tmp);
        x = m->tmp;
    }
    cq_linear(x, n, W, h->lm_head, NULL, m->cfg.vocab, out);
}

int cq_head_logits(cq_llama *m, const cq_head_weights *h, const float *hidden, int64_t n_tokens,
                   float *logits, cq_error *err)
{
    int64_t H = m->cfg.hidden;
    for (int64_t t0 = 0; t0 < n_tokens; t0 += m->chunk_tokens) {
        int64_t n = n_tokens - t0 < m->chunk_tokens ? n_tokens - t0 : m->chunk_tokens;
        head_rows(m, h, hidden + t0 * H, n, logits + t0 * m->cfg.vocab);
    }
    return CQ_OK;
}

/* -log softmax(row)[target] with max subtraction; row is scratch (overwritten by exp).
 * Partial sums of 1024 in f32 lanes, the total in double. */
static double row_nll(float *row, int64_t V, int32_t target)
{
    float mx = cq_vmax(row, V), t = row[target];
    cq_vexp_sub(row, V, mx);
    double sum = 0;
    for (int64_t j0 = 0; j0 < V; j0 += 1024)
        sum += cq_vsum(row + j0, V - j0 < 1024 ? V - j0 : 1024);
    return log(sum) - (double)(t - mx);
}

int cq_head_nll(cq_llama *m, const cq_head_weights *h, const float *hidden, const int32_t *ids,
                int64_t n_seq, int64_t seqlen, double *nll_sum, int64_t *count, cq_error *err)
{
    int64_t H = m->cfg.hidden, V = m->cfg.vocab, R = m->logit_rows;
    double sum = 0;
    for (int64_t s = 0; s < n_seq; s++) {
        const int32_t *sid = ids + s * seqlen;
        for (int64_t t0 = 0; t0 < seqlen - 1; t0 += R) {
            int64_t n = seqlen - 1 - t0 < R ? seqlen - 1 - t0 : R;
            head_rows(m, h, hidden + (s * seqlen + t0) * H, n, m->logits);
            for (int64_t i = 0; i < n; i++) {
                int32_t tgt = sid[t0 + i + 1];
                if (tgt < 0 || tgt >= V)
                    return cq_errorf(err, CQ_E_USAGE, "token id %d is outside the vocabulary "
                                     "of %lld", tgt, (long long)V);
                sum += row_nll(m->logits + i * V, V, tgt);
            }
        }
    }
    *nll_sum += sum;
    *count += n_seq * (seqlen > 0 ? seqlen - 1 : 0);
    return CQ_OK;
}
