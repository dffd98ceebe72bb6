/* The per-layer JSON report of a quantization run (schema: docs/report.md): tool version,
 * command line, sha256 of every input shard, the quantization options, one entry per selected
 * Linear (error metrics, time, quantized or skipped with a reason) and totals.
 * Builds a cJSON tree in memory; writes it atomically. Does not print. Not thread-safe. */
#ifndef CQUANT_REPORT_H
#define CQUANT_REPORT_H

#include "cquant/error.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CQ_REPORT_SCHEMA "cquant-report/1"
#define CQ_REPORT_FILE "cquant-report.json"

/* Reconstruction error of one weight matrix, accumulated in double. */
typedef struct cq_werr {
    double mse;       /* mean (w - wq)^2 */
    double max_abs;   /* max |w - wq| */
    double rel_fro;   /* ||w - wq||_F / ||w||_F (0 when w == 0) */
    double sum_sq_err, sum_sq_w; /* for totals */
    int64_t n;
} cq_werr;

/* Compare n original weights with their dequantized values. NaN in either gives NaN metrics. */
void cq_weight_error(const float *w, const float *wq, int64_t n, cq_werr *out);

struct cq_qresult;
/* The same metrics for w[rows * cols] against cq_qresult_dequant(q), without building that
 * matrix: one pass, rows split over `threads` workers (0 = online CPUs). The numbers do not
 * depend on the thread count or on the CPU's vector extensions; they may differ from
 * cq_weight_error's in the last bits (another order of additions). NaN gives max_abs NaN.
 * Returns CQ_OK or CQ_E_NOMEM. */
int cq_weight_error_q(const float *w, const struct cq_qresult *q, int threads, cq_werr *out,
                      cq_error *err);

struct cq_row_err;
/* The metrics of a rows x cols matrix from its per-row sums (cq_rtn_quantize_stored's, or
 * cq_weight_error_q's own), added in row order. */
void cq_werr_from_rows(const struct cq_row_err *re, int64_t rows, int64_t cols, cq_werr *out);

typedef struct cq_layer_report {
    const char *name;     /* tensor name, e.g. "model.layers.0.self_attn.q_proj.weight" */
    int64_t rows, cols;   /* out, in features */
    const char *method;   /* "rtn", "gptq", ... */
    int bits, group_size;
    bool sym;
    bool skipped;         /* kept in float */
    const char *reason;   /* why skipped (one line) */
    cq_werr err;          /* when quantized */
    double seconds;
    const cJSON *extra;   /* optional: method-specific fields copied into the entry (gptq) */
} cq_layer_report;

typedef struct cq_report cq_report;

/* argv is copied. Caller owns *out (cq_report_free). CQ_E_NOMEM. */
int cq_report_create(cq_report **out, const char *command, int argc, char *const *argv,
                     cq_error *err);
void cq_report_free(cq_report *r);
/* Hash the file at PATH (sha256, streamed) and record path, size and digest. CQ_E_IO. */
int cq_report_add_input(cq_report *r, const char *path, cq_error *err);
/* The hashing half alone (thread-safe: a driver may hash on another thread while it works). */
int cq_report_hash_file(const char *path, uint8_t digest[32], int64_t *bytes, cq_error *err);
/* The same for N files (digest[i], bytes[i] for paths[i]), three at a time: with SHA-NI
 * interleaved hashes cost little more than one (cq_sha256_update2/3). */
int cq_report_hash_files(const char *const *paths, size_t n, uint8_t (*digest)[32],
                         int64_t *bytes, cq_error *err);
/* Record an input hashed elsewhere. CQ_E_NOMEM. */
int cq_report_add_input_digest(cq_report *r, const char *path, int64_t bytes,
                               const uint8_t digest[32], cq_error *err);
/* The "config" object (borrowed; the caller adds the run's options to it). */
cJSON *cq_report_config(cq_report *r);
int cq_report_add_layer(cq_report *r, const cq_layer_report *l, cq_error *err);
/* Compute "totals" (wall time `seconds`). Call once, before writing. */
int cq_report_finish(cq_report *r, double seconds, cq_error *err);
/* The whole tree (borrowed). */
const cJSON *cq_report_json(const cq_report *r);
/* Write atomically to PATH ("-" = stdout). Refuses to replace PATH unless force (CQ_E_EXISTS). */
int cq_report_write(const cq_report *r, const char *path, bool force, cq_error *err);

#endif
