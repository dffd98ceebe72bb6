/* cquant awq: calibrate (AutoAWQ concat protocol, notes §F.7), run the AWQ scale/clip search over
 * the whole model (cq_awq_model_run), keep the resulting float weights and norms in memory, then
 * write them through the shared quantization driver with the AWQ group quantizer. */
#include "cli.h"
#include "gptq_cli.h"
#include "quantize.h"

#include "cquant/awq.h"
#include "cquant/calib.h"
#include "cquant/dist.h"
#include "cquant/log.h"
#include "cquant/model.h"
#include "cquant/safetensors.h"
#include "cquant/tokenizer.h"
#include "linalg/det.h"
#include "cquant/sha256.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The replaced tensors: every Linear weight and the two norms of every layer. */
typedef struct awq_store {
    char **names;
    float **data;
    int64_t n, cap;
    cJSON *layers;   /* per-layer report array */
} awq_store;

static void store_release(awq_store *s)
{
    for (int64_t i = 0; i < s->n; i++) {
        free(s->names[i]);
        free(s->data[i]);
    }
    free(s->names);
    free(s->data);
    cJSON_Delete(s->layers);
}

static int store_put(awq_store *s, const char *name, const float *v, int64_t n, cq_error *err)
{
    if (s->n == s->cap) {
        int64_t cap = s->cap ? 2 * s->cap : 64;
        char **nn = realloc(s->names, (size_t)cap * sizeof *nn);
        if (nn)
            s->names = nn;
        float **nd = nn ? realloc(s->data, (size_t)cap * sizeof *nd) : NULL;
        if (!nd)
            return cq_errorf(err, CQ_E_NOMEM, "out of memory keeping '%s'", name);
        s->data = nd;
        s->cap = cap;
    }
    float *copy = malloc((size_t)n * sizeof *copy);
    char *nm = strdup(name);
    if (!copy || !nm) {
        free(copy);
        free(nm);
        return cq_errorf(err, CQ_E_NOMEM, "out of memory keeping '%s'", name);
    }
    memcpy(copy, v, (size_t)n * sizeof *copy);
    s->names[s->n] = nm;
    s->data[s->n++] = copy;
    return CQ_OK;
}

static const float *store_get(void *ctx, const char *name)
{
    awq_store *s = ctx;
    for (int64_t i = 0; i < s->n; i++)
        if (!strcmp(s->names[i], name))
            return s->data[i];
    return NULL;
}

typedef struct layer_ctx {
    awq_store *store;
    const cq_model_config *cfg;
} layer_ctx;

/* A sparse layer's experts: routed tokens, fallback, down search, clipping (docs/report.md). */
static cJSON *moe_json(const cq_awq_moe_report *m, const cq_model_config *cfg)
{
    cJSON *o = cJSON_CreateObject(), *ex = NULL;
    cJSON_AddNumberToObject(o, "min_tokens", (double)m->min_tokens);
    ex = cJSON_AddArrayToObject(o, "experts");
    for (int64_t s = 0; s < m->n_slots; s++) {
        const cq_awq_expert_report *e = &m->experts[s];
        cJSON *j = cJSON_CreateObject();
        if (s == cfg->n_experts)
            cJSON_AddStringToObject(j, "expert", "shared");
        else
            cJSON_AddNumberToObject(j, "expert", (double)s);
        cJSON_AddNumberToObject(j, "routed_tokens", (double)e->routed_tokens);
        cJSON_AddNumberToObject(j, "stat_tokens", (double)e->stat_tokens);
        cJSON_AddStringToObject(j, "fallback", e->fallback ? "all_tokens" : "none");
        if (e->down_searched) {
            cJSON_AddNumberToObject(j, "down_ratio", e->down_ratio);
            cJSON_AddNumberToObject(j, "down_loss_before", e->down_loss_before);
            cJSON_AddNumberToObject(j, "down_loss_after", e->down_loss_after);
        }
        cJSON *c = cJSON_AddArrayToObject(j, "clip_mean_shrink");
        for (int p = 0; p < 3; p++)
            cJSON_AddItemToArray(c, cJSON_CreateNumber(e->shrink[p]));
        cJSON_AddItemToArray(ex, j);
    }
    return o;
}

static void log_moe(const cq_awq_layer_report *rep)
{
    char line[2048];
    size_t n = 0;
    const cq_awq_moe_report *m = rep->moe;
    for (int64_t s = 0; s < m->n_slots && n < sizeof line; s++) {
        int k = snprintf(line + n, sizeof line - n, " %lld%s", (long long)m->experts[s].routed_tokens,
                         m->experts[s].fallback ? "*" : "");
        n += k > 0 ? (size_t)k : 0;
    }
    cq_info("layer %lld experts, routed calibration tokens:%s (* = fewer than %lld: statistics "
            "from all tokens)", (long long)rep->layer, line, (long long)m->min_tokens);
}

static cJSON *layer_json(const cq_awq_layer_report *rep, const cq_model_config *cfg)
{
    cJSON *o = cJSON_CreateObject(), *groups = cJSON_AddArrayToObject(o, "groups");
    cJSON *clip = cJSON_AddObjectToObject(o, "clip_mean_shrink");
    cJSON_AddNumberToObject(o, "layer", (double)rep->layer);
    for (int g = 0; g < CQ_AWQ_N_GROUPS; g++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "group", cq_awq_group_name(g));
        cJSON_AddBoolToObject(e, "searched", rep->group[g].done);
        if (rep->group[g].done) {
            cJSON_AddNumberToObject(e, "ratio", rep->group[g].ratio);
            cJSON_AddNumberToObject(e, "loss_before", rep->group[g].loss_before);
            cJSON_AddNumberToObject(e, "loss_after", rep->group[g].loss_after);
            cJSON_AddNumberToObject(e, "seconds", rep->group[g].seconds);
        } else if (rep->moe && g == CQ_AWQ_G_DOWN) {
            cJSON_AddStringToObject(e, "reason", "per expert: see moe.experts");
        } else {
            bool vo = g == CQ_AWQ_G_O;
            cJSON_AddStringToObject(e, "reason", vo ? "v_proj and o_proj shapes differ (GQA)"
                                                   : "post-LN: the input norm also feeds the "
                                                     "residual stream");
        }
        cJSON_AddItemToArray(groups, e);
    }
    for (int l = 0; l < CQ_LIN_COUNT; l++)
        if (rep->lin[l].clipped)
            cJSON_AddNumberToObject(clip, cq_arch_linear_name(cfg, l), rep->lin[l].mean_shrink);
    if (rep->moe)
        cJSON_AddItemToObject(o, "moe", moe_json(rep->moe, cfg));
    return o;
}

static void log_layer(const cq_awq_layer_report *rep)
{
    if (rep->moe)
        log_moe(rep);
    for (int g = 0; g < CQ_AWQ_N_GROUPS; g++) {
        if (!rep->group[g].done) {
            cq_info("layer %lld %-16s skipped (no foldable input: v/o shapes differ or post-LN)",
                    (long long)rep->layer, cq_awq_group_name(g));
            continue;
        }
        cq_info("layer %lld %-16s ratio %.2f loss %.4g -> %.4g (%.2fs)", (long long)rep->layer,
                cq_awq_group_name(g), rep->group[g].ratio, rep->group[g].loss_before,
                rep->group[g].loss_after, rep->group[g].seconds);
    }
    for (int l = 0; l < CQ_LIN_COUNT; l++)
        if (rep->lin[l].clipped)
            cq_info("layer %lld %-16s clip mean max_val/max|w| %.4f", (long long)rep->layer,
                    cq_linear_name(l), rep->lin[l].mean_shrink);
}

static int keep_tensor(void *ctx, const cq_layer_tensor *t, cq_error *err)
{
    int64_t n = t->ndim == 2 ? t->shape[0] * t->shape[1] : t->shape[0];
    return store_put(ctx, t->name, t->data, n, err);
}

/* Every float tensor of the layer: the scaled Linears, and the norms and biases the scales were
 * folded into (v's and fc1's bias, LayerNorm biases). */
static int keep_layer(void *ctx, int64_t layer, const cq_layer_weights *w,
                      const cq_awq_layer_report *rep, cq_error *err)
{
    layer_ctx *c = ctx;
    int rc = cq_layer_foreach(c->cfg, (cq_layer_weights *)w, layer, keep_tensor, c->store, err);
    log_layer(rep);
    if (rc == CQ_OK)
        cJSON_AddItemToArray(c->store->layers, layer_json(rep, c->cfg));
    return rc;
}

typedef struct calib_opts {
    int block, max_docs, blocks;
    const char *mode;   /* "concat" (AutoAWQ exactly, default) | "split" */
} calib_opts;

/* Text calibration through cq_calib_from_text: split (documents in order with a BOS each,
 * none skipped, blocks of `block` tokens, the first `blocks`) or concat (AutoAWQ: documents
 * over `block` tokens skipped, the first max_docs accepted). */
static int calib_from_text(const char *path, const char *model_dir, const calib_opts *co,
                           cq_calib *out, cq_error *err)
{
    cq_calib_text_opts o = cq_calib_text_defaults();
    bool split = !strcmp(co->mode, "split");
    o.mode = split ? CQ_CALIB_SPLIT : CQ_CALIB_CONCAT;
    o.n = split ? co->blocks : co->max_docs;
    o.seqlen = co->block;
    o.bos = 1;
    const char *paths[1] = {path};
    int rc = cq_calib_from_text(model_dir, paths, 1, &o, out, err);
    if (rc != CQ_OK && !strstr(err->msg, path))
        cq_error_prefix(err, "calibration '%s'", path);
    return rc;
}

typedef struct awq_args {
    cq_quant_job job;
    cq_awq_opts awq;
    calib_opts co;
    const char *calib;
    bool no_clip, no_duo;
    int moe_min_tokens;
    bool then_gptq;                /* GPTQ rounding of the scaled weights (gptq_produce) */
    bool no_ts;
    int sym;                       /* --then-gptq grid: 0 asym (default), 1 sym */
    cq_gptq_model_opts mo;
    cq_calib cal;                  /* kept for the GPTQ stage */
    const char *gptq_calib;        /* --gptq-calib: the GPTQ stage's own CALIB */
    cq_calib gcal;
    int64_t n_blocks, block_len;   /* the calibration actually used */
} awq_args;

static int add_report(void *ctx, cJSON *cfg, cq_error *err)
{
    awq_args *a = ctx;
    awq_store *s = a->job.source_ctx;
    cJSON *o = cJSON_AddObjectToObject(cfg, "awq");
    cJSON_AddStringToObject(o, "calib", a->calib);
    cJSON_AddStringToObject(o, "calib_mode", a->cal.mode[0] ? a->cal.mode : "ids");
    cJSON_AddNumberToObject(o, "calib_blocks", (double)a->n_blocks);
    cJSON_AddNumberToObject(o, "calib_block_tokens", (double)a->block_len);
    cJSON_AddNumberToObject(o, "n_grid", a->awq.n_grid);
    cJSON_AddBoolToObject(o, "duo_scaling", a->awq.duo_scaling);
    cJSON_AddBoolToObject(o, "clip", a->awq.clip);
    cJSON_AddItemToObject(o, "layers", cJSON_Duplicate(s->layers, 1));
    if (a->then_gptq) {
        /* the per-Linear GPTQ losses are in the report's layer entries (method awq+gptq) */
        cJSON *g = cJSON_AddObjectToObject(cfg, "gptq");
        const cq_calib *gc = a->gptq_calib ? &a->gcal : &a->cal;
        cJSON_AddStringToObject(g, "calib", a->gptq_calib ? a->gptq_calib : "the awq blocks");
        cJSON_AddNumberToObject(g, "samples", (double)gc->n);
        cJSON_AddNumberToObject(g, "seqlen", (double)gc->seqlen);
        cJSON_AddBoolToObject(g, "true_sequential", a->mo.true_sequential);
        cJSON_AddBoolToObject(g, "act_order", a->job.q.act_order);
        cJSON_AddBoolToObject(g, "static_groups", a->job.q.static_groups);
        cJSON_AddNumberToObject(g, "damp", a->job.q.damp);
        cJSON_AddNumberToObject(g, "block_size", a->job.q.block_size);
    }
    (void)err;
    return CQ_OK;
}

/* The search's plan plus the store (every Linear and norm of the model in f32) joins the
 * driver's plan; a check-only run of the driver then tests memory and disk. */
static int check_up_front(awq_args *a, const cq_model_config *cfg, const cq_calib *cal,
                          cq_error *err)
{
    size_t store = 0;
    for (int l = 0; l < CQ_LIN_COUNT; l++) {
        int64_t rows, cols;
        cq_linear_shape(cfg, l, &rows, &cols);
        store += (size_t)(rows * cols);
    }
    store = (store + 2 * (size_t)cfg->hidden) * sizeof(float) * (size_t)cfg->n_layers;
    size_t search = cq_awq_model_plan(cfg, cal->n, cal->seqlen);
    a->job.producer_peak = search > SIZE_MAX - store ? SIZE_MAX : search + store;
    cq_quant_summary sum;
    a->job.check_only = true;
    int rc = cq_quant_run(&a->job, &sum, err);
    a->job.check_only = false;
    return rc;
}

static int drop_layer(void *ctx, int64_t layer, const cq_layer_weights *w,
                      const cq_awq_layer_report *rep, cq_error *err)
{
    (void)ctx;
    (void)layer;
    (void)w;
    (void)rep;
    (void)err;
    return CQ_OK;
}

/* Calibrate and search: fills the store with every layer's final float tensors. */
static int run_search(awq_args *a, awq_store *store, cq_error *err)
{
    cq_st_model *st = NULL;
    cq_model_config cfg;
    cq_calib *cal = &a->cal;
    int rc = cq_st_open(&st, a->job.model, err);
    if (rc == CQ_OK)
        rc = cq_config_load(cq_st_dir(st), &cfg, err);
    if (rc == CQ_OK)
        rc = cq_config_check(&cfg, st, err);
    if (rc == CQ_OK)
        rc = !cq_calib_is_safetensors(a->calib)
                 ? calib_from_text(a->calib, cq_st_dir(st), &a->co, cal, err)
                 : cq_calib_read(a->calib, cfg.vocab, cal, err);
    if (rc == CQ_OK && cal->n < 1)
        rc = cq_errorf(err, CQ_E_USAGE, "'%s': no calibration block of %d tokens", a->calib,
                       a->co.block);
    if (rc == CQ_OK) /* refuse --max-memory and a full disk before the search, not after it */
        rc = check_up_front(a, &cfg, cal, err);
    if (rc == CQ_OK) {
        cq_info("awq: %lld calibration blocks of %lld tokens", (long long)cal->n,
                (long long)cal->seqlen);
        layer_ctx lc = {store, &cfg};
        a->n_blocks = cal->n;
        a->block_len = cal->seqlen;
        /* under mpirun the other ranks search with rank 0 but keep nothing (it writes) */
        rc = cq_awq_model_run(&cfg, st, cal->ids, cal->n, cal->seqlen, &a->job.q, &a->awq,
                              cq_dist_rank() == 0 ? keep_layer : drop_layer, &lc, err);
    }
    if (rc == CQ_OK && a->gptq_calib) /* as cquant gptq: calib.bin, or text -> random windows */
        rc = cq_calib_load(cq_st_dir(st), &a->gptq_calib, 1, NULL, &a->gcal, err);
    if (rc == CQ_OK && a->then_gptq) {
        const cq_calib *gc = a->gptq_calib ? &a->gcal : cal;
        cq_gptq_plan pl;
        cq_gptq_model_plan(&cfg, gc->n, gc->seqlen, &a->mo, &pl);
        a->job.producer_peak = pl.total;
    }
    cq_st_close(st);
    return rc;
}

static cJSON *summary_json(const awq_args *a, const cq_quant_summary *sum)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "command", "awq");
    cJSON_AddBoolToObject(o, "then_gptq", a->then_gptq);
    cJSON_AddStringToObject(o, "model", a->job.model);
    cJSON_AddStringToObject(o, "calib", a->calib);
    cJSON_AddNumberToObject(o, "calib_blocks", (double)a->n_blocks);
    cJSON_AddNumberToObject(o, "calib_block_tokens", (double)a->block_len);
    cJSON_AddStringToObject(o, "output", sum->out);
    cJSON_AddStringToObject(o, "report", sum->report);
    cJSON_AddStringToObject(o, "format", a->job.layout->name);
    cJSON_AddNumberToObject(o, "bits", a->job.q.bits);
    cJSON_AddNumberToObject(o, "group_size", a->job.q.group_size);
    cJSON_AddNumberToObject(o, "quantized", (double)sum->quantized);
    cJSON_AddNumberToObject(o, "seconds", sum->seconds);
    return o;
}

/* The GPTQ stage: gptq_produce over the model whose layers the store replaces, on the AWQ
 * calibration blocks (borrowed from a->cal). */
static void then_gptq_args(awq_args *a, gptq_args *g)
{
    memset(g, 0, sizeof *g);
    g->job = a->job;
    g->job.produce = gptq_produce;
    g->job.produce_ctx = g;
    g->mo = a->mo;
    g->calib_path = a->gptq_calib ? a->gptq_calib : a->calib;
    g->calib = a->gptq_calib ? a->gcal : a->cal;
    g->calib_kind = a->gptq_calib ? "gptq-calib" : "awq";
    g->method = "awq+gptq";
    cq_sha256_hex(g->calib.ids, (size_t)(g->calib.n * g->calib.seqlen) * sizeof(int32_t),
                  g->calib_digest);
}

/* Options into the job; refuse combinations before any work. */
static int settle_args(awq_args *a, const char *format, cq_error *err)
{
    a->job.q.sym = a->sym == 1; /* AutoAWQ zero_point: true, the only grid GEMM holds */
    if (a->sym == 1 && !a->then_gptq)
        return cq_errorf(err, CQ_E_USAGE, "--sym: only with --then-gptq (the AWQ quantizer "
                         "has a zero point)");
    if ((a->job.q.act_order || a->job.q.static_groups || a->no_ts || a->gptq_calib) &&
        !a->then_gptq)
        return cq_errorf(err, CQ_E_USAGE, "--act-order, --static-groups, --gptq-calib, "
                         "--no-true-sequential: only with --then-gptq");
    /* Clipping also before GPTQ: measured better on cq-llama-16m (docs/awq.md). */
    a->awq.clip = !a->no_clip;
    a->mo.true_sequential = !a->no_ts;
    a->awq.duo_scaling = !a->no_duo;
    a->awq.threads = a->job.q.threads;
    a->awq.moe_min_tokens = a->moe_min_tokens;
    a->mo.moe_min_tokens = a->moe_min_tokens;
    cq_det_set_threads(a->job.q.threads); /* BLAS tiles: speed only, never the bytes */
    if (a->then_gptq && cq_dist_size() > 1)
        return cq_errorf(err, CQ_E_USAGE, "--then-gptq under mpirun is not supported (run one "
                         "process)");
    /* GPTQ's quantizer under the name the report, config and default output carry */
    static cq_quantizer awq_gptq;
    awq_gptq = cq_quantizer_gptq;
    awq_gptq.name = "awq+gptq";
    a->job.quantizer = a->then_gptq ? &awq_gptq : &cq_quantizer_awq;
    int rc = a->then_gptq ? cq_qconfig_check(&a->job.q, err) : CQ_OK;
    if (rc != CQ_OK)
        return rc;
    if (!(a->job.layout = cq_layout_find(format)))
        return cq_errorf(err, CQ_E_USAGE, "--format: unknown layout '%s'", format);
    cq_error why = CQ_ERROR_INIT; /* refuse options the layout never holds before the search */
    int64_t probe = (int64_t)a->job.q.group_size * 32;
    if (a->job.layout->check(&a->job.q, probe, probe, &why) != CQ_OK)
        return cq_errorf(err, CQ_E_USAGE, "--format %s: %s", format, why.msg);
    return CQ_OK;
}

int cmd_awq(cq_cli *cli, int argc, char **argv, cq_error *err)
{
    awq_args a;
    memset(&a, 0, sizeof a);
    a.job.argc = cli->full_argc;
    a.job.argv = cli->full_argv;
    a.co = (calib_opts){512, 128, 32, "concat"};
    cq_qconfig_defaults(&a.job.q);
    a.job.q.bits = 4;
    a.job.q.group_size = 128;
    cq_awq_opts_defaults(&a.awq);
    cq_gptq_model_opts_defaults(&a.mo);
    const char *format = "awq";
    bool restart = false; /* --resume: nothing to resume, see its help */
    const cq_option opts[] = {
        OPT_INT('b', "bits", &a.job.q.bits, "N", "bits per weight (the awq format holds 4)", 2,
                8, "2|3|4|8"),
        OPT_INT('g', "group", &a.job.q.group_size, "N", "input columns per scale group", 1,
                1 << 30, NULL),
        OPT_INT(0, "grid", &a.awq.n_grid, "N", "scale ratios searched (i/N, i < N)", 1, 1000,
                NULL),
        OPT_BOOL(0, "no-clip", &a.no_clip, "skip the clipping search"),
        OPT_BOOL(0, "no-duo", &a.no_duo, "scales from activations only (llm-awq), not AutoAWQ's "
                 "duo scaling"),
        OPT_INT(0, "moe-min-tokens", &a.moe_min_tokens, "N",
                "MoE: experts routed fewer calibration tokens take their statistics from all "
                "tokens (0 = hidden/8)", 0, INT32_MAX, NULL),
        OPT_INT(0, "calib-block", &a.co.block, "N", "tokens per calibration block (text CALIB)",
                16, 1 << 20, NULL),
        OPT_STRING(0, "calib-mode", &a.co.mode, "M",
                   "text CALIB: concat = AutoAWQ (documents over a block skipped, default); "
                   "split = blocks of all documents, long ones kept", "concat|split"),
        OPT_INT(0, "calib-blocks", &a.co.blocks, "N", "split: blocks used (text CALIB)", 1,
                1 << 24, NULL),
        OPT_INT(0, "calib-docs", &a.co.max_docs, "N", "concat: documents accepted (text CALIB)",
                1, 1 << 24, NULL),
        OPT_BOOL(0, "then-gptq", &a.then_gptq,
                 "round the scaled weights with GPTQ (Hessians from the scaled model on the "
                 "same calibration), not the AWQ quantizer"),
        OPT_SETINT(0, "sym", &a.sym, 1, "--then-gptq: symmetric grid (not for --format awq)"),
        OPT_BOOL(0, "act-order", &a.job.q.act_order,
                 "--then-gptq: columns by decreasing Hessian diagonal"),
        OPT_BOOL(0, "static-groups", &a.job.q.static_groups,
                 "--then-gptq: fit group parameters before the column loop"),
        OPT_DOUBLE(0, "damp", &a.job.q.damp, "F",
                   "--then-gptq: damping, a fraction of mean(diag H)"),
        OPT_INT(0, "block-size", &a.job.q.block_size, "N", "--then-gptq: lazy-update block width",
                1, 1 << 20, NULL),
        OPT_STRING(0, "gptq-calib", &a.gptq_calib, "CALIB",
                   "--then-gptq: GPTQ's own calibration, as cquant gptq's CALIB (default: "
                   "the AWQ blocks)", NULL),
        OPT_BOOL(0, "no-true-sequential", &a.no_ts,
                 "--then-gptq: one Hessian pass per layer instead of one per Linear group"),
        OPT_INT(0, "threads", &a.job.q.threads, "N", "worker threads (0 = all CPUs)", 0, 1024,
                NULL),
        OPT_STRING('f', "format", &format, "F", "output layout", "awq|gptq|ct"),
        OPT_SIZE(0, "max-shard-size", &a.job.max_shard_bytes, "SIZE",
                 "split output files above SIZE (e.g. 5GB); 0 = one file"),
        OPT_BOOL(0, "force", &a.job.force, "replace an existing output folder"),
        OPT_BOOL(0, "resume", &restart, "after a killed run: accepted as for gptq; awq keeps no "
                 "per-layer state, so the run starts over (the stale temporary is removed)"),
        OPT_STRING(0, "report", &a.job.report_path, "FILE",
                   "write the JSON report to FILE (default OUT/cquant-report.json)", NULL),
        OPT_SIZE(0, "max-memory", &a.job.max_memory, "SIZE",
                 "refuse to start when the planned peak memory exceeds SIZE; 0 = no limit"),
        OPT_STRING('o', "output", &a.job.out, "OUT", "output folder", NULL),
        CQ_OPT_COMMON(&cli->common),
        OPT_END(),
    };
    int n = cli_parse(cli, opts, "cquant awq [options] [-o OUT] MODEL CALIB",
                      "AWQ: activation-aware scales and clipping (AutoAWQ), then 4-bit groups. "
                      "CALIB: a calib.bin (input_ids) or a .txt file (blank-line documents)",
                      argc, argv, err);
    if (n < 0 || cli->help_shown)
        return n < 0 ? n : CQ_OK;
    int rc = cli_expect_args(n, 2, "MODEL CALIB", err);
    if (rc != CQ_OK)
        return rc;
    a.job.model = argv[0];
    a.calib = argv[1];
    if ((rc = settle_args(&a, format, err)) != CQ_OK)
        return rc;
    awq_store store = {.layers = cJSON_CreateArray()};
    a.job.source = store_get;
    a.job.source_ctx = &store;
    a.job.report_extra = add_report;
    a.job.report_ctx = &a;
    cq_quant_summary sum;
    gptq_args g;
    if ((rc = run_search(&a, &store, err)) == CQ_OK && cq_dist_rank() == 0 && a.then_gptq) {
        then_gptq_args(&a, &g);
        rc = cq_quant_run(&g.job, &sum, err);
    } else if (rc == CQ_OK && cq_dist_rank() == 0) {
        rc = cq_quant_run(&a.job, &sum, err);
    }
    if (rc == CQ_OK && cq_dist_rank() == 0) {
        cli->json = summary_json(&a, &sum);
        if (!cli->common.json)
            printf("%s\n", sum.out);
    }
    cq_calib_release(&a.cal);
    cq_calib_release(&a.gcal);
    store_release(&store);
    return rc;
}
