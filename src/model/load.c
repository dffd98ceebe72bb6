/* Loading the forward pass's weights from a checkpoint through the io reader, and checking the
 * checkpoint's tensor shapes against config.json. Kept apart from the kernels so that code
 * driving the forward with weights it made itself needs no reader. */
#include "cquant/model.h"

#include "cquant/checked.h"
#include "cquant/dtype.h"
#include "model/moe.h"

#include <stdint.h>
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

static int check_one(void *ctx, const cq_layer_tensor *t, cq_error *err)
{
    return expect(ctx, t->name, t->ndim, t->shape[0], t->shape[1], err);
}

/* "<name>.weight" (or ".bias") of a model-level module. */
static const char *mod_name(char *buf, size_t n, const char *module, const char *suffix)
{
    snprintf(buf, n, "%s%s", module, suffix);
    return buf;
}

static const char *desc_or_llama(const cq_model_config *cfg, int which)
{
    static const char *const llama[4] = {"model.embed_tokens", "model.norm", NULL, NULL};
    const cq_arch_desc *d = cfg->desc;
    const char *dn[4] = {d ? d->embed : NULL, d ? d->final_norm : NULL,
                         d ? d->project_in : NULL, d ? d->project_out : NULL};
    return d ? dn[which] : llama[which];
}
enum { M_EMBED, M_NORM, M_PROJ_IN, M_PROJ_OUT };

/* Model-level tensors: embeddings, learned positions, project_in/out, final norm. */
static int check_model_level(const cq_model_config *cfg, const cq_st_model *st, cq_error *err)
{
    char name[256];
    int64_t H = cfg->hidden, W = cq_word_dim(cfg);
    const char *norm = desc_or_llama(cfg, M_NORM);
    int rc = expect(st, mod_name(name, sizeof name, desc_or_llama(cfg, M_EMBED), ".weight"), 2,
                    cfg->vocab, W, err);
    if (rc == CQ_OK && !cfg->no_final_norm)
        rc = expect(st, mod_name(name, sizeof name, norm, ".weight"), 1, H, 0, err);
    if (rc == CQ_OK && !cfg->no_final_norm && cfg->norm_bias)
        rc = expect(st, mod_name(name, sizeof name, norm, ".bias"), 1, H, 0, err);
    if (rc == CQ_OK && cfg->desc && cfg->desc->pos_embed)
        rc = expect(st, mod_name(name, sizeof name, cfg->desc->pos_embed, ".weight"), 2,
                    cfg->max_pos + cfg->pos_offset, H, err);
    if (rc == CQ_OK && cfg->word_dim > 0)
        rc = expect(st, mod_name(name, sizeof name, desc_or_llama(cfg, M_PROJ_IN), ".weight"), 2,
                    H, W, err);
    if (rc == CQ_OK && cfg->word_dim > 0)
        rc = expect(st, mod_name(name, sizeof name, desc_or_llama(cfg, M_PROJ_OUT), ".weight"),
                    2, W, H, err);
    return rc;
}

int cq_config_check(cq_model_config *cfg, const cq_st_model *st, cq_error *err)
{
    if (cfg->word_dim > 0 && !(cfg->desc && cfg->desc->project_in))
        return cq_errorf(err, CQ_E_UNSUPPORTED, "word_embed_proj_dim is only supported for OPT");
    int rc = check_model_level(cfg, st, err);
    for (int64_t l = 0; l < cfg->n_layers && rc == CQ_OK; l++)
        rc = cq_layer_foreach(cfg, NULL, l, check_one, (void *)st, err);
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
    return expect(st, "lm_head.weight", 2, cfg->vocab, cq_word_dim(cfg), err);
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

static int read_one(void *ctx, const cq_layer_tensor *t, cq_error *err)
{
    return read_tensor(ctx, t->name, t->ndim, t->shape[0], t->shape[1], t->data, err);
}

int cq_layer_load(cq_layer_weights *w, const cq_model_config *cfg, const cq_st_model *st,
                  int64_t layer, cq_error *err)
{
    int rc = w->lin[0] ? CQ_OK : cq_layer_alloc(w, cfg, err);
    w->sparse = cq_layer_is_moe(cfg, layer);
    if (rc == CQ_OK)
        rc = cq_layer_foreach(cfg, w, layer, read_one, (void *)st, err);
    return rc;
}

static float *alloc_f32(int64_t a, int64_t b, bool *fail)
{
    int64_t n;
    float *p = NULL;
    if (cq_mul_i64(a, b, &n) == 0 && n >= 0 && (uint64_t)n <= SIZE_MAX / sizeof(float))
        p = calloc((size_t)(n ? n : 1), sizeof(float));
    if (!p)
        *fail = true;
    return p;
}

int cq_head_load(cq_head_weights *h, const cq_model_config *cfg, const cq_st_model *st,
                 cq_error *err)
{
    memset(h, 0, sizeof *h);
    int64_t H = cfg->hidden, W = cq_word_dim(cfg);
    bool fail = false;
    h->lm_head = alloc_f32(cfg->vocab, W, &fail);
    if (!cfg->no_final_norm)
        h->norm = alloc_f32(H, 1, &fail);
    if (!cfg->no_final_norm && cfg->norm_bias)
        h->norm_bias = alloc_f32(H, 1, &fail);
    if (cfg->word_dim > 0)
        h->proj_out = alloc_f32(W, H, &fail);
    if (fail) {
        cq_head_release(h);
        return cq_errorf(err, CQ_E_NOMEM, "out of memory for the f32 output layer");
    }
    char name[256];
    const char *embed = desc_or_llama(cfg, M_EMBED), *norm = desc_or_llama(cfg, M_NORM);
    const char *out_name = cfg->tie_embeddings ? mod_name(name, sizeof name, embed, ".weight")
                                               : "lm_head.weight";
    int rc = read_tensor(st, out_name, 2, cfg->vocab, W, h->lm_head, err);
    if (rc == CQ_OK && h->norm)
        rc = read_tensor(st, mod_name(name, sizeof name, norm, ".weight"), 1, H, 0, h->norm, err);
    if (rc == CQ_OK && h->norm_bias)
        rc = read_tensor(st, mod_name(name, sizeof name, norm, ".bias"), 1, H, 0, h->norm_bias,
                         err);
    if (rc == CQ_OK && h->proj_out)
        rc = read_tensor(st, mod_name(name, sizeof name, desc_or_llama(cfg, M_PROJ_OUT),
                                      ".weight"), 2, W, H, h->proj_out, err);
    if (rc != CQ_OK)
        cq_head_release(h);
    return rc;
}

/* A float tensor of the expected 2-D shape, for row access. */
static int find_rows(const cq_st_model *st, const char *name, int64_t d0, int64_t d1,
                     const cq_st_tensor **out, size_t *row_bytes, cq_error *err)
{
    const cq_st_tensor *t = cq_st_find(st, name);
    if (!t || t->ndim != 2 || t->shape[0] != d0 || t->shape[1] != d1)
        return cq_errorf(err, CQ_E_SHAPE, "tensor %s is missing or disagrees with config.json",
                         name);
    const cq_dtype_traits *dt = cq_dtype_info(t->dtype);
    if (!dt || !dt->is_float)
        return cq_errorf(err, CQ_E_UNSUPPORTED, "%s: tensor %s is not a float tensor", t->file,
                         name);
    *out = t;
    *row_bytes = (size_t)d1 * (size_t)dt->size;
    return CQ_OK;
}

/* Token rows [n x W] of embed_tokens. */
static int gather_rows(const cq_st_tensor *t, size_t row_bytes, const cq_model_config *cfg,
                       const int32_t *ids, int64_t n, int64_t first, float *out, cq_error *err)
{
    int64_t W = cq_word_dim(cfg);
    for (int64_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= cfg->vocab)
            return cq_errorf(err, CQ_E_USAGE, "token id %d at position %lld is outside the "
                             "vocabulary of %lld", ids[i], (long long)(first + i),
                             (long long)cfg->vocab);
        const char *row = (const char *)t->data + (size_t)ids[i] * row_bytes;
        cq_convert_to_f32(t->dtype, row, out + i * W, (size_t)W);
    }
    return CQ_OK;
}

/* OPT: hidden = project_in(embed) in row blocks (one f32 copy of project_in). */
#define PROJ_ROWS 1024
static int embed_projected(const cq_model_config *cfg, const cq_st_model *st,
                           const cq_st_tensor *t, size_t row_bytes, const int32_t *ids,
                           int64_t n, float *hidden, cq_error *err)
{
    int64_t H = cfg->hidden, W = cq_word_dim(cfg);
    bool fail = false;
    float *pw = alloc_f32(H, W, &fail), *rows = alloc_f32(PROJ_ROWS, W, &fail);
    char name[256];
    int rc = fail ? cq_errorf(err, CQ_E_NOMEM, "out of memory for project_in") : CQ_OK;
    if (rc == CQ_OK)
        rc = read_tensor(st, mod_name(name, sizeof name, desc_or_llama(cfg, M_PROJ_IN),
                                      ".weight"), 2, H, W, pw, err);
    for (int64_t r0 = 0; r0 < n && rc == CQ_OK; r0 += PROJ_ROWS) {
        int64_t nr = n - r0 < PROJ_ROWS ? n - r0 : PROJ_ROWS;
        rc = gather_rows(t, row_bytes, cfg, ids + r0, nr, r0, rows, err);
        if (rc == CQ_OK)
            cq_linear(rows, nr, W, pw, NULL, H, hidden + r0 * H);
    }
    free(pw);
    free(rows);
    return rc;
}

/* OPT's learned positions: row pos_offset + (t mod seqlen) added to every token. */
static int add_positions(const cq_model_config *cfg, const cq_st_model *st, int64_t n_seq,
                         int64_t seqlen, float *hidden, cq_error *err)
{
    int64_t H = cfg->hidden;
    const cq_st_tensor *t;
    size_t rb;
    char name[256];
    int rc = find_rows(st, mod_name(name, sizeof name, cfg->desc->pos_embed, ".weight"),
                       cfg->max_pos + cfg->pos_offset, H, &t, &rb, err);
    float *pos = rc == CQ_OK ? calloc((size_t)H, sizeof(float)) : NULL;
    if (rc == CQ_OK && !pos)
        rc = cq_errorf(err, CQ_E_NOMEM, "out of memory");
    for (int64_t p = 0; p < seqlen && rc == CQ_OK; p++) {
        const char *row = (const char *)t->data + (size_t)(cfg->pos_offset + p) * rb;
        cq_convert_to_f32(t->dtype, row, pos, (size_t)H);
        for (int64_t s = 0; s < n_seq; s++) {
            float *x = hidden + (s * seqlen + p) * H;
            for (int64_t j = 0; j < H; j++)
                x[j] += pos[j];
        }
    }
    free(pos);
    return rc;
}

int cq_embed_seqs(const cq_model_config *cfg, const cq_st_model *st, const int32_t *ids,
                  int64_t n_seq, int64_t seqlen, float *hidden, cq_error *err)
{
    const cq_st_tensor *t;
    size_t rb;
    char name[256];
    int64_t n;
    if (n_seq < 0 || seqlen < 0 || cq_mul_i64(n_seq, seqlen, &n))
        return cq_errorf(err, CQ_E_USAGE, "bad token count %lld x %lld", (long long)n_seq,
                         (long long)seqlen);
    bool learned = cfg->desc && cfg->desc->pos_embed;
    if (learned && seqlen > cfg->max_pos)
        return cq_errorf(err, CQ_E_USAGE, "sequence length %lld exceeds the %lld learned "
                         "positions of %s", (long long)seqlen, (long long)cfg->max_pos,
                         cfg->arch_name);
    int rc = find_rows(st, mod_name(name, sizeof name, desc_or_llama(cfg, M_EMBED), ".weight"),
                       cfg->vocab, cq_word_dim(cfg), &t, &rb, err);
    if (rc == CQ_OK && cfg->word_dim > 0)
        rc = embed_projected(cfg, st, t, rb, ids, n, hidden, err);
    else if (rc == CQ_OK)
        rc = gather_rows(t, rb, cfg, ids, n, 0, hidden, err);
    if (rc == CQ_OK && learned && n > 0)
        rc = add_positions(cfg, st, n_seq, seqlen, hidden, err);
    return rc;
}

int cq_embed(const cq_model_config *cfg, const cq_st_model *st, const int32_t *ids,
             int64_t n_tokens, float *hidden, cq_error *err)
{
    return cq_embed_seqs(cfg, st, ids, 1, n_tokens, hidden, err);
}
