/* AWQ scale-search benchmark driver for scripts/bench_awq.sh: the same pseudo-random ids as
 * scripts/ref/awq_ref.py, layers before LAYER in full precision (not timed, as part of the
 * driver's FP propagation), then the per-group search times of LAYER as the driver reports them.
 * Prints one line per group like awq_ref.py. */
#include "cquant/awq.h"
#include "cquant/model.h"
#include "cquant/safetensors.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct bctx {
    int64_t layer;
} bctx;

static int on_layer(void *ctx, int64_t layer, const cq_layer_weights *w,
                    const cq_awq_layer_report *rep, cq_error *err)
{
    if (layer != ((bctx *)ctx)->layer)
        return CQ_OK;
    double total = 0;
    for (int g = 0; g < CQ_AWQ_N_GROUPS; g++) {
        if (!rep->group[g].done)
            continue;
        printf("group=%s ratio=%.2f loss_before=%.6g loss_after=%.6g seconds=%.3f\n",
               cq_awq_group_name(g), rep->group[g].ratio, rep->group[g].loss_before,
               rep->group[g].loss_after, rep->group[g].seconds);
        total += rep->group[g].seconds;
    }
    printf("total_search_seconds=%.3f\n", total);
    return CQ_OK;
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: bench_awq MODEL_DIR N_SEQ SEQLEN LAYER THREADS [GROUP]\n");
        return 2;
    }
    cq_error err = CQ_ERROR_INIT;
    cq_st_model *st = NULL;
    cq_model_config cfg;
    int64_t n_seq = atoll(argv[2]), seqlen = atoll(argv[3]), layer = atoll(argv[4]);
    if (cq_st_open(&st, argv[1], &err) || cq_config_load(cq_st_dir(st), &cfg, &err) ||
        cq_config_check(&cfg, st, &err))
        return fprintf(stderr, "bench_awq: %s\n", err.msg), 1;
    int32_t *ids = malloc((size_t)(n_seq * seqlen) * sizeof *ids);
    uint32_t x = 0;
    for (int64_t i = 0; i < n_seq * seqlen; i++) /* same LCG as awq_ref.py */
        ids[i] = (int32_t)(((x = x * 1664525u + 1013904223u) >> 8) % (uint32_t)cfg.vocab);
    cq_qconfig q;
    cq_qconfig_defaults(&q);
    q.bits = 4;
    q.group_size = argc > 6 ? atoi(argv[6]) : 128;
    q.sym = false;
    q.threads = atoi(argv[5]);
    cq_awq_opts o;
    cq_awq_opts_defaults(&o);
    o.clip = false; /* the reference times the scale search only */
    o.threads = q.threads;
    cfg.n_layers = layer + 1;
    bctx b = {layer};
    int rc = cq_awq_model_run(&cfg, st, ids, n_seq, seqlen, &q, &o, on_layer, &b, &err);
    free(ids);
    cq_st_close(st);
    if (rc)
        return fprintf(stderr, "bench_awq: %s\n", err.msg), 1;
    return 0;
}
