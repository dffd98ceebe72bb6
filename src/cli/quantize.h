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
#include "cquant/report.h"

#include <stdbool.h>
#include <stddef.h>

/* What a producer (job->produce) writes through: the running driver. */
typedef struct cq_quant_sink cq_quant_sink;
struct cq_st_tensor;

typedef struct cq_quant_job {
    const cq_quantizer *quantizer;
    cq_qconfig q;
    const cq_layout *layout;
    const char *model;        /* file or folder */
    const char *out;          /* NULL: "<model>-<method>-w<bits>g<group>" beside the input */
    const char *report_path;  /* NULL: OUT/cquant-report.json */
    size_t max_shard_bytes;   /* 0: one file */
    size_t max_memory;        /* 0: no limit; else refuse up front when the plan exceeds it */
    bool strict;              /* a Linear the layout cannot hold is an error, not a skip */
    bool force;               /* replace an existing output */
    bool no_sync;             /* commit by rename only: no fsync, no early writeback */
    cq_strlist include, exclude;
    /* Optional replacement values (AWQ's scaled weights and norms): a borrowed f32 array of the
     * tensor's element count, or NULL to read the checkpoint. A replaced tensor that is copied
     * rather than quantized is written as F32 (loaders cast it to the model dtype). */
    const float *(*source)(void *ctx, const char *name);
    void *source_ctx;
    /* Optional: called after the report is created, to add method-specific sections. */
    int (*report_extra)(void *ctx, cJSON *report_config, cq_error *err);
    void *report_ctx;
    /* Optional producer of the quantized Linears (GPTQ's layer pipeline): the driver writes
     * every copied tensor, then calls produce(), which must cq_quant_emit (or, resuming,
     * cq_quant_mark_done) every tensor planned for quantization, in any order. */
    int (*produce)(void *ctx, cq_quant_sink *sink, cq_error *err);
    void *produce_ctx;
    bool resume;              /* keep a stale temporary output folder and reopen its files */
    size_t producer_peak;     /* heap the producer adds to the plan (gptq: its pipeline plan) */
    bool check_only;          /* plan, check --max-memory and free disk, create nothing else */
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

/* ---- producer side (valid only inside job->produce) ---- */

/* The tensors planned for quantization, in plan order. */
int64_t cq_quant_sink_count(const cq_quant_sink *s);
const struct cq_st_tensor *cq_quant_sink_tensor(const cq_quant_sink *s, int64_t i);
/* 1 when `name` is planned for quantization. */
bool cq_quant_sink_wants(const cq_quant_sink *s, const char *name);
/* The temporary output folder (a producer may keep resume state in it, removed before
 * commit) and whether it was resumed from a killed run. */
const char *cq_quant_sink_dir(const cq_quant_sink *s);
bool cq_quant_sink_resumed(const cq_quant_sink *s);
/* If the run fails from now on, leave the temporary folder (resume state inside) in place. */
void cq_quant_sink_keep_on_failure(cq_quant_sink *s);
/* sha256 (hex) over the sha256 of every input shard (waits for the hashing thread). */
int cq_quant_sink_input_digest(cq_quant_sink *s, char hex[65], cq_error *err);
/* fdatasync the output files written so far. */
int cq_quant_sink_sync(cq_quant_sink *s, cq_error *err);
/* Pack, write and report one quantized tensor: w = its original f32 weights, qr its quantized
 * form (scales rounded to F16 here), method for the report, extra = report fields (may be
 * NULL). *lr_out (optional) receives the report entry's numbers. */
int cq_quant_emit(cq_quant_sink *s, const char *name, const char *method, const float *w,
                  cq_qresult *qr, double seconds, const cJSON *extra, cq_layer_report *lr_out,
                  cq_error *err);
/* Resuming: the tensor's packed bytes are already in the reopened files; add its report entry
 * (lr as saved from cq_quant_emit, with its extra fields). */
int cq_quant_mark_done(cq_quant_sink *s, const char *name, const cq_layer_report *lr,
                       cq_error *err);

/* Run the job. On any error nothing is left at the output path (CQ_E_EXISTS when it exists and
 * !force; CQ_E_INTERRUPTED after SIGINT; CQ_E_NOMEM when the planned peak exceeds max_memory;
 * CQ_E_IO when the output's filesystem has less free space than the planned output). */
int cq_quant_run(const cq_quant_job *job, cq_quant_summary *sum, cq_error *err);

/* The default output path for a job (job->out == NULL). */
void cq_quant_default_out(const cq_quant_job *job, char *buf, size_t n);

/* Create the missing parent folders of PATH (mkdir -p of its dirname). CQ_E_IO. */
int cq_make_parents(const char *path, cq_error *err);

/* Copy the tokenizer/generation files that exist in src_dir into dst_dir. */
int cq_copy_aux_files(const char *src_dir, const char *dst_dir, cq_error *err);

#endif
