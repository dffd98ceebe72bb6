/* AWQ on the MoE fixtures (docs/moe.md): without clipping, the folded float layer (post norm /
 * s, every expert's gate/up and the router's columns · s, each expert's up rows / s_e and down
 * columns · s_e) must give the original layer's output, so the routing is unchanged; each
 * expert's reported routed tokens equal the top-k counts of the router logits computed here in
 * double; the counts add up to tokens·k; an expert below the threshold takes all tokens. */
#include "cq_test.h"
#include "cq_testutil.h"
#include "cquant/awq.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct chk {
    const cq_model_config *cfg;
    const cq_st_model *st;
    cq_llama *m;
    float *hidden, *ref, *got, *xb;
    int64_t n_seq, seqlen, layers, filled;
    double worst;
    int64_t min_tokens;
} chk;

static int grab_block(void *ctx, int which, const float *x, int64_t n, int64_t cols)
{
    chk *c = ctx;
    if (which == CQ_HOOK_GATEUP_IN) {
        memcpy(c->xb + c->filled * cols, x, (size_t)(n * cols) * sizeof(float));
        c->filled += n;
    }
    return CQ_OK;
}

/* top-k counts of the router logits of the block input xb, in double */
static void counts_here(const chk *c, const float *router, int64_t *count)
{
    const cq_model_config *f = c->cfg;
    int64_t T = c->n_seq * c->seqlen, E = f->n_experts, H = f->hidden;
    double lg[64];
    memset(count, 0, (size_t)E * sizeof *count);
    for (int64_t t = 0; t < T; t++) {
        for (int64_t e = 0; e < E; e++) {
            double s = 0;
            for (int64_t h = 0; h < H; h++)
                s += (double)c->xb[t * H + h] * router[e * H + h];
            lg[e] = s;
        }
        for (int64_t e = 0; e < E; e++) {
            int64_t above = 0;
            for (int64_t o = 0; o < E; o++)
                above += lg[o] > lg[e] || (lg[o] == lg[e] && o < e);
            count[e] += above < f->top_k;
        }
    }
}

static int on_layer(void *ctx, int64_t layer, const cq_layer_weights *w,
                    const cq_awq_layer_report *rep, cq_error *err)
{
    chk *c = ctx;
    cq_layer_weights orig;
    memset(&orig, 0, sizeof orig);
    int64_t T = c->n_seq * c->seqlen, n = T * c->cfg->hidden;
    int rc = cq_layer_load(&orig, c->cfg, c->st, layer, err);
    c->filled = 0;
    if (rc == CQ_OK)
        rc = cq_layer_forward(c->m, &orig, c->hidden, c->ref, c->n_seq, c->seqlen, grab_block, c,
                              err);
    if (rc == CQ_OK)
        rc = cq_layer_forward(c->m, w, c->hidden, c->got, c->n_seq, c->seqlen, NULL, NULL, err);
    if (rc == CQ_OK)
        c->worst = fmax(c->worst, cq_test_max_rel_diff(c->got, c->ref, n));
    CQ_CHECK(rep->moe != NULL);
    if (rc == CQ_OK && rep->moe) {
        int64_t count[64], sum = 0, E = c->cfg->n_experts;
        counts_here(c, orig.moe.router, count);
        for (int64_t e = 0; e < E; e++) {
            const cq_awq_expert_report *x = &rep->moe->experts[e];
            CQ_CHECK_EQ_INT(x->routed_tokens, count[e]);
            CQ_CHECK_EQ_INT(x->fallback, count[e] < c->min_tokens);
            CQ_CHECK_EQ_INT(x->stat_tokens, x->fallback ? T : count[e]);
            CQ_CHECK(x->down_searched);
            sum += x->routed_tokens;
        }
        CQ_CHECK_EQ_INT(sum, T * c->cfg->top_k);
        CQ_CHECK(rep->group[CQ_AWQ_G_GATEUP].done);
        if (rep->moe->n_slots > E)
            CQ_CHECK_EQ_INT(rep->moe->experts[E].routed_tokens, T);
    }
    memcpy(c->hidden, c->ref, (size_t)n * sizeof(float)); /* FP propagation */
    c->layers++;
    cq_layer_release(&orig);
    return rc;
}

static void fixture(const char *name, int64_t n_seq, int64_t seqlen, int64_t min_tokens)
{
    const char *data = getenv("CQ_TESTDATA");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/arch/%s", data ? data : "tests/data", name);
    cq_error err = CQ_ERROR_INIT;
    cq_st_model *st = NULL;
    cq_model_config cfg;
    int rc = cq_st_open(&st, dir, &err);
    if (rc == CQ_OK) rc = cq_config_load(dir, &cfg, &err);
    if (rc == CQ_OK) rc = cq_config_check(&cfg, st, &err);
    CQ_CHECK_OK(rc, &err);
    int64_t T = n_seq * seqlen, H = cfg.hidden;
    int32_t *ids = malloc((size_t)T * sizeof *ids);
    for (int64_t i = 0; i < T; i++)
        ids[i] = (int32_t)((i * 7919 + 13) % cfg.vocab);
    chk c = {.cfg = &cfg, .st = st, .n_seq = n_seq, .seqlen = seqlen, .min_tokens = min_tokens};
    c.hidden = malloc((size_t)(T * H) * sizeof(float));
    c.ref = malloc((size_t)(T * H) * sizeof(float));
    c.got = malloc((size_t)(T * H) * sizeof(float));
    c.xb = malloc((size_t)(T * H) * sizeof(float));
    if (rc == CQ_OK) rc = cq_llama_create(&c.m, &cfg, seqlen, 0, &err);
    if (rc == CQ_OK) rc = cq_embed_seqs(&cfg, st, ids, n_seq, seqlen, c.hidden, &err);
    cq_qconfig q;
    cq_qconfig_defaults(&q);
    q.group_size = 32;
    q.sym = false;
    cq_awq_opts o;
    cq_awq_opts_defaults(&o);
    o.clip = false;
    o.moe_min_tokens = min_tokens;
    if (rc == CQ_OK)
        rc = cq_awq_model_run(&cfg, st, ids, n_seq, seqlen, &q, &o, on_layer, &c, &err);
    CQ_CHECK_OK(rc, &err);
    CQ_CHECK_EQ_INT(c.layers, cfg.n_layers);
    fprintf(stderr, "%s: folded layer output vs original: max rel %.3g\n", name, c.worst);
    CQ_CHECK(c.worst < 1e-5);
    cq_llama_free(c.m);
    free(c.hidden);
    free(c.ref);
    free(c.got);
    free(c.xb);
    free(ids);
    cq_st_close(st);
}

CQ_TEST(moe_awq_fold_exact_mixtral) { fixture("mixtral", 2, 32, 1); }
CQ_TEST(moe_awq_fold_exact_qwen2moe) { fixture("qwen2moe", 2, 32, 1000) /* every expert: all tokens */; }
CQ_TEST(moe_awq_fold_exact_qwen3moe) { fixture("qwen3moe", 1, 48, 16); }
