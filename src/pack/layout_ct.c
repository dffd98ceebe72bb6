/* compressed-tensors "pack-quantized" (notes §D), as llm-compressor writes and vLLM's
 * compressed-tensors WNA16 scheme loads.
 *
 * CT's codes are signed, q_s in [-2^(b-1), 2^(b-1)), dequantized as (q_s - zp) * scale, and
 * stored with +2^(b-1) added. Our codes are unsigned, dequantized as (q - zero) * scale. Taking
 * q_s = q - 2^(b-1) and zp = zero - 2^(b-1) gives the same value, and then both stored fields
 * are simply ours: weight_packed holds q, weight_zero_point holds zero. For sym, zero = 2^(b-1)
 * means zp = 0, which is CT's symmetric grid, so no zero point is written.
 *
 * Tensors: weight_packed I32 [out, ceil(in*b/32)] (dense LSB-first stream per output row),
 * weight_scale F16 [out, groups], weight_shape I64 [2] = (out, in), weight_zero_point I32
 * [ceil(out*b/32), groups] (the stream runs along the output dimension) when asymmetric,
 * weight_g_idx I32 [in] with actorder "group". */
#include "pack/pack_internal.h"

#include <stdlib.h>
#include <string.h>

enum { CT_ORDER_NONE, CT_ORDER_WEIGHT, CT_ORDER_GROUP };

/* act-order without static groups permutes groups, which CT calls actorder "group" and
 * records with weight_g_idx; with static groups only the visiting order changed ("weight"). */
static int ct_actorder(const cq_qconfig *cfg)
{
    if (!cfg->act_order)
        return CT_ORDER_NONE;
    return cfg->static_groups ? CT_ORDER_WEIGHT : CT_ORDER_GROUP;
}

static int ct_check(const cq_qconfig *cfg, int64_t rows, int64_t cols, cq_error *err)
{
    int b = cfg->bits;
    if (b != 2 && b != 3 && b != 4 && b != 8)
        return cq_errorf(err, CQ_E_UNSUPPORTED, "compressed-tensors: %d bits not supported", b);
    if (cfg->group_size == 0 || cfg->group_size < -1)
        return cq_errorf(err, CQ_E_USAGE, "group size %d is neither -1 nor positive",
                         cfg->group_size);
    /* CT itself allows a partial last group, but vLLM's kernels reject it */
    if (cfg->group_size > 0 && cols % cfg->group_size != 0)
        return cq_errorf(err, CQ_E_UNSUPPORTED,
                         "compressed-tensors needs in_features %lld divisible by the group size %d",
                         (long long)cols, cfg->group_size);
    if (rows <= 0 || cols <= 0)
        return cq_errorf(err, CQ_E_SHAPE, "compressed-tensors: empty [%lld, %lld]",
                         (long long)rows, (long long)cols);
    return CQ_OK;
}

static int ct_plan(const cq_qconfig *cfg, int64_t rows, int64_t cols, cq_packed *out, int *n,
                   cq_error *err)
{
    *n = 0;
    int rc = ct_check(cfg, rows, cols, err), k = 3, b = cfg->bits;
    if (rc)
        return rc;
    int64_t ng = cq_pk_groups(cfg->group_size, cols);
    if ((rc = cq_pk_desc(&out[0], "weight_packed", CQ_DT_I32, 2, rows, cq_bits_words(cols, b),
                         err)) ||
        (rc = cq_pk_desc(&out[1], "weight_scale", CQ_DT_F16, 2, rows, ng, err)) ||
        (rc = cq_pk_desc(&out[2], "weight_shape", CQ_DT_I64, 1, 2, 0, err)))
        return rc;
    if (!cfg->sym &&
        (rc = cq_pk_desc(&out[k++], "weight_zero_point", CQ_DT_I32, 2, cq_bits_words(rows, b), ng,
                         err)))
        return rc;
    if (ct_actorder(cfg) == CT_ORDER_GROUP &&
        (rc = cq_pk_desc(&out[k++], "weight_g_idx", CQ_DT_I32, 1, cols, 0, err)))
        return rc;
    *n = k;
    return CQ_OK;
}

static void ct_put_codes(const cq_qresult *r, uint32_t *wp)
{
    int64_t nw = cq_bits_words(r->cols, r->bits);
    for (int64_t n = 0; n < r->rows; n++)
        cq_bits_pack_u8(r->q + n * r->cols, r->cols, r->bits, wp + n * nw);
}

/* weight_zero_point[w][g]: group g's zeros as one stream along the output dimension. */
static void ct_put_zeros(const cq_qresult *r, uint32_t *zp, uint32_t *vals, uint32_t *words)
{
    int64_t nw = cq_bits_words(r->rows, r->bits);
    for (int64_t g = 0; g < r->n_groups; g++) {
        for (int64_t n = 0; n < r->rows; n++)
            vals[n] = r->zero[g * r->rows + n];
        cq_bits_pack(vals, r->rows, r->bits, words);
        for (int64_t w = 0; w < nw; w++)
            zp[w * r->n_groups + g] = words[w];
    }
}

static int ct_fill(const cq_qconfig *cfg, const cq_qresult *r, cq_packed *out, int np,
                   cq_error *err)
{
    size_t tmp = (size_t)(r->cols > r->rows ? r->cols : r->rows);
    uint32_t *vals = malloc(tmp * 4), *words = malloc(tmp * 4);
    int rc = CQ_OK;
    if (!vals || !words)
        rc = cq_errorf(err, CQ_E_NOMEM, "compressed-tensors: cannot allocate scratch");
    if (rc == CQ_OK) {
        ct_put_codes(r, out[0].data);
        uint16_t *sc = out[1].data; /* transposed: ours is [groups][out], CT's [out][groups] */
        for (int64_t g = 0; g < r->n_groups && rc == CQ_OK; g++)
            for (int64_t n = 0; n < r->rows && rc == CQ_OK; n++)
                rc = cq_pk_scale_f16(r->scale[g * r->rows + n], &sc[n * r->n_groups + g], err);
        int64_t shape[2] = {r->rows, r->cols};
        memcpy(out[2].data, shape, sizeof(shape));
    }
    const cq_packed *zp = cq_packed_find(out, np, "weight_zero_point");
    const cq_packed *gi = cq_packed_find(out, np, "weight_g_idx");
    if (rc == CQ_OK && zp)
        ct_put_zeros(r, zp->data, vals, words);
    if (rc == CQ_OK && gi)
        memcpy(gi->data, r->g_idx, (size_t)r->cols * sizeof(int32_t));
    if (rc == CQ_OK && !gi && !cq_pk_gidx_trivial(r))
        rc = cq_errorf(err, CQ_E_INTERNAL, "compressed-tensors: act-order groups but actorder "
                       "is not \"group\" (options %d/%d)", cfg->act_order, cfg->static_groups);
    free(vals);
    free(words);
    return rc;
}

static int ct_pack(const cq_qconfig *cfg, const cq_qresult *r, cq_packed *out, int *n,
                   cq_error *err)
{
    *n = 0;
    int np = 0, rc = cq_pk_check_result(cfg, r, err);
    if (rc || (rc = ct_plan(cfg, r->rows, r->cols, out, &np, err)) ||
        (rc = cq_pk_alloc_all(out, np, err)))
        return rc;
    if ((rc = ct_fill(cfg, r, out, np, err))) {
        cq_packed_release(out, np);
        return rc;
    }
    *n = np;
    return CQ_OK;
}

/* ---- unpack ---- */

typedef struct ct_opts {
    int bits, group_size; /* group_size -1 for strategy "channel" */
    bool sym, want_gidx;
} ct_opts;

/* The weights args shared by every config group (a checkpoint whose groups quantize modules
 * differently would need the module name to pick one, which unpack does not see). */
static int ct_weights(const cJSON *qcfg, const cJSON **wout, cq_error *err)
{
    const cJSON *groups = cJSON_GetObjectItemCaseSensitive(qcfg, "config_groups"), *g, *w = NULL;
    if (!cJSON_IsObject(groups))
        return cq_errorf(err, CQ_E_FORMAT, "quantization_config: config_groups missing");
    cJSON_ArrayForEach(g, groups) {
        const cJSON *gw = cJSON_GetObjectItemCaseSensitive(g, "weights");
        const char *fmt = NULL;
        if (!cJSON_IsObject(gw))
            continue;
        if (cq_pk_json_str(g, "format", &fmt, err) < 0)
            return err->code;
        if (fmt && strcmp(fmt, "pack-quantized") != 0)
            return cq_errorf(err, CQ_E_UNSUPPORTED, "compressed-tensors format \"%s\"", fmt);
        if (w && !cJSON_Compare(w, gw, true))
            return cq_errorf(err, CQ_E_UNSUPPORTED, "compressed-tensors: config groups with "
                             "different weight schemes");
        w = gw;
    }
    if (!w)
        return cq_errorf(err, CQ_E_FORMAT, "quantization_config: no weights scheme");
    *wout = w;
    return CQ_OK;
}

static int ct_strategy(const cJSON *w, ct_opts *o, cq_error *err)
{
    const char *st = NULL, *ao = NULL;
    int64_t g = -1;
    int rc;
    if ((rc = cq_pk_json_str(w, "strategy", &st, err)) < 0 ||
        (rc = cq_pk_json_int(w, "group_size", &g, err)) < 0 ||
        (rc = cq_pk_json_str(w, "actorder", &ao, err)) < 0)
        return rc;
    if (!st) /* older configs leave the strategy to be inferred from group_size */
        st = g > 0 ? "group" : "channel";
    if (strcmp(st, "group") != 0 && strcmp(st, "channel") != 0)
        return cq_errorf(err, CQ_E_UNSUPPORTED, "compressed-tensors strategy \"%s\" (only group, "
                         "channel)", st);
    if (strcmp(st, "group") == 0 && (g <= 0 || g > INT32_MAX))
        return cq_errorf(err, CQ_E_FORMAT, "compressed-tensors: group strategy with group_size "
                         "%lld", (long long)g);
    o->group_size = strcmp(st, "channel") == 0 ? -1 : (int)g;
    /* "dynamic" is CT's alias of "group" */
    o->want_gidx = ao && (strcmp(ao, "group") == 0 || strcmp(ao, "dynamic") == 0);
    return CQ_OK;
}

static int ct_opts_parse(const cJSON *qcfg, ct_opts *o, cq_error *err)
{
    const cJSON *w = NULL;
    const char *fmt = NULL, *type = NULL;
    int64_t bits = 0;
    int rc;
    if (!qcfg)
        return cq_errorf(err, CQ_E_FORMAT, "compressed-tensors: no quantization_config");
    if ((rc = cq_pk_json_str(qcfg, "format", &fmt, err)) < 0)
        return rc;
    if (fmt && strcmp(fmt, "pack-quantized") != 0 && strcmp(fmt, "mixed-precision") != 0)
        return cq_errorf(err, CQ_E_UNSUPPORTED, "compressed-tensors format \"%s\"", fmt);
    if ((rc = ct_weights(qcfg, &w, err)) || (rc = cq_pk_json_int(w, "num_bits", &bits, err)) < 0 ||
        (rc = cq_pk_json_str(w, "type", &type, err)) < 0)
        return rc;
    if (bits != 2 && bits != 3 && bits != 4 && bits != 8)
        return cq_errorf(err, CQ_E_UNSUPPORTED, "compressed-tensors num_bits %lld", (long long)bits);
    if (type && strcmp(type, "int") != 0)
        return cq_errorf(err, CQ_E_UNSUPPORTED, "compressed-tensors type \"%s\"", type);
    o->bits = (int)bits;
    o->sym = true;
    if ((rc = cq_pk_json_bool(w, "symmetric", &o->sym, err)) < 0)
        return rc;
    return ct_strategy(w, o, err);
}

static int ct_tensors(const cq_packed *in, int n, const ct_opts *o, int64_t rows, int64_t cols,
                      const cq_packed *t[5], cq_error *err)
{
    int64_t ng = cq_pk_groups(o->group_size, cols), shape[2];
    int rc;
    t[3] = t[4] = NULL;
    if ((rc = cq_pk_need(in, n, "weight_packed", CQ_DT_I32, 2, rows, cq_bits_words(cols, o->bits),
                         &t[0], err)) ||
        (rc = cq_pk_need_float(in, n, "weight_scale", rows, ng, &t[1], err)) ||
        (rc = cq_pk_need(in, n, "weight_shape", CQ_DT_I64, 1, 2, 0, &t[2], err)))
        return rc;
    memcpy(shape, t[2]->data, sizeof(shape));
    if (shape[0] != rows || shape[1] != cols)
        return cq_errorf(err, CQ_E_SHAPE, "weight_shape (%lld, %lld), want (%lld, %lld)",
                         (long long)shape[0], (long long)shape[1], (long long)rows,
                         (long long)cols);
    if (!o->sym && (rc = cq_pk_need(in, n, "weight_zero_point", CQ_DT_I32, 2,
                                    cq_bits_words(rows, o->bits), ng, &t[3], err)))
        return rc;
    if ((o->want_gidx || cq_packed_find(in, n, "weight_g_idx")) &&
        (rc = cq_pk_need(in, n, "weight_g_idx", CQ_DT_I32, 1, cols, 0, &t[4], err)))
        return rc;
    return CQ_OK;
}

static void ct_decode(const cq_packed *t[5], cq_qresult *r, uint32_t *vals, uint32_t *words)
{
    int64_t nw = cq_bits_words(r->cols, r->bits), ng = r->n_groups;
    for (int64_t n = 0; n < r->rows; n++) {
        for (int64_t w = 0; w < nw; w++)
            words[w] = cq_pk_ld32(t[0]->data, (size_t)(n * nw + w));
        cq_bits_unpack(words, r->cols, r->bits, vals);
        for (int64_t k = 0; k < r->cols; k++)
            r->q[n * r->cols + k] = (uint8_t)vals[k];
    }
    int64_t nz = cq_bits_words(r->rows, r->bits);
    for (int64_t g = 0; g < ng; g++) {
        if (t[3]) {
            for (int64_t w = 0; w < nz; w++)
                words[w] = cq_pk_ld32(t[3]->data, (size_t)(w * ng + g));
            cq_bits_unpack(words, r->rows, r->bits, vals);
        }
        for (int64_t n = 0; n < r->rows; n++)
            r->zero[g * r->rows + n] = t[3] ? (uint8_t)vals[n] : (uint8_t)(1u << (r->bits - 1));
    }
}

static int ct_unpack(const cJSON *qcfg, const cq_packed *in, int n, int64_t rows, int64_t cols,
                     cq_qresult *out, cq_error *err)
{
    memset(out, 0, sizeof(*out));
    ct_opts o;
    const cq_packed *t[5];
    int rc;
    if ((rc = ct_opts_parse(qcfg, &o, err)))
        return rc;
    if (rows <= 0 || cols <= 0)
        return cq_errorf(err, CQ_E_SHAPE, "compressed-tensors: empty [%lld, %lld]",
                         (long long)rows, (long long)cols);
    int64_t ng = cq_pk_groups(o.group_size, cols);
    if ((rc = ct_tensors(in, n, &o, rows, cols, t, err)) ||
        (rc = cq_pk_result_alloc(out, rows, cols, o.bits, o.group_size, ng, o.sym, err)))
        return rc;
    /* scratch: vals up to max(rows, cols), words up to the same (b <= 8 < 32) */
    size_t tmp = (size_t)(cols > rows ? cols : rows);
    uint32_t *vals = malloc(tmp * 4), *words = malloc(tmp * 4);
    float *sc = malloc((size_t)(ng * rows) * sizeof(float));
    if (!vals || !words || !sc)
        rc = cq_errorf(err, CQ_E_NOMEM, "compressed-tensors: cannot allocate scratch");
    if (rc == CQ_OK) {
        ct_decode(t, out, vals, words);
        cq_convert_to_f32(t[1]->dtype, t[1]->data, sc, (size_t)(ng * rows));
        for (int64_t r = 0; r < rows; r++)
            for (int64_t g = 0; g < ng; g++)
                out->scale[g * rows + r] = sc[r * ng + g];
        if (t[4])
            rc = cq_pk_read_gidx(t[4], cols, ng, out->g_idx, err);
        else
            cq_pk_default_gidx(out->g_idx, cols, o.group_size);
    }
    free(vals);
    free(words);
    free(sc);
    if (rc)
        cq_pk_result_free(out);
    return rc;
}

/* ---- config.json ---- */

static cJSON *ct_weights_json(const cq_qconfig *cfg)
{
    static const char *const order[] = {NULL, "weight", "group"};
    cJSON *w = cJSON_CreateObject();
    int ao = ct_actorder(cfg);
    bool ok = w && cJSON_AddNumberToObject(w, "num_bits", cfg->bits) &&
              cJSON_AddStringToObject(w, "type", "int") &&
              cJSON_AddBoolToObject(w, "symmetric", cfg->sym) &&
              (cfg->group_size > 0 ? cJSON_AddNumberToObject(w, "group_size", cfg->group_size)
                                   : cJSON_AddNullToObject(w, "group_size")) &&
              cJSON_AddStringToObject(w, "strategy", cfg->group_size > 0 ? "group" : "channel") &&
              cJSON_AddNullToObject(w, "block_structure") &&
              cJSON_AddBoolToObject(w, "dynamic", false) &&
              (ao ? cJSON_AddStringToObject(w, "actorder", order[ao])
                  : cJSON_AddNullToObject(w, "actorder")) &&
              cJSON_AddStringToObject(w, "observer", "minmax") &&
              cJSON_AddObjectToObject(w, "observer_kwargs");
    if (!ok) {
        cJSON_Delete(w);
        return NULL;
    }
    return w;
}

static int ct_qconfig(const cq_qconfig *cfg, const char *method, cJSON *out, cq_error *err)
{
    if (!cJSON_IsObject(out))
        return cq_errorf(err, CQ_E_INTERNAL, "compressed-tensors: qconfig needs an object");
    cJSON *groups = cJSON_AddObjectToObject(out, "config_groups");
    cJSON *g0 = groups ? cJSON_AddObjectToObject(groups, "group_0") : NULL;
    cJSON *targets = g0 ? cJSON_AddArrayToObject(g0, "targets") : NULL;
    cJSON *w = g0 ? ct_weights_json(cfg) : NULL;
    cJSON *ignore = NULL;
    bool ok = targets && w && cJSON_AddItemToArray(targets, cJSON_CreateString("Linear")) &&
              cJSON_AddItemToObject(g0, "weights", w) &&
              cJSON_AddNullToObject(g0, "input_activations") &&
              cJSON_AddNullToObject(g0, "output_activations") &&
              cJSON_AddStringToObject(g0, "format", "pack-quantized") &&
              cJSON_AddStringToObject(out, "quant_method", "compressed-tensors") &&
              cJSON_AddStringToObject(out, "format", "pack-quantized") &&
              cJSON_AddStringToObject(out, "quantization_status", "compressed") &&
              (ignore = cJSON_AddArrayToObject(out, "ignore")) &&
              cJSON_AddItemToArray(ignore, cJSON_CreateString("lm_head")) &&
              cJSON_AddNullToObject(out, "kv_cache_scheme") &&
              cJSON_AddNullToObject(out, "global_compression_ratio");
    if (!ok && w && !cJSON_GetObjectItemCaseSensitive(g0, "weights"))
        cJSON_Delete(w);
    (void)method;
    return ok ? CQ_OK : cq_errorf(err, CQ_E_NOMEM, "compressed-tensors: cannot build "
                                  "quantization_config");
}

const cq_layout cq_layout_ct = {
    .name = "ct",
    .summary = "compressed-tensors pack-quantized (vLLM, transformers): 2/3/4/8-bit, sym or asym, "
               "act-order groups via weight_g_idx; vLLM runs only 4 and 8 bits",
    .check = ct_check,
    .plan = ct_plan,
    .pack = ct_pack,
    .unpack = ct_unpack,
    .qconfig = ct_qconfig,
};
