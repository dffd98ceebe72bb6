/* U = upper Cholesky factor of inv(A), as GPTQ needs it (notes §E.7).
 *
 * The reference computes chol(A) -> cholesky_inverse -> chol(inv(A), upper): three O(n^3)
 * passes, 4n^3/3 flops. We use an equivalent route of 2n^3/3 flops. With J the reversal
 * permutation, let J A J = L L^T (lower Cholesky). Then inv(A) = J L^-T L^-1 J
 * = (J L^-1 J)^T (J L^-1 J), and J L^-1 J is upper triangular with a positive diagonal, so by
 * uniqueness of the Cholesky factor U = J L^-1 J. Reversing both indices of a row-major n x n
 * array is reversing the flat array, so the whole thing is: reverse, L, L^-1, reverse.
 *
 * L and L^-1 are our own blocked algorithms (blocks of NB = 128) rather than LAPACK's dpotrf and
 * dtrtri: OpenBLAS runs those with a blocking that depends on its thread count, so their bits
 * changed with OPENBLAS_NUM_THREADS (measured: relative differences up to 4e-9 at n = 2048).
 * Here every block step is a fixed set of tiles, each one single-threaded BLAS call or a plain
 * loop (linalg/det.h), so the result is the same bytes for any number of threads. */
#include "linalg/chol.h"

#include "linalg/det.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { NB = 128, TILE = 256 };

static void reverse(double *a, int64_t len)
{
    for (int64_t i = 0, j = len - 1; i < j; i++, j--) {
        double t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

/* Lower Cholesky of the kb x kb block at a (leading dimension ld), sums in column order.
 * Returns 0, or -1 when a pivot is not positive (or not finite). */
static int chol_block(double *a, int64_t kb, int64_t ld)
{
    for (int64_t j = 0; j < kb; j++) {
        double d = a[j * ld + j];
        for (int64_t p = 0; p < j; p++)
            d -= a[j * ld + p] * a[j * ld + p];
        if (!(d > 0.0) || !isfinite(d))
            return -1;
        double l = sqrt(d);
        a[j * ld + j] = l;
        for (int64_t i = j + 1; i < kb; i++) {
            double s = a[i * ld + j];
            for (int64_t p = 0; p < j; p++)
                s -= a[i * ld + p] * a[j * ld + p];
            a[i * ld + j] = s / l;
        }
    }
    return 0;
}

/* In-place inverse of the lower triangular kb x kb block at a, through tmp[kb*kb]; the strict
 * upper triangle of the block is left zero. */
static void inv_block(double *a, int64_t kb, int64_t ld, double *tmp)
{
    memset(tmp, 0, (size_t)(kb * kb) * sizeof *tmp);
    for (int64_t j = 0; j < kb; j++) {
        tmp[j * kb + j] = 1.0 / a[j * ld + j];
        for (int64_t i = j + 1; i < kb; i++) {
            double s = 0.0;
            for (int64_t p = j; p < i; p++)
                s += a[i * ld + p] * tmp[p * kb + j];
            tmp[i * kb + j] = -s / a[i * ld + i];
        }
    }
    for (int64_t i = 0; i < kb; i++)
        memcpy(a + i * ld, tmp + i * kb, (size_t)kb * sizeof *tmp);
}

typedef struct step {
    double *a, *t; /* the matrix; the NB x n product buffer of the inverse */
    int64_t n, k0, kb, nt;
} step;

static int64_t tile_lo(const step *s, int64_t base, int64_t len, int64_t t)
{
    return base + len * t / s->nt;
}

/* L21 = A21 · L11^-T for the rows of tile t below the block. */
static void trsm_tile(void *p, int64_t t)
{
    const step *s = p;
    int64_t base = s->k0 + s->kb, len = s->n - base;
    int64_t r0 = tile_lo(s, base, len, t), r1 = tile_lo(s, base, len, t + 1);
    cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, (int)(r1 - r0),
                (int)s->kb, 1.0, s->a + s->k0 * s->n + s->k0, (int)s->n,
                s->a + r0 * s->n + s->k0, (int)s->n);
}

/* A22[r0:r1, base:r1] -= L21[r0:r1] · L21[base:r1]ᵀ (the diagonal tile's upper part too). */
static void update_tile(void *p, int64_t t)
{
    const step *s = p;
    int64_t base = s->k0 + s->kb, len = s->n - base, n = s->n;
    int64_t r0 = tile_lo(s, base, len, t), r1 = tile_lo(s, base, len, t + 1);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(r1 - r0), (int)(r1 - base),
                (int)s->kb, -1.0, s->a + r0 * n + s->k0, (int)n, s->a + base * n + s->k0, (int)n,
                1.0, s->a + r0 * n + base, (int)n);
}

static int64_t ntiles(int64_t len)
{
    int64_t nt = len / TILE;
    return nt < 1 ? 1 : nt;
}

static int chol_lower(double *a, int64_t n)
{
    step s = {.a = a, .n = n};
    for (s.k0 = 0; s.k0 < n; s.k0 += NB) {
        s.kb = n - s.k0 < NB ? n - s.k0 : NB;
        if (chol_block(a + s.k0 * n + s.k0, s.kb, n) != 0)
            return -1;
        int64_t rest = n - s.k0 - s.kb;
        if (rest <= 0)
            break;
        s.nt = ntiles(rest);
        cq_det_tiles(s.nt, trsm_tile, &s);
        cq_det_tiles(s.nt, update_tile, &s);
    }
    return 0;
}

/* T[:, c0:c1] = L[k0:k0+kb, c0:k0] · X[c0:k0, c0:c1] (X = the inverted leading block, zero
 * above its diagonal). */
static void left_tile(void *p, int64_t t)
{
    const step *s = p;
    int64_t n = s->n, c0 = s->k0 * t / s->nt, c1 = s->k0 * (t + 1) / s->nt;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)s->kb, (int)(c1 - c0),
                (int)(s->k0 - c0), 1.0, s->a + s->k0 * n + c0, (int)n, s->a + c0 * n + c0,
                (int)n, 0.0, s->t + c0, (int)s->k0);
}

/* L[k0:k0+kb, c0:c1] = -X_jj · T[:, c0:c1]. */
static void right_tile(void *p, int64_t t)
{
    const step *s = p;
    int64_t n = s->n, c0 = s->k0 * t / s->nt, c1 = s->k0 * (t + 1) / s->nt;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)s->kb, (int)(c1 - c0),
                (int)s->kb, -1.0, s->a + s->k0 * n + s->k0, (int)n, s->t + c0, (int)s->k0, 0.0,
                s->a + s->k0 * n + c0, (int)n);
}

/* L^-1 in place, by block rows: row block j of the inverse is -X_jj · L_j,<j · X_<j. */
static void inv_lower(double *a, int64_t n, double *t, double *tmp)
{
    step s = {.a = a, .t = t, .n = n};
    for (s.k0 = 0; s.k0 < n; s.k0 += NB) {
        s.kb = n - s.k0 < NB ? n - s.k0 : NB;
        s.nt = ntiles(s.k0);
        if (s.k0 > 0)
            cq_det_tiles(s.nt, left_tile, &s);
        inv_block(a + s.k0 * n + s.k0, s.kb, n, tmp);
        if (s.k0 > 0)
            cq_det_tiles(s.nt, right_tile, &s);
    }
}

int cq_chol_inv_upper(double *a, int64_t n, cq_error *err)
{
    if (n <= 0 || n > INT32_MAX)
        return cq_errorf(err, CQ_E_USAGE, "matrix order %lld out of range", (long long)n);
    size_t nt = (size_t)NB * (size_t)n, nb2 = (size_t)NB * NB;
    double *t = malloc((nt + nb2) * sizeof *t);
    if (!t)
        return cq_errorf(err, CQ_E_NOMEM, "out of memory for a %lld x %lld factorization",
                         (long long)n, (long long)n);
    reverse(a, n * n);
    int bad = chol_lower(a, n);
    if (!bad) {
        for (int64_t i = 0; i < n; i++) /* the inverse reads X as dense: zero its upper part */
            memset(a + i * n + i + 1, 0, (size_t)(n - i - 1) * sizeof *a);
        inv_lower(a, n, t, t + nt);
    }
    free(t);
    if (bad)
        return cq_errorf(err, CQ_E_NUMERIC, "matrix is not positive definite");
    reverse(a, n * n);
    for (int64_t i = 0; i < n; i++) {
        if (!(a[i * n + i] > 0.0) || !isfinite(a[i * n + i]))
            return cq_errorf(err, CQ_E_NUMERIC, "inverse factor has a bad diagonal");
        for (int64_t j = 0; j < i; j++)
            a[i * n + j] = 0.0;
    }
    return CQ_OK;
}
