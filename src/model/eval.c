/* Perplexity over non-overlapping windows (notes §G.2, MODEL.md "Perplexity").
 *
 * Memory plan: windows are processed in batches; a batch's activations live in ONE buffer
 * [batch·seqlen x hidden] that each layer updates in place (cq_layer_forward allows out == in),
 * and the batch size is act_budget / (seqlen·hidden·4) windows (at least one). For each batch
 * every layer's weights are loaded again (f32 conversion of one layer is cheap next to the
 * batch's forward), so at most one layer plus the head is resident.
 *
 * The NLL total is a fixed binary tree over per-window sums (cq_dist_tree), so it does not
 * depend on the batch size nor, under mpirun, on the number of ranks: each rank evaluates a
 * contiguous share of the windows and rank 0's total is broadcast. */
#include "cquant/dist.h"
#include "cquant/log.h"
#include "cquant/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_ACT_BUDGET ((size_t)512 << 20)

typedef struct eval_state {
    const cq_model_config *cfg;
    const cq_st_model *st;
    const cq_eval_opts *opt;
    cq_llama *m;
    cq_layer_weights w;
    cq_head_weights head;
    float *hidden;
    int64_t batch;    /* windows per batch */
    cq_dist_tree *nll; /* per-window NLL sums, leaves by global window index */
    int64_t w_begin;  /* this rank's first window */
} eval_state;

static int load_layer(eval_state *s, int64_t l, cq_error *err)
{
    if (s->opt->source)
        return s->opt->source(s->opt->source_ctx, l, &s->w, err);
    return cq_layer_load(&s->w, s->cfg, s->st, l, err);
}

/* One batch of nb windows starting at ids: embed, all layers, NLL. */
static int eval_batch(eval_state *s, const int32_t *ids, int64_t nb, int64_t b_index,
                      int64_t n_batches, cq_eval_result *res, cq_error *err)
{
    int64_t S = s->opt->seqlen, L = s->cfg->n_layers;
    int rc = cq_embed_seqs(s->cfg, s->st, ids, nb, S, s->hidden, err);
    char what[64];
    for (int64_t l = 0; l < L && rc == CQ_OK; l++) {
        snprintf(what, sizeof what, "layer %lld", (long long)l);
        cq_progress("perplexity", b_index * L + l, n_batches * L, what);
        rc = load_layer(s, l, err);
        if (rc == CQ_OK)
            rc = cq_layer_forward(s->m, &s->w, s->hidden, s->hidden, nb, S, NULL, NULL, err);
        if (rc != CQ_OK)
            cq_error_prefix(err, "layer %lld", (long long)l);
    }
    /* one leaf per window: the total's order is the tree's, not the batch's */
    int64_t H = s->cfg->hidden;
    for (int64_t w = 0; w < nb && rc == CQ_OK; w++) {
        double *leaf = cq_dist_tree_slot(s->nll);
        if (!leaf)
            return cq_errorf(err, CQ_E_NOMEM, "out of memory");
        *leaf = 0.0;
        rc = cq_head_nll(s->m, &s->head, s->hidden + w * S * H, ids + w * S, 1, S, leaf,
                         &res->n_scored, err);
        if (rc == CQ_OK)
            rc = cq_dist_tree_add(s->nll, s->w_begin + b_index * s->batch + w, leaf, err);
    }
    return rc;
}

static int eval_setup(eval_state *s, int64_t n_windows, cq_error *err)
{
    size_t budget = s->opt->act_budget ? s->opt->act_budget : DEFAULT_ACT_BUDGET;
    size_t per_window = (size_t)s->opt->seqlen * (size_t)s->cfg->hidden * sizeof(float);
    s->batch = (int64_t)(budget / per_window);
    if (s->batch < 1)
        s->batch = 1;
    if (s->batch > n_windows)
        s->batch = n_windows;
    s->hidden = malloc((size_t)s->batch * per_window);
    if (!s->hidden)
        return cq_errorf(err, CQ_E_NOMEM, "out of memory for %lld windows of activations",
                         (long long)s->batch);
    int rc = cq_llama_create(&s->m, s->cfg, s->opt->seqlen, s->opt->chunk_tokens, err);
    if (rc == CQ_OK)
        rc = cq_head_load(&s->head, s->cfg, s->st, err);
    if (rc == CQ_OK)
        rc = cq_layer_alloc(&s->w, s->cfg, err);
    return rc;
}

int cq_eval_ppl(const cq_model_config *cfg, const cq_st_model *st, const int32_t *ids,
                int64_t n_ids, const cq_eval_opts *opt, cq_eval_result *res, cq_error *err)
{
    *res = (cq_eval_result){0, 0, 0, NAN, NAN};
    int64_t S = opt->seqlen;
    if (S < 2)
        return cq_errorf(err, CQ_E_USAGE, "perplexity window length must be at least 2");
    int64_t n_windows = n_ids / S; /* the tail is dropped */
    if (opt->max_windows > 0 && opt->max_windows < n_windows)
        n_windows = opt->max_windows;
    if (n_windows < 1)
        return cq_errorf(err, CQ_E_USAGE, "text of %lld tokens is shorter than one window of %lld",
                         (long long)n_ids, (long long)S);
    eval_state s;
    memset(&s, 0, sizeof s);
    s.cfg = cfg;
    s.st = st;
    s.opt = opt;
    int64_t w_end;
    cq_dist_share(n_windows, &s.w_begin, &w_end);
    int64_t mine = w_end - s.w_begin;
    int rc = cq_dist_tree_new(&s.nll, n_windows, 1, err);
    if (rc == CQ_OK && mine > 0)
        rc = eval_setup(&s, mine, err);
    int64_t n_batches = rc == CQ_OK && mine > 0 ? (mine + s.batch - 1) / s.batch : 0;
    for (int64_t b = 0; b < n_batches && rc == CQ_OK; b++) {
        int64_t w0 = b * s.batch, nb = mine - w0 < s.batch ? mine - w0 : s.batch;
        rc = eval_batch(&s, ids + (s.w_begin + w0) * S, nb, b, n_batches, res, err);
    }
    cq_progress_end();
    rc = cq_dist_agree(rc, err);
    double *total = NULL;
    if (rc == CQ_OK)
        rc = cq_dist_tree_finish(s.nll, &total, err);
    if (rc == CQ_OK && total)
        res->nll_sum = *total;
    if (rc == CQ_OK)
        rc = cq_dist_bcast(&res->nll_sum, sizeof res->nll_sum, 0, err);
    if (rc == CQ_OK)
        rc = cq_dist_sum_i64(&res->n_scored, 1, err);
    if (rc == CQ_OK) {
        res->n_windows = n_windows;
        res->mean_nll = res->nll_sum / (double)res->n_scored;
        res->ppl = exp(res->mean_nll);
    }
    cq_dist_tree_free(s.nll);
    cq_layer_release(&s.w);
    cq_head_release(&s.head);
    cq_llama_free(s.m);
    free(s.hidden);
    return rc;
}
