/* Mixture of experts: the sparse block against a float64 naive reimplementation written here
 * (softmax over all router logits, top-k with lower index first among equals, optional
 * renormalization, SwiGLU experts, Qwen2-MoE's sigmoid-gated shared expert), the calibration
 * fallback of the forward (the down-input hook sees every token, the output is unchanged), and
 * the tests/data/arch fixtures' logits, hidden states and router logits against transformers. */
#include "cq_test.h"
#include "cq_rand.h"
#include "cquant/model.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state = 0x2545f4914f6cdd1dull;
static double urand(void) { return 2.0 * cq_rand_uniform(&rng_state) - 1.0; } /* [-1, 1) */

static void fill(float *p, int64_t n, double scale)
{
    for (int64_t i = 0; i < n; i++)
        p[i] = (float)(scale * urand());
}

static void small_cfg(cq_model_config *c, bool shared, bool norm)
{
    memset(c, 0, sizeof *c);
    c->arch = shared ? CQ_ARCH_QWEN2_MOE : CQ_ARCH_QWEN3_MOE;
    c->hidden = 24;
    c->intermediate = 40;
    c->n_layers = 1;
    c->n_heads = 2;
    c->n_kv_heads = 2;
    c->head_dim = 12;
    c->vocab = 10;
    c->rms_eps = 1e-6;
    c->rope_theta = 10000;
    c->n_experts = 5;
    c->top_k = 2;
    c->moe_intermediate = 16;
    c->shared_intermediate = shared ? 20 : 0;
    c->norm_topk_prob = norm;
    c->moe_names = CQ_MOE_NAMES_QWEN;
    c->sparse_step = 1;
}

/* y[rows] = W x in double */
static void dlin(const float *W, const double *x, int64_t rows, int64_t cols, double *y)
{
    for (int64_t r = 0; r < rows; r++) {
        double s = 0;
        for (int64_t c = 0; c < cols; c++)
            s += (double)W[r * cols + c] * x[c];
        y[r] = s;
    }
}

static void dexpert(const cq_model_config *c, const cq_moe_weights *w, int64_t slot,
                    const double *x, double *y)
{
    int64_t I = slot == c->n_experts ? c->shared_intermediate : c->moe_intermediate;
    double *g = malloc((size_t)I * sizeof *g), *u = malloc((size_t)I * sizeof *u);
    dlin(w->lin[3 * slot], x, I, c->hidden, g);
    dlin(w->lin[3 * slot + 1], x, I, c->hidden, u);
    for (int64_t i = 0; i < I; i++)
        g[i] = g[i] / (1 + exp(-g[i])) * u[i];
    dlin(w->lin[3 * slot + 2], g, c->hidden, I, y);
    free(g);
    free(u);
}

/* The block for one token in double; counts[e] += 1 for each chosen expert. */
static void dmoe(const cq_model_config *c, const cq_moe_weights *w, const float *xf, double *out,
                 int64_t *counts)
{
    int64_t H = c->hidden, E = c->n_experts;
    double x[64], lg[16], p[16], y[64], sum = 0, mx = -1e300;
    for (int64_t j = 0; j < H; j++)
        x[j] = xf[j];
    dlin(w->router, x, E, H, lg);
    for (int64_t e = 0; e < E; e++)
        mx = lg[e] > mx ? lg[e] : mx;
    for (int64_t e = 0; e < E; e++)
        sum += (p[e] = exp(lg[e] - mx));
    int chosen[16] = {0}, idx[16];
    double wsum = 0;
    for (int64_t j = 0; j < c->top_k; j++) {
        int best = -1;
        for (int e = 0; e < E; e++)
            if (!chosen[e] && (best < 0 || p[e] > p[best]))
                best = e;
        chosen[best] = 1;
        idx[j] = best;
        wsum += p[best] / sum;
    }
    memset(out, 0, (size_t)H * sizeof *out);
    for (int64_t j = 0; j < c->top_k; j++) {
        double wt = p[idx[j]] / sum / (c->norm_topk_prob ? wsum : 1.0);
        counts[idx[j]]++;
        dexpert(c, w, idx[j], x, y);
        for (int64_t h = 0; h < H; h++)
            out[h] += wt * y[h];
    }
    if (c->shared_intermediate > 0) {
        double g;
        dlin(w->shared_gate, x, 1, H, &g);
        dexpert(c, w, E, x, y);
        for (int64_t h = 0; h < H; h++)
            out[h] += y[h] / (1 + exp(-g));
    }
}

typedef struct rows_seen {
    int64_t gateup[8], down[8], n_gateup_in;
} rows_seen;

static int count_hook(void *ctx, int which, const float *x, int64_t n, int64_t cols)
{
    rows_seen *r = ctx;
    (void)x;
    (void)cols;
    if (which == CQ_HOOK_GATEUP_IN)
        r->n_gateup_in += n;
    if (which >= CQ_HOOK_MOE_BASE) {
        int slot = (which - CQ_HOOK_MOE_BASE) / 2;
        if ((which - CQ_HOOK_MOE_BASE) % 2)
            r->down[slot] += n;
        else
            r->gateup[slot] += n;
    }
    return CQ_OK;
}

static void block_case(bool shared, bool norm)
{
    cq_model_config c;
    small_cfg(&c, shared, norm);
    cq_error err = CQ_ERROR_INIT;
    cq_layer_weights w;
    memset(&w, 0, sizeof w);
    CQ_CHECK_OK(cq_layer_alloc(&w, &c, &err), &err);
    w.sparse = true;
    fill(w.moe.router, c.n_experts * c.hidden, 0.6);
    for (int64_t i = 0; i < 3 * w.moe.n_slots; i++) {
        int64_t r, cc;
        cq_linear_shape(&c, CQ_LIN_MOE_BASE + (int)i, &r, &cc);
        fill(w.moe.lin[i], r * cc, 0.3);
    }
    if (shared)
        fill(w.moe.shared_gate, c.hidden, 0.5);
    int64_t T = 37, H = c.hidden;
    float *x = malloc((size_t)(T * H) * sizeof *x), *out = malloc((size_t)(T * H) * sizeof *out);
    float *out2 = malloc((size_t)(T * H) * sizeof *out2);
    fill(x, T * H, 1.0);
    cq_llama *m = NULL;
    CQ_CHECK_OK(cq_llama_create(&m, &c, 16, 16, &err), &err); /* chunks of 16: 3 chunks */
    rows_seen seen = {{0}, {0}, 0};
    CQ_CHECK_OK(cq_mlp_forward(m, &w, x, out, T, &err), &err);
    double worst = 0, y[64];
    int64_t counts[8] = {0};
    for (int64_t t = 0; t < T; t++) {
        dmoe(&c, &w.moe, x + t * H, y, counts);
        for (int64_t h = 0; h < H; h++)
            worst = fmax(worst, fabs(y[h] - out[t * H + h]));
    }
    CQ_CHECK(worst < 2e-6);
    /* the hook sees each expert's routed rows; with the fallback mask the down point sees all
     * T rows of expert 1 and the layer output stays bit-identical */
    cq_layer_weights lw;
    float *hid = malloc((size_t)(T * H) * sizeof *hid);
    CQ_CHECK_OK(cq_layer_alloc(&lw, &c, &err), &err);
    cq_moe_weights keep = lw.moe; /* attention from lw, MoE borrowed from w */
    lw.moe = w.moe;
    lw.sparse = true;
    for (int i = 0; i < CQ_LIN_GATE; i++)
        fill(lw.lin[i], 24 * 24, 0.2);
    fill(lw.in_norm, H, 1.0);
    fill(lw.post_norm, H, 1.0);
    CQ_CHECK_OK(cq_layer_forward(m, &lw, x, hid, 1, T > 16 ? 16 : T, count_hook, &seen, &err),
                &err);
    int64_t tot = 0;
    for (int e = 0; e < c.n_experts; e++) {
        CQ_CHECK_EQ_INT(seen.gateup[e], seen.down[e]);
        tot += seen.gateup[e];
    }
    CQ_CHECK_EQ_INT(tot, 16 * c.top_k);
    CQ_CHECK_EQ_INT(seen.gateup[c.n_experts], shared ? 16 : 0);
    unsigned char all[8] = {0, 1, 0, 0, 0};
    rows_seen seen2 = {{0}, {0}, 0};
    float *hid2 = malloc((size_t)(T * H) * sizeof *hid2);
    cq_llama_moe_all_tokens(m, all);
    CQ_CHECK_OK(cq_layer_forward(m, &lw, x, hid2, 1, 16, count_hook, &seen2, &err), &err);
    cq_llama_moe_all_tokens(m, NULL);
    CQ_CHECK_EQ_INT(seen2.down[1], 16);
    CQ_CHECK_EQ_INT(seen2.gateup[1], seen.gateup[1]);
    CQ_CHECK_EQ_INT(seen2.down[0], seen.down[0]);
    CQ_CHECK(memcmp(hid, hid2, (size_t)(16 * H) * sizeof *hid) == 0);
    lw.moe = keep;
    cq_layer_release(&lw);
    cq_layer_release(&w);
    cq_llama_free(m);
    free(x);
    free(out);
    free(out2);
    free(hid);
    free(hid2);
}

CQ_TEST(moe_block_matches_float64)
{
    block_case(false, true);
    block_case(false, false);
    block_case(true, false);
}

CQ_TEST(moe_route_ties_and_renorm)
{
    cq_model_config c;
    small_cfg(&c, false, true);
    c.n_experts = 4;
    c.top_k = 2;
    float lg[4] = {0.5f, 1.0f, 1.0f, 0.25f}, p[4], wt[2];
    int32_t idx[2];
    cq_moe_route(&c, lg, p, idx, wt);
    CQ_CHECK_EQ_INT(idx[0], 1); /* equal logits: lower index first (documented choice) */
    CQ_CHECK_EQ_INT(idx[1], 2);
    CQ_CHECK_NEAR(wt[0], 0.5, 1e-7);
    c.norm_topk_prob = false;
    cq_moe_route(&c, lg, p, idx, wt);
    double z = exp(0.5) + 2 * exp(1.0) + exp(0.25);
    CQ_CHECK_NEAR(wt[1], exp(1.0) / z, 1e-7);
}

CQ_TEST(moe_config_parse)
{
    cq_model_config c;
    cq_error err = CQ_ERROR_INIT;
    const char *q2 = "{\"architectures\":[\"Qwen2MoeForCausalLM\"],\"hidden_size\":64,"
                     "\"intermediate_size\":96,\"num_hidden_layers\":4,\"num_attention_heads\":4,"
                     "\"vocab_size\":50,\"num_experts\":8,\"num_experts_per_tok\":2,"
                     "\"moe_intermediate_size\":32,\"shared_expert_intermediate_size\":48,"
                     "\"decoder_sparse_step\":2,\"mlp_only_layers\":[3]}";
    CQ_CHECK_OK(cq_config_parse(q2, "q2", &c, &err), &err);
    CQ_CHECK(c.qkv_bias && !c.norm_topk_prob);
    CQ_CHECK(!cq_layer_is_moe(&c, 0) && cq_layer_is_moe(&c, 1) && !cq_layer_is_moe(&c, 2) &&
             !cq_layer_is_moe(&c, 3));
    CQ_CHECK(cq_layer_has_linear(&c, 0, CQ_LIN_GATE) && !cq_layer_has_linear(&c, 1, CQ_LIN_GATE));
    CQ_CHECK(cq_layer_has_linear(&c, 1, CQ_LIN_EXPERT(8, CQ_MOE_DOWN)));
    CQ_CHECK(!cq_layer_has_linear(&c, 1, CQ_LIN_EXPERT(9, CQ_MOE_GATE)));
    char buf[96];
    CQ_CHECK(!strcmp(cq_linear_module(&c, CQ_LIN_EXPERT(8, CQ_MOE_UP), buf, sizeof buf),
                     "mlp.shared_expert.up_proj"));
    CQ_CHECK(!strcmp(cq_linear_module(&c, CQ_LIN_EXPERT(3, CQ_MOE_DOWN), buf, sizeof buf),
                     "mlp.experts.3.down_proj"));
    int64_t r, cc;
    cq_linear_shape(&c, CQ_LIN_EXPERT(8, CQ_MOE_DOWN), &r, &cc);
    CQ_CHECK(r == 64 && cc == 48);
    const char *mx = "{\"architectures\":[\"MixtralForCausalLM\"],\"hidden_size\":64,"
                     "\"intermediate_size\":96,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
                     "\"vocab_size\":50,\"num_local_experts\":8,\"num_experts_per_tok\":9}";
    CQ_CHECK(cq_config_parse(mx, "mx", &c, &err) == CQ_E_FORMAT); /* top-k > experts */
    const char *mx2 = "{\"architectures\":[\"MixtralForCausalLM\"],\"hidden_size\":64,"
                      "\"intermediate_size\":96,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
                      "\"vocab_size\":50,\"num_local_experts\":8,\"num_experts_per_tok\":2}";
    CQ_CHECK_OK(cq_config_parse(mx2, "mx", &c, &err), &err);
    CQ_CHECK(c.norm_topk_prob && c.moe_intermediate == 96 && cq_layer_is_moe(&c, 0));
    CQ_CHECK(!strcmp(cq_linear_module(&c, CQ_LIN_EXPERT(7, CQ_MOE_UP), buf, sizeof buf),
                     "block_sparse_moe.experts.7.w3"));
}

/* ---- fixtures ---- */

typedef struct router_check {
    const float *router;  /* [E x H] of the current layer */
    const float *want;    /* reference router logits [T x E] */
    int64_t E, H;
    double worst;
} router_check;

static int router_hook(void *ctx, int which, const float *x, int64_t n, int64_t cols)
{
    router_check *r = ctx;
    if (which != CQ_HOOK_GATEUP_IN)
        return CQ_OK;
    for (int64_t t = 0; t < n; t++)
        for (int64_t e = 0; e < r->E; e++) {
            double s = 0;
            for (int64_t j = 0; j < cols; j++)
                s += (double)x[t * cols + j] * r->router[e * r->H + j];
            r->worst = fmax(r->worst, fabs(s - r->want[t * r->E + e]));
        }
    return CQ_OK;
}

static float *ref_f32(const cq_st_model *st, const char *name, int64_t n)
{
    const cq_st_tensor *t = cq_st_find(st, name);
    float *p = malloc((size_t)n * sizeof *p);
    cq_error err = CQ_ERROR_INIT;
    if (!t || cq_st_read_f32(t, p, &err) != CQ_OK) {
        CQ_FAIL("reference tensor %s unreadable", name);
        free(p);
        return NULL;
    }
    return p;
}

static void fixture_case(const char *name)
{
    const char *data = getenv("CQ_TESTDATA");
    char dir[1024], refp[1100], tn[64];
    snprintf(dir, sizeof dir, "%s/arch/%s", data ? data : "tests/data", name);
    snprintf(refp, sizeof refp, "%s/reference.safetensors", dir);
    cq_error err = CQ_ERROR_INIT;
    cq_st_model *st = NULL, *ref = NULL;
    cq_model_config c;
    int rc = cq_st_open(&st, dir, &err);
    if (rc == CQ_OK) rc = cq_st_open(&ref, refp, &err);
    if (rc == CQ_OK) rc = cq_config_load(dir, &c, &err);
    if (rc == CQ_OK) rc = cq_config_check(&c, st, &err);
    CQ_CHECK_OK(rc, &err);
    if (rc != CQ_OK) {
        cq_st_close(st);
        cq_st_close(ref);
        return;
    }
    const cq_st_tensor *ids_t = cq_st_find(ref, "ids");
    int64_t T = ids_t->shape[0], H = c.hidden, V = c.vocab, E = c.n_experts;
    int32_t *ids = malloc((size_t)T * sizeof *ids);
    for (int64_t i = 0; i < T; i++) {
        int64_t v;
        memcpy(&v, (const char *)ids_t->data + 8 * i, 8);
        ids[i] = (int32_t)v;
    }
    float *h = malloc((size_t)(T * H) * sizeof *h), *lg = malloc((size_t)(T * V) * sizeof *lg);
    cq_llama *m = NULL;
    cq_layer_weights w;
    cq_head_weights hw;
    memset(&w, 0, sizeof w);
    memset(&hw, 0, sizeof hw);
    rc = cq_llama_create(&m, &c, T, 0, &err);
    if (rc == CQ_OK) rc = cq_embed(&c, st, ids, T, h, &err);
    double worst_h = 0, worst_r = 0;
    for (int64_t l = 0; l < c.n_layers && rc == CQ_OK; l++) {
        rc = cq_layer_load(&w, &c, st, l, &err);
        snprintf(tn, sizeof tn, "router.%lld", (long long)l);
        float *want_r = rc == CQ_OK ? ref_f32(ref, tn, T * E) : NULL;
        router_check rcx = {w.moe.router, want_r, E, H, 0};
        if (rc == CQ_OK)
            rc = cq_layer_forward(m, &w, h, h, 1, T, want_r ? router_hook : NULL, &rcx, &err);
        worst_r = fmax(worst_r, rcx.worst);
        free(want_r);
        snprintf(tn, sizeof tn, "hidden.%lld", (long long)l + 1);
        float *want_h = ref_f32(ref, tn, T * H);
        /* transformers' last hidden state is after the final norm */
        for (int64_t i = 0; want_h && l + 1 < c.n_layers && i < T * H; i++)
            worst_h = fmax(worst_h, fabs(h[i] - want_h[i]));
        free(want_h);
    }
    if (rc == CQ_OK) rc = cq_head_load(&hw, &c, st, &err);
    if (rc == CQ_OK) rc = cq_head_logits(m, &hw, h, T, lg, &err);
    CQ_CHECK_OK(rc, &err);
    float *want = ref_f32(ref, "logits", T * V);
    double worst = 0;
    for (int64_t i = 0; want && rc == CQ_OK && i < T * V; i++)
        worst = fmax(worst, fabs(lg[i] - want[i]));
    fprintf(stderr, "%s: max |d logits| %.3g, |d hidden| %.3g, |d router| %.3g\n", name, worst,
            worst_h, worst_r);
    CQ_CHECK(worst <= 1e-3);
    CQ_CHECK(worst_h <= 1e-3);
    CQ_CHECK(worst_r <= 1e-4);
    free(want);
    cq_layer_release(&w);
    cq_head_release(&hw);
    cq_llama_free(m);
    free(ids);
    free(h);
    free(lg);
    cq_st_close(st);
    cq_st_close(ref);
}

CQ_TEST(moe_fixture_mixtral) { fixture_case("mixtral"); }
CQ_TEST(moe_fixture_qwen2moe) { fixture_case("qwen2moe"); }
CQ_TEST(moe_fixture_qwen3moe) { fixture_case("qwen3moe"); }
