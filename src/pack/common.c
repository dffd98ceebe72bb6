/* Shared checks and bookkeeping for the layouts (see pack_internal.h). */
#include "pack/pack_internal.h"

#include "cquant/checked.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *dt_name(cq_dtype dt)
{
    const cq_dtype_traits *t = cq_dtype_info(dt);
    return t ? t->name : "?";
}

int cq_pk_desc(cq_packed *p, const char *suffix, cq_dtype dt, int ndim, int64_t d0, int64_t d1,
               cq_error *err)
{
    memset(p, 0, sizeof(*p));
    snprintf(p->suffix, sizeof(p->suffix), "%s", suffix);
    p->dtype = dt;
    p->ndim = ndim;
    p->shape[0] = d0;
    p->shape[1] = ndim > 1 ? d1 : 0;
    size_t count = (size_t)d0;
    if (d0 < 0 || d1 < 0 || (ndim > 1 && cq_mul_size(count, (size_t)d1, &count)) ||
        cq_mul_size(count, (size_t)cq_dtype_info(dt)->size, &p->nbytes))
        return cq_errorf(err, CQ_E_NOMEM, "%s: size of [%lld, %lld] overflows", suffix,
                         (long long)d0, (long long)d1);
    return CQ_OK;
}

int cq_pk_alloc_all(cq_packed *p, int n, cq_error *err)
{
    for (int i = 0; i < n; i++) {
        p[i].data = calloc(1, p[i].nbytes ? p[i].nbytes : 1);
        if (!p[i].data) {
            cq_packed_release(p, i);
            return cq_errorf(err, CQ_E_NOMEM, "%s: cannot allocate %zu bytes", p[i].suffix,
                             p[i].nbytes);
        }
    }
    return CQ_OK;
}

void cq_packed_release(cq_packed *p, int n)
{
    if (!p)
        return;
    for (int i = 0; i < n; i++) {
        free(p[i].data);
        memset(&p[i], 0, sizeof(p[i]));
    }
}

const cq_packed *cq_packed_find(const cq_packed *in, int n, const char *suffix)
{
    for (int i = 0; in && i < n; i++)
        if (strcmp(in[i].suffix, suffix) == 0)
            return &in[i];
    return NULL;
}

int64_t cq_pk_groups(int group_size, int64_t cols)
{
    return group_size <= 0 ? 1 : (cols + group_size - 1) / group_size;
}

/* OR of n bytes: every byte < 2^bits exactly when the OR is. No early exit, so the loop
 * vectorizes; the slow scan for the culprit runs only on failure. */
static unsigned or_bytes(const uint8_t *p, int64_t n)
{
    unsigned acc = 0;
    for (int64_t i = 0; i < n; i++)
        acc |= p[i];
    return acc;
}

static int check_codes(const cq_qresult *r, cq_error *err)
{
    const unsigned lim = 1u << r->bits, half = lim / 2;
    int64_t cells = r->rows * r->cols;
    if (or_bytes(r->q, cells) >= lim)
        for (int64_t i = 0; i < cells; i++)
            if (r->q[i] >= lim)
                return cq_errorf(err, CQ_E_INTERNAL, "code %u at %lld exceeds %d bits",
                                 r->q[i], (long long)i, r->bits);
    for (int64_t i = 0; i < r->n_groups * r->rows; i++) {
        if (r->zero[i] >= lim)
            return cq_errorf(err, CQ_E_INTERNAL, "zero point %u exceeds %d bits", r->zero[i],
                             r->bits);
        if (r->sym && r->zero[i] != half)
            return cq_errorf(err, CQ_E_INTERNAL, "symmetric result has zero %u, not %u",
                             r->zero[i], half);
    }
    for (int64_t c = 0; c < r->cols; c++)
        if (r->g_idx[c] < 0 || r->g_idx[c] >= r->n_groups)
            return cq_errorf(err, CQ_E_INTERNAL, "g_idx[%lld] = %d outside [0, %lld)",
                             (long long)c, r->g_idx[c], (long long)r->n_groups);
    return CQ_OK;
}

int cq_pk_check_result(const cq_qconfig *cfg, const cq_qresult *r, cq_error *err)
{
    if (!cfg || !r || !r->q || !r->scale || !r->zero || !r->g_idx || r->rows <= 0 ||
        r->cols <= 0)
        return cq_errorf(err, CQ_E_INTERNAL, "pack given an empty result");
    if (r->bits != cfg->bits || r->sym != cfg->sym || r->group_size != cfg->group_size)
        return cq_errorf(err, CQ_E_INTERNAL,
                         "result (bits %d, group %d, sym %d) does not match the options "
                         "(bits %d, group %d, sym %d)",
                         r->bits, r->group_size, r->sym, cfg->bits, cfg->group_size, cfg->sym);
    if (r->n_groups != cq_pk_groups(r->group_size, r->cols))
        return cq_errorf(err, CQ_E_INTERNAL, "result has %lld groups, want %lld",
                         (long long)r->n_groups, (long long)cq_pk_groups(r->group_size, r->cols));
    return check_codes(r, err);
}

bool cq_pk_gidx_trivial(const cq_qresult *r)
{
    int64_t g = r->group_size <= 0 ? r->cols : r->group_size;
    for (int64_t c = 0; c < r->cols; c++)
        if (r->g_idx[c] != c / g)
            return false;
    return true;
}

int cq_pk_scale_f16(float s, uint16_t *out, cq_error *err)
{
    uint16_t h = cq_f32_to_f16(s);
    if (!isfinite(cq_f16_to_f32(h)))
        return cq_errorf(err, CQ_E_NUMERIC, "scale %g is not finite in f16", (double)s);
    *out = h;
    return CQ_OK;
}

static int need_common(const cq_packed *in, int n, const char *suffix, int ndim, int64_t d0,
                       int64_t d1, const cq_packed **out, cq_error *err)
{
    const cq_packed *t = cq_packed_find(in, n, suffix);
    if (!t)
        return cq_errorf(err, CQ_E_FORMAT, "%s: tensor missing", suffix);
    if (t->ndim != ndim || t->shape[0] != d0 || (ndim > 1 && t->shape[1] != d1))
        return cq_errorf(err, CQ_E_SHAPE, "%s: shape [%lld, %lld] (%d-d), want [%lld, %lld] (%d-d)",
                         suffix, (long long)t->shape[0], (long long)t->shape[1], t->ndim,
                         (long long)d0, (long long)d1, ndim);
    size_t want = 0;
    const cq_dtype_traits *tr = cq_dtype_info(t->dtype);
    if (!tr || cq_mul_size((size_t)d0, ndim > 1 ? (size_t)d1 : 1, &want) ||
        cq_mul_size(want, (size_t)tr->size, &want))
        return cq_errorf(err, CQ_E_FORMAT, "%s: bad dtype or size", suffix);
    if (t->nbytes != want || (want && !t->data))
        return cq_errorf(err, CQ_E_FORMAT, "%s: %zu bytes of data, want %zu", suffix, t->nbytes,
                         want);
    *out = t;
    return CQ_OK;
}

int cq_pk_need(const cq_packed *in, int n, const char *suffix, cq_dtype dt, int ndim, int64_t d0,
               int64_t d1, const cq_packed **out, cq_error *err)
{
    const cq_packed *t = cq_packed_find(in, n, suffix);
    if (t && t->dtype != dt)
        return cq_errorf(err, CQ_E_FORMAT, "%s: dtype %s, want %s", suffix, dt_name(t->dtype),
                         dt_name(dt));
    return need_common(in, n, suffix, ndim, d0, d1, out, err);
}

int cq_pk_need_float(const cq_packed *in, int n, const char *suffix, int64_t d0, int64_t d1,
                     const cq_packed **out, cq_error *err)
{
    const cq_packed *t = cq_packed_find(in, n, suffix);
    if (t && t->dtype != CQ_DT_F16 && t->dtype != CQ_DT_BF16 && t->dtype != CQ_DT_F32)
        return cq_errorf(err, CQ_E_FORMAT, "%s: dtype %s, want F16, BF16 or F32", suffix,
                         dt_name(t->dtype));
    return need_common(in, n, suffix, 2, d0, d1, out, err);
}

int cq_pk_result_alloc(cq_qresult *r, int64_t rows, int64_t cols, int bits, int group_size,
                       int64_t n_groups, bool sym, cq_error *err)
{
    memset(r, 0, sizeof(*r));
    size_t nq, ns;
    if (rows <= 0 || cols <= 0 || n_groups <= 0 ||
        cq_mul_size((size_t)rows, (size_t)cols, &nq) ||
        cq_mul_size((size_t)rows, (size_t)n_groups, &ns) || ns > SIZE_MAX / sizeof(float) ||
        (size_t)cols > SIZE_MAX / sizeof(int32_t))
        return cq_errorf(err, CQ_E_SHAPE, "bad result shape [%lld, %lld] with %lld groups",
                         (long long)rows, (long long)cols, (long long)n_groups);
    r->rows = rows, r->cols = cols, r->bits = bits, r->group_size = group_size;
    r->n_groups = n_groups, r->sym = sym;
    r->q = malloc(nq);
    r->scale = malloc(ns * sizeof(float));
    r->zero = malloc(ns);
    r->g_idx = malloc((size_t)cols * sizeof(int32_t));
    if (!r->q || !r->scale || !r->zero || !r->g_idx) {
        cq_pk_result_free(r);
        return cq_errorf(err, CQ_E_NOMEM, "cannot allocate a [%lld, %lld] result",
                         (long long)rows, (long long)cols);
    }
    return CQ_OK;
}

/* The result's owner is quant's release: one way to free a cq_qresult. */
void cq_pk_result_free(cq_qresult *r)
{
    cq_qresult_release(r);
}

int cq_pk_read_gidx(const cq_packed *t, int64_t cols, int64_t n_groups, int32_t *g_idx,
                    cq_error *err)
{
    memcpy(g_idx, t->data, (size_t)cols * sizeof(int32_t));
    for (int64_t c = 0; c < cols; c++)
        if (g_idx[c] < 0 || g_idx[c] >= n_groups)
            return cq_errorf(err, CQ_E_FORMAT, "%s[%lld] = %d outside [0, %lld)", t->suffix,
                             (long long)c, g_idx[c], (long long)n_groups);
    return CQ_OK;
}

void cq_pk_default_gidx(int32_t *g_idx, int64_t cols, int group_size)
{
    int64_t g = group_size <= 0 ? cols : group_size;
    for (int64_t c = 0; c < cols; c++)
        g_idx[c] = (int32_t)(c / g);
}

int cq_pk_json_int(const cJSON *obj, const char *key, int64_t *v, cq_error *err)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it || cJSON_IsNull(it))
        return 0;
    double d = cJSON_GetNumberValue(it);
    if (!cJSON_IsNumber(it) || d != floor(d) || fabs(d) > 9.0e15)
        return cq_errorf(err, CQ_E_FORMAT, "quantization_config: %s is not an integer", key);
    *v = (int64_t)d;
    return 1;
}

int cq_pk_json_bool(const cJSON *obj, const char *key, bool *v, cq_error *err)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it || cJSON_IsNull(it))
        return 0;
    if (!cJSON_IsBool(it))
        return cq_errorf(err, CQ_E_FORMAT, "quantization_config: %s is not a boolean", key);
    *v = cJSON_IsTrue(it);
    return 1;
}

int cq_pk_json_str(const cJSON *obj, const char *key, const char **v, cq_error *err)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it || cJSON_IsNull(it))
        return 0;
    if (!cJSON_IsString(it))
        return cq_errorf(err, CQ_E_FORMAT, "quantization_config: %s is not a string", key);
    *v = it->valuestring;
    return 1;
}
