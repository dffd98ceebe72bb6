/* Statistics files (docs/stats.md): validation of the metadata and the Hessian tensors, and the
 * Hessian reader used by `cquant gptq MODEL STATS`. The bytes are checked by the safetensors
 * reader (offsets, sizes); this adds the format's own rules. */
#include "cquant/stats.h"

#include "cquant/json.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

bool cq_stats_is(const cq_st_model *m)
{
    return m && cq_st_metadata(m, "cquant_stats") != NULL;
}

/* A decimal integer in [1, CQ_STATS_MAX_SAMPLES], nothing else (no sign, space or suffix). */
static bool parse_samples(const char *s, int64_t *out)
{
    if (!s || *s < '0' || *s > '9')
        return false;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < 1 || v > CQ_STATS_MAX_SAMPLES)
        return false;
    *out = v;
    return true;
}

static bool ends_with(const char *s, const char *suf)
{
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && strcmp(s + n - k, suf) == 0;
}

static int check_hessian_shape(const cq_st_tensor *t, const char *path, cq_error *err)
{
    if ((t->dtype != CQ_DT_F32 && t->dtype != CQ_DT_F64) || t->ndim != 2 ||
        t->shape[0] != t->shape[1] || t->shape[0] < 1)
        return cq_errorf(err, CQ_E_SHAPE, "'%s': tensor '%s' must be F32 or F64 [in, in]", path,
                         t->name);
    return CQ_OK;
}

int cq_stats_check(const cq_st_model *m, const char *path, int64_t *n_samples, cq_error *err)
{
    const char *ver = cq_st_metadata(m, "cquant_stats");
    if (!ver)
        return cq_errorf(err, CQ_E_FORMAT, "'%s': no cquant_stats metadata (not a statistics "
                         "file)", path);
    if (strcmp(ver, "1") != 0) {
        cq_errorf(err, CQ_E_UNSUPPORTED, "'%s': statistics format version '%.40s' (this cquant "
                  "reads \"1\")", path, ver);
        cq_error_printable(err); /* the version string is the file's */
        return CQ_E_UNSUPPORTED;
    }
    if (!parse_samples(cq_st_metadata(m, "n_samples"), n_samples))
        return cq_errorf(err, CQ_E_FORMAT, "'%s': statistics file without a valid n_samples "
                         "(a decimal integer in [1, 2^40])", path);
    size_t n = cq_st_count(m);
    for (size_t i = 0; i < n; i++) {
        const cq_st_tensor *t = cq_st_at(m, i);
        if (ends_with(t->name, ".hessian")) {
            int rc = check_hessian_shape(t, path, err);
            if (rc != CQ_OK) {
                cq_error_printable(err); /* names may hold escaped control bytes */
                return rc;
            }
        }
    }
    return CQ_OK;
}

const cq_st_tensor *cq_stats_find(const cq_st_model *m, const char *weight_name)
{
    static const char suf[] = ".weight", hs[] = ".hessian";
    size_t n = strlen(weight_name), k = sizeof suf - 1;
    if (n <= k || strcmp(weight_name + n - k, suf) != 0)
        return NULL;
    char *name = malloc(n - k + sizeof hs);
    if (!name)
        return NULL;
    memcpy(name, weight_name, n - k);
    memcpy(name + n - k, hs, sizeof hs);
    const cq_st_tensor *t = cq_st_find(m, name);
    free(name);
    return t;
}

static int read_values(const cq_st_tensor *t, int64_t cols, double *h, cq_error *err)
{
    if ((t->dtype != CQ_DT_F32 && t->dtype != CQ_DT_F64) || t->ndim != 2 ||
        t->shape[0] != cols || t->shape[1] != cols)
        return cq_errorf(err, CQ_E_SHAPE, "'%s': tensor '%s' must be F32 or F64 [%lld, %lld]",
                         t->file, t->name, (long long)cols, (long long)cols);
    const unsigned char *src = t->data;
    for (int64_t i = 0; i < cols * cols; i++) {
        if (t->dtype == CQ_DT_F64) {
            memcpy(&h[i], src + 8 * i, 8);
        } else {
            float f;
            memcpy(&f, src + 4 * i, 4);
            h[i] = f;
        }
        /* A NaN would pass through the damping and Cholesky into every code of the Linear. */
        if (!isfinite(h[i]))
            return cq_errorf(err, CQ_E_NUMERIC, "'%s': tensor '%s': non-finite value at "
                             "[%lld, %lld]", t->file, t->name, (long long)(i / cols),
                             (long long)(i % cols));
    }
    return CQ_OK;
}

int cq_stats_read(const cq_st_tensor *t, int64_t cols, double *h, cq_error *err)
{
    int rc = read_values(t, cols, h, err);
    if (rc != CQ_OK)
        cq_error_printable(err); /* names may hold escaped control bytes */
    return rc;
}
