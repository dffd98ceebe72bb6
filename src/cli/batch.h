/* cquant batch: the manifest (docs/batch.md), each job's command line, and the "already done"
 * check. A job runs as the single command would: the same binary, exec'd with the argv built
 * here, so batch cannot drift from `cquant rtn|gptq|awq`. */
#ifndef CQ_CLI_BATCH_H
#define CQ_CLI_BATCH_H

#include "cquant/error.h"

#include <cjson/cJSON.h>
#include <stdbool.h>

typedef struct cq_batch_job {
    const char *name;    /* borrowed from the manifest tree */
    const char *method;  /* "rtn" | "gptq" | "awq" */
    char *model, *output, *calib, *eval; /* resolved against the manifest's folder; owned */
    char *report;        /* where the job's report lands (OUTPUT/cquant-report.json or --report) */
    char **argv;         /* NULL-terminated; argv[0] = the cquant binary; owned */
    int argc;
} cq_batch_job;

typedef struct cq_batch {
    cJSON *root;
    cq_batch_job *jobs;
    int n;
} cq_batch;

/* Load and validate MANIFEST; EXE becomes every job's argv[0]. Errors name the manifest and
 * the job: CQ_E_IO, CQ_E_FORMAT (unknown key, wrong type, duplicate name or output). */
int cq_batch_load(cq_batch *b, const char *manifest, const char *exe, cq_error *err);
void cq_batch_free(cq_batch *b);

/* 1 when the job's output exists and its report records the same command line (--force
 * aside) and inputs whose files still have the recorded sha256; 0 when the job must run.
 * *why says why not (one line) when the output exists but is stale. */
int cq_batch_is_done(const cq_batch_job *j, char *why, size_t n);

#endif
