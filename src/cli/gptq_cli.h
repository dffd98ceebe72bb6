/* cquant gptq: the command (cmd_gptq.c: options, calibration input) and the producer that feeds
 * the shared quantization driver (gptq_produce.c: the layer pipeline with resume state, or the
 * statistics-file path). */
#ifndef CQ_CLI_GPTQ_H
#define CQ_CLI_GPTQ_H

#include "quantize.h"

#include "cquant/calib.h"
#include "cquant/gptq_model.h"
#include "cquant/safetensors.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct gptq_args {
    cq_quant_job job;
    cq_gptq_model_opts mo;
    const char *calib_path;
    const char *offload_dir;   /* NULL: activations on the heap */
    int samples, seqlen;       /* 0: defaults (128; context length capped at 2048) */
    int seed;
    /* calibration input, exactly one of: */
    cq_calib calib;            /* token windows (calib.bin or tokenized text) */
    cq_st_model *stats;        /* statistics file with <linear>.hessian tensors */
    int64_t stats_samples;
    char calib_digest[65];     /* sha256 of the ids (resume check) */
    const char *calib_kind;    /* "calib.bin" | "text" | "jsonl" | "statistics" */
    int moe_min_tokens;        /* --moe-min-tokens (0 = auto) */
    cJSON *report_section;     /* the report's "gptq" object (borrowed; MoE summary) */
    bool dist_started;         /* rank 0 reached the pipeline's start agreement */
    /* AWQ+GPTQ (cquant awq --then-gptq): job.source supplies the scaled Linears and norms that
     * replace each loaded layer's weights; method names the report entries (NULL: "gptq"). */
    const char *method;
} gptq_args;

/* The producer (job->produce); ctx is the gptq_args. */
int gptq_produce(void *ctx, cq_quant_sink *sink, cq_error *err);
/* Under mpirun, ranks > 0 run this instead of the driver: their share of the calibration
 * pipeline (nothing written; rank 0 writes). */
int gptq_worker(gptq_args *a, cq_error *err);

#endif
