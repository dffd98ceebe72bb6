/* Round-to-nearest on the min-max grid (notes §B.4), per row (group_size -1) or per group of
 * consecutive input columns. Rows are independent, so they are split across threads. */
#include "cquant/quant.h"
#include "quant/grid.h"
#include "quant/par.h"

#include <math.h>

typedef struct rtn_ctx {
    const cq_grid *grid;
    const float *w;
    int64_t cols, gsize;
    cq_qresult *out;
} rtn_ctx;

static void rtn_rows(void *p, int64_t r0, int64_t r1, int worker)
{
    rtn_ctx *c = p;
    cq_qresult *o = c->out;
    for (int64_t r = r0; r < r1; r++) {
        const float *row = c->w + r * c->cols;
        for (int64_t g = 0; g < o->n_groups; g++) {
            int64_t c0 = g * c->gsize, n = c->cols - c0 < c->gsize ? c->cols - c0 : c->gsize;
            float s, z;
            cq_grid_fit(c->grid, row + c0, n, &s, &z);
            o->scale[g * o->rows + r] = s;
            o->zero[g * o->rows + r] = (uint8_t)z;
            for (int64_t k = c0; k < c0 + n; k++)
                o->q[r * c->cols + k] = (uint8_t)cq_grid_code(row[k], s, z, c->grid->maxq);
        }
    }
}

int cq_rtn_quantize(const cq_qconfig *cfg, const float *w, int64_t rows, int64_t cols,
                    cq_qresult *out, cq_error *err)
{
    int rc = cq_qconfig_check(cfg, err);
    if (rc == CQ_OK)
        rc = cq_qresult_alloc(out, rows, cols, cfg, err);
    if (rc != CQ_OK)
        return rc;
    if ((rc = cq_check_finite(w, rows * cols, err)) != CQ_OK) {
        cq_qresult_release(out);
        return rc;
    }
    cq_grid grid;
    cq_grid_init(&grid, cfg->bits, cfg->sym, cfg->mse);
    int64_t gsize = cfg->group_size == -1 ? cols : cfg->group_size;
    for (int64_t k = 0; k < cols; k++)
        out->g_idx[k] = (int32_t)(k / gsize);
    rtn_ctx ctx = {&grid, w, cols, gsize, out};
    cq_par_rows(cq_par_workers(cfg->threads, rows), rows, rtn_rows, &ctx);
    return CQ_OK;
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
    .run = rtn_run,
};
