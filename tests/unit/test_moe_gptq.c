/* GPTQ on the Mixtral fixture's MoE block (docs/moe.md), checked against numbers computed here:
 *   - each expert's routed token count equals the top-2 count of transformers' router logits
 *     (reference.safetensors router.0; attention kept float so layer 0 routes as in the fp32
 *     reference);
 *   - each expert Linear's reported loss equals Σ_t ‖(W − Q)·x_t‖² / n_seq over exactly the
 *     tokens its Hessian should hold: the routed ones, or ALL tokens for an expert below the
 *     threshold (the fallback), with x_t the block input for w1/w3 and, for w2, the SwiGLU of
 *     the already-quantized w1/w3 recomputed here in double;
 *   - an expert that received no calibration token is quantized with the fallback and says so. */
#include "cq_test.h"
#include "cquant/gptq_model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define E 4
#define K 2

typedef struct got {
    cq_gptq_lin_stats st[E][3];
    float *w[E][3], *q[E][3];   /* original, dequantized */
    bool done[E][3];
} got;

static bool wants_experts_l0(void *ctx, int64_t layer, int lin)
{
    (void)ctx;
    return layer == 0 && lin >= CQ_LIN_MOE_BASE;
}

static int on_linear(void *ctx, int64_t layer, int lin, const float *w, const cq_qresult *qr,
                     const cq_gptq_lin_stats *st, cq_error *err)
{
    got *g = ctx;
    (void)layer;
    (void)err;
    int e = cq_linear_expert(lin), p = (lin - CQ_LIN_MOE_BASE) % 3;
    size_t n = (size_t)(qr->rows * qr->cols);
    g->st[e][p] = *st;
    g->w[e][p] = malloc(n * sizeof(float));
    g->q[e][p] = malloc(n * sizeof(float));
    memcpy(g->w[e][p], w, n * sizeof(float));
    cq_qresult_dequant(qr, g->q[e][p]);
    g->done[e][p] = true;
    return CQ_OK;
}

typedef struct grab {
    float *x;
    int64_t filled;
} grab;

static int grab_hook(void *ctx, int which, const float *x, int64_t n, int64_t cols)
{
    grab *g = ctx;
    if (which == CQ_HOOK_GATEUP_IN) {
        memcpy(g->x + g->filled * cols, x, (size_t)(n * cols) * sizeof(float));
        g->filled += n;
    }
    return CQ_OK;
}

typedef struct fixture {
    cq_st_model *st, *ref;
    cq_model_config cfg;
    int32_t ids[64];
    float router[64 * E];
} fixture;

static int open_fixture(fixture *f, cq_error *err)
{
    const char *data = getenv("CQ_TESTDATA");
    char dir[1024], refp[1100];
    snprintf(dir, sizeof dir, "%s/arch/mixtral", data ? data : "tests/data");
    snprintf(refp, sizeof refp, "%s/reference.safetensors", dir);
    int rc = cq_st_open(&f->st, dir, err);
    if (rc == CQ_OK) rc = cq_st_open(&f->ref, refp, err);
    if (rc == CQ_OK) rc = cq_config_load(dir, &f->cfg, err);
    if (rc == CQ_OK) rc = cq_config_check(&f->cfg, f->st, err);
    const cq_st_tensor *ids = rc == CQ_OK ? cq_st_find(f->ref, "ids") : NULL;
    const cq_st_tensor *r = rc == CQ_OK ? cq_st_find(f->ref, "router.0") : NULL;
    if (rc == CQ_OK && (!ids || !r || ids->shape[0] != 64 || f->cfg.n_experts != E))
        rc = cq_errorf(err, CQ_E_FORMAT, "unexpected mixtral fixture");
    for (int i = 0; rc == CQ_OK && i < 64; i++) {
        int64_t v;
        memcpy(&v, (const char *)ids->data + 8 * i, 8);
        f->ids[i] = (int32_t)v;
    }
    if (rc == CQ_OK)
        rc = cq_st_read_f32(r, f->router, err);
    return rc;
}

/* Top-2 of router logits lg [n x E] (softmax is monotone): chosen[t][e]. */
static void top2(const float *lg, int64_t n, bool chosen[64][E], int64_t *count)
{
    memset(count, 0, E * sizeof *count);
    for (int64_t t = 0; t < n; t++) {
        const float *l = lg + t * E;
        for (int e = 0; e < E; e++) {
            int above = 0;
            for (int o = 0; o < E; o++)
                above += l[o] > l[e] || (l[o] == l[e] && o < e);
            chosen[t][e] = above < K;
            count[e] += chosen[t][e];
        }
    }
}

/* Σ_t∈set ‖(W − Q) x_t‖² / n_seq in double. */
static double loss_over(const float *w, const float *q, int64_t rows, int64_t cols,
                        const double *x, const bool *set, int64_t n, int64_t n_seq)
{
    double s = 0;
    for (int64_t t = 0; t < n; t++) {
        if (!set[t])
            continue;
        for (int64_t r = 0; r < rows; r++) {
            double d = 0;
            for (int64_t c = 0; c < cols; c++)
                d += ((double)w[r * cols + c] - q[r * cols + c]) * x[t * cols + c];
            s += d * d;
        }
    }
    return s / (double)n_seq;
}

/* GPTQ on the first n ids (n_seq sequences of n/n_seq) with threshold min_tokens; checks. */
static void run_case(fixture *f, int64_t n_seq, int64_t n, int64_t min_tokens, int want_zero)
{
    cq_error err = CQ_ERROR_INIT;
    const cq_model_config *c = &f->cfg;
    int64_t H = c->hidden, I = c->moe_intermediate, S = n / n_seq;
    float *hid = malloc((size_t)(n * H) * sizeof *hid), *tmp = malloc((size_t)(n * H) * 4);
    grab gx = {malloc((size_t)(n * H) * sizeof(float)), 0};
    CQ_CHECK_OK(cq_embed(c, f->st, f->ids, n, hid, &err), &err);
    /* the block input of every token, from the float layer (attention stays float below) */
    cq_llama *m = NULL;
    cq_layer_weights lw;
    memset(&lw, 0, sizeof lw);
    CQ_CHECK_OK(cq_llama_create(&m, c, S, 0, &err), &err);
    CQ_CHECK_OK(cq_layer_load(&lw, c, f->st, 0, &err), &err);
    CQ_CHECK_OK(cq_layer_forward(m, &lw, hid, tmp, n_seq, S, grab_hook, &gx, &err), &err);
    cq_llama_free(m);
    cq_layer_release(&lw);
    /* routing from the block input and the router weights, in double here; one window of the
     * reference ids must route as transformers did */
    bool chosen[64][E], all[64], ref_chosen[64][E];
    int64_t count[E], ref_count[E];
    float lg[64 * E], gw[E * 128];
    const cq_st_tensor *gt = cq_st_find(f->st, "model.layers.0.block_sparse_moe.gate.weight");
    CQ_CHECK_OK(cq_st_read_f32(gt, gw, &err), &err);
    for (int64_t t = 0; t < n; t++)
        for (int e = 0; e < E; e++) {
            double s = 0;
            for (int64_t h = 0; h < H; h++)
                s += (double)gx.x[t * H + h] * gw[e * H + h];
            lg[t * E + e] = (float)s;
        }
    top2(lg, n, chosen, count);
    top2(f->router, n, ref_chosen, ref_count);
    for (int e = 0; e < E && n_seq == 1; e++)
        CQ_CHECK_EQ_INT(count[e], ref_count[e]);
    got g;
    memset(&g, 0, sizeof g);
    cq_qconfig q;
    cq_qconfig_defaults(&q);
    q.group_size = 32;
    cq_gptq_model_opts o;
    cq_gptq_model_opts_defaults(&o);
    o.moe_min_tokens = min_tokens;
    cq_gptq_hooks hk = {.ctx = &g, .wants = wants_experts_l0, .linear_done = on_linear};
    CQ_CHECK_OK(cq_gptq_model_run(c, f->st, hid, n_seq, S, 0, &q, &o, &hk, &err), &err);
    double *x = malloc((size_t)(n * H) * sizeof *x), *a = malloc((size_t)(n * I) * sizeof *a);
    for (int64_t i = 0; i < n * H; i++)
        x[i] = gx.x[i];
    for (int64_t t = 0; t < n; t++)
        all[t] = true;
    int zeros = 0;
    for (int e = 0; e < E; e++) {
        bool routed[64];
        for (int64_t t = 0; t < n; t++)
            routed[t] = chosen[t][e];
        bool fb = count[e] < (min_tokens > 0 ? min_tokens : H / 8);
        zeros += count[e] == 0;
        for (int p = 0; p < 3; p++) {
            CQ_CHECK(g.done[e][p]);
            if (!g.done[e][p])
                return;
            CQ_CHECK_EQ_INT(g.st[e][p].expert, e);
            CQ_CHECK_EQ_INT(g.st[e][p].routed_tokens, count[e]);
            CQ_CHECK_EQ_INT(g.st[e][p].moe_fallback, fb);
            CQ_CHECK_EQ_INT(g.st[e][p].hessian_tokens, fb ? n : count[e]);
        }
        const bool *set = fb ? all : routed;
        for (int p = 0; p < 2; p++) {
            double want = loss_over(g.w[e][p], g.q[e][p], I, H, x, set, n, n_seq);
            CQ_CHECK_NEAR(g.st[e][p].gptq_loss, want, 1e-4 * want + 1e-9);
        }
        /* w2's input: SwiGLU of the quantized w1/w3 */
        for (int64_t t = 0; t < n; t++)
            for (int64_t i = 0; i < I; i++) {
                double g1 = 0, u = 0;
                for (int64_t h = 0; h < H; h++) {
                    g1 += (double)g.q[e][0][i * H + h] * x[t * H + h];
                    u += (double)g.q[e][1][i * H + h] * x[t * H + h];
                }
                a[t * I + i] = g1 / (1 + exp(-g1)) * u;
            }
        double want = loss_over(g.w[e][2], g.q[e][2], H, I, a, set, n, n_seq);
        CQ_CHECK_NEAR(g.st[e][2].gptq_loss, want, 1e-3 * want + 1e-9);
        for (int p = 0; p < 3; p++) {
            free(g.w[e][p]);
            free(g.q[e][p]);
        }
    }
    if (want_zero)
        CQ_CHECK(zeros >= want_zero);
    free(x);
    free(a);
    free(hid);
    free(tmp);
    free(gx.x);
}

CQ_TEST(moe_gptq_routed_hessians)
{
    fixture f;
    memset(&f, 0, sizeof f);
    cq_error err = CQ_ERROR_INIT;
    int rc = open_fixture(&f, &err);
    CQ_CHECK_OK(rc, &err);
    if (rc == CQ_OK) {
        run_case(&f, 1, 64, 1, 0);   /* routed Hessians, counts as the reference */
        run_case(&f, 1, 64, 0, 0);   /* the default threshold (hidden/8 = 16) */
        run_case(&f, 1, 64, 100, 0); /* everything below 100: the all-tokens fallback */
        run_case(&f, 2, 64, 1, 0);   /* two sequences: the 2/n_seq scale */
    }
    cq_st_close(f.st);
    cq_st_close(f.ref);
}

CQ_TEST(moe_gptq_expert_without_tokens)
{
    fixture f;
    memset(&f, 0, sizeof f);
    cq_error err = CQ_ERROR_INIT;
    int rc = open_fixture(&f, &err);
    CQ_CHECK_OK(rc, &err);
    /* the shortest prefix of the reference ids in which some expert is never routed */
    int64_t n = 0;
    for (int64_t len = 2; rc == CQ_OK && len <= 16 && !n; len++) {
        bool chosen[64][E];
        int64_t count[E];
        top2(f.router, len, chosen, count);
        for (int e = 0; e < E; e++)
            if (count[e] == 0)
                n = len;
    }
    CQ_CHECK(n > 0);
    if (rc == CQ_OK && n > 0)
        run_case(&f, 1, n, 1, 1); /* only the unrouted expert falls back */
    cq_st_close(f.st);
    cq_st_close(f.ref);
}
