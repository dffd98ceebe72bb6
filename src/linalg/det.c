/* See det.h. The split of every call depends only on its shape (never on the worker count), so
 * the worker count changes which thread computes a tile, not what the tile holds. */
#include "linalg/det.h"

#include "quant/par.h"

#include <stdint.h>

extern void openblas_set_num_threads(int) __attribute__((weak));
extern int openblas_get_num_threads(void) __attribute__((weak));

/* Below this many flops a call is one tile: thread start-up (~50 us) would cost more. */
#define DET_SMALL_FLOPS (64.0 * 1024 * 1024)
/* Tiles are at least this wide along the split dimension: each tile re-packs the operand that
 * is not split, so fewer, larger tiles keep that overhead to a few percent. */
enum { DET_TILE = 512, DET_MAX_TILES = 64 };

static int g_threads;

void cq_det_set_threads(int threads)
{
    __atomic_store_n(&g_threads, threads > 0 ? threads : 0, __ATOMIC_RELAXED);
}

int cq_det_threads(void)
{
    return cq_par_workers(__atomic_load_n(&g_threads, __ATOMIC_RELAXED), 1 << 20);
}

void cq_det_blas_single(void)
{
    /* checked on every call: anyone may have raised it since (a reader of a global int) */
    if (openblas_set_num_threads && openblas_get_num_threads && openblas_get_num_threads() != 1)
        openblas_set_num_threads(1);
}

typedef struct tiles {
    void (*fn)(void *ctx, int64_t t);
    void *ctx;
    int64_t nt;
    int workers;
} tiles;

/* Worker w takes tiles w, w + W, w + 2W, ...: triangular work (syrk, Cholesky) stays balanced. */
static void tiles_worker(void *p, int64_t w0, int64_t w1, int worker)
{
    (void)worker;
    tiles *t = p;
    for (int64_t w = w0; w < w1; w++)
        for (int64_t i = w; i < t->nt; i += t->workers)
            t->fn(t->ctx, i);
}

void cq_det_tiles(int64_t nt, void (*fn)(void *ctx, int64_t t), void *ctx)
{
    cq_det_blas_single();
    int workers = cq_det_threads();
    if (workers > nt)
        workers = nt > 0 ? (int)nt : 1;
    tiles t = {fn, ctx, nt, workers};
    cq_par_rows(workers, workers, tiles_worker, &t);
}

typedef struct gemm {
    int dbl, by_rows, m, n, k, lda, ldb, ldc;
    CBLAS_TRANSPOSE ta, tb;
    double alpha, beta;
    const char *a, *b;
    char *c;
    int64_t nt;
} gemm;

static void gemm_tile(void *p, int64_t t)
{
    const gemm *g = p;
    size_t es = g->dbl ? sizeof(double) : sizeof(float);
    int64_t dim = g->by_rows ? g->m : g->n;
    int64_t lo = dim * t / g->nt, hi = dim * (t + 1) / g->nt;
    const char *a = g->a, *b = g->b;
    char *c = g->c;
    int m = g->m, n = g->n;
    if (g->by_rows) {
        a += (size_t)lo * es * (g->ta == CblasNoTrans ? (size_t)g->lda : 1);
        c += (size_t)lo * (size_t)g->ldc * es;
        m = (int)(hi - lo);
    } else {
        b += (size_t)lo * es * (g->tb == CblasNoTrans ? 1 : (size_t)g->ldb);
        c += (size_t)lo * es;
        n = (int)(hi - lo);
    }
    if (g->dbl)
        cblas_dgemm(CblasRowMajor, g->ta, g->tb, m, n, g->k, g->alpha, (const double *)a, g->lda,
                    (const double *)b, g->ldb, g->beta, (double *)c, g->ldc);
    else
        cblas_sgemm(CblasRowMajor, g->ta, g->tb, m, n, g->k, (float)g->alpha, (const float *)a,
                    g->lda, (const float *)b, g->ldb, (float)g->beta, (float *)c, g->ldc);
}

static void gemm_run(gemm *g)
{
    g->by_rows = g->m >= g->n;
    int64_t dim = g->by_rows ? g->m : g->n;
    g->nt = dim / DET_TILE;
    if (2.0 * g->m * g->n * g->k < DET_SMALL_FLOPS || g->nt < 1)
        g->nt = 1;
    if (g->nt > DET_MAX_TILES)
        g->nt = DET_MAX_TILES;
    if (g->nt == 1) {
        cq_det_blas_single();
        gemm_tile(g, 0);
        return;
    }
    cq_det_tiles(g->nt, gemm_tile, g);
}

void cq_det_sgemm(CBLAS_ORDER order, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k,
                  float alpha, const float *a, int lda, const float *b, int ldb, float beta,
                  float *c, int ldc)
{
    if (order != CblasRowMajor || m <= 0 || n <= 0) {
        cq_det_blas_single();
        cblas_sgemm(order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    gemm g = {.dbl = 0, .m = m, .n = n, .k = k, .lda = lda, .ldb = ldb, .ldc = ldc, .ta = ta,
              .tb = tb, .alpha = alpha, .beta = beta, .a = (const char *)a,
              .b = (const char *)b, .c = (char *)c};
    gemm_run(&g);
}

void cq_det_dgemm(CBLAS_ORDER order, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k,
                  double alpha, const double *a, int lda, const double *b, int ldb, double beta,
                  double *c, int ldc)
{
    if (order != CblasRowMajor || m <= 0 || n <= 0) {
        cq_det_blas_single();
        cblas_dgemm(order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    gemm g = {.dbl = 1, .m = m, .n = n, .k = k, .lda = lda, .ldb = ldb, .ldc = ldc, .ta = ta,
              .tb = tb, .alpha = alpha, .beta = beta, .a = (const char *)a,
              .b = (const char *)b, .c = (char *)c};
    gemm_run(&g);
}

/* syrk by row blocks of C: the diagonal block by ssyrk, the rest of the block row by sgemm. */
typedef struct syrk {
    CBLAS_TRANSPOSE tr;
    int n, k, lda, ldc;
    float alpha, beta;
    const float *a;
    float *c;
    int64_t nt;
} syrk;

static const float *syrk_cols(const syrk *s, int64_t j)
{
    /* column j of op(A) (n x k with trans = NoTrans means row j of A) */
    return s->tr == CblasNoTrans ? s->a + j * s->lda : s->a + j;
}

static void syrk_tile(void *p, int64_t t)
{
    const syrk *s = p;
    int64_t r0 = s->n * t / s->nt, r1 = s->n * (t + 1) / s->nt;
    int nb = (int)(r1 - r0);
    CBLAS_TRANSPOSE other = s->tr == CblasNoTrans ? CblasTrans : CblasNoTrans;
    cblas_ssyrk(CblasRowMajor, CblasUpper, s->tr, nb, s->k, s->alpha, syrk_cols(s, r0), s->lda,
                s->beta, s->c + r0 * s->ldc + r0, s->ldc);
    if (r1 < s->n)
        cblas_sgemm(CblasRowMajor, s->tr, other, nb, (int)(s->n - r1), s->k, s->alpha,
                    syrk_cols(s, r0), s->lda, syrk_cols(s, r1), s->lda, s->beta,
                    s->c + r0 * s->ldc + r1, s->ldc);
}

void cq_det_ssyrk(CBLAS_ORDER order, CBLAS_UPLO uplo, CBLAS_TRANSPOSE trans, int n, int k,
                  float alpha, const float *a, int lda, float beta, float *c, int ldc)
{
    syrk s = {trans, n, k, lda, ldc, alpha, beta, a, c, 1};
    if (order != CblasRowMajor || uplo != CblasUpper || n <= 0) {
        cq_det_blas_single();
        cblas_ssyrk(order, uplo, trans, n, k, alpha, a, lda, beta, c, ldc);
        return;
    }
    /* block rows of 256: the triangle gives the first blocks the most work; striding balances */
    if ((double)n * n * k >= DET_SMALL_FLOPS)
        s.nt = n / 256 > 1 ? n / 256 : 1;
    if (s.nt > DET_MAX_TILES)
        s.nt = DET_MAX_TILES;
    cq_det_tiles(s.nt, syrk_tile, &s);
}
