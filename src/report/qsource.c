/* Dequantize-on-load layer source for quantized checkpoints (see qsource.h). Decoding is the
 * same as `cquant dequant` (src/cli/cmd_dequant.c): the tensors "<module>.<suffix>" go to the
 * layout's unpack, then cq_qresult_dequant gives f32 scale·(q − zero). */
#include "cquant/qsource.h"

#include "cquant/json.h"
#include "cquant/pack.h"
#include "cquant/quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cq_qsource {
    const cq_model_config *cfg;
    const cq_st_model *st;
    cJSON *config;
    const cJSON *qcfg;      /* borrowed from config */
    const cq_layout *layout;
    int64_t packed;
};

/* Every tensor a layout stores for one Linear, besides the bias (pack.h, notes §B-§D). */
static const char *const packed_suffixes[] = {
    "qweight",        "qzeros",      "scales",            "g_idx",        /* gptq, awq */
    "weight_packed",  "weight_scale", "weight_zero_point", "weight_g_idx", /* ct */
    "weight_shape",
};
#define N_SUFFIXES (sizeof packed_suffixes / sizeof *packed_suffixes)

static int is_packed(const cq_st_model *st, const char *prefix)
{
    char name[320];
    snprintf(name, sizeof name, "%s.qweight", prefix);
    if (cq_st_find(st, name))
        return 1;
    snprintf(name, sizeof name, "%s.weight_packed", prefix);
    return cq_st_find(st, name) != NULL;
}

/* Read NAME into out when it has shape [d0] (d1 = 0) or [d0, d1]. */
static int read_f32(const cq_st_model *st, const char *name, int64_t d0, int64_t d1, float *out,
                    cq_error *err)
{
    const cq_st_tensor *t = cq_st_find(st, name);
    if (!t)
        return cq_errorf(err, CQ_E_SHAPE, "tensor %s is missing from the checkpoint", name);
    int ndim = d1 ? 2 : 1;
    if (t->ndim != ndim || t->shape[0] != d0 || (ndim == 2 && t->shape[1] != d1))
        return cq_errorf(err, CQ_E_SHAPE, "%s: tensor %s has a shape that disagrees with "
                         "config.json", t->file, name);
    int rc = cq_st_read_f32(t, out, err);
    cq_st_release(t);
    return rc;
}

/* The layout's tensors of PREFIX, borrowed from the mapping (unpack only reads). */
static int gather(const cq_st_model *st, const char *prefix, cq_packed *in, int *n)
{
    char name[320];
    *n = 0;
    for (size_t k = 0; k < N_SUFFIXES && *n < CQ_PACK_MAX_TENSORS; k++) {
        snprintf(name, sizeof name, "%s.%s", prefix, packed_suffixes[k]);
        const cq_st_tensor *t = cq_st_find(st, name);
        if (!t)
            continue;
        cq_packed *p = &in[(*n)++];
        memset(p, 0, sizeof *p);
        snprintf(p->suffix, sizeof p->suffix, "%s", packed_suffixes[k]);
        p->dtype = t->dtype;
        p->ndim = t->ndim;
        for (int d = 0; d < t->ndim && d < 2; d++)
            p->shape[d] = t->shape[d];
        p->nbytes = t->nbytes;
        p->data = (void *)t->data;
    }
    return *n;
}

static void release_gathered(const cq_st_model *st, const char *prefix)
{
    char name[320];
    for (size_t k = 0; k < N_SUFFIXES; k++) {
        snprintf(name, sizeof name, "%s.%s", prefix, packed_suffixes[k]);
        const cq_st_tensor *t = cq_st_find(st, name);
        if (t)
            cq_st_release(t);
    }
}

static int dequant_linear(const cq_qsource *q, const char *prefix, int64_t rows, int64_t cols,
                          float *w, cq_error *err)
{
    cq_packed in[CQ_PACK_MAX_TENSORS];
    cq_qresult qr;
    memset(&qr, 0, sizeof qr);
    int n;
    gather(q->st, prefix, in, &n);
    int rc = q->layout->unpack(q->qcfg, in, n, rows, cols, &qr, err);
    if (rc == CQ_OK && (qr.rows != rows || qr.cols != cols))
        rc = cq_errorf(err, CQ_E_SHAPE, "unpacked to [%lld, %lld], config.json implies "
                       "[%lld, %lld]", (long long)qr.rows, (long long)qr.cols, (long long)rows,
                       (long long)cols);
    if (rc == CQ_OK)
        cq_qresult_dequant(&qr, w);
    else
        cq_error_prefix(err, "module '%s'", prefix);
    cq_qresult_release(&qr);
    release_gathered(q->st, prefix);
    return rc;
}

/* A Linear's weight packed or float (packed first, as check_layers counts them: a stray float
 * copy beside packed tensors is not what a quantized-model loader would use); every other
 * tensor (biases, norms) as float. */
static int load_one(void *ctx, const cq_layer_tensor *t, cq_error *err)
{
    const cq_qsource *q = ctx;
    char prefix[256];
    size_t n = strlen(t->name);
    if (t->lin >= 0 && n > 7) {
        if (n - 7 >= sizeof prefix)
            return cq_errorf(err, CQ_E_USAGE, "tensor name %s is too long", t->name);
        snprintf(prefix, sizeof prefix, "%.*s", (int)(n - 7), t->name);
        if (is_packed(q->st, prefix))
            return dequant_linear(q, prefix, t->shape[0], t->shape[1], t->data, err);
    }
    return read_f32(q->st, t->name, t->shape[0], t->ndim == 2 ? t->shape[1] : 0, t->data, err);
}

int cq_qsource_layer(void *ctx, int64_t layer, cq_layer_weights *w, cq_error *err)
{
    const cq_qsource *q = ctx;
    int rc = w->lin[0] ? CQ_OK : cq_layer_alloc(w, q->cfg, err);
    w->sparse = cq_layer_is_moe(q->cfg, layer);
    if (rc == CQ_OK)
        rc = cq_layer_foreach(q->cfg, w, layer, load_one, (void *)q, err);
    return rc;
}

/* Up-front check that each Linear is there in one form (its values are checked at unpack), and
 * every other tensor of the layer as float. */
static int check_one(void *ctx, const cq_layer_tensor *t, cq_error *err)
{
    cq_qsource *q = ctx;
    char prefix[256];
    size_t n = strlen(t->name);
    if (t->lin < 0 || n <= 7) {
        if (!cq_st_find(q->st, t->name))
            return cq_errorf(err, CQ_E_SHAPE, "tensor %s is missing from the checkpoint",
                             t->name);
        return CQ_OK;
    }
    if (n - 7 >= sizeof prefix)
        return cq_errorf(err, CQ_E_USAGE, "tensor name %s is too long", t->name);
    snprintf(prefix, sizeof prefix, "%.*s", (int)(n - 7), t->name);
    if (is_packed(q->st, prefix))
        q->packed++;
    else if (!cq_st_find(q->st, t->name))
        return cq_errorf(err, CQ_E_SHAPE, "module %s is missing from the checkpoint "
                         "(neither %s nor packed tensors)", prefix, t->name);
    return CQ_OK;
}

static int check_layers(cq_qsource *q, cq_error *err)
{
    int rc = CQ_OK;
    for (int64_t l = 0; l < q->cfg->n_layers && rc == CQ_OK; l++)
        rc = cq_layer_foreach(q->cfg, NULL, l, check_one, q, err);
    return rc;
}

int cq_qsource_open(cq_qsource **out, const char *model_dir, const cq_model_config *cfg,
                    const cq_st_model *st, cq_error *err)
{
    char path[4200];
    *out = NULL;
    snprintf(path, sizeof path, "%s/config.json", model_dir);
    cq_qsource *q = calloc(1, sizeof *q);
    if (!q)
        return cq_errorf(err, CQ_E_NOMEM, "out of memory");
    q->cfg = cfg;
    q->st = st;
    int rc = cq_json_load(&q->config, path, err);
    if (rc == CQ_OK)
        q->qcfg = cJSON_GetObjectItemCaseSensitive(q->config, "quantization_config");
    if (rc != CQ_OK || !q->qcfg) { /* not quantized (or the error) */
        cq_qsource_free(q);
        return rc;
    }
    if (!cJSON_IsObject(q->qcfg) || !(q->layout = cq_layout_detect(q->qcfg)))
        rc = cq_errorf(err, CQ_E_UNSUPPORTED, "%s: quantization_config names no layout cquant "
                       "reads (gptq, awq gemm, compressed-tensors)", path);
    if (rc == CQ_OK)
        rc = check_layers(q, err);
    if (rc != CQ_OK) {
        cq_qsource_free(q);
        return rc;
    }
    *out = q;
    return CQ_OK;
}

void cq_qsource_free(cq_qsource *q)
{
    if (!q)
        return;
    cJSON_Delete(q->config);
    free(q);
}

const char *cq_qsource_layout(const cq_qsource *q) { return q ? q->layout->name : "float"; }

int64_t cq_qsource_packed(const cq_qsource *q) { return q ? q->packed : 0; }
