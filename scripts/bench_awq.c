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
    int64_t layer, tokens, seqlen;
    const cq_model_config *cfg;
    int n_grid;
} bctx;

/* FLOPs of one group's search: (n_grid + 2) evaluations (the FP output, plain quantization,
 * every ratio) of the inspected module; multiply-adds count 2. Linear-only groups use the XᵀX
 * form when tokens > 2·cols: XᵀX once (tokens·cols², half by symmetry) and per trial a
 * [rows x cols]·[cols x cols] product. The quantize-dequantize passes are not counted. */
static double group_flops(const bctx *b, int g)
{
    const cq_model_config *c = b->cfg;
    double T = (double)b->tokens, H = (double)c->hidden, I = (double)c->intermediate;
    double qd = (double)(c->n_heads * c->head_dim), kd = (double)(c->n_kv_heads * c->head_dim);
    double S = (double)b->seqlen, ev = b->n_grid + 2;
    if (g == CQ_AWQ_G_QKV) /* q,k,v,o projections + causal QKᵀ and AV (half of S x S) */
        return ev * (2 * T * H * (qd + 2 * kd) + 2 * T * qd * H + 2 * T * S * qd);
    if (g == CQ_AWQ_G_GATEUP)
        return ev * 3 * 2 * T * H * I;
    double rows = H, cols = g == CQ_AWQ_G_DOWN ? I : qd; /* down [H x I], o [H x qd] */
    if (T > 2 * cols)
        return T * cols * cols + (b->n_grid + 1) * 2 * rows * cols * cols;
    return (b->n_grid + 1) * 2 * T * rows * cols;
}

static int on_layer(void *ctx, int64_t layer, const cq_layer_weights *w,
                    const cq_awq_layer_report *rep, cq_error *err)
{
    if (layer != ((bctx *)ctx)->layer)
        return CQ_OK;
    double total = 0;
    for (int g = 0; g < CQ_AWQ_N_GROUPS; g++) {
        if (!rep->group[g].done)
            continue;
        double gf = group_flops(ctx, g) / 1e9;
        printf("group=%s ratio=%.2f loss_before=%.6g loss_after=%.6g seconds=%.3f gflop=%.1f "
               "gflops=%.1f\n", cq_awq_group_name(g), rep->group[g].ratio,
               rep->group[g].loss_before, rep->group[g].loss_after, rep->group[g].seconds, gf,
               gf / rep->group[g].seconds);
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
    bctx b = {layer, n_seq * seqlen, seqlen, &cfg, o.n_grid};
    int rc = cq_awq_model_run(&cfg, st, ids, n_seq, seqlen, &q, &o, on_layer, &b, &err);
    free(ids);
    cq_st_close(st);
    if (rc)
        return fprintf(stderr, "bench_awq: %s\n", err.msg), 1;
    return 0;
}
