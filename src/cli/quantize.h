/* The quantization driver: open a checkpoint, plan the output (non-quantized tensors copied
 * byte-exact, selected Linears through a layout's plan()), stream one tensor at a time
 * (read f32 -> quantizer -> pack -> write -> release) into an atomic output folder, then write
 * config.json, quantize_config.json (gptq), the auxiliary tokenizer files and the report.
 * Peak memory: the mapped pages of one tensor plus two f32 copies of the largest quantized
 * Linear and its packed form. Diagnostics go through cq_log only. */
#ifndef CQ_CLI_QUANTIZE_H
#define CQ_CLI_QUANTIZE_H

#include "opts.h"

#include "cquant/error.h"
#include "cquant/pack.h"
#include "cquant/quant.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct cq_quant_job {
    const cq_quantizer *quantizer;
    cq_qconfig q;
    const cq_layout *layout;
    const char *model;        /* file or folder */
    const char *out;          /* NULL: "<model>-<method>-w<bits>g<group>" beside the input */
    const char *report_path;  /* NULL: OUT/cquant-report.json */
    size_t max_shard_bytes;   /* 0: one file */
    bool strict;              /* a Linear the layout cannot hold is an error, not a skip */
    bool force;               /* replace an existing output */
    cq_strlist include, exclude;
    /* Optional replacement values (AWQ's scaled weights and norms): a borrowed f32 array of the
     * tensor's element count, or NULL to read the checkpoint. A replaced tensor that is copied
     * rather than quantized is written as F32 (loaders cast it to the model dtype). */
    const float *(*source)(void *ctx, const char *name);
    void *source_ctx;
    /* Optional: called after the report is created, to add method-specific sections. */
    int (*report_extra)(void *ctx, cJSON *report_config, cq_error *err);
    void *report_ctx;
    int argc;                 /* the command line, for the report */
    char **argv;
} cq_quant_job;

typedef struct cq_quant_summary {
    char out[4096];
    char report[4096];
    int64_t tensors, quantized, skipped;
    size_t bytes_out;
    double seconds;
} cq_quant_summary;

/* Run the job. On any error nothing is left at the output path (CQ_E_EXISTS when it exists and
 * !force; CQ_E_INTERRUPTED after SIGINT). */
int cq_quant_run(const cq_quant_job *job, cq_quant_summary *sum, cq_error *err);

/* The default output path for a job (job->out == NULL). */
void cq_quant_default_out(const cq_quant_job *job, char *buf, size_t n);

/* Create the missing parent folders of PATH (mkdir -p of its dirname). CQ_E_IO. */
int cq_make_parents(const char *path, cq_error *err);

/* Copy the tokenizer/generation files that exist in src_dir into dst_dir. */
int cq_copy_aux_files(const char *src_dir, const char *dst_dir, cq_error *err);

#endif
