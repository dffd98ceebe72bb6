/* GPTQ checkpoint layout (notes §B): qweight packs the codes of one output channel along the
 * input dimension (b words per 32 inputs), qzeros packs each group's zero points along the
 * output dimension, scales are F16 [groups, out], g_idx maps input columns to groups.
 *
 * Zero convention (§B.3): symmetric results are written as v1 ("gptq"): zeros stored minus one,
 * which every GPTQ loader reads and where the constant sym zero 2^(b-1) becomes 2^(b-1)-1.
 * Asymmetric results are written as v2 ("gptq_v2"): zeros stored as is, so a zero of 0 cannot
 * turn into -1 and overflow into its neighbours the way v1's "minus one" does. */
#include "pack/pack_internal.h"

#include <stdlib.h>
#include <string.h>

static bool bits_ok(int b)
{
    return b == 2 || b == 3 || b == 4 || b == 8;
}

static int gptq_check(const cq_qconfig *cfg, int64_t rows, int64_t cols, cq_error *err)
{
    if (!bits_ok(cfg->bits))
        return cq_errorf(err, CQ_E_UNSUPPORTED, "gptq holds 2, 3, 4 or 8 bits, not %d", cfg->bits);
    if (cfg->group_size == 0 || cfg->group_size < -1)
        return cq_errorf(err, CQ_E_USAGE, "group size %d is neither -1 nor positive",
                         cfg->group_size);
    if (rows <= 0 || cols <= 0)
        return cq_errorf(err, CQ_E_SHAPE, "gptq: empty [%lld, %lld]", (long long)rows,
                         (long long)cols);
    /* Loaders size qweight as in // 32 * b rows and qzeros as out // 32 * b columns (§B.1):
     * unless 32 divides both, those shapes are too small for the codes, for every b. */
    if (cols % 32 != 0)
        return cq_errorf(err, CQ_E_UNSUPPORTED,
                         "gptq needs in_features divisible by 32 (qweight is in/32*b rows), got %lld",
                         (long long)cols);
    if (rows % 32 != 0)
        return cq_errorf(err, CQ_E_UNSUPPORTED,
                         "gptq needs out_features divisible by 32 (qzeros is out/32*b columns), got %lld",
                         (long long)rows);
    /* vLLM's gptq loader rejects partial groups */
    if (cfg->group_size > 0 && cols % cfg->group_size != 0)
        return cq_errorf(err, CQ_E_UNSUPPORTED,
                         "gptq needs in_features %lld divisible by the group size %d",
                         (long long)cols, cfg->group_size);
    return CQ_OK;
}

static int gptq_plan(const cq_qconfig *cfg, int64_t rows, int64_t cols, cq_packed *out, int *n,
                     cq_error *err)
{
    *n = 0;
    int rc = gptq_check(cfg, rows, cols, err);
    if (rc)
        return rc;
    int b = cfg->bits;
    int64_t ng = cq_pk_groups(cfg->group_size, cols);
    if ((rc = cq_pk_desc(&out[0], "qweight", CQ_DT_I32, 2, cols / 32 * b, rows, err)) ||
        (rc = cq_pk_desc(&out[1], "qzeros", CQ_DT_I32, 2, ng, rows / 32 * b, err)) ||
        (rc = cq_pk_desc(&out[2], "scales", CQ_DT_F16, 2, ng, rows, err)) ||
        (rc = cq_pk_desc(&out[3], "g_idx", CQ_DT_I32, 1, cols, 0, err)))
        return rc;
    *n = 4;
    return CQ_OK;
}

/* qweight[k*b/32 + w][n]: the codes of output n along the input dimension. Rows are packed
 * QW_BLOCK at a time so that the transposed stores fill whole cache lines (QW_BLOCK
 * consecutive words of one qweight row) instead of one word per line. */
enum { QW_BLOCK = 16 }; /* divides rows: gptq_check wants rows % 32 == 0 */

static void put_qweight(const cq_qresult *r, uint32_t *qw, uint32_t *words)
{
    int64_t nw = r->cols / 32 * r->bits;
    for (int64_t n0 = 0; n0 < r->rows; n0 += QW_BLOCK) {
        for (int64_t j = 0; j < QW_BLOCK; j++)
            cq_bits_pack_u8(r->q + (n0 + j) * r->cols, r->cols, r->bits, words + j * nw);
        for (int64_t w = 0; w < nw; w++)
            for (int64_t j = 0; j < QW_BLOCK; j++)
                qw[w * r->rows + n0 + j] = words[j * nw + w];
    }
}

static int gptq_fill(const cq_qresult *r, cq_packed *out, cq_error *err)
{
    size_t tmp = (size_t)(r->cols > r->rows ? r->cols : r->rows);
    uint32_t *vals = malloc(tmp * sizeof(uint32_t));
    uint32_t *words = malloc((size_t)r->cols / 32 * (size_t)r->bits * QW_BLOCK * sizeof(uint32_t));
    if (!vals || !words) {
        free(vals);
        free(words);
        return cq_errorf(err, CQ_E_NOMEM, "gptq: cannot allocate scratch");
    }
    put_qweight(r, out[0].data, words);
    unsigned minus = r->sym ? 1 : 0; /* v1 stores zero - 1; sym zeros are 2^(b-1) >= 1 */
    uint32_t *qz = out[1].data;
    uint16_t *sc = out[2].data;
    int rc = CQ_OK;
    for (int64_t g = 0; g < r->n_groups; g++) {
        for (int64_t n = 0; n < r->rows; n++)
            vals[n] = r->zero[g * r->rows + n] - minus;
        cq_bits_pack(vals, r->rows, r->bits, qz + g * (r->rows / 32 * r->bits));
    }
    for (int64_t i = 0; i < r->n_groups * r->rows && rc == CQ_OK; i++)
        rc = cq_pk_scale_f16(r->scale[i], &sc[i], err);
    memcpy(out[3].data, r->g_idx, (size_t)r->cols * sizeof(int32_t));
    free(vals);
    free(words);
    return rc;
}

static int gptq_pack(const cq_qconfig *cfg, const cq_qresult *r, cq_packed *out, int *n,
                     cq_error *err)
{
    *n = 0;
    int np = 0, rc = cq_pk_check_result(cfg, r, err);
    if (rc || (rc = gptq_plan(cfg, r->rows, r->cols, out, &np, err)) ||
        (rc = cq_pk_alloc_all(out, np, err)))
        return rc;
    if ((rc = gptq_fill(r, out, err))) {
        cq_packed_release(out, np);
        return rc;
    }
    *n = np;
    return CQ_OK;
}

/* ---- unpack ---- */

typedef struct gptq_opts {
    int bits, group_size;
    bool sym, v2;
} gptq_opts;

static int gptq_format(const cJSON *qcfg, bool *v2, cq_error *err)
{
    const char *cf = NULL, *f = NULL;
    int rc1 = cq_pk_json_str(qcfg, "checkpoint_format", &cf, err);
    int rc2 = cq_pk_json_str(qcfg, "format", &f, err);
    if (rc1 < 0 || rc2 < 0)
        return rc1 < 0 ? rc1 : rc2;
    if (cf && f && strcmp(cf, f) != 0)
        return cq_errorf(err, CQ_E_FORMAT, "quantization_config: checkpoint_format \"%s\" and "
                         "format \"%s\" disagree", cf, f);
    const char *v = cf ? cf : f ? f : "gptq"; /* AutoGPTQ infers "gptq" when absent */
    if (strcmp(v, "gptq") != 0 && strcmp(v, "gptq_v2") != 0)
        return cq_errorf(err, CQ_E_UNSUPPORTED, "gptq checkpoint format \"%s\" is not supported "
                         "(only gptq and gptq_v2)", v);
    *v2 = strcmp(v, "gptq_v2") == 0;
    return CQ_OK;
}

static int gptq_opts_parse(const cJSON *qcfg, gptq_opts *o, cq_error *err)
{
    int64_t bits = 0, group = 0;
    o->sym = true; /* AutoGPTQ's default when the key is missing */
    int rc = cq_pk_json_int(qcfg, "bits", &bits, err);
    if (rc == 0)
        return cq_errorf(err, CQ_E_FORMAT, "quantization_config: bits missing");
    if (rc < 0 || (rc = cq_pk_json_int(qcfg, "group_size", &group, err)) < 0)
        return rc;
    if (rc == 0)
        return cq_errorf(err, CQ_E_FORMAT, "quantization_config: group_size missing");
    if (!bits_ok((int)bits) || bits != (int)bits)
        return cq_errorf(err, CQ_E_UNSUPPORTED, "gptq checkpoint with %lld bits", (long long)bits);
    if (group == 0 || group < -1 || group > INT32_MAX)
        return cq_errorf(err, CQ_E_FORMAT, "quantization_config: group_size %lld", (long long)group);
    o->bits = (int)bits;
    o->group_size = (int)group;
    if ((rc = cq_pk_json_bool(qcfg, "sym", &o->sym, err)) < 0)
        return rc;
    return gptq_format(qcfg, &o->v2, err);
}

static void get_qweight(const cq_packed *t, cq_qresult *r, uint32_t *vals, uint32_t *words)
{
    int64_t nw = r->cols / 32 * r->bits;
    for (int64_t n = 0; n < r->rows; n++) {
        for (int64_t w = 0; w < nw; w++)
            words[w] = cq_pk_ld32(t->data, (size_t)(w * r->rows + n));
        cq_bits_unpack(words, r->cols, r->bits, vals);
        for (int64_t k = 0; k < r->cols; k++)
            r->q[n * r->cols + k] = (uint8_t)vals[k];
    }
}

/* v1 zeros are stored minus one. A stored all-ones field (what v1 writes for a zero of 0, with
 * the neighbours corrupted) decodes to 2^b as in every v1 loader; uint8 holds that for b <= 4
 * but not 256 for b = 8, which is refused. */
static int get_qzeros(const cq_packed *t, cq_qresult *r, bool v2, uint32_t *vals, uint32_t *words,
                      cq_error *err)
{
    int64_t nw = r->rows / 32 * r->bits;
    for (int64_t g = 0; g < r->n_groups; g++) {
        for (int64_t w = 0; w < nw; w++)
            words[w] = cq_pk_ld32(t->data, (size_t)(g * nw + w));
        cq_bits_unpack(words, r->rows, r->bits, vals);
        for (int64_t n = 0; n < r->rows; n++) {
            uint32_t z = vals[n] + (v2 ? 0 : 1);
            if (z > 255)
                return cq_errorf(err, CQ_E_UNSUPPORTED, "qzeros: 8-bit v1 zero 255 (+1 = 256, "
                                 "the v1 overflow case) in group %lld", (long long)g);
            r->zero[g * r->rows + n] = (uint8_t)z;
        }
    }
    return CQ_OK;
}

static int gptq_tensors(const cq_packed *in, int n, const gptq_opts *o, int64_t rows,
                        int64_t cols, const cq_packed *t[4], cq_error *err)
{
    int b = o->bits, rc;
    if (rows <= 0 || cols <= 0 || rows % 32 || cols % 32)
        return cq_errorf(err, CQ_E_SHAPE, "gptq: [%lld, %lld] is not a multiple of 32",
                         (long long)rows, (long long)cols);
    int64_t ng = cq_pk_groups(o->group_size, cols);
    t[3] = NULL;
    if ((rc = cq_pk_need(in, n, "qweight", CQ_DT_I32, 2, cols / 32 * b, rows, &t[0], err)) ||
        (rc = cq_pk_need(in, n, "qzeros", CQ_DT_I32, 2, ng, rows / 32 * b, &t[1], err)) ||
        (rc = cq_pk_need_float(in, n, "scales", ng, rows, &t[2], err)))
        return rc;
    if (cq_packed_find(in, n, "g_idx"))
        return cq_pk_need(in, n, "g_idx", CQ_DT_I32, 1, cols, 0, &t[3], err);
    return CQ_OK;
}

static int gptq_unpack(const cJSON *qcfg, const cq_packed *in, int n, int64_t rows, int64_t cols,
                       cq_qresult *out, cq_error *err)
{
    memset(out, 0, sizeof(*out));
    gptq_opts o;
    const cq_packed *t[4];
    int rc;
    if (!qcfg)
        return cq_errorf(err, CQ_E_FORMAT, "gptq: no quantization_config");
    if ((rc = gptq_opts_parse(qcfg, &o, err)) || (rc = gptq_tensors(in, n, &o, rows, cols, t, err)))
        return rc;
    int64_t ng = cq_pk_groups(o.group_size, cols);
    if ((rc = cq_pk_result_alloc(out, rows, cols, o.bits, o.group_size, ng, o.sym, err)))
        return rc;
    size_t tmp = (size_t)(cols > rows ? cols : rows);
    uint32_t *vals = malloc(tmp * 4), *words = malloc(tmp * 4);
    if (!vals || !words)
        rc = cq_errorf(err, CQ_E_NOMEM, "gptq: cannot allocate scratch");
    if (rc == CQ_OK) {
        get_qweight(t[0], out, vals, words);
        rc = get_qzeros(t[1], out, o.v2, vals, words, err);
    }
    if (rc == CQ_OK) {
        cq_convert_to_f32(t[2]->dtype, t[2]->data, out->scale, (size_t)(ng * rows));
        if (t[3])
            rc = cq_pk_read_gidx(t[3], cols, ng, out->g_idx, err);
        else
            cq_pk_default_gidx(out->g_idx, cols, o.group_size);
    }
    free(vals);
    free(words);
    if (rc)
        cq_pk_result_free(out);
    return rc;
}

/* ---- config.json ---- */

static int gptq_qconfig(const cq_qconfig *cfg, const char *method, cJSON *out, cq_error *err)
{
    if (!cJSON_IsObject(out) || !method)
        return cq_errorf(err, CQ_E_INTERNAL, "gptq: qconfig needs an object and a method");
    const char *fmt = cfg->sym ? "gptq" : "gptq_v2";
    bool ok = cJSON_AddStringToObject(out, "quant_method", "gptq") &&
              cJSON_AddNumberToObject(out, "bits", cfg->bits) &&
              cJSON_AddNumberToObject(out, "group_size", cfg->group_size) &&
              cJSON_AddBoolToObject(out, "desc_act", cfg->act_order) &&
              cJSON_AddBoolToObject(out, "sym", cfg->sym) &&
              cJSON_AddNumberToObject(out, "damp_percent", cfg->damp) &&
              cJSON_AddBoolToObject(out, "true_sequential", true) &&
              cJSON_AddBoolToObject(out, "static_groups", cfg->static_groups) &&
              cJSON_AddStringToObject(out, "checkpoint_format", fmt) &&
              cJSON_AddStringToObject(out, "format", fmt) &&
              cJSON_AddBoolToObject(out, "lm_head", false) &&
              cJSON_AddNullToObject(out, "model_name_or_path") &&
              cJSON_AddStringToObject(out, "model_file_base_name", "model");
    /* Loaders only know quant_method "gptq"; say what really produced the codes. */
    if (ok && strcmp(method, "gptq") != 0) {
        cJSON *meta = cJSON_AddObjectToObject(out, "meta");
        ok = meta && cJSON_AddStringToObject(meta, "quantizer", "cquant") &&
             cJSON_AddStringToObject(meta, "method", method);
    }
    return ok ? CQ_OK : cq_errorf(err, CQ_E_NOMEM, "gptq: cannot build quantization_config");
}

const cq_layout cq_layout_gptq = {
    .name = "gptq",
    .summary = "GPTQ (AutoGPTQ/GPTQModel/vLLM): 2/3/4/8-bit; sym writes v1 \"gptq\" (all loaders), "
               "asym writes \"gptq_v2\" (GPTQModel only)",
    .check = gptq_check,
    .plan = gptq_plan,
    .pack = gptq_pack,
    .unpack = gptq_unpack,
    .qconfig = gptq_qconfig,
};
