/* Mixture-of-experts internals of the model module (moe.c): weights, scratch and the sparse
 * MLP block that llama.c's layer forward calls for layers with w->sparse. */
#ifndef CQ_MODEL_MOE_H
#define CQ_MODEL_MOE_H

#include "cquant/model.h"

#include <cjson/cJSON.h>

typedef struct cq_moe_scratch cq_moe_scratch;

/* The MoE fields of config.json for the MoE architectures (no-op for dense ones). */
int cq_moe_parse_config(const cJSON *root, const char *path, cq_model_config *cfg,
                        cq_error *err);

/* Does some layer of the config use the dense MLP (lin[GATE/UP/DOWN])? */
bool cq_moe_has_dense_mlp(const cq_model_config *cfg);
void cq_moe_linear_shape(const cq_model_config *cfg, int which, int64_t *rows, int64_t *cols);

int cq_moe_alloc(cq_moe_weights *w, const cq_model_config *cfg);
void cq_moe_release(cq_moe_weights *w);
/* "block_sparse_moe.gate" or "mlp.gate" (the router's module within the layer). */
const char *cq_moe_router_module(const cq_model_config *cfg);

/* Scratch for chunks of up to `tokens` tokens (NULL when out of memory). */
cq_moe_scratch *cq_moe_scratch_new(const cq_model_config *cfg, int64_t tokens);
void cq_moe_scratch_free(cq_moe_scratch *s);

/* out[T x hidden] = MoE block of the normed x[T x hidden] (no residual). Calls the hook at
 * CQ_HOOK_EXPERT points; returns CQ_OK, CQ_HOOK_SKIP, or a negative status (err set). */
int cq_moe_forward(cq_moe_scratch *s, const cq_model_config *cfg, const cq_moe_weights *w,
                   const unsigned char *all_tokens, const float *x, float *out, int64_t T,
                   cq_layer_hook hook, void *hook_ctx, cq_error *err);

#endif
