/* Hessian accumulation choices for the GPTQ pipeline (docs/algorithms.md): XᵀX over T tokens in
 * chunks of C, cols columns, activations with a few outlier channels as LLM inputs have.
 *   a) ssyrk per chunk (f32) added into a double accumulator   (what cquant does)
 *   b) dsyrk per chunk on a double copy of the chunk             (the exact reference here)
 *   c) ssyrk with beta = 1 into one f32 accumulator (f32 running sum, like the reference GPTQ)
 * Prints seconds and the max relative error of a) and c) against b) (scaled by max |H|).
 *   hacc_bench T C COLS */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

int main(int argc, char **argv)
{
    long T = argc > 1 ? atol(argv[1]) : 65536, C = argc > 2 ? atol(argv[2]) : 4096;
    long n = argc > 3 ? atol(argv[3]) : 1024;
    float *x = malloc(sizeof(float) * C * n), *tmp = malloc(sizeof(float) * n * n);
    float *hf = calloc(n * n, sizeof(float));
    double *xd = malloc(sizeof(double) * C * n), *ha = calloc(n * n, 8), *hb = calloc(n * n, 8);
    unsigned s = 1;
    double ta = 0, tb = 0, tc = 0;
    for (long c0 = 0; c0 < T; c0 += C) {
        for (long i = 0; i < C * n; i++) {
            s = s * 1103515245u + 12345u;
            float v = ((s >> 8) / 16777216.0f - 0.5f);
            x[i] = (i % n) < 4 ? 40.0f * v + 5.0f : v; /* 4 outlier channels */
        }
        double t0 = now();
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, n, C, 1.0f, x, n, 0.0f, tmp, n);
        for (long i = 0; i < n; i++)
            for (long j = i; j < n; j++)
                ha[i * n + j] += tmp[i * n + j];
        double t1 = now();
        for (long i = 0; i < C * n; i++)
            xd[i] = x[i];
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, n, C, 1.0, xd, n, 1.0, hb, n);
        double t2 = now();
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, n, C, 1.0f, x, n, 1.0f, hf, n);
        double t3 = now();
        ta += t1 - t0;
        tb += t2 - t1;
        tc += t3 - t2;
    }
    double mx = 0, ea = 0, ec = 0, ra = 0, rc = 0;
    for (long i = 0; i < n; i++)
        for (long j = i; j < n; j++)
            mx = fmax(mx, fabs(hb[i * n + j]));
    for (long i = 0; i < n; i++)
        for (long j = i; j < n; j++) {
            double b = hb[i * n + j];
            ea = fmax(ea, fabs(ha[i * n + j] - b));
            ec = fmax(ec, fabs(hf[i * n + j] - b));
            if (fabs(b) > 1e-3 * mx) {
                ra = fmax(ra, fabs(ha[i * n + j] - b) / fabs(b));
                rc = fmax(rc, fabs(hf[i * n + j] - b) / fabs(b));
            }
        }
    printf("T=%ld chunk=%ld cols=%ld\n", T, C, n);
    printf("a) ssyrk/chunk + f64 add: %.3f s  max err/max|H| %.2e  max rel err %.2e\n", ta,
           ea / mx, ra);
    printf("b) dsyrk (reference):     %.3f s\n", tb);
    printf("c) ssyrk f32 running sum: %.3f s  max err/max|H| %.2e  max rel err %.2e\n", tc,
           ec / mx, rc);
    return 0;
}
