/* Per-layer JSON report (see report.h and docs/report.md). Totals are recomputed from the
 * accumulated sums rather than averaged per layer, so the total relative error weights each
 * layer by its size. */
#include "cquant/report.h"
#include "report/digest_cache.h"

#include "cquant/json.h"
#include "cquant/sha256.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* Hash through read-only mappings of 2 MB windows, each populated in one call and unmapped
 * after: no copy into a buffer (the hash is a full pass over every shard) and no more than
 * one window resident, whatever the file size. */
static int hash_mapped(int fd, int64_t size, cq_sha256 *c)
{
    enum { WINDOW = 2 << 20 }; /* a multiple of any page size; the RSS it adds */
    for (int64_t off = 0; off < size; off += WINDOW) {
        size_t n = size - off < WINDOW ? (size_t)(size - off) : (size_t)WINDOW;
        void *p = mmap(NULL, n, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, (off_t)off);
        if (p == MAP_FAILED)
            return -1;
        cq_sha256_update(c, p, n);
        munmap(p, n);
    }
    return 0;
}

static int hash_read(FILE *f, cq_sha256 *c, int64_t *size)
{
    enum { CHUNK = 1 << 20 };
    unsigned char *buf = malloc(CHUNK);
    if (!buf)
        return -2;
    size_t n;
    *size = 0;
    while ((n = fread(buf, 1, CHUNK, f)) > 0) {
        cq_sha256_update(c, buf, n);
        *size += (int64_t)n;
    }
    free(buf);
    return ferror(f) ? -1 : 0;
}

int cq_report_hash_file(const char *path, uint8_t digest[32], int64_t *size, cq_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return cq_errorf_errno(err, CQ_E_IO, "'%s': cannot open", path);
    cq_sha256 c;
    cq_sha256_init(&c);
    struct stat st;
    int rc;
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
        hash_mapped(fileno(f), (int64_t)st.st_size, &c) == 0) {
        *size = (int64_t)st.st_size;
        rc = 0;
    } else {
        cq_sha256_init(&c); /* not mappable (a pipe, a special file): read it */
        rc = hash_read(f, &c, size);
    }
    fclose(f);
    if (rc == -2)
        return cq_errorf(err, CQ_E_NOMEM, "'%s': out of memory hashing", path);
    if (rc != 0)
        return cq_errorf(err, CQ_E_IO, "'%s': read error while hashing", path);
    cq_sha256_final(&c, digest);
    return CQ_OK;
}

/* ---- several files: three at a time ---- */

enum { HASH_WINDOW = 2 << 20, HASH_LANES = 3 };

typedef struct hash_lane {
    size_t file;    /* index into the caller's arrays */
    int fd;         /* -1: lane idle */
    int64_t size, off;
    const uint8_t *win;
    size_t win_len, pos;
    cq_sha256 ctx;
} hash_lane;

static void lane_unmap(hash_lane *l)
{
    if (l->win)
        munmap((void *)l->win, l->win_len);
    l->win = NULL;
    l->win_len = l->pos = 0;
}

/* Give the lane bytes to hash: the next window of its file, or (file done) the next file.
 * Files that cannot be mapped are hashed whole on the spot by cq_report_hash_file. */
static int lane_fill(hash_lane *l, const char *const *paths, size_t n, size_t *next,
                     uint8_t (*digest)[32], int64_t *bytes, cq_error *err)
{
    for (;;) {
        if (l->fd >= 0 && l->pos < l->win_len)
            return CQ_OK;
        lane_unmap(l);
        if (l->fd >= 0 && l->off < l->size) {
            size_t len = l->size - l->off < HASH_WINDOW ? (size_t)(l->size - l->off)
                                                          : (size_t)HASH_WINDOW;
            void *p = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, l->fd,
                           (off_t)l->off);
            if (p != MAP_FAILED) {
                l->win = p;
                l->win_len = len;
                l->off += (int64_t)len;
                continue;
            }
            close(l->fd); /* restart this file the slow way */
            l->fd = -1;
            int rc = cq_report_hash_file(paths[l->file], digest[l->file], &bytes[l->file], err);
            if (rc != CQ_OK)
                return rc;
        } else if (l->fd >= 0) {
            cq_sha256_final(&l->ctx, digest[l->file]);
            bytes[l->file] = l->size;
            close(l->fd);
            l->fd = -1;
        }
        if (*next >= n)
            return CQ_OK; /* idle */
        l->file = (*next)++;
        struct stat st;
        l->fd = open(paths[l->file], O_RDONLY | O_CLOEXEC);
        if (l->fd < 0)
            return cq_errorf_errno(err, CQ_E_IO, "'%s': cannot open", paths[l->file]);
        if (fstat(l->fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) {
            close(l->fd);
            l->fd = -1;
            int rc = cq_report_hash_file(paths[l->file], digest[l->file], &bytes[l->file], err);
            if (rc != CQ_OK)
                return rc;
            continue;
        }
        l->size = (int64_t)st.st_size;
        l->off = 0;
        cq_sha256_init(&l->ctx);
    }
}

/* Hash what the lanes hold: every lane with at least a block goes into one interleaved call
 * (cq_sha256_update2/3) of the bytes all of them have, rounded to blocks. Windows start at
 * multiples of 64 in their files, so lanes stay block-aligned and only a file's last partial
 * block (taken first, alone) goes through the one-lane path. */
static void lanes_step(hash_lane *lane, int n)
{
    hash_lane *busy[HASH_LANES];
    int nb = 0;
    size_t k = SIZE_MAX;
    for (int i = 0; i < n; i++) {
        hash_lane *l = &lane[i];
        size_t r = l->fd >= 0 ? l->win_len - l->pos : 0;
        if (r > 0 && r < 64) { /* a file's tail */
            cq_sha256_update(&l->ctx, l->win + l->pos, r);
            l->pos += r;
            return;
        }
        if (r >= 64) {
            busy[nb++] = l;
            k = r < k ? r : k;
        }
    }
    if (nb > 1)
        k &= ~(size_t)63;
    if (nb == 3)
        cq_sha256_update3(&busy[0]->ctx, busy[0]->win + busy[0]->pos, &busy[1]->ctx,
                          busy[1]->win + busy[1]->pos, &busy[2]->ctx,
                          busy[2]->win + busy[2]->pos, k);
    else if (nb == 2)
        cq_sha256_update2(&busy[0]->ctx, busy[0]->win + busy[0]->pos, &busy[1]->ctx,
                          busy[1]->win + busy[1]->pos, k);
    else if (nb == 1)
        cq_sha256_update(&busy[0]->ctx, busy[0]->win + busy[0]->pos, k);
    for (int i = 0; i < nb; i++)
        busy[i]->pos += k;
}

static int hash_files(const char *const *paths, size_t n, uint8_t (*digest)[32],
                      int64_t *bytes, cq_error *err)
{
    hash_lane lane[HASH_LANES] = {{.fd = -1}, {.fd = -1}, {.fd = -1}};
    size_t next = 0;
    int rc = CQ_OK;
    for (;;) {
        int active = 0;
        for (int i = 0; i < HASH_LANES && rc == CQ_OK; i++) {
            rc = lane_fill(&lane[i], paths, n, &next, digest, bytes, err);
            active += lane[i].fd >= 0;
        }
        if (rc != CQ_OK || !active)
            break;
        lanes_step(lane, HASH_LANES);
    }
    for (int i = 0; i < HASH_LANES; i++) {
        lane_unmap(&lane[i]);
        if (lane[i].fd >= 0)
            close(lane[i].fd);
    }
    return rc;
}

/* The digest cache (digest_cache.h) first; only the misses are hashed. */
int cq_report_hash_files(const char *const *paths, size_t n, uint8_t (*digest)[32],
                         int64_t *bytes, cq_error *err)
{
    cq_digest_cache *c = cq_digest_cache_open();
    const char **miss = malloc((n ? n : 1) * sizeof *miss);
    size_t *at = malloc((n ? n : 1) * sizeof *at);
    struct stat *before = malloc((n ? n : 1) * sizeof *before);
    uint8_t(*md)[32] = malloc((n ? n : 1) * sizeof *md);
    int64_t *mb = malloc((n ? n : 1) * sizeof *mb);
    int rc = CQ_OK;
    if (!miss || !at || !before || !md || !mb) {
        rc = cq_errorf(err, CQ_E_NOMEM, "out of memory hashing the inputs");
        goto done;
    }
    size_t nm = 0;
    for (size_t i = 0; i < n; i++) {
        if (cq_digest_cache_get(c, paths[i], digest[i], &bytes[i], &before[nm]))
            continue;
        at[nm] = i;
        miss[nm++] = paths[i];
    }
    if (nm > 0 && (rc = hash_files(miss, nm, md, mb, err)) == CQ_OK)
        for (size_t k = 0; k < nm; k++) {
            memcpy(digest[at[k]], md[k], 32);
            bytes[at[k]] = mb[k];
            cq_digest_cache_put(c, miss[k], &before[k], md[k]);
        }
done:
    cq_digest_cache_close(c);
    free(miss);
    free(at);
    free(before);
    free(md);
    free(mb);
    return rc;
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
    for (const cJSON *e = l->extra ? l->extra->child : NULL; e; e = e->next)
        cJSON_AddItemToObject(o, e->string, cJSON_Duplicate(e, 1));
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
