/* linalg/det.h and the Cholesky route on top of it: every result must be the same bytes for
 * 1, 2 and 3 workers while OpenBLAS itself is set to 1, 2 and 3 threads (OpenBLAS's own dgemm,
 * dpotrf and dtrtri give other bits at 2 threads than at 1: this is what the test would catch),
 * and must agree with a naive float64 reference. Shapes are large enough to be split into
 * several tiles (tiles of 512 rows/columns; Cholesky blocks of 128, tiles of 256). */
#include "cq_test.h"

#include "linalg/chol.h"
#include "linalg/det.h"

#include <stdlib.h>
#include <string.h>

extern void openblas_set_num_threads(int) __attribute__((weak));

static const int threads[] = {1, 2, 3};
enum { NT = 3 };

static void set_threads(int t)
{
    if (openblas_set_num_threads)
        openblas_set_num_threads(t);
    cq_det_set_threads(t);
}

static uint64_t rng = 0x2545f4914f6cdd1dull;
static double rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0 - 0.5;
}

/* C = alpha op(A) op(B) + beta C0 in double from the float inputs: the reference. */
static double ref_gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int k, const float *a, int lda,
                       const float *b, int ldb, int i, int j)
{
    double s = 0.0;
    for (int p = 0; p < k; p++) {
        double x = ta == CblasNoTrans ? a[(size_t)i * lda + p] : a[(size_t)p * lda + i];
        double y = tb == CblasNoTrans ? b[(size_t)p * ldb + j] : b[(size_t)j * ldb + p];
        s += x * y;
    }
    return s;
}

CQ_TEST(sgemm_all_transposes_thread_independent)
{
    /* m > n splits rows, m < n splits columns; both past the small-call threshold */
    const int shapes[2][3] = {{1100, 300, 200}, {130, 1300, 250}};
    for (int sh = 0; sh < 2; sh++)
        for (int tr = 0; tr < 4; tr++) {
            int m = shapes[sh][0], n = shapes[sh][1], k = shapes[sh][2];
            CBLAS_TRANSPOSE ta = tr & 1 ? CblasTrans : CblasNoTrans;
            CBLAS_TRANSPOSE tb = tr & 2 ? CblasTrans : CblasNoTrans;
            int lda = ta == CblasNoTrans ? k : m, ldb = tb == CblasNoTrans ? n : k;
            float *a = malloc(sizeof(float) * (size_t)m * k);
            float *b = malloc(sizeof(float) * (size_t)n * k);
            float *c0 = malloc(sizeof(float) * (size_t)m * n), *c[NT];
            for (size_t i = 0; i < (size_t)m * k; i++)
                a[i] = (float)rnd();
            for (size_t i = 0; i < (size_t)n * k; i++)
                b[i] = (float)rnd();
            for (size_t i = 0; i < (size_t)m * n; i++)
                c0[i] = (float)rnd();
            for (int t = 0; t < NT; t++) {
                c[t] = malloc(sizeof(float) * (size_t)m * n);
                memcpy(c[t], c0, sizeof(float) * (size_t)m * n);
                set_threads(threads[t]);
                cq_det_sgemm(CblasRowMajor, ta, tb, m, n, k, -0.5f, a, lda, b, ldb, 2.0f, c[t], n);
                if (t > 0)
                    CQ_CHECK(memcmp(c[0], c[t], sizeof(float) * (size_t)m * n) == 0);
            }
            for (int i = 0; i < m; i += 37)
                for (int j = 0; j < n; j += 29) {
                    double want = -0.5 * ref_gemm(ta, tb, k, a, lda, b, ldb, i, j) +
                                  2.0 * c0[(size_t)i * n + j];
                    CQ_CHECK_NEAR(c[0][(size_t)i * n + j], want, 1e-4);
                }
            for (int t = 0; t < NT; t++)
                free(c[t]);
            free(a);
            free(b);
            free(c0);
        }
}

CQ_TEST(ssyrk_upper_thread_independent)
{
    enum { N = 600, K = 700 }; /* block rows of 256: 2 tiles */
    float *x = malloc(sizeof(float) * N * K), *c[NT];
    for (size_t i = 0; i < (size_t)N * K; i++)
        x[i] = (float)rnd();
    for (int t = 0; t < NT; t++) {
        c[t] = calloc((size_t)N * N, sizeof(float));
        set_threads(threads[t]);
        cq_det_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, N, K, 1.0f, x, N, 0.0f, c[t], N);
        if (t > 0)
            CQ_CHECK(memcmp(c[0], c[t], sizeof(float) * N * N) == 0);
    }
    for (int i = 0; i < N; i += 23)
        for (int j = i; j < N; j += 31)
            CQ_CHECK_NEAR(c[0][i * N + j], ref_gemm(CblasTrans, CblasNoTrans, K, x, N, x, N, i, j),
                          1e-3);
    CQ_CHECK(c[0][5 * N + 1] == 0.0f); /* lower triangle untouched */
    for (int t = 0; t < NT; t++)
        free(c[t]);
    free(x);
}

CQ_TEST(chol_inv_upper_thread_independent_and_correct)
{
    enum { N = 700, K = 900 }; /* 6 blocks of 128, trailing tiles of 256 */
    double *x = malloc(sizeof(double) * N * K), *a = malloc(sizeof(double) * N * N), *u[NT];
    for (size_t i = 0; i < (size_t)N * K; i++)
        x[i] = rnd();
    for (int i = 0; i < N; i++) /* A = X Xᵀ / K + 0.01 I: positive definite */
        for (int j = 0; j <= i; j++) {
            double s = 0.0;
            for (int p = 0; p < K; p++)
                s += x[(size_t)i * K + p] * x[(size_t)j * K + p];
            a[i * N + j] = a[j * N + i] = s / K + (i == j ? 0.01 : 0.0);
        }
    for (int t = 0; t < NT; t++) {
        cq_error err = CQ_ERROR_INIT;
        u[t] = malloc(sizeof(double) * N * N);
        memcpy(u[t], a, sizeof(double) * N * N);
        set_threads(threads[t]);
        CQ_CHECK_OK(cq_chol_inv_upper(u[t], N, &err), &err);
        if (t > 0)
            CQ_CHECK(memcmp(u[0], u[t], sizeof(double) * N * N) == 0);
    }
    /* inv(A) = UᵀU, so A·(UᵀU) = I: check sampled columns of A·Uᵀ·U */
    double *v = malloc(sizeof(double) * N), *w = malloc(sizeof(double) * N), worst = 0.0;
    for (int j = 0; j < N; j += 53) {
        for (int i = 0; i < N; i++) { /* v = U e_j (column j), w = Uᵀ v */
            v[i] = u[0][i * N + j];
            CQ_CHECK(i <= j || v[i] == 0.0);
        }
        for (int i = 0; i < N; i++) {
            double s = 0.0;
            for (int p = 0; p <= i; p++)
                s += u[0][p * N + i] * v[p];
            w[i] = s;
        }
        for (int i = 0; i < N; i++) {
            double s = 0.0;
            for (int p = 0; p < N; p++)
                s += a[i * N + p] * w[p];
            double e = fabs(s - (i == j ? 1.0 : 0.0));
            worst = e > worst ? e : worst;
        }
    }
    CQ_CHECK(worst < 1e-9);
    /* not positive definite: a negative pivot in the last block is reported */
    cq_error err = CQ_ERROR_INIT;
    memcpy(u[0], a, sizeof(double) * N * N);
    u[0][0] = -1.0;
    CQ_CHECK(cq_chol_inv_upper(u[0], N, &err) == CQ_E_NUMERIC);
    for (int t = 0; t < NT; t++)
        free(u[t]);
    free(v);
    free(w);
    free(x);
    free(a);
    set_threads(0);
}
