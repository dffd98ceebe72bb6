/* AWQ for the MoE block of a sparse layer (internal to awq_model.c; docs/moe.md). */
#ifndef CQ_QUANT_AWQ_MOE_H
#define CQ_QUANT_AWQ_MOE_H

#include "cquant/awq.h"

typedef struct awq_moe awq_moe;

/* What the driver lends: the forward context, the layer (scaled in place), the recorded block
 * input of every token [tokens x hidden] (divided by the gate/up scales here), and one more
 * forward of the layer whose hook is awq_moe_hook (for the fallback statistics). */
typedef struct awq_moe_env {
    cq_llama *m;
    cq_layer_weights *w;
    float *x_block;
    int64_t tokens;
    void *ctx;
    int (*forward)(void *ctx, cq_error *err);
} awq_moe_env;

int awq_moe_new(awq_moe **out, const cq_model_config *cfg, const cq_qconfig *q,
                const cq_awq_opts *o, int64_t tokens, cq_error *err);
void awq_moe_free(awq_moe *g);
/* Before a sparse layer's recording forward. */
void awq_moe_begin(awq_moe *g);
/* Records the expert points (other points: ignored). ctx: the awq_moe. */
int awq_moe_hook(void *ctx, int which, const float *x, int64_t n, int64_t cols);
/* After the recording forward: the expert counts, the fallback decisions and the fallback
 * experts' statistics over every token (one more forward through env->forward, whose output
 * equals the recording forward's). */
int awq_moe_prepare(awq_moe *g, const awq_moe_env *env, cq_error *err);
/* Search, fold and clip the block; fills rep->group[CQ_AWQ_G_GATEUP] and rep->moe. */
int awq_moe_layer(awq_moe *g, const awq_moe_env *env, cq_awq_layer_report *rep, cq_error *err);

#endif
