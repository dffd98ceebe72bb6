/* Standalone GPTQ benchmark driver (built by scripts/bench_gptq.sh against libcquant_core.a).
 *
 * gptq_bench DIR ROWS COLS NTOK THREADS [bits group sym act static block]
 * Generates correlated activations X [NTOK x COLS] (shared factor, AR(1) along channels,
 * 8 outlier channels x20) and weights W [ROWS x COLS], writes them to DIR/x.f32, DIR/w.f32 for
 * the PyTorch reference, forms H = (2/NTOK) X^T X in double, measures this machine's sgemm
 * peak, runs cq_gptq_quantize and prints key=value lines. */
#include "cq_rand.h"
#include "cquant/quant.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t rng = 0x853C49E6748FEA9Bull;
static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int write_file(const char *dir, const char *name, const float *p, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, sizeof *p, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "gptq_bench: cannot write %s\n", path);
        return -1;
    }
    return 0;
}

/* Best of 3 for a square sgemm and for the lazy-update shape (K = block). */
static double sgemm_gflops(int m, int n, int k)
{
    float *a = malloc((size_t)m * k * 4), *b = malloc((size_t)k * n * 4), *c = malloc((size_t)m * n * 4);
    for (size_t i = 0; i < (size_t)m * k; i++)
        a[i] = (float)cq_rand_uniform(&rng);
    for (size_t i = 0; i < (size_t)k * n; i++)
        b[i] = (float)cq_rand_uniform(&rng);
    memset(c, 0, (size_t)m * n * 4);
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        double t = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, -1.0f, a, k, b, n, 1.0f,
                    c, n);
        t = now() - t;
        best = t < best ? t : best;
    }
    free(a);
    free(b);
    free(c);
    return 2.0 * m * n * (double)k / best / 1e9;
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: gptq_bench DIR ROWS COLS NTOK THREADS [bits group sym act static block]\n");
        return 2;
    }
    const char *dir = argv[1];
    int rows = atoi(argv[2]), cols = atoi(argv[3]), ntok = atoi(argv[4]), threads = atoi(argv[5]);
    cq_qconfig cfg;
    cq_qconfig_defaults(&cfg);
    if (argc >= 12) {
        cfg.bits = atoi(argv[6]);
        cfg.group_size = atoi(argv[7]);
        cfg.sym = atoi(argv[8]);
        cfg.act_order = atoi(argv[9]);
        cfg.static_groups = atoi(argv[10]);
        cfg.block_size = atoi(argv[11]);
    }
    cfg.threads = threads;
    float *x = malloc((size_t)ntok * cols * 4), *w = malloc((size_t)rows * cols * 4);
    double *xd = malloc((size_t)ntok * cols * 8), *h = calloc((size_t)cols * cols, 8);
    if (!x || !w || !xd || !h)
        return 1;
    for (int t = 0; t < ntok; t++) {
        double f = cq_rand_normal(&rng), prev = 0;
        for (int c = 0; c < cols; c++) {
            prev = 0.6 * prev + cq_rand_normal(&rng);
            x[(size_t)t * cols + c] = (float)((prev + 0.5 * f) * (c % 509 == 7 ? 20.0 : 1.0));
        }
    }
    for (size_t i = 0; i < (size_t)rows * cols; i++)
        w[i] = (float)(0.02 * cq_rand_normal(&rng) * (cq_rand_uniform(&rng) < 0.002 ? 10.0 : 1.0));
    if (write_file(dir, "x.f32", x, (size_t)ntok * cols) || write_file(dir, "w.f32", w, (size_t)rows * cols))
        return 1;
    /* H = (2/n) X^T X accumulated in double from the same float32 activations. */
    for (size_t i = 0; i < (size_t)ntok * cols; i++)
        xd[i] = x[i];
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, cols, ntok, 2.0 / ntok, xd, cols, 0.0, h, cols);
    for (int i = 0; i < cols; i++)
        for (int j = 0; j < i; j++)
            h[(size_t)i * cols + j] = h[(size_t)j * cols + i];
    free(xd);
    free(x);

    double peak = sgemm_gflops(4096, 4096, 4096);
    double peak_k = sgemm_gflops(rows, cols / 2, cfg.block_size);
    printf("sgemm_peak_gflops=%.1f\n", peak);
    printf("sgemm_k%d_gflops=%.1f\n", cfg.block_size, peak_k);

    cq_qresult r;
    cq_error err = CQ_ERROR_INIT;
    double t = now();
    int rc = cq_gptq_quantize(&cfg, w, rows, cols, h, &r, &err);
    t = now() - t;
    if (rc != CQ_OK) {
        fprintf(stderr, "gptq_bench: %s\n", err.msg);
        return 1;
    }
    double flops = 0;
    for (int i1 = 0; i1 < cols; i1 += cfg.block_size) {
        int i2 = i1 + cfg.block_size < cols ? i1 + cfg.block_size : cols;
        flops += 2.0 * rows * (double)(i2 - i1) * (double)(cols - i2);
    }
    double upd = flops / r.secs_update / 1e9;
    printf("cq_total_s=%.3f\n", t);
    printf("cq_inverse_s=%.3f\n", r.secs_inverse);
    printf("cq_columns_s=%.3f\n", r.secs_columns);
    printf("cq_update_s=%.3f\n", r.secs_update);
    printf("cq_update_gflops=%.1f\n", upd);
    printf("cq_update_pct_of_peak=%.0f\n", 100.0 * upd / peak);
    printf("cq_loss=%.6g\n", r.loss);
    printf("cq_damp_tries=%d\n", r.damp_tries);
    cq_qresult_release(&r);
    free(w);
    free(h);
    return 0;
}
