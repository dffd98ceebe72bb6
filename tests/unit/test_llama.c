/* The f32 decoder layer against a float64 naive-loop reimplementation written here (RMSNorm,
 * rotate-half RoPE with HF's inv_freq incl. llama3 scaling, causal GQA attention, SwiGLU), config
 * parsing, and (with ../shared) the logits of cq-llama-16m and cq-llama-tiny against the
 * reference logits that transformers computed. */
#include "cq_test.h"
#include "cq_rand.h"
#include "cquant/model.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static double urand(void) { return 2.0 * cq_rand_uniform(&rng_state) - 1.0; } /* [-1, 1) */

static void fill(float *p, int64_t n, double scale, double offset)
{
    for (int64_t i = 0; i < n; i++)
        p[i] = (float)(offset + scale * urand());
}

/* HF inv_freq, independently in double: 1/theta^(2i/d); llama3 bands by wavelength. */
static void ref_inv_freq(const cq_model_config *c, double *inv)
{
    int64_t half = c->head_dim / 2;
    for (int64_t i = 0; i < half; i++) {
        double f = 1.0 / pow(c->rope_theta, (double)(2 * i) / (double)c->head_dim);
        if (c->rope_type == CQ_ROPE_LLAMA3) {
            double old = (double)c->rope_orig_max_pos, wl = 2 * M_PI / f;
            double lo = c->rope_low_freq_factor, hi = c->rope_high_freq_factor;
            if (wl > old / lo)
                f /= c->rope_factor;
            else if (wl >= old / hi) {
                double sm = (old / wl - lo) / (hi - lo);
                f = (1 - sm) * f / c->rope_factor + sm * f;
            }
        }
        inv[i] = f;
    }
}

/* y[rows] = W[rows x cols] x + b in double */
static void ref_lin(const float *W, const float *b, const double *x, int64_t rows, int64_t cols,
                    double *y)
{
    for (int64_t r = 0; r < rows; r++) {
        double s = b ? b[r] : 0;
        for (int64_t c = 0; c < cols; c++)
            s += (double)W[r * cols + c] * x[c];
        y[r] = s;
    }
}

static void ref_norm(const double *x, const float *w, int64_t n, double eps, double *y)
{
    double ss = 0;
    for (int64_t i = 0; i < n; i++)
        ss += x[i] * x[i];
    double r = 1.0 / sqrt(ss / n + eps);
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] * r * w[i];
}

static void ref_rope(double *v, int64_t heads, int64_t hd, int64_t pos, const double *inv)
{
    for (int64_t h = 0; h < heads; h++) {
        double *a = v + h * hd;
        for (int64_t i = 0; i < hd / 2; i++) {
            double c = cos(pos * inv[i]), s = sin(pos * inv[i]), x1 = a[i], x2 = a[i + hd / 2];
            a[i] = x1 * c - x2 * s;
            a[i + hd / 2] = x2 * c + x1 * s;
        }
    }
}

/* One sequence of S tokens through the layer, in double; x is [S x hidden] in/out. */
static void ref_layer(const cq_model_config *c, const cq_layer_weights *w, double *x, int64_t S)
{
    int64_t H = c->hidden, hd = c->head_dim, nh = c->n_heads, nkv = c->n_kv_heads;
    int64_t qd = nh * hd, kd = nkv * hd, I = c->intermediate;
    double *inv = calloc((size_t)hd, sizeof(double)), *xn = calloc((size_t)H, sizeof(double));
    double *q = calloc((size_t)(S * qd), sizeof(double)), *k = calloc((size_t)(S * kd), 8);
    double *v = calloc((size_t)(S * kd), 8), *att = calloc((size_t)qd, 8);
    double *o = calloc((size_t)H, 8), *p = calloc((size_t)S, 8);
    double *g = calloc((size_t)I, 8), *u = calloc((size_t)I, 8);
    ref_inv_freq(c, inv);
    for (int64_t t = 0; t < S; t++) {
        ref_norm(x + t * H, w->in_norm, H, c->rms_eps, xn);
        ref_lin(w->lin[CQ_LIN_Q], w->bias[CQ_LIN_Q], xn, qd, H, q + t * qd);
        ref_lin(w->lin[CQ_LIN_K], w->bias[CQ_LIN_K], xn, kd, H, k + t * kd);
        ref_lin(w->lin[CQ_LIN_V], w->bias[CQ_LIN_V], xn, kd, H, v + t * kd);
        ref_rope(q + t * qd, nh, hd, t, inv);
        ref_rope(k + t * kd, nkv, hd, t, inv);
    }
    double *y = calloc((size_t)(S * H), 8);
    for (int64_t t = 0; t < S; t++) {
        for (int64_t h = 0; h < nh; h++) {
            int64_t kh = h / (nh / nkv), lo = 0;
            if (c->sliding_window > 0 && t - c->sliding_window + 1 > 0)
                lo = t - c->sliding_window + 1;
            double mx = -INFINITY, sum = 0;
            for (int64_t j = lo; j <= t; j++) {
                double s = 0;
                for (int64_t d = 0; d < hd; d++)
                    s += q[t * qd + h * hd + d] * k[j * kd + kh * hd + d];
                p[j] = s / sqrt((double)hd);
                mx = fmax(mx, p[j]);
            }
            for (int64_t j = lo; j <= t; j++)
                sum += (p[j] = exp(p[j] - mx));
            for (int64_t d = 0; d < hd; d++) {
                double a = 0;
                for (int64_t j = lo; j <= t; j++)
                    a += p[j] / sum * v[j * kd + kh * hd + d];
                att[h * hd + d] = a;
            }
        }
        ref_lin(w->lin[CQ_LIN_O], w->bias[CQ_LIN_O], att, H, qd, o);
        for (int64_t i = 0; i < H; i++)
            y[t * H + i] = x[t * H + i] + o[i];
        ref_norm(y + t * H, w->post_norm, H, c->rms_eps, xn);
        ref_lin(w->lin[CQ_LIN_GATE], w->bias[CQ_LIN_GATE], xn, I, H, g);
        ref_lin(w->lin[CQ_LIN_UP], w->bias[CQ_LIN_UP], xn, I, H, u);
        for (int64_t i = 0; i < I; i++)
            g[i] = g[i] / (1 + exp(-g[i])) * u[i];
        ref_lin(w->lin[CQ_LIN_DOWN], w->bias[CQ_LIN_DOWN], g, H, I, o);
        for (int64_t i = 0; i < H; i++)
            y[t * H + i] += o[i];
    }
    memcpy(x, y, (size_t)(S * H) * sizeof(double));
    free(inv), free(xn), free(q), free(k), free(v), free(att), free(o), free(p), free(g), free(u);
    free(y);
}

typedef struct {
    int calls[4];
    int64_t tokens[4];
    int64_t cols[4];
    double first_qkv_in; /* x[0] of the first QKV_IN call */
} hook_log;

static int log_hook(void *ctx, int which, const float *x, int64_t n, int64_t cols)
{
    hook_log *h = ctx;
    if (which == CQ_HOOK_QKV_IN && h->calls[which] == 0)
        h->first_qkv_in = x[0];
    h->calls[which]++;
    h->tokens[which] += n;
    h->cols[which] = cols;
    return CQ_OK;
}

static void base_config(cq_model_config *c)
{
    memset(c, 0, sizeof *c);
    c->arch = CQ_ARCH_LLAMA;
    c->hidden = 32;
    c->intermediate = 40;
    c->n_layers = 1;
    c->n_heads = 4;
    c->n_kv_heads = 2;
    c->head_dim = 16; /* != hidden / heads on purpose: q width 64 */
    c->vocab = 50;
    c->rms_eps = 1e-5;
    c->rope_theta = 10000;
}

/* Run layer_forward on n_seq random sequences and compare with ref_layer. */
static void check_layer(const cq_model_config *c, int64_t n_seq, int64_t S, int64_t chunk)
{
    cq_error err = CQ_ERROR_INIT;
    cq_layer_weights w;
    CQ_CHECK_OK(cq_layer_alloc(&w, c, &err), &err);
    for (int i = 0; i < CQ_LIN_COUNT; i++) {
        int64_t r, cc;
        cq_linear_shape(c, i, &r, &cc);
        fill(w.lin[i], r * cc, 0.4, 0);
        if (w.bias[i])
            fill(w.bias[i], r, 0.3, 0);
    }
    fill(w.in_norm, c->hidden, 0.3, 1.0);
    fill(w.post_norm, c->hidden, 0.3, 1.0);
    int64_t n = n_seq * S * c->hidden;
    float *x = malloc((size_t)n * sizeof(float)), *y = malloc((size_t)n * sizeof(float));
    double *ref = malloc((size_t)n * sizeof(double));
    fill(x, n, 1.0, 0);
    for (int64_t i = 0; i < n; i++)
        ref[i] = x[i];
    cq_llama *m = NULL;
    hook_log hl = {{0}, {0}, {0}, 0};
    CQ_CHECK_OK(cq_llama_create(&m, c, S, chunk, &err), &err);
    CQ_CHECK_OK(cq_layer_forward(m, &w, x, y, n_seq, S, log_hook, &hl, &err), &err);
    double maxrel = 0;
    for (int64_t s = 0; s < n_seq; s++) {
        ref_layer(c, &w, ref + s * S * c->hidden, S);
    }
    for (int64_t i = 0; i < n; i++)
        maxrel = fmax(maxrel, fabs(y[i] - ref[i]) / (1.0 + fabs(ref[i])));
    if (!(maxrel <= 1e-4))
        CQ_FAIL("layer vs float64 reference: max rel diff %.3g (n_seq %lld, S %lld)", maxrel,
                (long long)n_seq, (long long)S);
    int64_t ct = chunk > 0 ? chunk : 4096; /* the documented default */
    int64_t cs = (ct > S ? ct : S) / S, chunks = (n_seq + cs - 1) / cs;
    int64_t qd = c->n_heads * c->head_dim;
    for (int p = 0; p < 4; p++) {
        CQ_CHECK_EQ_INT(hl.calls[p], chunks);
        CQ_CHECK_EQ_INT(hl.tokens[p], n_seq * S);
    }
    CQ_CHECK_EQ_INT(hl.cols[CQ_HOOK_O_IN], qd);
    CQ_CHECK_EQ_INT(hl.cols[CQ_HOOK_DOWN_IN], c->intermediate);
    /* the QKV input is the normed hidden state */
    double ss = 0;
    for (int64_t i = 0; i < c->hidden; i++)
        ss += (double)x[i] * x[i];
    CQ_CHECK_NEAR(hl.first_qkv_in, x[0] / sqrt(ss / c->hidden + c->rms_eps) * w.in_norm[0], 1e-5);
    /* in place gives the same result */
    CQ_CHECK_OK(cq_layer_forward(m, &w, x, x, n_seq, S, NULL, NULL, &err), &err);
    CQ_CHECK(memcmp(x, y, (size_t)n * sizeof(float)) == 0);
    cq_llama_free(m);
    cq_layer_release(&w);
    free(x), free(y), free(ref);
}

CQ_TEST(layer_gqa_default_rope)
{
    cq_model_config c;
    base_config(&c);
    check_layer(&c, 3, 9, 20); /* two sequences per chunk, then one */
    check_layer(&c, 2, 300, 0); /* crosses the 256-row attention block */
}

static int skip_after_o(void *ctx, int which, const float *x, int64_t n, int64_t cols)
{
    log_hook(ctx, which, x, n, cols);
    return which == CQ_HOOK_O_IN ? CQ_HOOK_SKIP : CQ_OK;
}

static int fail_at_down(void *ctx, int which, const float *x, int64_t n, int64_t cols)
{
    return which == CQ_HOOK_DOWN_IN ? CQ_E_INTERRUPTED : CQ_OK;
}

/* CQ_HOOK_SKIP ends each chunk after the point (3 chunks of 1 sequence); a negative return
 * stops the forward with that status. */
CQ_TEST(hook_skip_and_stop)
{
    cq_model_config c;
    base_config(&c);
    cq_error err = CQ_ERROR_INIT;
    cq_layer_weights w;
    cq_llama *m = NULL;
    int64_t S = 5, n = 3 * S * c.hidden;
    float *x = calloc((size_t)n, sizeof(float)), *y = calloc((size_t)n, sizeof(float));
    fill(x, n, 1.0, 0);
    CQ_CHECK_OK(cq_layer_alloc(&w, &c, &err), &err);
    fill(w.in_norm, c.hidden, 0.1, 1.0);
    fill(w.post_norm, c.hidden, 0.1, 1.0);
    CQ_CHECK_OK(cq_llama_create(&m, &c, S, S, &err), &err);
    hook_log hl = {{0}, {0}, {0}, 0};
    CQ_CHECK_OK(cq_layer_forward(m, &w, x, y, 3, S, skip_after_o, &hl, &err), &err);
    CQ_CHECK(hl.calls[CQ_HOOK_QKV_IN] == 3 && hl.calls[CQ_HOOK_O_IN] == 3);
    CQ_CHECK(hl.calls[CQ_HOOK_GATEUP_IN] == 0 && hl.calls[CQ_HOOK_DOWN_IN] == 0);
    CQ_CHECK_EQ_INT(cq_layer_forward(m, &w, x, y, 3, S, fail_at_down, NULL, &err),
                    CQ_E_INTERRUPTED);
    CQ_CHECK(strstr(err.msg, "hook") != NULL);
    cq_llama_free(m);
    cq_layer_release(&w);
    free(x), free(y);
}

CQ_TEST(layer_llama3_rope_and_inv_freq)
{
    cq_model_config c;
    base_config(&c);
    c.rope_type = CQ_ROPE_LLAMA3;
    c.rope_factor = 8;
    c.rope_low_freq_factor = 1;
    c.rope_high_freq_factor = 4;
    c.rope_orig_max_pos = 64; /* bands: i=0 kept, i=1 smoothed, i>=2 divided by 8 */
    c.rope_theta = 500000;
    float inv[8];
    double want[8];
    cq_rope_inv_freq(&c, inv);
    ref_inv_freq(&c, want);
    for (int i = 0; i < 8; i++)
        CQ_CHECK_NEAR(inv[i], want[i], 2e-7 * want[i]);
    /* the smoothed band really is used: i=1 is neither the raw nor the /8 value */
    double raw1 = 1.0 / pow(500000.0, 2.0 / 16);
    CQ_CHECK(want[1] < raw1 && want[1] > raw1 / 8);
    CQ_CHECK_NEAR(want[2], 1.0 / pow(500000.0, 4.0 / 16) / 8, 1e-12);
    check_layer(&c, 2, 11, 0);
}

CQ_TEST(layer_qwen2_bias_mha_and_sliding_window)
{
    cq_model_config c;
    base_config(&c);
    c.arch = CQ_ARCH_QWEN2;
    c.qkv_bias = true;
    c.n_kv_heads = 4; /* plain MHA */
    c.sliding_window = 3;
    check_layer(&c, 2, 10, 0);
}

CQ_TEST(config_parse)
{
    const char *j = "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":64,"
                    "\"intermediate_size\":128,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
                    "\"num_key_value_heads\":1,\"vocab_size\":100,\"rms_norm_eps\":1e-6,"
                    "\"rope_theta\":500000.0,\"tie_word_embeddings\":false,"
                    "\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":32.0,"
                    "\"low_freq_factor\":1.0,\"high_freq_factor\":4.0,"
                    "\"original_max_position_embeddings\":8192}}";
    cq_model_config c;
    cq_error err = CQ_ERROR_INIT;
    CQ_CHECK_OK(cq_config_parse(j, "config.json", &c, &err), &err);
    CQ_CHECK_EQ_INT(c.head_dim, 16);
    CQ_CHECK_EQ_INT(c.n_kv_heads, 1);
    CQ_CHECK_EQ_INT(c.rope_type, CQ_ROPE_LLAMA3);
    CQ_CHECK_NEAR(c.rope_factor, 32, 0);
    CQ_CHECK_EQ_INT(c.rope_orig_max_pos, 8192);
    CQ_CHECK_NEAR(c.rope_theta, 500000, 0);
    CQ_CHECK(!c.tie_embeddings && !c.qkv_bias);

    const char *q = "{\"architectures\":[\"Qwen2ForCausalLM\"],\"hidden_size\":64,"
                    "\"intermediate_size\":128,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
                    "\"vocab_size\":100,\"sliding_window\":32,\"use_sliding_window\":false,"
                    "\"rope_parameters\":{\"rope_type\":\"default\",\"rope_theta\":1e6}}";
    CQ_CHECK_OK(cq_config_parse(q, "config.json", &c, &err), &err);
    CQ_CHECK(c.qkv_bias && !c.o_bias && c.sliding_window == 0 && c.n_kv_heads == 4);
    CQ_CHECK_NEAR(c.rope_theta, 1e6, 0);

    const char *g = "{\"architectures\":[\"GPT2LMHeadModel\"],\"hidden_size\":64}";
    CQ_CHECK_EQ_INT(cq_config_parse(g, "m/config.json", &c, &err), CQ_E_UNSUPPORTED);
    CQ_CHECK(strstr(err.msg, "GPT2LMHeadModel") && strstr(err.msg, "docs/stats.md") &&
             strstr(err.msg, "m/config.json"));
    cq_error_clear(&err);
    const char *bad = "{\"model_type\":\"llama\",\"hidden_size\":64,\"intermediate_size\":128,"
                      "\"num_hidden_layers\":2,\"num_attention_heads\":3,"
                      "\"num_key_value_heads\":2,\"vocab_size\":10}";
    CQ_CHECK_EQ_INT(cq_config_parse(bad, "config.json", &c, &err), CQ_E_FORMAT);
}

/* ---- real models (../shared) ---- */

typedef struct real_model {
    cq_model_config cfg;
    cq_st_model *st;
    cq_st_model *ref;
    const cq_st_tensor *ids, *logits;
} real_model;

static int open_real(real_model *r, const char *name)
{
    char dir[4096], ref[4200];
    cq_error err = CQ_ERROR_INIT;
    memset(r, 0, sizeof *r);
    snprintf(dir, sizeof dir, "%s", cq_test_shared_path(name));
    snprintf(ref, sizeof ref, "%s/reference_logits.safetensors", dir);
    int rc = cq_config_load(dir, &r->cfg, &err);
    if (rc == CQ_OK) rc = cq_st_open(&r->st, dir, &err);
    if (rc == CQ_OK) rc = cq_config_check(&r->cfg, r->st, &err);
    if (rc == CQ_OK) rc = cq_st_open(&r->ref, ref, &err);
    CQ_CHECK_OK(rc, &err);
    if (rc != CQ_OK)
        return rc;
    r->ids = cq_st_find(r->ref, "input_ids");
    r->logits = cq_st_find(r->ref, "logits");
    CQ_CHECK(r->ids && r->ids->dtype == CQ_DT_I32 && r->ids->numel == 128);
    CQ_CHECK(r->logits && r->logits->numel == 128 * r->cfg.vocab);
    return r->ids && r->logits ? CQ_OK : CQ_E_FORMAT;
}

static void close_real(real_model *r)
{
    cq_st_close(r->st);
    cq_st_close(r->ref);
}

/* Forward the 128 reference tokens through every layer and compare all 128 x vocab logits. */
static void check_ref_logits(const char *name)
{
    real_model r;
    if (!cq_test_shared() || open_real(&r, name) != CQ_OK)
        return;
    cq_error err = CQ_ERROR_INIT;
    int64_t S = 128, V = r.cfg.vocab;
    float *h = malloc((size_t)(S * r.cfg.hidden) * sizeof(float));
    float *lg = malloc((size_t)(S * V) * sizeof(float)), *want = malloc((size_t)(S * V) * 4);
    cq_llama *m = NULL;
    cq_layer_weights w = {0};
    cq_head_weights hw = {0};
    int rc = cq_llama_create(&m, &r.cfg, S, 0, &err);
    if (rc == CQ_OK) rc = cq_embed(&r.cfg, r.st, r.ids->data, S, h, &err);
    for (int64_t l = 0; l < r.cfg.n_layers && rc == CQ_OK; l++) {
        rc = cq_layer_load(&w, &r.cfg, r.st, l, &err);
        if (rc == CQ_OK) rc = cq_layer_forward(m, &w, h, h, 1, S, NULL, NULL, &err);
    }
    if (rc == CQ_OK) rc = cq_head_load(&hw, &r.cfg, r.st, &err);
    if (rc == CQ_OK) rc = cq_head_logits(m, &hw, h, S, lg, &err);
    if (rc == CQ_OK) rc = cq_st_read_f32(r.logits, want, &err);
    CQ_CHECK_OK(rc, &err);
    double maxdiff = 0;
    for (int64_t i = 0; rc == CQ_OK && i < S * V; i++)
        maxdiff = fmax(maxdiff, fabs((double)lg[i] - want[i]));
    fprintf(stderr, "%s: max |logit - reference| = %.3g\n", name, maxdiff);
    if (!(rc == CQ_OK && maxdiff <= 1e-3))
        CQ_FAIL("%s: logits differ from transformers by %.3g (tol 1e-3)", name, maxdiff);
    cq_head_release(&hw);
    cq_layer_release(&w);
    cq_llama_free(m);
    free(h), free(lg), free(want);
    close_real(&r);
}

CQ_TEST(logits_cq_llama_16m) { check_ref_logits("models/cq-llama-16m"); }
CQ_TEST(logits_cq_llama_tiny) { check_ref_logits("models/cq-llama-tiny"); }

CQ_TEST(config_disagreeing_with_tensors)
{
    real_model r;
    if (!cq_test_shared() || open_real(&r, "models/cq-llama-tiny") != CQ_OK)
        return;
    cq_error err = CQ_ERROR_INIT;
    cq_model_config bad = r.cfg;
    bad.intermediate = 512;
    CQ_CHECK_EQ_INT(cq_config_check(&bad, r.st, &err), CQ_E_SHAPE);
    CQ_CHECK(strstr(err.msg, "model.layers.0.mlp.gate_proj.weight") != NULL);
    cq_error_clear(&err);
    bad = r.cfg;
    bad.n_layers = 5;
    CQ_CHECK_EQ_INT(cq_config_check(&bad, r.st, &err), CQ_E_SHAPE);
    CQ_CHECK(strstr(err.msg, "model.layers.4.") != NULL);
    close_real(&r);
}
