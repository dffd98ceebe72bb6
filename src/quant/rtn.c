/* Round-to-nearest on the min-max grid (notes §B.4), per row (group_size -1) or per group of
 * consecutive input columns. Rows are independent, so they are split across threads; the
 * inner loops are the kernels of kernels.h (AVX2 where the CPU has it, same bytes). */
#include "cquant/dtype.h"
#include "cquant/quant.h"
#include "quant/grid.h"
#include "quant/kernels.h"
#include "quant/par.h"

#include <math.h>
#include <stdlib.h>

typedef struct rtn_ctx {
    const cq_grid *grid;
    const float *w;
    int64_t cols, gsize;
    cq_qresult *out;
    int bad_row; /* set (any worker) when a row holds NaN/Inf; the caller then names it */
} rtn_ctx;

/* One pass per row: finiteness, then per group min/max, fit and codes, while the row is in L1. */
static void rtn_rows(void *p, int64_t r0, int64_t r1, int worker)
{
    rtn_ctx *c = p;
    cq_qresult *o = c->out;
    for (int64_t r = r0; r < r1; r++) {
        const float *row = c->w + r * c->cols;
        if (!cq_k_all_finite(row, c->cols)) {
            __atomic_store_n(&c->bad_row, 1, __ATOMIC_RELAXED);
            return;
        }
        for (int64_t g = 0; g < o->n_groups; g++) {
            int64_t c0 = g * c->gsize, n = c->cols - c0 < c->gsize ? c->cols - c0 : c->gsize;
            float s, z, lo, hi;
            cq_k_minmax(row + c0, n, &lo, &hi);
            cq_grid_fit_range(c->grid, row + c0, n, lo, hi, &s, &z);
            o->scale[g * o->rows + r] = s;
            o->zero[g * o->rows + r] = (uint8_t)z;
            cq_k_codes(row + c0, n, s, z, c->grid->maxq, o->q + r * c->cols + c0);
        }
    }
}

/* What both entry points do first: check, allocate *out, the grid, g_idx and the group size. */
static int rtn_setup(const cq_qconfig *cfg, int64_t rows, int64_t cols, cq_qresult *out,
                     cq_grid *grid, int64_t *gsize, cq_error *err)
{
    int rc = cq_qconfig_check(cfg, err);
    if (rc == CQ_OK)
        rc = cq_qresult_alloc(out, rows, cols, cfg, err);
    if (rc != CQ_OK)
        return rc;
    cq_grid_init(grid, cfg->bits, cfg->sym, cfg->mse);
    *gsize = cfg->group_size == -1 ? cols : cfg->group_size;
    for (int64_t k = 0; k < cols; k++)
        out->g_idx[k] = (int32_t)(k / *gsize);
    return CQ_OK;
}

int cq_rtn_quantize(const cq_qconfig *cfg, const float *w, int64_t rows, int64_t cols,
                    cq_qresult *out, cq_error *err)
{
    cq_grid grid;
    int64_t gsize;
    int rc = rtn_setup(cfg, rows, cols, out, &grid, &gsize, err);
    if (rc != CQ_OK)
        return rc;
    rtn_ctx ctx = {&grid, w, cols, gsize, out, 0};
    /* Rows are independent and each is written by one worker: the bytes do not depend on
     * the number of workers. */
    cq_par_rows(cq_par_workers_for(cfg->threads, rows, cols), rows, rtn_rows, &ctx);
    if (ctx.bad_row) {
        rc = cq_check_finite(w, rows * cols, err); /* finds and names the first bad value */
        cq_qresult_release(out);
        return rc != CQ_OK ? rc : cq_errorf(err, CQ_E_INTERNAL, "non-finite row not found");
    }
    return CQ_OK;
}

/* ---- fused: from the stored dtype, with the error metric ---- */

typedef struct rtn_src_ctx {
    const cq_grid *grid;
    cq_dtype dt;
    const unsigned char *src;
    size_t esize;          /* bytes per stored element */
    int64_t cols, gsize;
    cq_qresult *out;
    cq_row_err *re;
    float *buf;            /* [workers * cols]: each worker's row */
    int64_t *zero_range;   /* [workers] */
    int bad_row;
} rtn_src_ctx;

/* 1 when all n values of g are equal (a group cq_zero_range_groups counts). */
static int64_t flat_group(const float *g, int64_t n)
{
    int64_t k = 1;
    while (k < n && g[k] == g[0])
        k++;
    return k == n;
}

int64_t cq_zero_range_groups(const float *w, int64_t rows, int64_t cols, int group_size)
{
    int64_t gs = group_size > 0 ? group_size : cols, n = 0;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c0 = 0; c0 < cols; c0 += gs)
            n += flat_group(w + r * cols + c0, cols - c0 < gs ? cols - c0 : gs);
    return n;
}

static void rtn_src_rows(void *p, int64_t r0, int64_t r1, int worker)
{
    rtn_src_ctx *c = p;
    cq_qresult *o = c->out;
    float *row = c->buf + (int64_t)worker * c->cols;
    for (int64_t r = r0; r < r1; r++) {
        cq_convert_to_f32(c->dt, c->src + (size_t)(r * c->cols) * c->esize, row,
                          (size_t)c->cols);
        cq_k_err e = {{0}, {0}, 0.0, false};
        for (int64_t g = 0; g < o->n_groups; g++) {
            int64_t c0 = g * c->gsize, n = c->cols - c0 < c->gsize ? c->cols - c0 : c->gsize;
            float s, z, lo, hi;
            if (!cq_k_minmax_finite(row + c0, n, &lo, &hi)) {
                __atomic_store_n(&c->bad_row, 1, __ATOMIC_RELAXED);
                return;
            }
            cq_grid_fit_range(c->grid, row + c0, n, lo, hi, &s, &z);
            uint8_t *q = o->q + r * c->cols + c0;
            cq_k_codes(row + c0, n, s, z, c->grid->maxq, q);
            /* the scale kept, and the error measured against, is the F16 every layout stores */
            s = cq_f16_to_f32(cq_f32_to_f16(s));
            o->scale[g * o->rows + r] = s;
            o->zero[g * o->rows + r] = (uint8_t)z;
            cq_k_err_add(&e, row + c0, q, n, s, (float)o->zero[g * o->rows + r]);
            c->zero_range[worker] += flat_group(row + c0, n);
        }
        cq_k_err_row(&e, c->re, r);
    }
}

int cq_rtn_quantize_stored(const cq_qconfig *cfg, cq_dtype dt, const void *src, int64_t rows,
                           int64_t cols, cq_qresult *out, cq_row_err *re, int64_t *zero_range,
                           cq_error *err)
{
    if (dt != CQ_DT_F32 && dt != CQ_DT_F16 && dt != CQ_DT_BF16)
        return cq_errorf(err, CQ_E_UNSUPPORTED, "fused rtn: dtype %s", cq_dtype_info(dt)->name);
    cq_grid grid;
    int64_t gsize;
    int rc = rtn_setup(cfg, rows, cols, out, &grid, &gsize, err);
    if (rc != CQ_OK)
        return rc;
    int workers = cq_par_workers_for(cfg->threads, rows, cols);
    rtn_src_ctx ctx = {.grid = &grid, .dt = dt, .src = src,
                       .esize = (size_t)cq_dtype_info(dt)->size, .cols = cols, .gsize = gsize,
                       .out = out, .re = re};
    ctx.buf = malloc((size_t)workers * (size_t)cols * sizeof(float));
    ctx.zero_range = calloc((size_t)workers, sizeof *ctx.zero_range);
    if (!ctx.buf || !ctx.zero_range) {
        rc = cq_errorf(err, CQ_E_NOMEM, "out of memory");
    } else {
        cq_par_rows(workers, rows, rtn_src_rows, &ctx);
        *zero_range = 0;
        for (int k = 0; k < workers; k++)
            *zero_range += ctx.zero_range[k];
        if (ctx.bad_row)
            rc = cq_errorf(err, CQ_E_NUMERIC, "non-finite weights");
    }
    free(ctx.buf);
    free(ctx.zero_range);
    if (rc != CQ_OK)
        cq_qresult_release(out);
    return rc;
}

static int rtn_run(const cq_qconfig *cfg, float *w, int64_t rows, int64_t cols,
                   const cq_qstats *stats, cq_qresult *out, cq_error *err)
{
    return cq_rtn_quantize(cfg, w, rows, cols, out, err);
}

const cq_quantizer cq_quantizer_rtn = {
    .name = "rtn",
    .summary = "round to nearest on the min-max grid, per row or per group",
    .needs = 0,
    .keeps_w = true,
    .run = rtn_run,
};
