/* Dense symmetric positive-definite helpers on top of LAPACKE/CBLAS (float64). */
#ifndef CQ_LINALG_CHOL_H
#define CQ_LINALG_CHOL_H

#include "cquant/error.h"

#include <stdint.h>

/* a[n*n] (row-major, symmetric, both triangles filled) -> the upper triangular U with
 * inv(A) = U^T U, in the upper triangle of a; the strict lower triangle is zeroed.
 * Returns CQ_OK, or CQ_E_NUMERIC when A is not (numerically) positive definite, with a
 * contents unspecified. The same bytes for any thread count (linalg/det.h). */
int cq_chol_inv_upper(double *a, int64_t n, cq_error *err);

#endif
