/* Loading the forward pass's weights from a checkpoint through the io reader, and checking the
 * checkpoint's tensor shapes against config.json. Kept apart from the kernels so that code
 * driving the forward with weights it made itself needs no reader. */
#include "cquant/model.h"

#include "cquant/checked.h"
#include "cquant/dtype.h"
#include "model/moe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int expect(const cq_st_model *st, const char *name, int ndim, int64_t d0, int64_t d1,
                  cq_error *err)
{
    const cq_st_tensor *t = cq_st_find(st, name);
    if (!t)
        return cq_errorf(err, CQ_E_SHAPE, "tensor %s is missing from the checkpoint", name);
    bool ok = t->ndim == ndim && t->shape[0] == d0 && (ndim == 1 || t->shape[1] == d1);
    if (!ok && ndim == 1)
        return cq_errorf(err, CQ_E_SHAPE, "%s: tensor %s has not the shape [%lld] that config.json "
                         "implies", t->file, name, (long long)d0);
    if (!ok)
        return cq_errorf(err, CQ_E_SHAPE, "%s: tensor %s has not the shape [%lld, %lld] that "
                         "config.json implies", t->file, name, (long long)d0, (long long)d1);
    return CQ_OK;
}

static int check_layer(const cq_model_config *cfg, const cq_st_model *st, int64_t l,
                       cq_error *err)
{
    char name[256];
    int rc = CQ_OK;
    for (int i = 0; i < CQ_LIN_COUNT && rc == CQ_OK; i++) {
        int64_t r, c;
        if (!cq_layer_has_linear(cfg, l, i))
            continue;
        cq_linear_shape(cfg, i, &r, &c);
        snprintf(name, sizeof name, "model.layers.%lld.%s.weight", (long long)l,
                 cq_linear_name(i));
        rc = expect(st, name, 2, r, c, err);
    }
    if (rc == CQ_OK && cq_layer_is_moe(cfg, l))
        rc = cq_moe_check(cfg, st, l, err);
    const char *norms[2] = {"input_layernorm", "post_attention_layernorm"};
    for (int i = 0; i < 2 && rc == CQ_OK; i++) {
        snprintf(name, sizeof name, "model.layers.%lld.%s.weight", (long long)l, norms[i]);
        rc = expect(st, name, 1, cfg->hidden, 0, err);
    }
    return rc;
}

int cq_config_check(cq_model_config *cfg, const cq_st_model *st, cq_error *err)
{
    int rc = expect(st, "model.embed_tokens.weight", 2, cfg->vocab, cfg->hidden, err);
    if (rc == CQ_OK)
        rc = expect(st, "model.norm.weight", 1, cfg->hidden, 0, err);
    for (int64_t l = 0; l < cfg->n_layers && rc == CQ_OK; l++)
        rc = check_layer(cfg, st, l, err);
    if (rc != CQ_OK)
        return rc;
    /* A checkpoint without lm_head.weight can only be tied; one with it uses it. */
    if (!cq_st_find(st, "lm_head.weight")) {
        if (!cfg->tie_embeddings)
            return cq_errorf(err, CQ_E_SHAPE, "tensor lm_head.weight is missing and "
                             "tie_word_embeddings is false");
        return CQ_OK;
    }
    if (cfg->tie_embeddings)
        return CQ_OK;
    return expect(st, "lm_head.weight", 2, cfg->vocab, cfg->hidden, err);
}

/* Read tensor `name` of exactly numel elements (shape already checked by the caller or here). */
static int read_tensor(const cq_st_model *st, const char *name, int ndim, int64_t d0, int64_t d1,
                       float *out, cq_error *err)
{
    const cq_st_tensor *t = cq_st_find(st, name);
    if (!t)
        return cq_errorf(err, CQ_E_SHAPE, "tensor %s is missing from the checkpoint", name);
    if (t->ndim != ndim || t->shape[0] != d0 || (ndim == 2 && t->shape[1] != d1))
        return cq_errorf(err, CQ_E_SHAPE, "%s: tensor %s has a shape that disagrees with "
                         "config.json", t->file, name);
    int rc = cq_st_read_f32(t, out, err);
    cq_st_release(t);
    return rc;
}

int cq_layer_load(cq_layer_weights *w, const cq_model_config *cfg, const cq_st_model *st,
                  int64_t layer, cq_error *err)
{
    int rc = w->lin[0] ? CQ_OK : cq_layer_alloc(w, cfg, err);
    char name[256];
    w->sparse = cq_layer_is_moe(cfg, layer);
    for (int i = 0; i < CQ_LIN_COUNT && rc == CQ_OK; i++) {
        int64_t r, c;
        if (!cq_layer_has_linear(cfg, layer, i))
            continue;
        cq_linear_shape(cfg, i, &r, &c);
        snprintf(name, sizeof name, "model.layers.%lld.%s.weight", (long long)layer,
                 cq_linear_name(i));
        rc = read_tensor(st, name, 2, r, c, w->lin[i], err);
        if (rc == CQ_OK && w->bias[i]) {
            snprintf(name, sizeof name, "model.layers.%lld.%s.bias", (long long)layer,
                     cq_linear_name(i));
            rc = read_tensor(st, name, 1, r, 0, w->bias[i], err);
        }
    }
    snprintf(name, sizeof name, "model.layers.%lld.input_layernorm.weight", (long long)layer);
    if (rc == CQ_OK)
        rc = read_tensor(st, name, 1, cfg->hidden, 0, w->in_norm, err);
    snprintf(name, sizeof name, "model.layers.%lld.post_attention_layernorm.weight",
             (long long)layer);
    if (rc == CQ_OK)
        rc = read_tensor(st, name, 1, cfg->hidden, 0, w->post_norm, err);
    if (rc == CQ_OK && w->sparse)
        rc = cq_moe_load(&w->moe, cfg, st, layer, err);
    return rc;
}

int cq_head_load(cq_head_weights *h, const cq_model_config *cfg, const cq_st_model *st,
                 cq_error *err)
{
    memset(h, 0, sizeof *h);
    int64_t n;
    if (cq_mul_i64(cfg->vocab, cfg->hidden, &n) || !(h->norm = calloc((size_t)cfg->hidden, sizeof(float))) ||
        !(h->lm_head = calloc((size_t)n, sizeof(float)))) {
        cq_head_release(h);
        return cq_errorf(err, CQ_E_NOMEM, "out of memory for the f32 output layer");
    }
    const char *out_name = cfg->tie_embeddings ? "model.embed_tokens.weight" : "lm_head.weight";
    int rc = read_tensor(st, "model.norm.weight", 1, cfg->hidden, 0, h->norm, err);
    if (rc == CQ_OK)
        rc = read_tensor(st, out_name, 2, cfg->vocab, cfg->hidden, h->lm_head, err);
    if (rc != CQ_OK)
        cq_head_release(h);
    return rc;
}

int cq_embed(const cq_model_config *cfg, const cq_st_model *st, const int32_t *ids,
             int64_t n_tokens, float *hidden, cq_error *err)
{
    const cq_st_tensor *t = cq_st_find(st, "model.embed_tokens.weight");
    if (!t || t->ndim != 2 || t->shape[0] != cfg->vocab || t->shape[1] != cfg->hidden)
        return cq_errorf(err, CQ_E_SHAPE, "tensor model.embed_tokens.weight is missing or "
                         "disagrees with config.json");
    const cq_dtype_traits *dt = cq_dtype_info(t->dtype);
    if (!dt || !dt->is_float)
        return cq_errorf(err, CQ_E_UNSUPPORTED, "%s: tensor model.embed_tokens.weight is not a "
                         "float tensor", t->file);
    size_t row_bytes = (size_t)cfg->hidden * (size_t)dt->size;
    for (int64_t i = 0; i < n_tokens; i++) {
        if (ids[i] < 0 || ids[i] >= cfg->vocab)
            return cq_errorf(err, CQ_E_USAGE, "token id %d at position %lld is outside the "
                             "vocabulary of %lld", ids[i], (long long)i, (long long)cfg->vocab);
        const char *row = (const char *)t->data + (size_t)ids[i] * row_bytes;
        cq_convert_to_f32(t->dtype, row, hidden + i * cfg->hidden, (size_t)cfg->hidden);
    }
    return CQ_OK;
}

