/* Thread-count-independent BLAS (docs/reliability.md, Determinism).
 *
 * OpenBLAS does not give the same bits for every thread count: measured on 0.3.21 (Zen), dgemm,
 * dtrmm, dtrsm (some shapes), dpotrf and dtrtri differ between OPENBLAS_NUM_THREADS=1 and 2
 * (dpotrf/dtrtri switch to a differently blocked "parallel" algorithm above ~100 x 100). A
 * single-threaded call of a given shape is deterministic. So these wrappers pin OpenBLAS to one
 * thread and run their own parallel loop over output tiles whose split is a pure function of
 * the call's shape: every tile is one single-threaded BLAS call, computed by exactly one worker,
 * and the result is the same bytes for any worker count. The drop-in wrappers take cblas's
 * arguments (row-major only). */
#ifndef CQ_LINALG_DET_H
#define CQ_LINALG_DET_H

#include <cblas.h>
#include <stdint.h>

/* Workers the wrappers use: n > 0, or 0 = online CPUs (the default). Changes speed, not bytes. */
void cq_det_set_threads(int threads);
int cq_det_threads(void);
/* Pin OpenBLAS to one thread (the wrappers call it on every call; call from one thread). */
void cq_det_blas_single(void);
/* Run fn(ctx, t) for t in [0, nt), each tile on one worker (tiles w, w + W, ... on worker w);
 * BLAS calls inside fn are single-threaded. */
void cq_det_tiles(int64_t nt, void (*fn)(void *ctx, int64_t t), void *ctx);

void cq_det_sgemm(CBLAS_ORDER order, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k,
                  float alpha, const float *a, int lda, const float *b, int ldb, float beta,
                  float *c, int ldc);
void cq_det_dgemm(CBLAS_ORDER order, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k,
                  double alpha, const double *a, int lda, const double *b, int ldb, double beta,
                  double *c, int ldc);
/* C (upper triangle only) = alpha·op(A)·op(A)ᵀ + beta·C, row-major, uplo CblasUpper (other
 * forms run as one single-threaded call). */
void cq_det_ssyrk(CBLAS_ORDER order, CBLAS_UPLO uplo, CBLAS_TRANSPOSE trans, int n, int k,
                  float alpha, const float *a, int lda, float beta, float *c, int ldc);

#endif
