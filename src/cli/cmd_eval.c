/* cquant eval: WikiText-protocol perplexity (notes §G.2) of a float or quantized checkpoint.
 * TEXT is tokenized once without BOS (or is a safetensors file of input_ids); cq_eval_ppl does
 * the windows and the math; quantized Linears are dequantized on load (cq_qsource). */
#include "cli.h"

#include "cquant/calib.h"
#include "cquant/log.h"
#include "cquant/model.h"
#include "cquant/outdir.h"
#include "cquant/plan.h"
#include "cquant/qsource.h"
#include "cquant/tokenizer.h"
#include "quant/par.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct eval_run {
    cq_model_config cfg;
    cq_st_model *st;
    cq_qsource *qs;
    int32_t *ids;
    int64_t n_ids;
    int64_t file_seqlen;   /* seqlen of an ids file; 0 for text */
    const char *path;      /* MODEL as given, for messages */
    int seqlen_set;        /* --seqlen given */
} eval_run;

/* NaN/Inf in a Linear (a float weight, or a quantized one's scales) would only make the
 * perplexity NaN: name the tensor instead (exit 5). Norms, embedding and lm_head are caught by
 * the finite-NLL check in cmd_eval. */
static int check_finite(const eval_run *r, int64_t layer, const cq_layer_weights *w,
                        cq_error *err)
{
    for (int k = 0; k < CQ_LIN_COUNT; k++) {
        int64_t rows, cols;
        cq_linear_shape(&r->cfg, k, &rows, &cols);
        for (int64_t i = 0; w->lin[k] && i < rows * cols; i++)
            if (!isfinite(w->lin[k][i]))
                return cq_errorf(err, CQ_E_NUMERIC, "'%s': tensor 'model.layers.%lld.%s.weight' "
                                 "has a non-finite value at %lld", r->path, (long long)layer,
                                 cq_linear_name(k), (long long)i);
    }
    return CQ_OK;
}

/* Layer source that stops at Ctrl-C (cq_eval_ppl has no loop of its own to check). */
static int layer_source(void *ctx, int64_t layer, cq_layer_weights *w, cq_error *err)
{
    eval_run *r = ctx;
    if (cq_interrupted())
        return cq_errorf(err, CQ_E_INTERRUPTED, "interrupted");
    int rc = r->qs ? cq_qsource_layer(r->qs, layer, w, err)
                   : cq_layer_load(w, &r->cfg, r->st, layer, err);
    return rc == CQ_OK ? check_finite(r, layer, w, err) : rc;
}

static int open_model(eval_run *r, const char *path, cq_error *err)
{
    int rc = cq_st_open(&r->st, path, err);
    if (rc == CQ_OK)
        rc = cq_config_load(cq_st_dir(r->st), &r->cfg, err);
    if (rc == CQ_OK)
        rc = cq_qsource_open(&r->qs, cq_st_dir(r->st), &r->cfg, r->st, err);
    if (rc == CQ_OK && !r->qs)
        rc = cq_config_check(&r->cfg, r->st, err);
    if (rc == CQ_OK && r->qs)
        cq_info("eval: %s checkpoint, %lld packed Linears dequantized on load",
                cq_qsource_layout(r->qs), (long long)cq_qsource_packed(r->qs));
    return rc;
}

/* Text: tokenized once, no BOS (MODEL.md protocol); a safetensors file: its input_ids. */
static int load_ids(eval_run *r, const char *text_path, cq_error *err)
{
    const char *dir = cq_st_dir(r->st);
    if (cli_input_file(text_path, "text", err) != CQ_OK)
        return err->code;
    if (cq_calib_is_safetensors(text_path)) {
        cq_calib c;
        int rc = cq_calib_read(text_path, r->cfg.vocab, &c, err);
        if (rc != CQ_OK)
            return rc;
        cq_calib_check_tokenizer(&c, text_path, dir);
        r->ids = c.ids; /* taken over */
        r->n_ids = c.n * c.seqlen;
        r->file_seqlen = c.seqlen;
        if (c.seqlen < 2 && !r->seqlen_set)
            return cq_errorf(err, CQ_E_FORMAT, "%s: input_ids rows of %lld token: perplexity "
                             "windows need at least 2 (give --seqlen)", text_path,
                             (long long)c.seqlen);
        return CQ_OK;
    }
    cq_tokenizer *tok = NULL;
    char *text = NULL;
    size_t len = 0;
    int rc = cq_tokenizer_load(&tok, dir, err);
    if (rc == CQ_OK)
        rc = cq_text_read(&text_path, 1, &text, &len, NULL, NULL, NULL, 0, err);
    if (rc == CQ_OK)
        rc = cq_tokenizer_encode(tok, text, len, 0, &r->ids, &r->n_ids, err);
    if (rc == CQ_OK)
        cq_info("eval: %s: %zu bytes -> %lld tokens", text_path, len, (long long)r->n_ids);
    free(text);
    cq_tokenizer_free(tok);
    return rc;
}

static void summary(cq_cli *cli, const eval_run *r, const char *model, const char *text,
                    const cq_eval_opts *o, const cq_eval_result *res, double secs)
{
    cJSON *j = cli->json = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "model", model);
    cJSON_AddStringToObject(j, "text", text);
    cJSON_AddStringToObject(j, "format", cq_qsource_layout(r->qs));
    cJSON_AddNumberToObject(j, "ppl", res->ppl);
    cJSON_AddNumberToObject(j, "perplexity", res->ppl); /* the key batch reads */
    cJSON_AddNumberToObject(j, "nll", res->mean_nll);
    cJSON_AddNumberToObject(j, "nll_sum", res->nll_sum);
    cJSON_AddNumberToObject(j, "windows", (double)res->n_windows);
    cJSON_AddNumberToObject(j, "tokens", (double)r->n_ids);
    cJSON_AddNumberToObject(j, "scored", (double)res->n_scored);
    cJSON_AddNumberToObject(j, "seqlen", (double)o->seqlen);
    cJSON_AddNumberToObject(j, "seconds", secs);
    if (!cli->common.json)
        printf("perplexity %.4f (mean nll %.6f over %lld windows of %lld tokens, %lld "
               "predictions, %.1f s)\n", res->ppl, res->mean_nll, (long long)res->n_windows,
               (long long)o->seqlen, (long long)res->n_scored, secs);
}

/* Planned peak heap of an eval run (an upper bound from shapes, src/model/eval.c's and
 * llama.c's buffers): one batch of windows' activations, one layer's f32 weights, the
 * embedding and head in f32, the forward scratch of a 4096-token (or one-window) chunk with its
 * 16 MiB of logits, one dequantized Linear of a quantized checkpoint, the ids, and the fixed
 * process overhead. */
static size_t eval_plan(const eval_run *r, int64_t seqlen, int64_t max_windows, size_t budget)
{
    const cq_model_config *c = &r->cfg;
    double H = (double)c->hidden, I = (double)c->intermediate, V = (double)c->vocab;
    double qd = (double)(c->n_heads * c->head_dim), kd = (double)(c->n_kv_heads * c->head_dim);
    double windows = (double)(r->n_ids / seqlen), per = (double)seqlen * H * 4.0;
    if (max_windows > 0 && windows > (double)max_windows)
        windows = (double)max_windows;
    double batch = budget ? (double)(budget / (size_t)per) : (double)((size_t)512 << 20) / per;
    batch = batch < 1.0 ? 1.0 : (batch > windows ? windows : batch);
    double lw = 0.0, maxl = 0.0;
    for (int l = 0; l < CQ_LIN_COUNT; l++) {
        int64_t rows, cols;
        cq_linear_shape(c, l, &rows, &cols);
        lw += (double)(rows * cols);
        maxl = (double)(rows * cols) > maxl ? (double)(rows * cols) : maxl;
    }
    double chunk = seqlen > 4096 ? (double)seqlen : 4096.0;
    double b = batch * per + (lw + 2.0 * H) * 4.0 + (2.0 * V * H + H) * 4.0;
    b += (chunk * (3.0 * H + 2.0 * I + qd + 2.0 * kd) + (double)seqlen * (double)seqlen +
          (double)seqlen * (double)c->head_dim) * 4.0 + (double)(16u << 20);
    b += (r->qs ? maxl * 8.0 : 0.0) + (double)r->n_ids * 4.0 + (double)CQ_PLAN_FIXED_OVERHEAD;
    return b >= (double)SIZE_MAX ? SIZE_MAX : (size_t)b;
}

static int64_t default_seqlen(const eval_run *r)
{
    if (r->file_seqlen)
        return r->file_seqlen; /* one window per row of an ids file */
    return r->cfg.max_pos > 0 && r->cfg.max_pos < 2048 ? r->cfg.max_pos : 2048;
}

int cmd_eval(cq_cli *cli, int argc, char **argv, cq_error *err)
{
    int seqlen = 0, max_windows = 0;
    size_t budget = 0, max_memory = 0;
    const cq_option opts[] = {
        OPT_INT(0, "seqlen", &seqlen, "N", "window length (0 = the model's context capped at "
                "2048; an ids file: its row length)", 0, 1 << 20, NULL),
        OPT_INT(0, "max-windows", &max_windows, "N", "evaluate only the first N windows "
                "(0 = all)", 0, 1 << 30, NULL),
        OPT_SIZE(0, "act-memory", &budget, "SIZE", "activation memory per batch of windows "
                 "(0 = 512 MiB)"),
        OPT_SIZE(0, "max-memory", &max_memory, "SIZE",
                 "refuse to start when the planned peak memory exceeds SIZE; 0 = no limit"),
        CQ_OPT_COMMON(&cli->common),
        OPT_END(),
    };
    int n = cli_parse(cli, opts, "cquant eval [--seqlen N] [--max-windows N] [--json] MODEL TEXT",
                      "Perplexity of MODEL (float, or gptq/awq/compressed-tensors quantized) on "
                      "TEXT (.txt/.jsonl, gzipped or not, tokenized without BOS; or a "
                      "calib.bin/safetensors with input_ids): non-overlapping windows, tail "
                      "dropped, ppl = exp(mean nll).", argc, argv, err);
    if (n < 0 || cli->help_shown)
        return n < 0 ? n : CQ_OK;
    int rc = cli_expect_args(n, 2, "MODEL TEXT", err);
    if (rc == CQ_OK && seqlen == 1)
        rc = cq_errorf(err, CQ_E_USAGE, "--seqlen must be at least 2");
    double t0 = cq_par_now();
    eval_run r;
    memset(&r, 0, sizeof r);
    r.path = n > 0 ? argv[0] : "";
    r.seqlen_set = seqlen != 0;
    if (rc == CQ_OK)
        rc = open_model(&r, argv[0], err);
    if (rc == CQ_OK)
        rc = load_ids(&r, argv[1], err);
    cq_eval_opts o = {.seqlen = seqlen ? seqlen : 0, .max_windows = max_windows,
                      .act_budget = budget, .source = layer_source, .source_ctx = &r};
    cq_eval_result res;
    if (rc == CQ_OK) {
        o.seqlen = seqlen ? seqlen : default_seqlen(&r);
        cq_plan p = {.peak_bytes = eval_plan(&r, o.seqlen, max_windows, budget)};
        rc = cq_plan_check_memory(&p, max_memory, err);
    }
    if (rc == CQ_OK) {
        rc = cq_eval_ppl(&r.cfg, r.st, r.ids, r.n_ids, &o, &res, err);
    }
    if (rc == CQ_OK && !isfinite(res.mean_nll))
        rc = cq_errorf(err, CQ_E_NUMERIC, "'%s': the perplexity is not finite (mean nll %g): "
                       "NaN/Inf in the embedding, norm or lm_head weights, or an overflow",
                       argv[0], res.mean_nll);
    if (rc == CQ_OK)
        summary(cli, &r, argv[0], argv[1], &o, &res, cq_par_now() - t0);
    free(r.ids);
    cq_qsource_free(r.qs);
    cq_st_close(r.st);
    return rc;
}
