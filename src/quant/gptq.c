/* GPTQ (Frantar et al. 2022; notes §E), reproducing the reference fasterquant step by step:
 * dead columns, static groups, act-order, relative damping, the upper Cholesky factor U of
 * inv(H), and blocked lazy updates with error feedback. Differences from the reference are
 * deliberate and documented in docs/algorithms.md: H, the damping and U are computed in float64
 * (then U is rounded to float32 for the column loop and the sgemm), the damping is retried x10
 * when H is not positive definite, and sums of the loss are taken in double.
 *
 * Within a block every output row evolves independently (its scale/zero and its error feedback
 * only touch that row), so the in-block loop runs per row on threads, and the trailing update
 * is one sgemm per block. */
#include "cquant/checked.h"
#include "cquant/quant.h"
#include "linalg/chol.h"
#include "linalg/det.h"
#include "quant/grid.h"
#include "quant/par.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct gptq {
    const cq_qconfig *cfg;
    cq_grid grid;
    int64_t rows, cols, gsize, bs;
    bool refit;        /* groups refitted at their first column (group_size > 0, not static) */
    bool statics;      /* groups fitted up front (group_size > 0, static) */
    float *w;          /* [rows x cols] working copy, columns in visiting order */
    float *u;          /* [cols x cols] upper factor of inv(H), visiting order, f32 */
    int64_t *perm;     /* [cols] visiting position -> original column */
    float *err;        /* [rows x bs] scaled errors of the current block */
    float *w1;         /* [workers x w1_len] one row buffer per worker */
    int64_t w1_len;    /* bs, or cols when permuting rows (act-order) */
    double *loss;      /* [rows] running sum of (w - q)^2 / d^2 */
    double *inv_d2;    /* [cols] 1 / U_ii^2, one division per column instead of per entry */
    int64_t *col_group; /* [cols] group_of(c), precomputed: two idivs per entry were the
                           costliest instructions of the row kernel */
    int64_t i1, i2;    /* current block */
    cq_qresult *out;
} gptq;

/* Group whose parameters quantize visiting position c. Static groups were fitted on original
 * columns, so with act-order the lookup goes through perm (notes §E.8). */
static int64_t group_of(const gptq *s, int64_t c)
{
    if (s->statics)
        return s->perm[c] / s->gsize;
    return s->refit ? c / s->gsize : 0;
}

/* QUIRK (§E.8): the refit reads the full matrix W, which has the lazy updates of earlier
 * blocks but not the in-block updates held in w1. So a group starting mid-block (group_size <
 * block_size) is fitted on slightly stale values, as in the reference; we keep that for
 * bit-exactness. W[:, i1:i2] is never written during the block, which is what makes it so. */
static void refit_row(gptq *s, int64_t r, int64_t c)
{
    int64_t n = s->cols - c < s->gsize ? s->cols - c : s->gsize;
    float sc, z;
    cq_grid_fit(&s->grid, s->w + r * s->cols + c, n, &sc, &z);
    int64_t k = (c / s->gsize) * s->rows + r;
    s->out->scale[k] = sc;
    s->out->zero[k] = (uint8_t)z;
}

/* The rank-1 error feedback inside the block: w1[j] -= e * u[j] for j > i. Plain loop with
 * restrict pointers so the compiler vectorizes it; mul then sub (no FMA under -std=c11), like
 * the reference's outer product followed by subtraction. */
static void axpy_neg(float *restrict w1, const float *restrict u, float e, int64_t n)
{
    for (int64_t j = 0; j < n; j++)
        w1[j] -= e * u[j];
}

/* Built twice, for AVX2 and for the x86-64 baseline, picked at load time. AVX2 alone (no FMA)
 * keeps mul-then-sub, so both versions give the same bits. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("avx2", "default")))
#endif
static void block_row(gptq *s, int64_t r, float *restrict w1)
{
    const int64_t cols = s->cols, bw = s->i2 - s->i1;
    float *e = s->err + r * s->bs;
    double loss = 0.0;
    memcpy(w1, s->w + r * cols + s->i1, (size_t)bw * sizeof *w1);
    for (int64_t i = 0; i < bw; i++) {
        int64_t c = s->i1 + i;
        int64_t g = s->col_group[c];
        if (s->refit && g * s->gsize == c)
            refit_row(s, r, c);
        int64_t k = g * s->rows + r;
        float sc = s->out->scale[k], z = (float)s->out->zero[k];
        float code = cq_grid_code(w1[i], sc, z, s->grid.maxq);
        float diff = w1[i] - cq_grid_dequant(code, sc, z);
        float d = s->u[c * cols + c];
        e[i] = diff / d;
        loss += (double)diff * diff * s->inv_d2[c];
        axpy_neg(w1 + i + 1, s->u + c * cols + c + 1, e[i], bw - i - 1);
        s->out->q[r * cols + s->perm[c]] = (uint8_t)code;
    }
    s->loss[r] += loss;
}

static void block_rows(void *p, int64_t r0, int64_t r1, int worker)
{
    gptq *s = p;
    for (int64_t r = r0; r < r1; r++)
        block_row(s, r, s->w1 + worker * s->w1_len);
}

/* Permute each row's columns into visiting order (act-order), one row buffer per worker. */
static void permute_rows(void *p, int64_t r0, int64_t r1, int worker)
{
    gptq *s = p;
    float *tmp = s->w1 + worker * s->w1_len;
    for (int64_t r = r0; r < r1; r++) {
        float *row = s->w + r * s->cols;
        memcpy(tmp, row, (size_t)s->cols * sizeof *tmp);
        for (int64_t c = 0; c < s->cols; c++)
            row[c] = tmp[s->perm[c]];
    }
}

static int check_hessian(const double *h, int64_t n, cq_error *err)
{
    for (int64_t i = 0; i < n * n; i++)
        if (!isfinite(h[i]))
            return cq_errorf(err, CQ_E_NUMERIC, "hessian has a non-finite value at (%lld, %lld)",
                             (long long)(i / n), (long long)(i % n));
    return CQ_OK;
}

/* Columns never seen by the calibration data (H_ii == 0): H_ii := 1 and W[:, i] := 0 (§E.3).
 * diag[] receives the diagonal after that substitution. */
static int64_t kill_dead(gptq *s, const double *h, double *diag)
{
    int64_t dead = 0, n = s->cols;
    for (int64_t c = 0; c < n; c++) {
        diag[c] = h[c * n + c];
        if (diag[c] != 0.0)
            continue;
        diag[c] = 1.0;
        dead++;
        for (int64_t r = 0; r < s->rows; r++)
            s->w[r * n + c] = 0.0f;
    }
    return dead;
}

/* Act-order (§E.5): descending diagonal. torch.argsort is not stable; we break ties by the
 * original index (stable merge sort) so the order is reproducible. qsort is neither stable nor
 * able to take the key without global state. */
static void merge_sort(int64_t *a, int64_t *tmp, int64_t n, const double *key)
{
    if (n < 2)
        return;
    int64_t m = n / 2;
    merge_sort(a, tmp, m, key);
    merge_sort(a + m, tmp, n - m, key);
    int64_t i = 0, j = m, k = 0;
    while (i < m && j < n)
        tmp[k++] = key[a[j]] > key[a[i]] ? a[j++] : a[i++];
    while (i < m)
        tmp[k++] = a[i++];
    while (j < n)
        tmp[k++] = a[j++];
    memcpy(a, tmp, (size_t)n * sizeof *a);
}

/* Fill a with the permuted, damped H: a[i][j] = H[p_i][p_j] + lambda [i == j]. */
static void build_damped(const gptq *s, const double *h, const double *diag, double lambda,
                         double *a)
{
    int64_t n = s->cols;
    for (int64_t i = 0; i < n; i++) {
        const double *src = h + s->perm[i] * n;
        for (int64_t j = 0; j < n; j++)
            a[i * n + j] = src[s->perm[j]];
        a[i * n + i] = diag[s->perm[i]] + lambda;
    }
}

/* §E.6-7 with the retry policy: lambda = damp * mean(diag H), x10 after each failure. */
static int inverse_factor(gptq *s, const double *h, const double *diag, cq_error *err)
{
    int64_t n = s->cols;
    size_t bytes;
    if (cq_mul_size((size_t)n * (size_t)n, sizeof(double), &bytes) != 0)
        return cq_errorf(err, CQ_E_NOMEM, "hessian of order %lld is too large", (long long)n);
    double *a = malloc(bytes);
    if (!a)
        return cq_errorf(err, CQ_E_NOMEM, "out of memory for a %lld x %lld hessian",
                         (long long)n, (long long)n);
    double mean = 0.0, damp = s->cfg->damp;
    for (int64_t i = 0; i < n; i++)
        mean += diag[i];
    mean /= (double)n;
    int rc = CQ_E_NUMERIC;
    for (int t = 1; t <= s->cfg->max_damp_tries && rc != CQ_OK; t++, damp *= 10.0) {
        cq_error local = CQ_ERROR_INIT;
        build_damped(s, h, diag, damp * mean, a);
        rc = cq_chol_inv_upper(a, n, &local);
        s->out->damp_tries = t;
        s->out->damp_used = damp;
    }
    if (rc == CQ_OK) {
        for (int64_t i = 0; i < n * n; i++)
            s->u[i] = (float)a[i];
        for (int64_t i = 0; i < n; i++)
            s->inv_d2[i] = 1.0 / ((double)s->u[i * n + i] * s->u[i * n + i]);
    }
    free(a);
    if (rc != CQ_OK)
        return cq_errorf(err, CQ_E_NUMERIC,
                         "hessian is not positive definite after %d damping attempts "
                         "(last damping %g of mean diagonal)",
                         s->out->damp_tries, s->out->damp_used);
    return CQ_OK;
}

static void run_blocks(gptq *s, int workers)
{
    for (s->i1 = 0; s->i1 < s->cols; s->i1 += s->bs) {
        s->i2 = s->i1 + s->bs < s->cols ? s->i1 + s->bs : s->cols;
        double t0 = cq_par_now();
        cq_par_rows(workers, s->rows, block_rows, s);
        double t1 = cq_par_now();
        s->out->secs_columns += t1 - t0;
        if (s->i2 == s->cols)
            break;
        /* Lazy update (§E.8): W[:, i2:] -= Err · U[i1:i2, i2:], one sgemm per block. */
        cq_det_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)s->rows,
                    (int)(s->cols - s->i2), (int)(s->i2 - s->i1), -1.0f, s->err, (int)s->bs,
                    s->u + s->i1 * s->cols + s->i2, (int)s->cols, 1.0f, s->w + s->i2,
                    (int)s->cols);
        s->out->secs_update += cq_par_now() - t1;
    }
}

/* Fits done before the column loop: per row on the untouched W when there is a single group
 * (§E.2: the reference fits before zeroing dead columns), per static group after (§E.4). */
static void fit_upfront(gptq *s, int64_t groups)
{
    cq_qresult *o = s->out;
    for (int64_t g = 0; g < groups; g++) {
        int64_t c0 = g * s->gsize, n = s->cols - c0 < s->gsize ? s->cols - c0 : s->gsize;
        for (int64_t r = 0; r < s->rows; r++) {
            float sc, z;
            cq_grid_fit(&s->grid, s->w + r * s->cols + c0, n, &sc, &z);
            o->scale[g * s->rows + r] = sc;
            o->zero[g * s->rows + r] = (uint8_t)z;
        }
    }
}

static void *alloc_f(int64_t a, int64_t b, size_t elem, bool *fail)
{
    size_t n;
    void *p = NULL;
    if (cq_mul_size((size_t)a, (size_t)b, &n) == 0 && cq_mul_size(n, elem, &n) == 0)
        p = malloc(n ? n : 1);
    if (!p)
        *fail = true;
    return p;
}

static void gptq_free(gptq *s)
{
    free(s->u);
    free(s->perm);
    free(s->err);
    free(s->w1);
    free(s->loss);
    free(s->inv_d2);
    free(s->col_group);
}

static int gptq_setup(gptq *s, const cq_qconfig *cfg, float *w, int64_t rows, int64_t cols,
                      int workers, cq_qresult *out, cq_error *err)
{
    memset(s, 0, sizeof *s);
    s->cfg = cfg;
    cq_grid_init(&s->grid, cfg->bits, cfg->sym, cfg->mse);
    s->rows = rows;
    s->cols = cols;
    s->gsize = cfg->group_size == -1 ? cols : cfg->group_size;
    s->statics = cfg->group_size > 0 && cfg->static_groups;
    s->refit = cfg->group_size > 0 && !cfg->static_groups;
    s->bs = cfg->block_size < cols ? cfg->block_size : cols;
    s->w1_len = cfg->act_order ? cols : s->bs;
    s->w = w;
    s->out = out;
    bool fail = false;
    s->u = alloc_f(cols, cols, sizeof *s->u, &fail);
    s->perm = alloc_f(cols, 2, sizeof *s->perm, &fail); /* second half: sort scratch */
    s->err = alloc_f(rows, s->bs, sizeof *s->err, &fail);
    s->w1 = alloc_f(workers, s->w1_len, sizeof *s->w1, &fail);
    s->inv_d2 = alloc_f(cols, 1, sizeof *s->inv_d2, &fail);
    s->col_group = alloc_f(cols, 1, sizeof *s->col_group, &fail);
    s->loss = fail ? NULL : calloc((size_t)rows, sizeof *s->loss);
    if (fail || !s->loss) {
        gptq_free(s);
        return cq_errorf(err, CQ_E_NOMEM, "out of memory for gptq on a %lld x %lld matrix",
                         (long long)rows, (long long)cols);
    }
    for (int64_t c = 0; c < cols; c++)
        s->perm[c] = c;
    return CQ_OK;
}

static void finish(gptq *s, float *w)
{
    cq_qresult *o = s->out;
    /* g_idx (§B.5): visiting-order groups map back through invperm unless groups are static. */
    for (int64_t k = 0; k < s->cols; k++) {
        int64_t pos = k;
        if (s->refit && s->cfg->act_order)
            pos = s->perm[s->cols + k]; /* invperm, filled by order_columns */
        o->g_idx[k] = (int32_t)(s->refit ? pos / s->gsize : (s->statics ? k / s->gsize : 0));
    }
    o->loss = 0.0;
    for (int64_t r = 0; r < s->rows; r++)
        o->loss += s->loss[r];
    o->loss /= 2.0; /* the reference halves Losses per block */
    cq_qresult_dequant(o, w);
}

/* Visiting order and its inverse (stored in perm[cols..2cols)). */
static void order_columns(gptq *s, const double *diag, int workers)
{
    if (s->cfg->act_order) {
        merge_sort(s->perm, s->perm + s->cols, s->cols, diag);
        for (int64_t c = 0; c < s->cols; c++)
            s->perm[s->cols + s->perm[c]] = c;
        cq_par_rows(workers, s->rows, permute_rows, s);
    }
    for (int64_t c = 0; c < s->cols; c++)
        s->col_group[c] = group_of(s, c);
}

static int gptq_body(gptq *s, const double *h, int workers, cq_error *err)
{
    cq_qresult *o = s->out;
    double *diag = malloc((size_t)s->cols * sizeof *diag);
    if (!diag)
        return cq_errorf(err, CQ_E_NOMEM, "out of memory for the hessian diagonal");
    if (!s->refit && !s->statics)
        fit_upfront(s, 1);
    o->dead_cols = kill_dead(s, h, diag);
    if (s->statics)
        fit_upfront(s, o->n_groups);
    order_columns(s, diag, workers);
    double t0 = cq_par_now();
    int rc = inverse_factor(s, h, diag, err);
    o->secs_inverse = cq_par_now() - t0;
    free(diag);
    if (rc != CQ_OK)
        return rc;
    run_blocks(s, workers);
    return CQ_OK;
}

int cq_gptq_quantize(const cq_qconfig *cfg, float *w, int64_t rows, int64_t cols,
                     const double *h, cq_qresult *out, cq_error *err)
{
    int rc = cq_qconfig_check(cfg, err);
    if (rc == CQ_OK && (rows > INT32_MAX || cols > INT32_MAX))
        rc = cq_errorf(err, CQ_E_UNSUPPORTED, "matrix %lld x %lld exceeds blas int range",
                       (long long)rows, (long long)cols);
    if (rc == CQ_OK)
        rc = cq_qresult_alloc(out, rows, cols, cfg, err);
    if (rc != CQ_OK)
        return rc;
    if (!h)
        rc = cq_errorf(err, CQ_E_USAGE, "gptq needs a hessian");
    if (rc == CQ_OK)
        rc = cq_check_finite(w, rows * cols, err);
    if (rc == CQ_OK)
        rc = check_hessian(h, cols, err);
    int workers = cq_par_workers(cfg->threads, rows);
    gptq s;
    if (rc == CQ_OK)
        rc = gptq_setup(&s, cfg, w, rows, cols, workers, out, err);
    if (rc != CQ_OK) {
        cq_qresult_release(out);
        return rc;
    }
    rc = gptq_body(&s, h, workers, err);
    if (rc == CQ_OK)
        finish(&s, w);
    else
        cq_qresult_release(out);
    gptq_free(&s);
    return rc;
}

static int gptq_run(const cq_qconfig *cfg, float *w, int64_t rows, int64_t cols,
                    const cq_qstats *stats, cq_qresult *out, cq_error *err)
{
    return cq_gptq_quantize(cfg, w, rows, cols, stats ? stats->hessian : NULL, out, err);
}

const cq_quantizer cq_quantizer_gptq = {
    .name = "gptq",
    .summary = "GPTQ: error-compensating quantization with the inverse hessian",
    .needs = CQ_NEED_HESSIAN,
    .run = gptq_run,
};
