/* Weight error of a quantized result without materializing the dequantized matrix: one pass
 * over w and the codes, split over rows. Sums are kept per row (kernels.h fixes the order of
 * additions inside a row) and added over rows in row order, so the numbers are the same for
 * any thread count and on either kernel path. */
#include "cquant/quant.h"
#include "cquant/report.h"
#include "quant/kernels.h"
#include "quant/par.h"

#include <math.h>
#include <stdlib.h>

typedef struct werr_ctx {
    const float *w;
    const cq_qresult *q;
    const int64_t *run_start; /* maximal runs of columns with one g_idx; n_runs + 1 entries */
    int64_t n_runs;
    cq_row_err re;            /* per row */
} werr_ctx;

static void werr_rows(void *p, int64_t r0, int64_t r1, int worker)
{
    const werr_ctx *c = p;
    const cq_qresult *q = c->q;
    for (int64_t r = r0; r < r1; r++) {
        cq_k_err e = {{0}, {0}, 0.0, false};
        for (int64_t k = 0; k < c->n_runs; k++) {
            int64_t c0 = c->run_start[k], n = c->run_start[k + 1] - c0;
            int64_t g = (int64_t)q->g_idx[c0] * q->rows + r;
            cq_k_err_add(&e, c->w + r * q->cols + c0, q->q + r * q->cols + c0, n, q->scale[g],
                         (float)q->zero[g]);
        }
        cq_k_err_row(&e, &c->re, r);
    }
}

void cq_werr_from_rows(const cq_row_err *re, int64_t rows, int64_t cols, cq_werr *out)
{
    double se = 0.0, sw = 0.0, mx = 0.0;
    bool nan = false;
    for (int64_t r = 0; r < rows; r++) {
        se += re->se[r];
        sw += re->sw[r];
        mx = re->mx[r] > mx ? re->mx[r] : mx;
        nan |= re->nan[r] != 0;
    }
    int64_t n = rows * cols;
    out->n = n;
    out->sum_sq_err = se;
    out->sum_sq_w = sw;
    out->mse = n > 0 ? se / (double)n : 0;
    out->max_abs = nan ? NAN : mx;
    out->rel_fro = sw > 0 ? sqrt(se / sw) : (se > 0 ? INFINITY : 0);
}

int cq_weight_error_q(const float *w, const cq_qresult *q, int threads, cq_werr *out,
                      cq_error *err)
{
    int64_t rows = q->rows, cols = q->cols;
    werr_ctx c = {.w = w, .q = q};
    int64_t *runs = malloc((size_t)(cols + 1) * sizeof *runs);
    double *sums = malloc((size_t)rows * 3 * sizeof *sums);
    unsigned char *nan = malloc((size_t)rows);
    if (!runs || !sums || !nan) {
        free(runs);
        free(sums);
        free(nan);
        return cq_errorf(err, CQ_E_NOMEM, "out of memory measuring a %lld x %lld error",
                         (long long)rows, (long long)cols);
    }
    for (int64_t k = 0; k < cols; k++)
        if (k == 0 || q->g_idx[k] != q->g_idx[k - 1])
            runs[c.n_runs++] = k;
    runs[c.n_runs] = cols;
    c.run_start = runs;
    c.re = (cq_row_err){sums, sums + rows, sums + 2 * rows, nan};
    cq_par_rows(cq_par_workers_for(threads, rows, cols), rows, werr_rows, &c);
    cq_werr_from_rows(&c.re, rows, cols, out);
    free(runs);
    free(sums);
    free(nan);
    return CQ_OK;
}
