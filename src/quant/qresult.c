/* Options, the unpacked result every packer takes, and the quantizer registry. */
#include "cquant/checked.h"
#include "cquant/quant.h"

#include <stdlib.h>
#include <string.h>

void cq_qconfig_defaults(cq_qconfig *cfg)
{
    *cfg = (cq_qconfig){
        .bits = 4,
        .group_size = 128,
        .sym = true,
        .mse = false,
        .act_order = false,
        .static_groups = false,
        .damp = 0.01,
        .block_size = 128,
        .max_damp_tries = 6,
        .threads = 0,
    };
}

int cq_qconfig_check(const cq_qconfig *cfg, cq_error *err)
{
    int b = cfg->bits;
    if (b != 2 && b != 3 && b != 4 && b != 8)
        return cq_errorf(err, CQ_E_USAGE, "bits must be 2, 3, 4 or 8 (got %d)", b);
    if (cfg->group_size != -1 && cfg->group_size < 1)
        return cq_errorf(err, CQ_E_USAGE, "group size must be -1 or positive (got %d)",
                         cfg->group_size);
    /* The reference adds damp * mean(diag H); 0 is allowed (no damping), negative is not. */
    if (!(cfg->damp >= 0.0 && cfg->damp <= 1e6))
        return cq_errorf(err, CQ_E_USAGE, "damping must be in [0, 1e6] (got %g)", cfg->damp);
    if (cfg->block_size < 1 || cfg->block_size > 65536)
        return cq_errorf(err, CQ_E_USAGE, "block size must be in [1, 65536] (got %d)",
                         cfg->block_size);
    if (cfg->max_damp_tries < 1 || cfg->max_damp_tries > 32)
        return cq_errorf(err, CQ_E_USAGE, "damping attempts must be in [1, 32] (got %d)",
                         cfg->max_damp_tries);
    if (cfg->threads < 0 || cfg->threads > 1024)
        return cq_errorf(err, CQ_E_USAGE, "threads must be in [0, 1024] (got %d)", cfg->threads);
    return CQ_OK;
}

static void *alloc_array(int64_t n, size_t elem, bool *fail)
{
    size_t bytes;
    if (cq_mul_size((size_t)n, elem, &bytes) != 0) {
        *fail = true;
        return NULL;
    }
    void *p = calloc(bytes ? bytes : 1, 1);
    if (!p)
        *fail = true;
    return p;
}

int cq_qresult_alloc(cq_qresult *r, int64_t rows, int64_t cols, const cq_qconfig *cfg,
                     cq_error *err)
{
    memset(r, 0, sizeof *r);
    int64_t cells;
    if (rows < 1 || cols < 1 || cq_mul_i64(rows, cols, &cells) != 0)
        return cq_errorf(err, CQ_E_USAGE, "matrix shape %lld x %lld is invalid",
                         (long long)rows, (long long)cols);
    int64_t g = cfg->group_size == -1 ? cols : cfg->group_size;
    r->rows = rows;
    r->cols = cols;
    r->bits = cfg->bits;
    r->group_size = cfg->group_size;
    r->sym = cfg->sym;
    r->n_groups = (cols + g - 1) / g;
    bool fail = false;
    r->q = alloc_array(cells, 1, &fail);
    r->scale = alloc_array(r->n_groups * rows, sizeof *r->scale, &fail);
    r->zero = alloc_array(r->n_groups * rows, 1, &fail);
    r->g_idx = alloc_array(cols, sizeof *r->g_idx, &fail);
    if (fail) {
        cq_qresult_release(r);
        return cq_errorf(err, CQ_E_NOMEM, "out of memory for a %lld x %lld quantized matrix",
                         (long long)rows, (long long)cols);
    }
    return CQ_OK;
}

void cq_qresult_release(cq_qresult *r)
{
    if (!r)
        return;
    free(r->q);
    free(r->scale);
    free(r->zero);
    free(r->g_idx);
    memset(r, 0, sizeof *r);
}

void cq_qresult_dequant(const cq_qresult *r, float *out)
{
    for (int64_t i = 0; i < r->rows; i++) {
        for (int64_t c = 0; c < r->cols; c++) {
            int64_t k = (int64_t)r->g_idx[c] * r->rows + i;
            out[i * r->cols + c] =
                r->scale[k] * ((float)r->q[i * r->cols + c] - (float)r->zero[k]);
        }
    }
}

static const cq_quantizer *const quantizers[] = {&cq_quantizer_rtn, &cq_quantizer_gptq};

const cq_quantizer *const *cq_quantizer_list(int *n)
{
    *n = (int)(sizeof quantizers / sizeof quantizers[0]);
    return quantizers;
}

const cq_quantizer *cq_quantizer_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < sizeof quantizers / sizeof quantizers[0]; i++)
        if (strcmp(quantizers[i]->name, name) == 0)
            return quantizers[i];
    return NULL;
}
