/* GPTQ for the MoE block of a sparse layer (internal to gptq_model.c; docs/moe.md): per-expert
 * Hessians from the tokens routed to each expert, their counts, and the all-tokens fallback. */
#ifndef CQ_QUANT_GPTQ_MOE_H
#define CQ_QUANT_GPTQ_MOE_H

#include "cquant/gptq_model.h"

typedef struct gptq_moe gptq_moe;

/* What the driver lends: a Hessian pass over every calibration sequence of the current layer
 * (its hook forwards CQ_HOOK_GATEUP_IN and the expert points to gptq_moe_hook), and the
 * quantization of one Linear with a given H (tag: the MoE fields of its stats). */
typedef struct gptq_moe_env {
    void *ctx;
    cq_llama *m;
    int (*pass)(void *ctx, int64_t layer, cq_error *err);
    int (*quantize)(void *ctx, int64_t layer, int lin, const double *h,
                    const cq_gptq_lin_stats *tag, cq_error *err);
    bool (*wants)(void *ctx, int64_t layer, int lin);
} gptq_moe_env;

int gptq_moe_new(gptq_moe **out, const cq_model_config *cfg, const cq_gptq_model_opts *o,
                 int64_t n_seq, int64_t seqlen, cq_error *err);
void gptq_moe_free(gptq_moe *g);
/* The layer hook for CQ_HOOK_GATEUP_IN and CQ_HOOK_EXPERT points (ctx: the gptq_moe). */
int gptq_moe_hook(void *ctx, int which, const float *x, int64_t n, int64_t cols);
/* Collect, quantize every wanted expert Linear of sparse layer `layer`. */
int gptq_moe_layer(gptq_moe *g, const gptq_moe_env *env, int64_t layer, cq_error *err);
/* Bytes of the MoE accumulators (for the plan). */
size_t gptq_moe_plan_bytes(const cq_model_config *cfg);

#endif
