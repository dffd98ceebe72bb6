/* libFuzzer target: any byte string as a statistics file (docs/stats.md: safetensors with
 * `cquant_stats` metadata and <linear>.hessian F32/F64 [in, in] tensors), read as
 * `cquant gptq MODEL STATS` does: cq_st_open of a file (written once per input under TMPDIR),
 * cq_stats_is, cq_stats_check, then cq_stats_find and cq_stats_read for every Hessian. A
 * rejection must give a status and a non-empty one-line message; an accepted file must give
 * n_samples in [1, 2^40], Hessians that are square F32/F64 and, when read, only finite values
 * (equal to the stored ones); a read with the wrong in-feature count must be refused.
 * Built with libFuzzer (CQ_FUZZ=ON) or replay_main.c (ctest). */
#include "cquant/stats.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[600];

static void cleanup(void) { unlink(path); }

static void check_error(int rc, const cq_error *err)
{
    if (rc == CQ_OK || err->code != rc || !err->msg[0] || strchr(err->msg, '\n'))
        abort();
}

/* Read Hessian t (cols x cols) as gptq does and compare with the stored values. */
static void read_one(const cq_st_model *m, const cq_st_tensor *t)
{
    size_t n = strlen(t->name) - strlen(".hessian");
    char wname[1200];
    if (n > 0 && n + 8 < sizeof wname) { /* ".weight" alone names no module */
        snprintf(wname, sizeof wname, "%.*s.weight", (int)n, t->name);
        if (cq_stats_find(m, wname) != t)
            abort();
    }
    int64_t cols = t->shape[0];
    if (cols > 256) /* the reader's bounds are the container's; keep the harness fast */
        return;
    double *h = malloc((size_t)(cols * cols) * sizeof *h);
    if (!h)
        abort();
    cq_error err = CQ_ERROR_INIT;
    int rc = cq_stats_read(t, cols, h, &err);
    if (rc != CQ_OK) {
        check_error(rc, &err);
        if (rc != CQ_E_NUMERIC)
            abort();
    } else {
        for (int64_t i = 0; i < cols * cols; i++) {
            double v;
            if (t->dtype == CQ_DT_F64) {
                memcpy(&v, (const char *)t->data + 8 * i, 8);
            } else {
                float f;
                memcpy(&f, (const char *)t->data + 4 * i, 4);
                v = f;
            }
            if (!isfinite(h[i]) || memcmp(&v, &h[i], sizeof v) != 0)
                abort();
        }
    }
    cq_error e2 = CQ_ERROR_INIT;
    rc = cq_stats_read(t, cols + 1, h, &e2);
    check_error(rc, &e2);
    free(h);
}

static void check(void)
{
    cq_error err = CQ_ERROR_INIT;
    cq_st_model *m = NULL;
    int rc = cq_st_open(&m, path, &err);
    if (rc != CQ_OK) {
        check_error(rc, &err);
        if (m)
            abort();
        return;
    }
    int64_t ns = 0;
    rc = cq_stats_check(m, path, &ns, &err);
    if (rc != CQ_OK) {
        check_error(rc, &err);
        if (!cq_stats_is(m) && rc != CQ_E_FORMAT)
            abort();
    } else {
        if (!cq_stats_is(m) || ns < 1 || ns > CQ_STATS_MAX_SAMPLES)
            abort();
        for (size_t i = 0; i < cq_st_count(m); i++) {
            const cq_st_tensor *t = cq_st_at(m, i);
            size_t k = strlen(t->name);
            if (k < 8 || strcmp(t->name + k - 8, ".hessian") != 0)
                continue;
            if ((t->dtype != CQ_DT_F32 && t->dtype != CQ_DT_F64) || t->ndim != 2 ||
                t->shape[0] != t->shape[1] || t->shape[0] < 1)
                abort();
            read_one(m, t);
        }
    }
    cq_st_close(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!path[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(path, sizeof path, "%s/cqfuzz-stats.%ld.safetensors", tmp && *tmp ? tmp : "/tmp",
                 (long)getpid());
        atexit(cleanup);
    }
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
        abort();
    check();
    return 0;
}
