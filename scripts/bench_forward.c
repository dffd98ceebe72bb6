/* Forward-pass benchmark driver for scripts/bench_forward.sh: sgemm peak, then the full forward
 * (embed, all layers, NLL head) of a checkpoint over n windows of seqlen random ids.
 * Prints key=value lines. */
#include "cquant/model.h"
#include "cquant/log.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double sgemm_peak(int n, int reps)
{
    float *a = calloc((size_t)n * n, 4), *b = calloc((size_t)n * n, 4), *c = calloc((size_t)n * n, 4);
    for (size_t i = 0; i < (size_t)n * n; i++)
        a[i] = b[i] = (float)(i % 7) * 0.1f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1, a, n, b, n, 0, c, n);
    double best = 0;
    for (int r = 0; r < reps; r++) {
        double t = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1, a, n, b, n, 0, c, n);
        double g = 2.0 * n * n * (double)n / (now() - t) / 1e9;
        best = g > best ? g : best;
    }
    free(a), free(b), free(c);
    return best;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: bench_forward MODEL_DIR N_WINDOWS SEQLEN\n");
        return 2;
    }
    int64_t nw = atoll(argv[2]), S = atoll(argv[3]);
    cq_error err = CQ_ERROR_INIT;
    cq_model_config cfg;
    cq_st_model *st = NULL;
    cq_log_set_level(CQ_LOG_QUIET);
    if (cq_config_load(argv[1], &cfg, &err) || cq_st_open(&st, argv[1], &err) ||
        cq_config_check(&cfg, st, &err)) {
        fprintf(stderr, "error: %s\n", err.msg);
        return 1;
    }
    printf("sgemm_peak_gflops=%.1f\n", sgemm_peak(2048, 5));
    int32_t *ids = malloc((size_t)(nw * S) * 4);
    uint32_t x = 1;
    for (int64_t i = 0; i < nw * S; i++)
        ids[i] = (int32_t)((x = x * 1664525u + 1013904223u) >> 8) % (int32_t)cfg.vocab;
    cq_eval_opts o = {.seqlen = S};
    cq_eval_result r;
    double t = now();
    if (cq_eval_ppl(&cfg, st, ids, nw * S, &o, &r, &err)) {
        fprintf(stderr, "error: %s\n", err.msg);
        return 1;
    }
    double dt = now() - t, T = (double)(nw * S);
    /* FLOPs: 2·params per token for the Linears and lm_head (scored rows only for the head),
     * plus causal attention: QKᵀ and PV over on average S/2 keys per query. */
    double lin = 0;
    for (int i = 0; i < CQ_LIN_COUNT; i++) {
        int64_t rr, cc;
        cq_linear_shape(&cfg, i, &rr, &cc);
        lin += (double)rr * cc;
    }
    double flops = T * 2 * lin * cfg.n_layers + (double)(nw * (S - 1)) * 2 * cfg.vocab * cfg.hidden +
                   T * cfg.n_layers * 2 * 2 * (S + 1) / 2.0 * cfg.n_heads * cfg.head_dim;
    printf("tokens=%lld seconds=%.3f tokens_per_s=%.0f gflop=%.1f gflops=%.1f mean_nll=%.6f\n",
           (long long)T, dt, T / dt, flops / 1e9, flops / dt / 1e9, r.mean_nll);
    cq_st_close(st);
    free(ids);
    return 0;
}
