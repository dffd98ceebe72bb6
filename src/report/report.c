/* Per-layer JSON report (see report.h and docs/report.md). Totals are recomputed from the
 * accumulated sums rather than averaged per layer, so the total relative error weights each
 * layer by its size. */
#include "cquant/report.h"

#include "cquant/json.h"
#include "cquant/sha256.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cq_report {
    cJSON *root, *inputs, *config, *layers;
    int64_t n_quantized, n_skipped, params_quantized;
    double sum_sq_err, sum_sq_w, max_abs, layer_seconds;
    int64_t n_err;
};

void cq_weight_error(const float *w, const float *wq, int64_t n, cq_werr *out)
{
    double se = 0, sw = 0, mx = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)w[i] - (double)wq[i];
        se += d * d;
        sw += (double)w[i] * (double)w[i];
        /* fabs(NaN) > mx is false: propagate NaN explicitly so a broken layer is visible */
        if (isnan(d))
            mx = NAN;
        else if (fabs(d) > mx)
            mx = fabs(d);
    }
    out->n = n;
    out->sum_sq_err = se;
    out->sum_sq_w = sw;
    out->mse = n > 0 ? se / (double)n : 0;
    out->max_abs = mx;
    out->rel_fro = sw > 0 ? sqrt(se / sw) : (se > 0 ? INFINITY : 0);
}

int cq_report_create(cq_report **out, const char *command, int argc, char *const *argv,
                     cq_error *err)
{
    *out = NULL;
    cq_report *r = calloc(1, sizeof *r);
    cJSON *tool = NULL, *cmd = NULL;
    if (!r || !(r->root = cJSON_CreateObject()))
        goto nomem;
    cJSON_AddStringToObject(r->root, "schema", CQ_REPORT_SCHEMA);
    if (!(tool = cJSON_AddObjectToObject(r->root, "tool")))
        goto nomem;
    cJSON_AddStringToObject(tool, "name", "cquant");
    cJSON_AddStringToObject(tool, "version", CQ_VERSION);
    cJSON_AddStringToObject(r->root, "command", command);
    if (!(cmd = cJSON_AddArrayToObject(r->root, "command_line")))
        goto nomem;
    for (int i = 0; i < argc; i++)
        cJSON_AddItemToArray(cmd, cJSON_CreateString(argv[i]));
    r->inputs = cJSON_AddArrayToObject(r->root, "inputs");
    r->config = cJSON_AddObjectToObject(r->root, "config");
    r->layers = cJSON_AddArrayToObject(r->root, "layers");
    if (!r->inputs || !r->config || !r->layers)
        goto nomem;
    *out = r;
    return CQ_OK;
nomem:
    cq_report_free(r);
    return cq_errorf(err, CQ_E_NOMEM, "report: out of memory");
}

void cq_report_free(cq_report *r)
{
    if (!r)
        return;
    cJSON_Delete(r->root);
    free(r);
}

int cq_report_hash_file(const char *path, uint8_t digest[32], int64_t *size, cq_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return cq_errorf_errno(err, CQ_E_IO, "'%s': cannot open", path);
    enum { CHUNK = 1 << 20 };
    unsigned char *buf = malloc(CHUNK);
    if (!buf) {
        fclose(f);
        return cq_errorf(err, CQ_E_NOMEM, "'%s': out of memory hashing", path);
    }
    cq_sha256 c;
    cq_sha256_init(&c);
    size_t n;
    *size = 0;
    while ((n = fread(buf, 1, CHUNK, f)) > 0) {
        cq_sha256_update(&c, buf, n);
        *size += (int64_t)n;
    }
    int bad = ferror(f);
    free(buf);
    fclose(f);
    if (bad)
        return cq_errorf(err, CQ_E_IO, "'%s': read error while hashing", path);
    cq_sha256_final(&c, digest);
    return CQ_OK;
}

int cq_report_add_input_digest(cq_report *r, const char *path, int64_t bytes,
                               const uint8_t digest[32], cq_error *err)
{
    char hex[65];
    cq_sha256_to_hex(digest, hex);
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return cq_errorf(err, CQ_E_NOMEM, "report: out of memory");
    cJSON_AddStringToObject(o, "path", path);
    cJSON_AddNumberToObject(o, "bytes", (double)bytes);
    cJSON_AddStringToObject(o, "sha256", hex);
    cJSON_AddItemToArray(r->inputs, o);
    return CQ_OK;
}

int cq_report_add_input(cq_report *r, const char *path, cq_error *err)
{
    uint8_t d[32];
    int64_t size = 0;
    int rc = cq_report_hash_file(path, d, &size, err);
    if (rc != CQ_OK)
        return rc;
    return cq_report_add_input_digest(r, path, size, d, err);
}

cJSON *cq_report_config(cq_report *r) { return r->config; }

/* cJSON prints NaN/Inf as null; say so explicitly instead of emitting an invalid number. */
static void add_metric(cJSON *o, const char *key, double v)
{
    if (isfinite(v))
        cJSON_AddNumberToObject(o, key, v);
    else
        cJSON_AddNullToObject(o, key);
}

int cq_report_add_layer(cq_report *r, const cq_layer_report *l, cq_error *err)
{
    cJSON *o = cJSON_CreateObject(), *shape = cJSON_CreateArray();
    if (!o || !shape) {
        cJSON_Delete(o);
        cJSON_Delete(shape);
        return cq_errorf(err, CQ_E_NOMEM, "report: out of memory");
    }
    cJSON_AddStringToObject(o, "name", l->name);
    cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)l->rows));
    cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)l->cols));
    cJSON_AddItemToObject(o, "shape", shape);
    cJSON_AddStringToObject(o, "method", l->method);
    cJSON_AddNumberToObject(o, "bits", l->bits);
    cJSON_AddNumberToObject(o, "group_size", l->group_size);
    cJSON_AddBoolToObject(o, "sym", l->sym);
    cJSON_AddStringToObject(o, "status", l->skipped ? "skipped" : "quantized");
    if (l->skipped) {
        cJSON_AddStringToObject(o, "reason", l->reason ? l->reason : "");
        r->n_skipped++;
    } else {
        add_metric(o, "weight_mse", l->err.mse);
        add_metric(o, "max_abs_error", l->err.max_abs);
        add_metric(o, "rel_frobenius_error", l->err.rel_fro);
        r->n_quantized++;
        r->params_quantized += l->rows * l->cols;
        r->sum_sq_err += l->err.sum_sq_err;
        r->sum_sq_w += l->err.sum_sq_w;
        r->n_err += l->err.n;
        if (isnan(l->err.max_abs) || l->err.max_abs > r->max_abs)
            r->max_abs = l->err.max_abs;
    }
    cJSON_AddNumberToObject(o, "seconds", l->seconds);
    r->layer_seconds += l->seconds;
    cJSON_AddItemToArray(r->layers, o);
    return CQ_OK;
}

int cq_report_finish(cq_report *r, double seconds, cq_error *err)
{
    cJSON *t = cJSON_AddObjectToObject(r->root, "totals");
    if (!t)
        return cq_errorf(err, CQ_E_NOMEM, "report: out of memory");
    cJSON_AddNumberToObject(t, "linear_layers", (double)(r->n_quantized + r->n_skipped));
    cJSON_AddNumberToObject(t, "quantized", (double)r->n_quantized);
    cJSON_AddNumberToObject(t, "skipped", (double)r->n_skipped);
    cJSON_AddNumberToObject(t, "params_quantized", (double)r->params_quantized);
    add_metric(t, "weight_mse", r->n_err > 0 ? r->sum_sq_err / (double)r->n_err : 0);
    add_metric(t, "max_abs_error", r->max_abs);
    add_metric(t, "rel_frobenius_error",
               r->sum_sq_w > 0 ? sqrt(r->sum_sq_err / r->sum_sq_w) : 0);
    cJSON_AddNumberToObject(t, "layer_seconds", r->layer_seconds);
    cJSON_AddNumberToObject(t, "seconds", seconds);
    return CQ_OK;
}

const cJSON *cq_report_json(const cq_report *r) { return r->root; }

int cq_report_write(const cq_report *r, const char *path, bool force, cq_error *err)
{
    return cq_json_write_file(r->root, path, force, err);
}
