/* U = upper Cholesky factor of inv(A), as GPTQ needs it (notes §E.7).
 *
 * The reference computes chol(A) -> cholesky_inverse -> chol(inv(A), upper): three O(n^3)
 * passes, 4n^3/3 flops. We use an equivalent route of 2n^3/3 flops. With J the reversal
 * permutation, let J A J = L L^T (lower Cholesky). Then inv(A) = J L^-T L^-1 J
 * = (J L^-1 J)^T (J L^-1 J), and J L^-1 J is upper triangular with a positive diagonal, so by
 * uniqueness of the Cholesky factor U = J L^-1 J. Reversing both indices of a row-major n x n
 * array is reversing the flat array, so the whole thing is: reverse, potrf, trtri, reverse.
 *
 * Row-major/column-major: LAPACKE's row-major entry points transpose into a copy (n^2 extra
 * memory). A row-major lower triangle is a column-major upper one, so we call the column-major
 * routines with uplo 'U' and no copy is made. */
#include "linalg/chol.h"

#include <lapacke.h>
#include <math.h>

static void reverse(double *a, int64_t len)
{
    for (int64_t i = 0, j = len - 1; i < j; i++, j--) {
        double t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

int cq_chol_inv_upper(double *a, int64_t n, cq_error *err)
{
    if (n <= 0 || n > INT32_MAX)
        return cq_errorf(err, CQ_E_USAGE, "matrix order %lld out of range", (long long)n);
    reverse(a, n * n);
    /* Column-major 'U' on our row-major array = row-major lower factor L. */
    lapack_int info = LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'U', (lapack_int)n, a, (lapack_int)n);
    if (info > 0)
        return cq_errorf(err, CQ_E_NUMERIC, "matrix is not positive definite");
    if (info < 0)
        return cq_errorf(err, CQ_E_NUMERIC, "dpotrf rejected its input (info %d)", (int)info);
    info = LAPACKE_dtrtri(LAPACK_COL_MAJOR, 'U', 'N', (lapack_int)n, a, (lapack_int)n);
    if (info != 0)
        return cq_errorf(err, CQ_E_NUMERIC, "triangular inverse failed (info %d)", (int)info);
    reverse(a, n * n);
    for (int64_t i = 0; i < n; i++) {
        if (!(a[i * n + i] > 0.0) || !isfinite(a[i * n + i]))
            return cq_errorf(err, CQ_E_NUMERIC, "inverse factor has a bad diagonal");
        for (int64_t j = 0; j < i; j++)
            a[i * n + j] = 0.0;
    }
    return CQ_OK;
}
