/* The architectures the native forward pass runs: one description row each, so that a new
 * architecture is a row plus whatever its forward genuinely adds, not if-chains over names. */
#include "cquant/model.h"
#include "model/moe.h"

#include <stdio.h>
#include <string.h>

#define LLAMA_LINEARS                                                                          \
    {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",           \
     "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"}

static const cq_arch_desc archs[] = {
    {.hf_name = "LlamaForCausalLM", .model_type = "llama", .arch = CQ_ARCH_LLAMA,
     .layers = "model.layers", .lin = LLAMA_LINEARS, .in_norm = "input_layernorm",
     .post_norm = "post_attention_layernorm", .embed = "model.embed_tokens",
     .final_norm = "model.norm", .norm = CQ_NORM_RMS, .act = CQ_ACT_SWIGLU},
    {.hf_name = "MistralForCausalLM", .model_type = "mistral", .arch = CQ_ARCH_MISTRAL,
     .layers = "model.layers", .lin = LLAMA_LINEARS, .in_norm = "input_layernorm",
     .post_norm = "post_attention_layernorm", .embed = "model.embed_tokens",
     .final_norm = "model.norm", .norm = CQ_NORM_RMS, .act = CQ_ACT_SWIGLU},
    {.hf_name = "Qwen2ForCausalLM", .model_type = "qwen2", .arch = CQ_ARCH_QWEN2,
     .layers = "model.layers", .lin = LLAMA_LINEARS, .in_norm = "input_layernorm",
     .post_norm = "post_attention_layernorm", .embed = "model.embed_tokens",
     .final_norm = "model.norm", .norm = CQ_NORM_RMS, .act = CQ_ACT_SWIGLU},
    {.hf_name = "Qwen3ForCausalLM", .model_type = "qwen3", .arch = CQ_ARCH_QWEN3,
     .layers = "model.layers", .lin = LLAMA_LINEARS, .in_norm = "input_layernorm",
     .post_norm = "post_attention_layernorm", .q_norm = "self_attn.q_norm",
     .k_norm = "self_attn.k_norm", .embed = "model.embed_tokens", .final_norm = "model.norm",
     .norm = CQ_NORM_RMS, .act = CQ_ACT_SWIGLU},
    /* OPT's MLP is fc1 -> ReLU -> fc2: the up and down slots; there is no gate. */
    {.hf_name = "OPTForCausalLM", .model_type = "opt", .arch = CQ_ARCH_OPT,
     .layers = "model.decoder.layers",
     .lin = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj",
             NULL, "fc1", "fc2"},
     .in_norm = "self_attn_layer_norm", .post_norm = "final_layer_norm",
     .embed = "model.decoder.embed_tokens", .final_norm = "model.decoder.final_layer_norm",
     .pos_embed = "model.decoder.embed_positions", .project_in = "model.decoder.project_in",
     .project_out = "model.decoder.project_out", .norm = CQ_NORM_LAYER, .act = CQ_ACT_RELU},
    /* Mixture of experts (moe.c): the MoE block replaces the MLP of its sparse layers; the
     * experts are Linears CQ_LIN_EXPERT(slot, part) beyond the slots. Mixtral has no dense
     * MLP; Qwen MoE layers listed in mlp_only_layers keep Qwen2's. */
    {.hf_name = "MixtralForCausalLM", .model_type = "mixtral", .arch = CQ_ARCH_MIXTRAL,
     .layers = "model.layers",
     .lin = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
             NULL, NULL, NULL},
     .in_norm = "input_layernorm", .post_norm = "post_attention_layernorm",
     .embed = "model.embed_tokens", .final_norm = "model.norm", .norm = CQ_NORM_RMS,
     .act = CQ_ACT_SWIGLU},
    {.hf_name = "Qwen2MoeForCausalLM", .model_type = "qwen2_moe", .arch = CQ_ARCH_QWEN2_MOE,
     .layers = "model.layers", .lin = LLAMA_LINEARS, .in_norm = "input_layernorm",
     .post_norm = "post_attention_layernorm", .embed = "model.embed_tokens",
     .final_norm = "model.norm", .norm = CQ_NORM_RMS, .act = CQ_ACT_SWIGLU},
    {.hf_name = "Qwen3MoeForCausalLM", .model_type = "qwen3_moe", .arch = CQ_ARCH_QWEN3_MOE,
     .layers = "model.layers", .lin = LLAMA_LINEARS, .in_norm = "input_layernorm",
     .post_norm = "post_attention_layernorm", .q_norm = "self_attn.q_norm",
     .k_norm = "self_attn.k_norm", .embed = "model.embed_tokens", .final_norm = "model.norm",
     .norm = CQ_NORM_RMS, .act = CQ_ACT_SWIGLU},
};

const cq_arch_desc *cq_arch_lookup(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
        if (!strcmp(name, archs[i].hf_name) || !strcmp(name, archs[i].model_type))
            return &archs[i];
    return NULL;
}

const char *cq_arch_supported_list(void)
{
    static char list[512];
    if (!list[0]) {
        size_t n = 0;
        for (size_t i = 0; i < sizeof archs / sizeof archs[0] && n < sizeof list; i++)
            n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", i ? ", " : "",
                                  archs[i].hf_name);
    }
    return list;
}

void cq_layer_tensor_name(const cq_model_config *cfg, int64_t layer, const char *module,
                          const char *suffix, char *buf, size_t n)
{
    const char *layers = cfg->desc ? cfg->desc->layers : "model.layers";
    snprintf(buf, n, "%s.%lld.%s%s", layers, (long long)layer, module, suffix);
}

const char *cq_arch_linear_name(const cq_model_config *cfg, int which)
{
    if (which < 0 || which >= CQ_LIN_COUNT)
        return NULL;
    return cfg->desc ? cfg->desc->lin[which] : cq_linear_name(which);
}

bool cq_linear_present(const cq_model_config *cfg, int which)
{
    return cq_arch_linear_name(cfg, which) != NULL;
}

typedef struct each {
    const cq_model_config *cfg;
    int64_t layer;
    cq_layer_tensor_fn fn;
    void *ctx;
    char name[320];
} each;

static int emit(each *e, const char *module, const char *suffix, float *data, int ndim,
                int64_t d0, int64_t d1, int lin, cq_error *err)
{
    cq_layer_tensor_name(e->cfg, e->layer, module, suffix, e->name, sizeof e->name);
    cq_layer_tensor t = {e->name, data, ndim, {d0, d1}, lin};
    return e->fn(e->ctx, &t, err);
}

/* The router, then every expert's gate/up/down (shared expert last), then the shared expert's
 * sigmoid gate; the routers are plain float tensors (lin -1). */
static int moe_tensors(each *e, const cq_moe_weights *m, cq_error *err)
{
    const cq_model_config *c = e->cfg;
    char mod[160];
    int rc = emit(e, cq_moe_router_module(c), ".weight", m->router, 2, c->n_experts, c->hidden,
                  -1, err);
    for (int i = CQ_LIN_MOE_BASE; i < cq_linear_end(c) && rc == CQ_OK; i++) {
        int64_t r, k;
        cq_linear_shape(c, i, &r, &k);
        rc = emit(e, cq_linear_module(c, i, mod, sizeof mod), ".weight",
                  m->lin ? m->lin[i - CQ_LIN_MOE_BASE] : NULL, 2, r, k, i, err);
    }
    if (rc == CQ_OK && c->shared_intermediate > 0)
        rc = emit(e, "mlp.shared_expert_gate", ".weight", m->shared_gate, 2, 1, c->hidden, -1,
                  err);
    return rc;
}

int cq_layer_foreach(const cq_model_config *cfg, cq_layer_weights *w, int64_t layer,
                     cq_layer_tensor_fn fn, void *ctx, cq_error *err)
{
    static const cq_layer_weights none;
    const cq_arch_desc *d = cfg->desc;
    const cq_layer_weights *z = w ? w : &none;
    each e = {.cfg = cfg, .layer = layer, .fn = fn, .ctx = ctx};
    int rc = CQ_OK;
    bool sparse = cq_layer_is_moe(cfg, layer);
    for (int i = 0; i < CQ_LIN_COUNT && rc == CQ_OK; i++) {
        const char *mod = cq_arch_linear_name(cfg, i);
        int64_t r, c;
        if (!mod || (sparse && i >= CQ_LIN_GATE))
            continue;
        cq_linear_shape(cfg, i, &r, &c);
        rc = emit(&e, mod, ".weight", z->lin[i], 2, r, c, i, err);
        if (rc == CQ_OK && cq_linear_has_bias(cfg, i))
            rc = emit(&e, mod, ".bias", z->bias[i], 1, r, 0, -1, err);
    }
    const char *in = d ? d->in_norm : "input_layernorm";
    const char *post = d ? d->post_norm : "post_attention_layernorm";
    if (rc == CQ_OK)
        rc = emit(&e, in, ".weight", z->in_norm, 1, cfg->hidden, 0, -1, err);
    if (rc == CQ_OK && cfg->norm_bias)
        rc = emit(&e, in, ".bias", z->in_norm_bias, 1, cfg->hidden, 0, -1, err);
    if (rc == CQ_OK)
        rc = emit(&e, post, ".weight", z->post_norm, 1, cfg->hidden, 0, -1, err);
    if (rc == CQ_OK && cfg->norm_bias)
        rc = emit(&e, post, ".bias", z->post_norm_bias, 1, cfg->hidden, 0, -1, err);
    if (rc == CQ_OK && d && d->q_norm)
        rc = emit(&e, d->q_norm, ".weight", z->q_norm, 1, cfg->head_dim, 0, -1, err);
    if (rc == CQ_OK && d && d->k_norm)
        rc = emit(&e, d->k_norm, ".weight", z->k_norm, 1, cfg->head_dim, 0, -1, err);
    if (rc == CQ_OK && sparse)
        rc = moe_tensors(&e, &z->moe, err);
    return rc;
}

int64_t cq_word_dim(const cq_model_config *cfg)
{
    return cfg->word_dim > 0 ? cfg->word_dim : cfg->hidden;
}
