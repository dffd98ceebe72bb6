#include "cq_testutil.h"
#include "cq_rand.h"
#include "cq_test.h"
#include "cquant/calib.h"
#include "cquant/log.h"
#include "cquant/tokenizer.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *cq_test_slurp(const char *path, size_t *size)
{
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    long n = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    unsigned char *b = n >= 0 && fseek(f, 0, SEEK_SET) == 0 ? malloc((size_t)n + 1) : NULL;
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) {
        b[n] = 0;
        *size = (size_t)n;
    }
    return b;
}

cJSON *cq_test_load_json(const char *path)
{
    size_t n;
    char *text = cq_test_slurp(path, &n);
    cJSON *j = text ? cJSON_ParseWithLength(text, n) : NULL;
    free(text);
    return j;
}

int cq_test_st_load(cq_test_stfile *f, const char *path)
{
    memset(f, 0, sizeof *f);
    f->buf = cq_test_slurp(path, &f->size);
    uint64_t n = 0;
    for (int i = 7; f->buf && f->size >= 8 && i >= 0; i--)
        n = n << 8 | f->buf[i];
    if (f->buf && f->size >= 8 && n <= f->size - 8) {
        f->hdr = cJSON_ParseWithLength((const char *)f->buf + 8, (size_t)n);
        f->data_off = 8 + (size_t)n;
    }
    if (!f->hdr) {
        cq_test_st_free(f);
        return -1;
    }
    return 0;
}

void cq_test_st_free(cq_test_stfile *f)
{
    if (!f)
        return;
    cJSON_Delete(f->hdr);
    free(f->buf);
    memset(f, 0, sizeof *f);
}

const unsigned char *cq_test_st_get(const cq_test_stfile *f, const char *name,
                                    const char **dtype, int64_t shape[2], int *ndim)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(f->hdr, name);
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(t, "data_offsets");
    const cJSON *shp = cJSON_GetObjectItemCaseSensitive(t, "shape");
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(t, "dtype");
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 || !cJSON_IsString(dt))
        return NULL;
    if (dtype)
        *dtype = dt->valuestring;
    if (ndim)
        *ndim = cJSON_GetArraySize(shp);
    shape[0] = shape[1] = 1;
    int k = 0;
    for (const cJSON *d = shp ? shp->child : NULL; d && k < 2; d = d->next)
        shape[k++] = (int64_t)d->valuedouble;
    double b = cJSON_GetArrayItem(off, 0)->valuedouble;
    double e = cJSON_GetArrayItem(off, 1)->valuedouble;
    if (b < 0 || b > e || e > (double)(f->size - f->data_off))
        return NULL;
    return f->buf + f->data_off + (size_t)b;
}

uint32_t cq_test_rd32(const unsigned char *p, size_t i)
{
    p += 4 * i;
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint16_t cq_test_rd16(const unsigned char *p, size_t i)
{
    p += 2 * i;
    return (uint16_t)(p[0] | p[1] << 8);
}

float cq_test_bf16_value(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

double cq_test_f16_value(uint16_t h)
{
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? INFINITY : ldexp(1024 + m, e - 25);
    return s ? -v : v;
}

uint16_t cq_test_f16_round(float x)
{
    uint16_t lo = 0, hi = 0x7C00; /* +0 .. +inf */
    while (hi - lo > 1) {
        uint16_t mid = (uint16_t)((lo + hi) / 2);
        if (cq_test_f16_value(mid) <= x)
            lo = mid;
        else
            hi = mid;
    }
    double dl = (double)x - cq_test_f16_value(lo), dh = cq_test_f16_value(hi) - (double)x;
    if (dl < dh)
        return lo;
    if (dh < dl)
        return hi;
    return (lo & 1) ? hi : lo;
}

void cq_test_minmax(const double *x, int64_t n, bool sym, double *lo, double *hi)
{
    *lo = *hi = 0.0;
    for (int64_t i = 0; i < n; i++) {
        *lo = fmin(*lo, x[i]);
        *hi = fmax(*hi, x[i]);
    }
    if (sym) {
        *hi = fmax(fabs(*lo), *hi);
        if (*lo < 0)
            *lo = -*hi;
    }
}

double cq_test_minmax_scale(const double *x, int64_t n, int bits, bool sym, double *lo)
{
    double hi;
    cq_test_minmax(x, n, sym, lo, &hi);
    if (*lo == 0 && hi == 0) {
        *lo = -1;
        hi = 1;
    }
    return (hi - *lo) / (double)((1 << bits) - 1);
}

void cq_test_minmax_f32(const float *w, int64_t n, int bits, bool sym, float *scale,
                        float *zero)
{
    float maxq = (float)((1 << bits) - 1), xmin = 0, xmax = 0;
    for (int64_t i = 0; i < n; i++) {
        xmin = w[i] < xmin ? w[i] : xmin;
        xmax = w[i] > xmax ? w[i] : xmax;
    }
    if (sym) {
        xmax = fabsf(xmin) > xmax ? fabsf(xmin) : xmax;
        if (xmin < 0)
            xmin = -xmax;
    }
    if (xmin == 0 && xmax == 0) {
        xmin = -1;
        xmax = 1;
    }
    *scale = (xmax - xmin) / maxq;
    *zero = sym ? (maxq + 1) / 2 : nearbyintf(-xmin / *scale);
}

double cq_test_output_error(const float *w, const float *q, int64_t rows, int64_t cols,
                            const double *h)
{
    double *d = malloc((size_t)cols * sizeof *d), tot = 0;
    if (!d)
        abort();
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t j = 0; j < cols; j++)
            d[j] = (double)w[r * cols + j] - q[r * cols + j];
        for (int64_t i = 0; i < cols; i++) {
            double s = 0;
            for (int64_t j = 0; j < cols; j++)
                s += h[i * cols + j] * d[j];
            tot += d[i] * s;
        }
    }
    free(d);
    return tot;
}

cq_qconfig cq_test_qconfig(int bits, int group, bool sym, bool act_order, bool static_groups)
{
    cq_qconfig c;
    cq_qconfig_defaults(&c);
    c.bits = bits, c.group_size = group, c.sym = sym, c.act_order = act_order;
    c.static_groups = static_groups;
    return c;
}

void cq_test_random_qresult(cq_qresult *r, const cq_qconfig *c, int64_t rows, int64_t cols,
                            bool permute, uint64_t *rng)
{
    int64_t g = c->group_size > 0 ? c->group_size : cols;
    memset(r, 0, sizeof(*r));
    r->rows = rows, r->cols = cols, r->bits = c->bits, r->group_size = c->group_size;
    r->sym = c->sym, r->n_groups = (cols + g - 1) / g;
    r->q = malloc((size_t)(rows * cols));
    r->scale = malloc((size_t)(rows * r->n_groups) * sizeof(float));
    r->zero = malloc((size_t)(rows * r->n_groups));
    r->g_idx = malloc((size_t)cols * sizeof(int32_t));
    int64_t *perm = malloc((size_t)cols * sizeof(int64_t));
    if (!r->q || !r->scale || !r->zero || !r->g_idx || !perm)
        abort(); /* a test fixture: nothing sensible to continue with */
    unsigned lim = 1u << c->bits;
    for (int64_t i = 0; i < rows * cols; i++)
        r->q[i] = (uint8_t)(cq_rand_u32(rng) % lim);
    for (int64_t i = 0; i < rows * r->n_groups; i++) {
        r->zero[i] = (uint8_t)(c->sym ? lim / 2 : cq_rand_u32(rng) % lim);
        r->scale[i] = (float)(1e-4 + (cq_rand_u32(rng) % 100000) * 1.2345e-6);
    }
    for (int64_t k = 0; k < cols; k++)
        perm[k] = k;
    for (int64_t k = cols - 1; permute && k > 0; k--) {
        int64_t j = cq_rand_u32(rng) % (k + 1), t = perm[k];
        perm[k] = perm[j], perm[j] = t;
    }
    for (int64_t pos = 0; pos < cols; pos++) /* column perm[pos] sits at position pos */
        r->g_idx[perm[pos]] = (int32_t)(pos / g);
    free(perm);
}

int cq_test_wikitext_ids(const char *model_dir, int32_t **ids, int64_t *n)
{
    cq_tokenizer *tok = NULL;
    char *text = NULL;
    size_t len;
    cq_error err = CQ_ERROR_INIT;
    int rc = cq_tokenizer_load(&tok, model_dir, &err); /* before MODEL_DIR's buffer is reused */
    const char *path = cq_test_shared_path("text/wikitext-2-raw-v1.test.joined.txt");
    if (rc == CQ_OK)
        rc = cq_text_read(&path, 1, &text, &len, NULL, NULL, NULL, 0, &err);
    if (rc == CQ_OK)
        rc = cq_tokenizer_encode(tok, text, len, 0, ids, n, &err);
    CQ_CHECK_OK(rc, &err);
    if (rc == CQ_OK)
        CQ_CHECK_EQ_INT(*n, 384593);
    free(text);
    cq_tokenizer_free(tok);
    return rc;
}

int cq_test_open_model(const char *dir, cq_model_config *cfg, cq_st_model **st)
{
    cq_error err = CQ_ERROR_INIT;
    cq_log_set_level(CQ_LOG_QUIET);
    int rc = cq_config_load(dir, cfg, &err);
    if (rc == CQ_OK)
        rc = cq_st_open(st, dir, &err);
    if (rc == CQ_OK)
        rc = cq_config_check(cfg, *st, &err);
    CQ_CHECK_OK(rc, &err);
    return rc;
}

double cq_test_max_rel_diff(const float *got, const float *ref, int64_t n)
{
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        num = fmax(num, fabs((double)got[i] - ref[i]));
        den = fmax(den, fabs((double)ref[i]));
    }
    return num / den;
}
