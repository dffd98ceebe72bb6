/* AutoAWQ GEMM layout (notes §C): 4-bit, zero point always present and stored as is.
 * qweight [in, out/8] packs along the OUTPUT dimension, and within each word the 8 columns are
 * interleaved: nibble i holds column 8c + ORDER[i]. qzeros [in/G, out/8] uses the same
 * interleave; scales are F16 [in/G, out]. There is no g_idx: group of input k is k / G. */
#include "pack/pack_internal.h"

#include <string.h>

static const int awq_order[8] = {0, 2, 4, 6, 1, 3, 5, 7};

static int awq_check(const cq_qconfig *cfg, int64_t rows, int64_t cols, cq_error *err)
{
    if (cfg->bits != 4)
        return cq_errorf(err, CQ_E_UNSUPPORTED, "awq gemm holds only 4 bits, not %d", cfg->bits);
    if (cfg->sym)
        return cq_errorf(err, CQ_E_UNSUPPORTED, "awq gemm stores zero points: needs asymmetric "
                         "quantization (zero_point true)");
    /* AutoAWQ indexes groups with the raw group size, so -1 does not work there (§C.3) */
    if (cfg->group_size <= 0)
        return cq_errorf(err, CQ_E_UNSUPPORTED, "awq gemm needs a positive group size, not %d",
                         cfg->group_size);
    if (cols % cfg->group_size != 0)
        return cq_errorf(err, CQ_E_UNSUPPORTED,
                         "awq gemm needs in_features %lld divisible by the group size %d",
                         (long long)cols, cfg->group_size);
    if (rows <= 0 || cols <= 0)
        return cq_errorf(err, CQ_E_SHAPE, "awq gemm: empty [%lld, %lld]", (long long)rows,
                         (long long)cols);
    if (rows % 8 != 0)
        return cq_errorf(err, CQ_E_UNSUPPORTED,
                         "awq gemm needs out_features divisible by 8, got %lld", (long long)rows);
    if (cfg->act_order && !cfg->static_groups)
        return cq_errorf(err, CQ_E_UNSUPPORTED, "awq gemm has no g_idx: act-order needs static "
                         "groups");
    return CQ_OK;
}

static int awq_plan(const cq_qconfig *cfg, int64_t rows, int64_t cols, cq_packed *out, int *n,
                    cq_error *err)
{
    *n = 0;
    int rc = awq_check(cfg, rows, cols, err);
    if (rc)
        return rc;
    int64_t ng = cols / cfg->group_size;
    if ((rc = cq_pk_desc(&out[0], "qweight", CQ_DT_I32, 2, cols, rows / 8, err)) ||
        (rc = cq_pk_desc(&out[1], "qzeros", CQ_DT_I32, 2, ng, rows / 8, err)) ||
        (rc = cq_pk_desc(&out[2], "scales", CQ_DT_F16, 2, ng, rows, err)))
        return rc;
    *n = 3;
    return CQ_OK;
}


static void awq_fill(const cq_qresult *r, uint32_t *qw, uint32_t *qz)
{
    int64_t nc = r->rows / 8;
    for (int64_t k = 0; k < r->cols; k++)
        for (int64_t c = 0; c < nc; c++) {
            uint32_t w = 0;
            for (int i = 0; i < 8; i++)
                w |= (uint32_t)r->q[(c * 8 + awq_order[i]) * r->cols + k] << (4 * i);
            qw[k * nc + c] = w;
        }
    for (int64_t g = 0; g < r->n_groups; g++)
        for (int64_t c = 0; c < nc; c++) {
            uint32_t w = 0;
            for (int i = 0; i < 8; i++)
                w |= (uint32_t)r->zero[g * r->rows + c * 8 + awq_order[i]] << (4 * i);
            qz[g * nc + c] = w;
        }
}

static int awq_pack(const cq_qconfig *cfg, const cq_qresult *r, cq_packed *out, int *n,
                    cq_error *err)
{
    *n = 0;
    int np = 0, rc = cq_pk_check_result(cfg, r, err);
    if (rc)
        return rc;
    if (!cq_pk_gidx_trivial(r))
        return cq_errorf(err, CQ_E_UNSUPPORTED, "awq gemm has no g_idx: cannot hold act-order "
                         "groups");
    if ((rc = awq_plan(cfg, r->rows, r->cols, out, &np, err)) ||
        (rc = cq_pk_alloc_all(out, np, err)))
        return rc;
    awq_fill(r, out[0].data, out[1].data);
    uint16_t *sc = out[2].data;
    for (int64_t i = 0; i < r->n_groups * r->rows && rc == CQ_OK; i++)
        rc = cq_pk_scale_f16(r->scale[i], &sc[i], err);
    if (rc) {
        cq_packed_release(out, np);
        return rc;
    }
    *n = np;
    return CQ_OK;
}

/* ---- unpack ---- */

/* vLLM and transformers accept AutoAWQ's own key names too (§C.4). */
static int awq_int(const cJSON *q, const char *a, const char *b, int64_t *v, cq_error *err)
{
    int rc = cq_pk_json_int(q, a, v, err);
    return rc != 0 ? rc : cq_pk_json_int(q, b, v, err);
}

static int awq_opts(const cJSON *qcfg, int *group, cq_error *err)
{
    int64_t bits = 0, g = 0;
    bool zp = true;
    const char *ver = NULL;
    int rc;
    if (!qcfg)
        return cq_errorf(err, CQ_E_FORMAT, "awq: no quantization_config");
    if ((rc = awq_int(qcfg, "bits", "w_bit", &bits, err)) <= 0 ||
        (rc = awq_int(qcfg, "group_size", "q_group_size", &g, err)) <= 0)
        return rc < 0 ? rc : cq_errorf(err, CQ_E_FORMAT, "quantization_config: bits or "
                                       "group_size missing");
    if (bits != 4)
        return cq_errorf(err, CQ_E_UNSUPPORTED, "awq checkpoint with %lld bits", (long long)bits);
    if (g <= 0 || g > INT32_MAX)
        return cq_errorf(err, CQ_E_UNSUPPORTED, "awq group_size %lld", (long long)g);
    if ((rc = cq_pk_json_bool(qcfg, "zero_point", &zp, err)) < 0)
        return rc;
    if (!zp)
        return cq_errorf(err, CQ_E_UNSUPPORTED, "awq gemm without zero_point");
    if ((rc = cq_pk_json_str(qcfg, "version", &ver, err)) < 0 ||
        (rc == 0 && (rc = cq_pk_json_str(qcfg, "format", &ver, err)) < 0))
        return rc;
    if (ver && strcmp(ver, "gemm") != 0 && strcmp(ver, "GEMM") != 0)
        return cq_errorf(err, CQ_E_UNSUPPORTED, "awq version \"%s\" (only gemm)", ver);
    *group = (int)g;
    return CQ_OK;
}

static void awq_decode(const cq_packed *qw, const cq_packed *qz, cq_qresult *r)
{
    int64_t nc = r->rows / 8;
    for (int64_t k = 0; k < r->cols; k++)
        for (int64_t c = 0; c < nc; c++) {
            uint32_t w = cq_pk_ld32(qw->data, (size_t)(k * nc + c));
            for (int i = 0; i < 8; i++)
                r->q[(c * 8 + awq_order[i]) * r->cols + k] = (w >> (4 * i)) & 15u;
        }
    for (int64_t g = 0; g < r->n_groups; g++)
        for (int64_t c = 0; c < nc; c++) {
            uint32_t w = cq_pk_ld32(qz->data, (size_t)(g * nc + c));
            for (int i = 0; i < 8; i++)
                r->zero[g * r->rows + c * 8 + awq_order[i]] = (w >> (4 * i)) & 15u;
        }
}

static int awq_unpack(const cJSON *qcfg, const cq_packed *in, int n, int64_t rows, int64_t cols,
                      cq_qresult *out, cq_error *err)
{
    memset(out, 0, sizeof(*out));
    int group = 0, rc;
    const cq_packed *qw, *qz, *sc;
    if ((rc = awq_opts(qcfg, &group, err)))
        return rc;
    if (rows <= 0 || cols <= 0 || rows % 8 || cols % group)
        return cq_errorf(err, CQ_E_SHAPE, "awq: [%lld, %lld] does not fit 8 columns a word and "
                         "groups of %d", (long long)rows, (long long)cols, group);
    int64_t ng = cols / group;
    if ((rc = cq_pk_need(in, n, "qweight", CQ_DT_I32, 2, cols, rows / 8, &qw, err)) ||
        (rc = cq_pk_need(in, n, "qzeros", CQ_DT_I32, 2, ng, rows / 8, &qz, err)) ||
        (rc = cq_pk_need_float(in, n, "scales", ng, rows, &sc, err)) ||
        (rc = cq_pk_result_alloc(out, rows, cols, 4, group, ng, false, err)))
        return rc;
    awq_decode(qw, qz, out);
    cq_convert_to_f32(sc->dtype, sc->data, out->scale, (size_t)(ng * rows));
    cq_pk_default_gidx(out->g_idx, cols, group);
    return CQ_OK;
}

static int awq_qconfig(const cq_qconfig *cfg, const char *method, cJSON *out, cq_error *err)
{
    if (!cJSON_IsObject(out))
        return cq_errorf(err, CQ_E_INTERNAL, "awq: qconfig needs an object");
    bool ok = cJSON_AddStringToObject(out, "quant_method", "awq") &&
              cJSON_AddBoolToObject(out, "zero_point", true) &&
              cJSON_AddNumberToObject(out, "group_size", cfg->group_size) &&
              cJSON_AddNumberToObject(out, "bits", 4) &&
              cJSON_AddStringToObject(out, "version", "gemm") &&
              cJSON_AddNullToObject(out, "modules_to_not_convert");
    return ok ? CQ_OK : cq_errorf(err, CQ_E_NOMEM, "awq: cannot build quantization_config");
}

const cq_layout cq_layout_awq = {
    .name = "awq",
    .summary = "AutoAWQ GEMM (transformers/vLLM awq): 4-bit asymmetric, group size > 0, "
               "no act-order groups",
    .check = awq_check,
    .plan = awq_plan,
    .pack = awq_pack,
    .unpack = awq_unpack,
    .qconfig = awq_qconfig,
};
