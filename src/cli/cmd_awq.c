/* cquant awq: calibrate (AutoAWQ concat protocol, notes §F.7), run the AWQ scale/clip search over
 * the whole model (cq_awq_model_run), keep the resulting float weights and norms in memory, then
 * write them through the shared quantization driver with the AWQ group quantizer. */
#include "cli.h"
#include "quantize.h"

#include "cquant/awq.h"
#include "cquant/calib.h"
#include "cquant/dist.h"
#include "cquant/log.h"
#include "cquant/model.h"
#include "cquant/safetensors.h"
#include "cquant/tokenizer.h"
#include "linalg/det.h"

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
    int block, max_docs, max_doc_len;
} calib_opts;

static int read_text(const char *path, char **text, size_t *len, cq_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return cq_errorf_errno(err, CQ_E_IO, "'%s': cannot open", path);
    size_t cap = 1 << 20, n = 0, k;
    char *buf = malloc(cap);
    while (buf && (k = fread(buf + n, 1, cap - n, f)) > 0) {
        n += k;
        if (n == cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) {
                free(buf);
                buf = NULL;
            }
            buf = nb;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf)
        return cq_errorf(err, CQ_E_NOMEM, "'%s': out of memory", path);
    if (bad) {
        free(buf);
        return cq_errorf(err, CQ_E_IO, "'%s': read failed", path);
    }
    *text = buf;
    *len = n;
    return CQ_OK;
}

/* AutoAWQ's calibration from a text file: documents split at blank lines, each tokenized with
 * the tokenizer's specials (BOS), then the concat protocol. */
static int calib_from_text(const char *path, const char *model_dir, const calib_opts *co,
                           cq_calib *out, cq_error *err)
{
    cq_tokenizer *tok = NULL;
    char *text = NULL;
    size_t len = 0;
    cq_doc_span *spans = NULL;
    int64_t n_docs = 0, used = 0;
    int32_t **ids = NULL;
    int64_t *lens = NULL;
    int rc = cq_tokenizer_load(&tok, model_dir, err);
    if (rc == CQ_OK)
        rc = read_text(path, &text, &len, err);
    if (rc == CQ_OK)
        rc = cq_calib_split_docs(text, len, &spans, &n_docs, err);
    if (rc == CQ_OK && (!(ids = calloc((size_t)n_docs + 1, sizeof *ids)) ||
                        !(lens = calloc((size_t)n_docs + 1, sizeof *lens))))
        rc = cq_errorf(err, CQ_E_NOMEM, "out of memory");
    /* Tokenize only as many documents as the protocol can accept. */
    int64_t accepted = 0;
    for (; used < n_docs && rc == CQ_OK && accepted < co->max_docs; used++) {
        rc = cq_tokenizer_encode(tok, text + spans[used].off, spans[used].len, 1, &ids[used],
                                 &lens[used], err);
        accepted += lens[used] > 0 && lens[used] <= co->max_doc_len;
    }
    if (rc == CQ_OK)
        rc = cq_calib_concat((const int32_t *const *)ids, lens, used, co->block, co->max_docs,
                             co->max_doc_len, out, err);
    for (int64_t i = 0; ids && i < used; i++)
        free(ids[i]);
    free(ids);
    free(lens);
    free(spans);
    free(text);
    cq_tokenizer_free(tok);
    if (rc != CQ_OK)
        cq_error_prefix(err, "calibration '%s'", path);
    return rc;
}

static bool ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

typedef struct awq_args {
    cq_quant_job job;
    cq_awq_opts awq;
    calib_opts co;
    const char *calib;
    bool no_clip, no_duo;
    int moe_min_tokens;
    int64_t n_blocks, block_len;   /* the calibration actually used */
} awq_args;

static int add_report(void *ctx, cJSON *cfg, cq_error *err)
{
    awq_args *a = ctx;
    awq_store *s = a->job.source_ctx;
    cJSON *o = cJSON_AddObjectToObject(cfg, "awq");
    cJSON_AddStringToObject(o, "calib", a->calib);
    cJSON_AddNumberToObject(o, "calib_blocks", (double)a->n_blocks);
    cJSON_AddNumberToObject(o, "calib_block_tokens", (double)a->block_len);
    cJSON_AddNumberToObject(o, "n_grid", a->awq.n_grid);
    cJSON_AddBoolToObject(o, "duo_scaling", a->awq.duo_scaling);
    cJSON_AddBoolToObject(o, "clip", a->awq.clip);
    cJSON_AddItemToObject(o, "layers", cJSON_Duplicate(s->layers, 1));
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
    cq_calib cal;
    memset(&cal, 0, sizeof cal);
    int rc = cq_st_open(&st, a->job.model, err);
    if (rc == CQ_OK)
        rc = cq_config_load(cq_st_dir(st), &cfg, err);
    if (rc == CQ_OK)
        rc = cq_config_check(&cfg, st, err);
    if (rc == CQ_OK)
        rc = ends_with(a->calib, ".txt") || ends_with(a->calib, ".jsonl")
                 ? calib_from_text(a->calib, cq_st_dir(st), &a->co, &cal, err)
                 : cq_calib_read(a->calib, cfg.vocab, &cal, err);
    if (rc == CQ_OK && cal.n < 1)
        rc = cq_errorf(err, CQ_E_USAGE, "'%s': no calibration block of %d tokens", a->calib,
                       a->co.block);
    if (rc == CQ_OK) /* refuse --max-memory and a full disk before the search, not after it */
        rc = check_up_front(a, &cfg, &cal, err);
    if (rc == CQ_OK) {
        cq_info("awq: %lld calibration blocks of %lld tokens", (long long)cal.n,
                (long long)cal.seqlen);
        layer_ctx lc = {store, &cfg};
        a->n_blocks = cal.n;
        a->block_len = cal.seqlen;
        /* under mpirun the other ranks search with rank 0 but keep nothing (it writes) */
        rc = cq_awq_model_run(&cfg, st, cal.ids, cal.n, cal.seqlen, &a->job.q, &a->awq,
                              cq_dist_rank() == 0 ? keep_layer : drop_layer, &lc, err);
    }
    cq_calib_release(&cal);
    cq_st_close(st);
    return rc;
}

static cJSON *summary_json(const awq_args *a, const cq_quant_summary *sum)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "command", "awq");
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

int cmd_awq(cq_cli *cli, int argc, char **argv, cq_error *err)
{
    awq_args a;
    memset(&a, 0, sizeof a);
    a.job.argc = cli->full_argc;
    a.job.argv = cli->full_argv;
    a.co = (calib_opts){512, 128, 512};
    cq_qconfig_defaults(&a.job.q);
    a.job.q.bits = 4;
    a.job.q.group_size = 128;
    cq_awq_opts_defaults(&a.awq);
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
        OPT_INT(0, "calib-docs", &a.co.max_docs, "N", "documents accepted (text CALIB)", 1,
                1 << 24, NULL),
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
    a.job.q.sym = false; /* AutoAWQ zero_point: true, the only grid the GEMM layout holds */
    a.awq.clip = !a.no_clip;
    a.awq.duo_scaling = !a.no_duo;
    a.awq.moe_min_tokens = a.moe_min_tokens;
    a.awq.threads = a.job.q.threads;
    cq_det_set_threads(a.job.q.threads); /* BLAS tiles: speed only, never the bytes */
    a.job.quantizer = &cq_quantizer_awq;
    if (!(a.job.layout = cq_layout_find(format)))
        return cq_errorf(err, CQ_E_USAGE, "--format: unknown layout '%s'", format);
    cq_error why = CQ_ERROR_INIT; /* refuse options the layout never holds before the search */
    int64_t probe = (int64_t)a.job.q.group_size * 32;
    if (a.job.layout->check(&a.job.q, probe, probe, &why) != CQ_OK)
        return cq_errorf(err, CQ_E_USAGE, "--format %s: %s", format, why.msg);
    awq_store store = {.layers = cJSON_CreateArray()};
    a.job.source = store_get;
    a.job.source_ctx = &store;
    a.job.report_extra = add_report;
    a.job.report_ctx = &a;
    cq_quant_summary sum;
    if ((rc = run_search(&a, &store, err)) == CQ_OK && cq_dist_rank() == 0 &&
        (rc = cq_quant_run(&a.job, &sum, err)) == CQ_OK) {
        cli->json = summary_json(&a, &sum);
        if (!cli->common.json)
            printf("%s\n", sum.out);
    }
    store_release(&store);
    return rc;
}
