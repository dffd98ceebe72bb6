/* cquant gptq MODEL CALIB: options and the calibration input. CALIB is sniffed:
 *   safetensors with input_ids          calibration windows (cquant calib.bin), used as given
 *   safetensors with cquant_stats       a statistics file (<linear>.hessian): no forward pass
 *   anything else                       text (.txt, .jsonl, gzipped or not), turned into GPTQ
 *                                       random windows exactly as `cquant calib` does
 * The work itself is gptq_produce.c inside the shared driver (quantize.c). */
#include "cli.h"
#include "gptq_cli.h"

#include "cquant/dist.h"
#include "cquant/log.h"
#include "cquant/model.h"
#include "cquant/sha256.h"
#include "cquant/stats.h"
#include "linalg/det.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Text (.txt / .jsonl, gzipped or not): the `cquant calib` default protocol (GPTQ random
 * windows of one token stream, no BOS, seed --seed), so a text CALIB and the calib.bin that
 * `cquant calib` makes from it give the same bytes. */
static int calib_from_text(gptq_args *a, const char *model_dir, cq_error *err)
{
    const char *paths[1] = {a->calib_path};
    cq_calib_text_opts o = cq_calib_text_defaults();
    o.n = a->samples;
    o.seqlen = a->seqlen;
    o.seed = (uint64_t)a->seed;
    size_t n = strlen(a->calib_path);
    a->calib_kind = (n > 6 && !strcmp(a->calib_path + n - 6, ".jsonl")) ||
                            (n > 9 && !strcmp(a->calib_path + n - 9, ".jsonl.gz"))
                        ? "jsonl"
                        : "text";
    return cq_calib_from_text(model_dir, paths, 1, &o, &a->calib, err);
}

/* A calib.bin as given; --samples keeps the first N windows, --seqlen the first S tokens. */
static int calib_from_ids(gptq_args *a, const char *model_dir, int64_t vocab, bool samples_set,
                          bool seqlen_set, cq_error *err)
{
    a->calib_kind = "calib.bin";
    int rc = cq_calib_read(a->calib_path, vocab, &a->calib, err);
    if (rc != CQ_OK)
        return rc;
    cq_calib_check_tokenizer(&a->calib, a->calib_path, model_dir);
    cq_calib *c = &a->calib;
    int64_t n = samples_set && a->samples < c->n ? a->samples : c->n;
    int64_t S = seqlen_set && a->seqlen < c->seqlen ? a->seqlen : c->seqlen;
    for (int64_t i = 0; i < n && S != c->seqlen; i++)
        memmove(c->ids + i * S, c->ids + i * c->seqlen, (size_t)S * sizeof *c->ids);
    c->n = n;
    c->seqlen = S;
    return CQ_OK;
}

static int open_stats(gptq_args *a, cq_error *err)
{
    a->calib_kind = "statistics";
    return cq_stats_check(a->stats, a->calib_path, &a->stats_samples, err);
}

static int load_calibration(gptq_args *a, bool samples_set, bool seqlen_set, cq_error *err)
{
    cq_st_model *m = NULL;
    cq_model_config cfg;
    int rc = cli_input_file(a->calib_path, "calibration", err);
    if (rc != CQ_OK)
        return rc;
    bool ids = cq_calib_is_safetensors(a->calib_path);
    if (ids) {
        if ((rc = cq_st_open(&a->stats, a->calib_path, err)) != CQ_OK)
            return rc;
        if (cq_stats_is(a->stats))
            return open_stats(a, err);
        if (!cq_st_find(a->stats, "input_ids"))
            return cq_errorf(err, CQ_E_FORMAT,
                             "'%s': neither calibration ids (input_ids) nor statistics "
                             "(cquant_stats metadata)", a->calib_path);
        cq_st_close(a->stats);
        a->stats = NULL;
    }
    if ((rc = cq_st_open(&m, a->job.model, err)) != CQ_OK)
        return rc;
    if ((rc = cq_config_load(cq_st_dir(m), &cfg, err)) == CQ_OK) {
        if (!seqlen_set)
            a->seqlen = 0; /* the protocol's default: context length capped at 2048 */
        if (!samples_set)
            a->samples = 128;
        rc = ids ? calib_from_ids(a, cq_st_dir(m), cfg.vocab, samples_set, seqlen_set, err)
                 : calib_from_text(a, cq_st_dir(m), err);
    }
    cq_st_close(m);
    if (rc == CQ_OK)
        cq_sha256_hex(a->calib.ids, (size_t)(a->calib.n * a->calib.seqlen) * sizeof(int32_t),
                      a->calib_digest);
    return rc;
}

static int add_report(void *ctx, cJSON *cfg, cq_error *err)
{
    gptq_args *a = ctx;
    (void)err;
    cJSON *o = cJSON_AddObjectToObject(cfg, "gptq");
    a->report_section = o;
    cJSON_AddStringToObject(o, "calib", a->calib_path);
    cJSON_AddStringToObject(o, "calib_kind", a->calib_kind);
    if (a->stats) {
        cJSON_AddNumberToObject(o, "n_samples", (double)a->stats_samples);
    } else {
        cJSON_AddNumberToObject(o, "samples", (double)a->calib.n);
        cJSON_AddNumberToObject(o, "seqlen", (double)a->calib.seqlen);
        cJSON_AddStringToObject(o, "calib_sha256", a->calib_digest);
        cJSON_AddBoolToObject(o, "true_sequential", a->mo.true_sequential);
    }
    cJSON_AddBoolToObject(o, "act_order", a->job.q.act_order);
    cJSON_AddBoolToObject(o, "static_groups", a->job.q.static_groups);
    cJSON_AddNumberToObject(o, "damp", a->job.q.damp);
    cJSON_AddNumberToObject(o, "block_size", a->job.q.block_size);
    return CQ_OK;
}

static cJSON *summary_json(const gptq_args *a, const cq_quant_summary *sum)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "command", "gptq");
    cJSON_AddStringToObject(o, "model", a->job.model);
    cJSON_AddStringToObject(o, "calib", a->calib_path);
    cJSON_AddStringToObject(o, "output", sum->out);
    cJSON_AddStringToObject(o, "report", sum->report);
    cJSON_AddStringToObject(o, "format", a->job.layout->name);
    cJSON_AddNumberToObject(o, "bits", a->job.q.bits);
    cJSON_AddNumberToObject(o, "group_size", a->job.q.group_size);
    cJSON_AddBoolToObject(o, "sym", a->job.q.sym);
    cJSON_AddNumberToObject(o, "quantized", (double)sum->quantized);
    cJSON_AddNumberToObject(o, "skipped", (double)sum->skipped);
    cJSON_AddNumberToObject(o, "seconds", sum->seconds);
    return o;
}

/* The model's config.json (the folder that holds MODEL's tensors), read for planning. */
static int load_model_config(const gptq_args *a, cq_model_config *cfg, cq_error *err)
{
    cq_st_model *m = NULL;
    int rc = cq_st_open(&m, a->job.model, err);
    if (rc == CQ_OK)
        rc = cq_config_load(cq_st_dir(m), cfg, err);
    cq_st_close(m);
    return rc;
}

/* The pipeline's plan joins the driver's --max-memory check (the activations count unless
 * they live in a mapped file). */
static int set_producer_peak(gptq_args *a, cq_error *err)
{
    cq_model_config cfg;
    cq_gptq_plan pl;
    if (a->stats)
        return CQ_OK;
    int rc = load_model_config(a, &cfg, err);
    if (rc != CQ_OK)
        return rc;
    cq_gptq_model_plan(&cfg, a->calib.n, a->calib.seqlen, &a->mo, &pl);
    a->job.producer_peak = pl.total - (a->offload_dir ? pl.activations : 0);
    return CQ_OK;
}

/* --plan: the planned peak of the pipeline, by part, on stdout (or --json). */
static int print_plan(gptq_args *a, cq_cli *cli, cq_error *err)
{
    cq_model_config cfg;
    cq_gptq_plan pl;
    memset(&pl, 0, sizeof pl);
    int rc = load_model_config(a, &cfg, err);
    if (rc != CQ_OK)
        return rc;
    if (!a->stats)
        cq_gptq_model_plan(&cfg, a->calib.n, a->calib.seqlen, &a->mo, &pl);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "layers", (double)cfg.n_layers);
    cJSON_AddNumberToObject(o, "samples", (double)a->calib.n);
    cJSON_AddNumberToObject(o, "seqlen", (double)a->calib.seqlen);
    cJSON_AddNumberToObject(o, "activations", (double)pl.activations);
    cJSON_AddNumberToObject(o, "layer_weights", (double)pl.layer_weights);
    cJSON_AddNumberToObject(o, "hessians", (double)pl.hessians);
    cJSON_AddNumberToObject(o, "gptq_work", (double)pl.gptq_work);
    cJSON_AddNumberToObject(o, "forward", (double)pl.forward);
    cJSON_AddNumberToObject(o, "total", (double)pl.total);
    cJSON_AddBoolToObject(o, "activations_mapped", a->offload_dir != NULL);
    if (cli->common.json) {
        cli->json = o;
        return CQ_OK;
    }
    const double M = 1024.0 * 1024.0;
    double heap = (double)(pl.total - (a->offload_dir ? pl.activations : 0));
    printf("planned peak %.0f MiB of heap%s: activations %.0f MiB%s, layer weights %.0f MiB, "
           "hessians %.0f MiB, gptq work %.0f MiB, forward scratch %.0f MiB (%lld layers; "
           "independent of the layer count)\n", heap / M,
           a->offload_dir ? " + the mapped activations" : "", (double)pl.activations / M,
           a->offload_dir ? " (mapped file)" : "", (double)pl.layer_weights / M,
           (double)pl.hessians / M, (double)pl.gptq_work / M, (double)pl.forward / M,
           (long long)cfg.n_layers);
    cJSON_Delete(o);
    return CQ_OK;
}

static void args_release(gptq_args *a)
{
    cq_calib_release(&a->calib);
    cq_st_close(a->stats);
    cq_strlist_release(&a->job.include);
    cq_strlist_release(&a->job.exclude);
}

int cmd_gptq(cq_cli *cli, int argc, char **argv, cq_error *err)
{
    gptq_args a;
    memset(&a, 0, sizeof a);
    a.job.argc = cli->full_argc;
    a.job.argv = cli->full_argv;
    cq_qconfig_defaults(&a.job.q);
    a.job.q.bits = 4;
    a.job.q.group_size = 128;
    cq_gptq_model_opts_defaults(&a.mo);
    const char *format = "gptq";
    int sym = 1;
    bool plan_only = false;
    a.samples = -1;
    a.seqlen = -1;
    int chunk_tokens = 0;
    const cq_option opts[] = {
        OPT_INT('b', "bits", &a.job.q.bits, "N", "bits per weight", 2, 8, "2|3|4|8"),
        OPT_INT('g', "group", &a.job.q.group_size, "N",
                "input columns per scale group; -1 = one group per output row", -1, 1 << 30,
                NULL),
        OPT_SETINT(0, "sym", &sym, 1, "symmetric grid, zero = 2^(bits-1) (default)"),
        OPT_SETINT(0, "asym", &sym, 0,
                   "asymmetric grid (the gptq format then writes gptq_v2: GPTQModel only)"),
        OPT_BOOL(0, "act-order", &a.job.q.act_order,
                 "visit columns by decreasing Hessian diagonal (desc_act)"),
        OPT_BOOL(0, "static-groups", &a.job.q.static_groups,
                 "fit group parameters before the column loop"),
        OPT_DOUBLE(0, "damp", &a.job.q.damp, "F", "damping, a fraction of mean(diag H)"),
        OPT_INT(0, "block-size", &a.job.q.block_size, "N", "lazy-update block width", 1,
                1 << 20, NULL),
        OPT_BOOL(0, "mse", &a.job.q.mse, "search a clipping ratio minimizing the error"),
        OPT_BOOL(0, "true-sequential", &a.mo.true_sequential,
                 "re-collect each Linear group's inputs after quantizing the earlier groups "
                 "of the layer (default on; off: one pass per layer)"),
        OPT_INT(0, "moe-min-tokens", &a.moe_min_tokens, "N",
                "MoE: experts routed fewer calibration tokens get the Hessian of all tokens "
                "(0 = hidden/8)", 0, INT32_MAX, NULL),
        OPT_INT(0, "samples", &a.samples, "N",
                "calibration windows (text: default 128; calib.bin: the first N)", 1, 1 << 24,
                NULL),
        OPT_INT(0, "seqlen", &a.seqlen, "N",
                "tokens per window (text: default the context length capped at 2048)", 1,
                1 << 20, NULL),
        OPT_INT(0, "seed", &a.seed, "S", "window selection seed (text CALIB)", 0, INT32_MAX,
                NULL),
        OPT_INT(0, "chunk-tokens", &chunk_tokens, "N",
                "tokens per forward chunk = Hessian block (default 4096; at least one window)",
                0, 1 << 24, NULL),
        OPT_STRING(0, "offload-dir", &a.offload_dir, "DIR",
                   "keep the calibration activations in a memory-mapped file in DIR", NULL),
        OPT_BOOL(0, "plan", &plan_only,
                 "print the planned peak memory for MODEL and CALIB and exit (writes nothing)"),
        OPT_SIZE(0, "max-memory", &a.job.max_memory, "SIZE",
                 "refuse to start when the planned peak memory exceeds SIZE; 0 = no limit"),
        OPT_BOOL(0, "resume", &a.job.resume,
                 "continue a killed run from its last finished layer (same inputs and options)"),
        OPT_INT(0, "threads", &a.job.q.threads, "N", "worker threads (0 = all CPUs)", 0, 1024,
                NULL),
        OPT_STRING('f', "format", &format, "F", "output layout", "gptq|awq|ct"),
        OPT_SIZE(0, "max-shard-size", &a.job.max_shard_bytes, "SIZE",
                 "split output files above SIZE (e.g. 5GB, 500MB); 0 = one file"),
        OPT_LIST(0, "include", &a.job.include, "GLOB",
                 "quantize only tensors/modules matching GLOB (repeatable)"),
        OPT_LIST(0, "exclude", &a.job.exclude, "GLOB", "keep matching tensors float (repeatable)"),
        OPT_BOOL(0, "strict", &a.job.strict,
                 "fail on a Linear the format cannot hold or (statistics CALIB) without a "
                 "Hessian, instead of keeping it float / using RTN"),
        OPT_BOOL(0, "force", &a.job.force, "replace an existing output folder"),
        OPT_STRING(0, "report", &a.job.report_path, "FILE",
                   "write the JSON report to FILE (default OUT/cquant-report.json)", NULL),
        OPT_STRING('o', "output", &a.job.out, "OUT",
                   "output folder (default <model>-gptq-w<bits>g<group> beside MODEL)", NULL),
        CQ_OPT_COMMON(&cli->common),
        OPT_END(),
    };
    int n = cli_parse(cli, opts, "cquant gptq [options] [-o OUT] MODEL CALIB",
                      "GPTQ: layer-by-layer error-compensating quantization on calibration "
                      "data. CALIB: a calib.bin (input_ids), text (.txt, .jsonl, .gz) or a "
                      "statistics file of Hessians (docs/stats.md)",
                      argc, argv, err);
    if (n < 0 || cli->help_shown) {
        args_release(&a);
        return n < 0 ? n : CQ_OK;
    }
    int rc = cli_expect_args(n, 2, "MODEL CALIB", err);
    bool samples_set = a.samples > 0, seqlen_set = a.seqlen > 0;
    a.job.model = argv[0];
    a.calib_path = n >= 2 ? argv[1] : NULL;
    a.mo.moe_min_tokens = a.moe_min_tokens;
    a.mo.chunk_tokens = chunk_tokens;
    a.job.q.sym = sym != 0;
    cq_det_set_threads(a.job.q.threads); /* BLAS tiles: speed only, never the bytes */
    a.job.quantizer = &cq_quantizer_gptq;
    a.job.produce = gptq_produce;
    a.job.produce_ctx = &a;
    a.job.report_extra = add_report;
    a.job.report_ctx = &a;
    if (rc == CQ_OK && !(a.job.layout = cq_layout_find(format)))
        rc = cq_errorf(err, CQ_E_USAGE, "--format: unknown layout '%s'", format);
    if (rc == CQ_OK)
        rc = cq_qconfig_check(&a.job.q, err);
    struct stat sb;
    if (rc == CQ_OK && a.offload_dir && (stat(a.offload_dir, &sb) != 0 || !S_ISDIR(sb.st_mode)))
        rc = cq_errorf(err, CQ_E_USAGE, "--offload-dir '%s': not a folder", a.offload_dir);
    if (rc == CQ_OK)
        rc = load_calibration(&a, samples_set, seqlen_set, err);
    if (rc == CQ_OK && plan_only) {
        rc = print_plan(&a, cli, err);
        args_release(&a);
        return rc;
    }
    if (rc == CQ_OK)
        rc = set_producer_peak(&a, err);
    cq_quant_summary sum;
    if (rc == CQ_OK && cq_dist_rank() > 0) {
        rc = a.stats ? CQ_OK : gptq_worker(&a, err); /* statistics: rank 0 alone */
        args_release(&a);
        return rc;
    }
    bool entered = rc == CQ_OK;
    if (rc == CQ_OK && (rc = cq_quant_run(&a.job, &sum, err)) == CQ_OK) {
        cli->json = summary_json(&a, &sum);
        if (!cli->common.json)
            printf("%s\n", sum.out);
    }
    /* the other ranks wait for the pipeline's start: tell them it will not come */
    if (entered && rc != CQ_OK && cq_dist_active() && !a.stats && !a.dist_started)
        cq_dist_agree(rc, err);
    args_release(&a);
    return rc;
}
