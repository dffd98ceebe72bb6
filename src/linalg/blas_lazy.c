/* The BLAS/LAPACK entry points cquant uses, forwarded to OpenBLAS loaded on first use
 * (see blas_threads.h). Linking OpenBLAS instead would load and initialize it (a 36 MB
 * library: relocations, CPU probing, a worker thread) in every process, also in the
 * commands that never call it (rtn, inspect, dequant): ~3 ms of CPU per run, several times
 * that in wall time on a loaded machine. A BLAS function used elsewhere in cquant must get a
 * forwarder here (the link fails until it does). */
#include "linalg/blas_threads.h"

#include <cblas.h>
#include <dlfcn.h>
#include <lapacke.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef CQ_OPENBLAS_PATH
#define CQ_OPENBLAS_PATH "libopenblas.so"
#endif

static void *lib;
static char load_error[256];
static pthread_once_t load_once = PTHREAD_ONCE_INIT;

static void load(void)
{
    /* The runtime soname first (no -dev package needed), then the library found at build time. */
    static const char *const names[] = {"libopenblas.so.0", CQ_OPENBLAS_PATH};
    for (size_t i = 0; i < sizeof names / sizeof *names && !lib; i++)
        lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        const char *e = dlerror();
        snprintf(load_error, sizeof load_error, "%s", e ? e : "unknown error");
    }
}

int cq_blas_load(cq_error *err)
{
    pthread_once(&load_once, load);
    if (!lib)
        return cq_errorf(err, CQ_E_UNSUPPORTED, "cannot load OpenBLAS: %s", load_error);
    return CQ_OK;
}

bool cq_blas_loaded(void)
{
    return __atomic_load_n(&lib, __ATOMIC_ACQUIRE) != NULL;
}

void *cq_blas_symbol(const char *name)
{
    pthread_once(&load_once, load);
    return lib ? dlsym(lib, name) : NULL;
}

/* A forwarder's target, looked up once. A missing library or symbol here is a bug of the
 * caller (commands that compute call cq_blas_load first and report its error); there is no
 * status to return from these void APIs, so it aborts. */
static void *need(const char *name)
{
    void *f = cq_blas_symbol(name);
    if (!f)
        abort();
    return f;
}

#define RESOLVE(type, name)                                                                  \
    static type fn;                                                                          \
    type f = __atomic_load_n(&fn, __ATOMIC_ACQUIRE);                                         \
    if (!f) {                                                                                \
        f = (type)need(name);                                                                \
        __atomic_store_n(&fn, f, __ATOMIC_RELEASE);                                          \
    }

typedef void (*sgemm_fn)(CBLAS_ORDER, CBLAS_TRANSPOSE, CBLAS_TRANSPOSE, blasint, blasint,
                         blasint, float, const float *, blasint, const float *, blasint, float,
                         float *, blasint);
void cblas_sgemm(CBLAS_ORDER o, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, blasint m, blasint n,
                 blasint k, float alpha, const float *a, blasint lda, const float *b,
                 blasint ldb, float beta, float *c, blasint ldc)
{
    RESOLVE(sgemm_fn, "cblas_sgemm")
    f(o, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

typedef void (*ssyrk_fn)(CBLAS_ORDER, CBLAS_UPLO, CBLAS_TRANSPOSE, blasint, blasint, float,
                         const float *, blasint, float, float *, blasint);
void cblas_ssyrk(CBLAS_ORDER o, CBLAS_UPLO u, CBLAS_TRANSPOSE t, blasint n, blasint k,
                 float alpha, const float *a, blasint lda, float beta, float *c, blasint ldc)
{
    RESOLVE(ssyrk_fn, "cblas_ssyrk")
    f(o, u, t, n, k, alpha, a, lda, beta, c, ldc);
}

typedef void (*dsyrk_fn)(CBLAS_ORDER, CBLAS_UPLO, CBLAS_TRANSPOSE, blasint, blasint, double,
                         const double *, blasint, double, double *, blasint);
void cblas_dsyrk(CBLAS_ORDER o, CBLAS_UPLO u, CBLAS_TRANSPOSE t, blasint n, blasint k,
                 double alpha, const double *a, blasint lda, double beta, double *c,
                 blasint ldc)
{
    RESOLVE(dsyrk_fn, "cblas_dsyrk")
    f(o, u, t, n, k, alpha, a, lda, beta, c, ldc);
}

typedef void (*dgemm_fn)(CBLAS_ORDER, CBLAS_TRANSPOSE, CBLAS_TRANSPOSE, blasint, blasint,
                         blasint, double, const double *, blasint, const double *, blasint,
                         double, double *, blasint);
void cblas_dgemm(CBLAS_ORDER o, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, blasint m, blasint n,
                 blasint k, double alpha, const double *a, blasint lda, const double *b,
                 blasint ldb, double beta, double *c, blasint ldc)
{
    RESOLVE(dgemm_fn, "cblas_dgemm")
    f(o, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

typedef void (*dtrsm_fn)(CBLAS_ORDER, CBLAS_SIDE, CBLAS_UPLO, CBLAS_TRANSPOSE, CBLAS_DIAG,
                         blasint, blasint, double, const double *, blasint, double *, blasint);
void cblas_dtrsm(CBLAS_ORDER o, CBLAS_SIDE side, CBLAS_UPLO u, CBLAS_TRANSPOSE t,
                 CBLAS_DIAG diag, blasint m, blasint n, double alpha, const double *a,
                 blasint lda, double *b, blasint ldb)
{
    RESOLVE(dtrsm_fn, "cblas_dtrsm")
    f(o, side, u, t, diag, m, n, alpha, a, lda, b, ldb);
}

/* LAPACKE's column-major drivers over OpenBLAS's LAPACK (the Fortran-style dpotrf_/dtrtri_,
 * which Debian's OpenBLAS exports while its LAPACKE symbols live in liblapacke). Row-major
 * is not used by cquant and is refused as LAPACKE refuses a bad argument. */
typedef void (*potrf_fn)(const char *, const lapack_int *, double *, const lapack_int *,
                         lapack_int *);
lapack_int LAPACKE_dpotrf(int layout, char uplo, lapack_int n, double *a, lapack_int lda)
{
    if (layout != LAPACK_COL_MAJOR)
        return -1;
    RESOLVE(potrf_fn, "dpotrf_")
    lapack_int info = 0;
    f(&uplo, &n, a, &lda, &info);
    return info;
}

typedef void (*trtri_fn)(const char *, const char *, const lapack_int *, double *,
                         const lapack_int *, lapack_int *);
lapack_int LAPACKE_dtrtri(int layout, char uplo, char diag, lapack_int n, double *a,
                          lapack_int lda)
{
    if (layout != LAPACK_COL_MAJOR)
        return -1;
    RESOLVE(trtri_fn, "dtrtri_")
    lapack_int info = 0;
    f(&uplo, &diag, &n, a, &lda, &info);
    return info;
}
