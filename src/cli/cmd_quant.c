/* cquant rtn (and later gptq/awq): the quantizer is picked by the command name; the options,
 * output planning and report are shared (quantize.c). */
#include "cli.h"
#include "quantize.h"

#include "linalg/blas_threads.h"

#include <stdio.h>
#include <string.h>

static cJSON *summary_json(const cq_quant_job *job, const cq_quant_summary *sum)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "command", job->quantizer->name);
    cJSON_AddStringToObject(o, "model", job->model);
    cJSON_AddStringToObject(o, "output", sum->out);
    cJSON_AddStringToObject(o, "report", sum->report);
    cJSON_AddStringToObject(o, "format", job->layout->name);
    cJSON_AddNumberToObject(o, "bits", job->q.bits);
    cJSON_AddNumberToObject(o, "group_size", job->q.group_size);
    cJSON_AddBoolToObject(o, "sym", job->q.sym);
    cJSON_AddNumberToObject(o, "tensors", (double)sum->tensors);
    cJSON_AddNumberToObject(o, "quantized", (double)sum->quantized);
    cJSON_AddNumberToObject(o, "skipped", (double)sum->skipped);
    cJSON_AddNumberToObject(o, "seconds", sum->seconds);
    return o;
}

int cmd_quant(cq_cli *cli, int argc, char **argv, cq_error *err)
{
    cq_quant_job job = {.argc = cli->full_argc, .argv = cli->full_argv};
    const char *format = "gptq";
    int sym = 1;
    bool restart = false; /* --resume: nothing to resume, see its help */
    cq_qconfig_defaults(&job.q);
    job.q.bits = 4;
    job.q.group_size = 128;
    job.quantizer = cq_quantizer_find(cli->cmd);
    if (!job.quantizer)
        return cq_errorf(err, CQ_E_INTERNAL, "no quantizer named '%s'", cli->cmd);
    const cq_option opts[] = {
        OPT_INT('b', "bits", &job.q.bits, "N", "bits per weight", 2, 8, "2|3|4|8"),
        OPT_INT('g', "group", &job.q.group_size, "N",
                "input columns per scale group; -1 = one group per output row", -1, 1 << 30,
                NULL),
        OPT_SETINT(0, "sym", &sym, 1, "symmetric grid, zero = 2^(bits-1) (default)"),
        OPT_SETINT(0, "asym", &sym, 0,
                   "asymmetric grid (the gptq format then writes gptq_v2: GPTQModel only)"),
        OPT_BOOL(0, "mse", &job.q.mse, "search a clipping ratio minimizing the error"),
        OPT_STRING('f', "format", &format, "F", "output layout", "gptq|awq|ct"),
        OPT_SIZE(0, "max-shard-size", &job.max_shard_bytes, "SIZE",
                 "split output files above SIZE (e.g. 5GB, 500MB); 0 = one file"),
        OPT_SIZE(0, "max-memory", &job.max_memory, "SIZE",
                 "refuse to start when the planned peak memory exceeds SIZE; 0 = no limit"),
        OPT_LIST(0, "include", &job.include, "GLOB",
                 "quantize only tensors/modules matching GLOB (repeatable)"),
        OPT_LIST(0, "exclude", &job.exclude, "GLOB", "keep matching tensors float (repeatable)"),
        OPT_BOOL(0, "strict", &job.strict,
                 "fail when a layer's shape does not fit the format (default: keep it float)"),
        OPT_BOOL(0, "force", &job.force, "replace an existing output folder"),
        OPT_BOOL(0, "resume", &restart, "after a killed run: accepted as for gptq; rtn keeps no "
                 "per-layer state, so the run starts over (the stale temporary is removed)"),
        OPT_INT(0, "threads", &job.q.threads, "N",
                "tensors worked on at once; 0 = one per CPU (same bytes either way)", 0, 256,
                NULL),
        OPT_BOOL(0, "no-sync", &job.no_sync,
                 "no fsync before the rename: safe if cquant dies, not on power loss"),
        OPT_STRING(0, "report", &job.report_path, "FILE",
                   "write the JSON report to FILE (default OUT/cquant-report.json)", NULL),
        OPT_STRING('o', "output", &job.out, "OUT",
                   "output folder (default <model>-<method>-w<bits>g<group> beside MODEL)", NULL),
        CQ_OPT_COMMON(&cli->common),
        OPT_END(),
    };
    char usage[128];
    snprintf(usage, sizeof usage, "cquant %s [options] [-o OUT] MODEL", cli->cmd);
    int n = cli_parse(cli, opts, usage, job.quantizer->summary, argc, argv, err), rc;
    if (n < 0 || cli->help_shown)
        goto done_parse;
    if ((rc = cli_expect_args(n, 1, "MODEL (a checkpoint folder or .safetensors file)", err)))
        goto fail;
    job.model = argv[0];
    job.q.sym = sym != 0;
    if (!(job.layout = cq_layout_find(format))) {
        rc = cq_errorf(err, CQ_E_USAGE, "--format: unknown layout '%s'", format);
        goto fail;
    }
    /* No Hessian, no BLAS: give the cores OpenBLAS's idle workers would spin on back. */
    if (!(job.quantizer->needs & CQ_NEED_HESSIAN))
        cq_blas_stop_threads();
    cq_quant_summary sum;
    if ((rc = cq_quant_run(&job, &sum, err)) != CQ_OK)
        goto fail;
    cli->json = summary_json(&job, &sum);
    if (!cli->common.json)
        printf("%s\n", sum.out);
    cq_strlist_release(&job.include);
    cq_strlist_release(&job.exclude);
    return CQ_OK;
done_parse:
    rc = n < 0 ? n : CQ_OK;
fail:
    cq_strlist_release(&job.include);
    cq_strlist_release(&job.exclude);
    return rc;
}
