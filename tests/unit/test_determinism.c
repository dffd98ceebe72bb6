/* Thread-count independence of the RTN path the CLI runs (tests/cli/determinism.sh covers the
 * whole command, but its automatic worker count is always 1 on the test models: a worker needs
 * 2M elements). Here cq_rtn_quantize and cq_weight_error_q run with 1, 2, 3 and 7 threads on a
 * matrix large enough to be split, and every byte of the result must match the 1-thread run,
 * which is itself checked against a float64 min-max reference on sampled groups. */
#include "cq_test.h"

#include "cquant/quant.h"
#include "cquant/report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { ROWS = 96, COLS = 512 };

static float *matrix(void)
{
    float *w = malloc(sizeof(float) * ROWS * COLS);
    uint64_t s = 0x9e3779b97f4a7c15u;
    for (int64_t i = 0; w && i < (int64_t)ROWS * COLS; i++) {
        s = s * 6364136223846793005u + 1442695040888963407u;
        w[i] = (float)((double)(s >> 11) / 9007199254740992.0 - 0.5) * (1.0f + (float)(i % 7));
    }
    return w;
}

static int same_result(const cq_qresult *a, const cq_qresult *b)
{
    size_t ng = (size_t)(a->n_groups * a->rows);
    return a->n_groups == b->n_groups &&
           memcmp(a->q, b->q, (size_t)(a->rows * a->cols)) == 0 &&
           memcmp(a->scale, b->scale, ng * sizeof(float)) == 0 &&
           memcmp(a->zero, b->zero, ng) == 0 &&
           memcmp(a->g_idx, b->g_idx, (size_t)a->cols * sizeof(int32_t)) == 0;
}

/* Asym min-max in float64 for one group: the scale the quantizer must have chosen (to float
 * rounding). */
static double ref_scale(const float *w, int64_t r, int64_t g, int group, int bits)
{
    double lo = 0, hi = 0;
    for (int64_t c = g * group; c < (g + 1) * group; c++) {
        double v = w[r * COLS + c];
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    return (hi - lo) / ((1 << bits) - 1);
}

CQ_TEST(rtn_thread_count_independent)
{
    float *w = matrix();
    CQ_CHECK(w != NULL);
    if (!w)
        return;
    const int settings[][3] = {{4, 128, 0}, {3, 64, 1}, {8, -1, 0}}; /* bits, group, mse */
    for (size_t k = 0; k < sizeof settings / sizeof *settings; k++) {
        cq_qconfig cfg;
        cq_qconfig_defaults(&cfg);
        cfg.bits = settings[k][0];
        cfg.group_size = settings[k][1];
        cfg.mse = settings[k][2];
        cfg.sym = false;
        cq_error err = CQ_ERROR_INIT;
        cq_qresult one = {0};
        cq_werr e1;
        cfg.threads = 1;
        CQ_CHECK_OK(cq_rtn_quantize(&cfg, w, ROWS, COLS, &one, &err), &err);
        CQ_CHECK_OK(cq_weight_error_q(w, &one, 1, &e1, &err), &err);
        if (!cfg.mse && cfg.group_size > 0)
            for (int64_t r = 0; r < ROWS; r += 17)
                for (int64_t g = 0; g < one.n_groups; g++) {
                    double want = ref_scale(w, r, g, cfg.group_size, cfg.bits);
                    CQ_CHECK_NEAR(one.scale[g * ROWS + r], want, 1e-6 * want);
                }
        const int threads[] = {2, 3, 7};
        for (size_t t = 0; t < sizeof threads / sizeof *threads; t++) {
            cq_qresult many = {0};
            cq_werr em;
            cfg.threads = threads[t];
            CQ_CHECK_OK(cq_rtn_quantize(&cfg, w, ROWS, COLS, &many, &err), &err);
            CQ_CHECK(same_result(&one, &many));
            CQ_CHECK_OK(cq_weight_error_q(w, &one, threads[t], &em, &err), &err);
            CQ_CHECK(memcmp(&em, &e1, sizeof em) == 0);
            cq_qresult_release(&many);
        }
        CQ_CHECK(e1.rel_fro > 0 && e1.rel_fro < 0.5);
        cq_qresult_release(&one);
    }
    free(w);
}
