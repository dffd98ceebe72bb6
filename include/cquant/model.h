/* The native f32 decoder forward pass (Llama, Mistral, Qwen2, Qwen3, OPT), one decoder layer at
 * a time. What differs between architectures (tensor names, norm kind, activation, positions)
 * is one row of a description table (cq_arch_desc, src/model/arch.c); the layer keeps the
 * Llama slot layout (q, k, v, o, gate, up, down) with absent slots NULL (OPT: no gate).
 *
 * Built for the layer-by-layer calibration drivers (GPTQ/AWQ) and for perplexity:
 *   cq_config_load      config.json -> cq_model_config; cq_config_check validates tensor shapes
 *   cq_llama_create     runtime context: RoPE tables and per-chunk scratch
 *   cq_embed            ids -> hidden [tokens x hidden]
 *   cq_layer_load       one layer's weights as f32 buffers (also settable directly: the buffers
 *                       are plain arrays the caller may overwrite, e.g. with dequantized weights)
 *   cq_layer_forward    hidden_in -> hidden_out, with an optional hook that sees the input of
 *                       every Linear group (for XᵀX or mean |x|)
 *   cq_head_*           final norm + lm_head: logits, or the NLL summed in double without
 *                       materializing [tokens x vocab]
 * Matrices are row-major; a Linear weight is W[out x in] as in the checkpoint, applied as
 * Y = X·Wᵀ (+ b) with cblas_sgemm. Sequences are independent and each starts at position 0. */
#ifndef CQUANT_MODEL_H
#define CQUANT_MODEL_H

#include "cquant/error.h"
#include "cquant/safetensors.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum cq_arch {
    CQ_ARCH_LLAMA,
    CQ_ARCH_MISTRAL,
    CQ_ARCH_QWEN2,
    CQ_ARCH_QWEN3,
    CQ_ARCH_OPT,
    CQ_ARCH_MIXTRAL,   /* mixture of experts (moe.c, docs/moe.md) */
    CQ_ARCH_QWEN2_MOE,
    CQ_ARCH_QWEN3_MOE,
} cq_arch;
/* How a MoE checkpoint names its experts (docs/moe.md). */
typedef enum cq_moe_names {
    CQ_MOE_NAMES_MIXTRAL, /* block_sparse_moe.gate, block_sparse_moe.experts.N.w1/w3/w2 */
    CQ_MOE_NAMES_QWEN     /* mlp.gate, mlp.experts.N.gate_proj/up_proj/down_proj,
                             mlp.shared_expert.*, mlp.shared_expert_gate */
} cq_moe_names;
typedef enum cq_rope_type { CQ_ROPE_DEFAULT, CQ_ROPE_LINEAR, CQ_ROPE_LLAMA3 } cq_rope_type;
typedef enum cq_norm_kind { CQ_NORM_RMS, CQ_NORM_LAYER } cq_norm_kind;
typedef enum cq_act_kind { CQ_ACT_SWIGLU, CQ_ACT_RELU } cq_act_kind;

/* ---- one decoder layer's slots ---- */
enum cq_linear {
    CQ_LIN_Q, CQ_LIN_K, CQ_LIN_V, CQ_LIN_O, CQ_LIN_GATE, CQ_LIN_UP, CQ_LIN_DOWN, CQ_LIN_COUNT
};
/* The Linear groups that share one input, in forward order; the hook's `which`. For OPT,
 * GATEUP_IN is fc1's input and DOWN_IN fc2's. */
enum cq_hook_point { CQ_HOOK_QKV_IN, CQ_HOOK_O_IN, CQ_HOOK_GATEUP_IN, CQ_HOOK_DOWN_IN };

/* How one architecture names and wires its tensors. Module names are relative to the layer
 * ("<layers>.<i>.") or, for the model-level ones, full names without ".weight". */
typedef struct cq_arch_desc {
    const char *hf_name;             /* architectures[0], e.g. "OPTForCausalLM" */
    const char *model_type;          /* config.json model_type, e.g. "opt" */
    cq_arch arch;
    const char *layers;              /* "model.layers" */
    const char *lin[CQ_LIN_COUNT];   /* NULL: the architecture has no such Linear */
    const char *in_norm, *post_norm; /* before attention / before the MLP (pre-LN order) */
    const char *q_norm, *k_norm;     /* per-head RMSNorm on q and k before RoPE, or NULL */
    const char *embed, *final_norm;
    const char *pos_embed;           /* learned absolute positions, or NULL (RoPE) */
    const char *project_in, *project_out; /* OPT word_embed_proj_dim != hidden_size */
    cq_norm_kind norm;
    cq_act_kind act;
} cq_arch_desc;

/* The description of an architectures[0] or model_type name, or NULL when unsupported. */
const cq_arch_desc *cq_arch_lookup(const char *name);
/* The names cq_arch_lookup knows, ", "-separated, for messages and docs. */
const char *cq_arch_supported_list(void);

typedef struct cq_model_config {
    char arch_name[64];        /* architectures[0] (or model_type when absent) */
    cq_arch arch;
    const cq_arch_desc *desc;  /* static row of arch.c */
    int64_t hidden;            /* hidden_size */
    int64_t intermediate;      /* intermediate_size */
    int64_t n_layers;          /* num_hidden_layers */
    int64_t n_heads;           /* num_attention_heads */
    int64_t n_kv_heads;        /* num_key_value_heads (default n_heads) */
    int64_t head_dim;          /* head_dim (default hidden / n_heads) */
    int64_t vocab;             /* vocab_size */
    int64_t max_pos;           /* max_position_embeddings (0 when absent) */
    double rms_eps;            /* rms_norm_eps (default 1e-6 as HF LlamaConfig); the LayerNorm
                                  eps for OPT (1e-5, torch's default) */
    double rope_theta;         /* rope_theta, top level or rope_parameters (default 10000) */
    cq_rope_type rope_type;
    double rope_factor;        /* linear / llama3 */
    double rope_low_freq_factor, rope_high_freq_factor; /* llama3 */
    int64_t rope_orig_max_pos; /* llama3 original_max_position_embeddings */
    bool tie_embeddings;       /* tie_word_embeddings (default true only when no lm_head) */
    bool qkv_bias;             /* attention_bias (Llama/Mistral) or always for Qwen2 */
    bool o_bias;               /* attention_bias on o_proj (Llama/Mistral only) */
    bool mlp_bias;             /* mlp_bias (Llama) */
    int64_t sliding_window;    /* Mistral / Qwen2 use_sliding_window: keys within this many
                                  positions; 0 = full causal attention */
    /* OPT; zero for the Llama family (so a zeroed config with dims set is a Llama) */
    bool post_ln;              /* !do_layer_norm_before: norms after the residual adds
                                  (opt-350m) */
    bool no_final_norm;        /* no final norm (OPT post-LN) */
    bool norm_bias;            /* LayerNorm with bias (layer_norm_elementwise_affine) */
    int64_t word_dim;          /* word_embed_proj_dim when != hidden (project_in/out), else 0 */
    int64_t pos_offset;        /* learned positions start at this row (OPT: 2) */
    /* mixture of experts (docs/moe.md); n_experts == 0 for dense models */
    int64_t n_experts;         /* num_local_experts (Mixtral) / num_experts (Qwen) */
    int64_t top_k;             /* num_experts_per_tok */
    int64_t moe_intermediate;  /* an expert's width: moe_intermediate_size (Qwen) or
                                  intermediate_size (Mixtral, whose layers are all sparse) */
    int64_t shared_intermediate; /* shared_expert_intermediate_size (Qwen2-MoE); 0 = none */
    bool norm_topk_prob;       /* renormalize the top-k probabilities (Mixtral: always) */
    cq_moe_names moe_names;
    int64_t sparse_step;       /* decoder_sparse_step: layer l is sparse when (l+1) % step == 0 */
    unsigned char mlp_only[512]; /* bitmap of mlp_only_layers (dense despite the step) */
} cq_model_config;

/* Parse config.json text; `path` only names the file in errors. An architecture other than
 * the Llama family gives CQ_E_UNSUPPORTED. */
int cq_config_parse(const char *json, const char *path, cq_model_config *cfg, cq_error *err);
/* Read DIR/config.json. */
int cq_config_load(const char *dir, cq_model_config *cfg, cq_error *err);
/* Every tensor the forward pass needs exists with the shape the config implies
 * (CQ_E_SHAPE naming the tensor otherwise). Decides tie_embeddings when config leaves it open. */
int cq_config_check(cq_model_config *cfg, const cq_st_model *st, cq_error *err);
/* RoPE inverse frequencies [head_dim/2] exactly as HF computes them in float32
 * (including llama3 / linear scaling). */
void cq_rope_inv_freq(const cq_model_config *cfg, float *inv_freq);

typedef struct cq_llama cq_llama;

/* ---- one decoder layer ---- */
/* MoE Linears extend the `which` numbering: which = CQ_LIN_MOE_BASE + 3·slot + part, where
 * slot < n_experts is a routed expert and slot == n_experts the shared expert (Qwen2-MoE), and
 * part is CQ_MOE_GATE (w1 / gate_proj), CQ_MOE_UP (w3 / up_proj) or CQ_MOE_DOWN (w2 /
 * down_proj). The router (and Qwen2-MoE's shared_expert_gate) is not a quantized Linear: it
 * stays float (moe.c). */
#define CQ_LIN_MOE_BASE 16
enum { CQ_MOE_GATE, CQ_MOE_UP, CQ_MOE_DOWN };
#define CQ_LIN_EXPERT(slot, part) (CQ_LIN_MOE_BASE + 3 * (slot) + (part))
/* Hook points of the MoE block: the input of an expert's gate/up (part 0: the rows of the
 * tokens routed to it, all tokens for the shared expert) and of its down (part 1: its SwiGLU
 * activations of those rows). CQ_HOOK_GATEUP_IN still sees every token's normed input first. */
#define CQ_HOOK_MOE_BASE 16
#define CQ_HOOK_EXPERT(slot, part) (CQ_HOOK_MOE_BASE + 2 * (slot) + (part))

typedef struct cq_moe_weights {
    float *router;              /* gate [n_experts x hidden], float */
    float **lin;                /* [3·(n_experts + shared)] W[out x in], index 3·slot + part */
    float *shared_gate;         /* shared_expert_gate [hidden] (1 x hidden), or NULL */
    int64_t n_slots;            /* n_experts (+1 with a shared expert) */
    float *gate_up;             /* owned: every slot's gate then up, contiguous [gate_up_rows x
                                   hidden] (AWQ scales them as one group); lin[3·s], lin[3·s+1]
                                   point into it */
    int64_t gate_up_rows;
} cq_moe_weights;

typedef struct cq_layer_weights {
    float *lin[CQ_LIN_COUNT];   /* W[out x in], owned; NULL when the architecture lacks it (or
                                   gate/up/down when every layer is sparse) */
    float *bias[CQ_LIN_COUNT];  /* [out] or NULL when the config has no such bias */
    float *in_norm;             /* input_layernorm [hidden] */
    float *post_norm;           /* post_attention_layernorm [hidden] */
    float *in_norm_bias;        /* LayerNorm biases [hidden], or NULL (RMSNorm) */
    float *post_norm_bias;
    float *q_norm, *k_norm;     /* [head_dim] (Qwen3), or NULL */
    bool sparse;                /* the MLP is the MoE block `moe` (set by the loaders) */
    cq_moe_weights moe;         /* allocated when the config has experts */
} cq_layer_weights;

/* ---- mixture of experts (moe.c) ---- */
/* Is layer `layer`'s MLP a MoE block? */
bool cq_layer_is_moe(const cq_model_config *cfg, int64_t layer);
/* One past the largest Linear index of the config (CQ_LIN_COUNT for dense models). */
int cq_linear_end(const cq_model_config *cfg);
/* Does layer `layer` have Linear `which` (dense MLP Linears in dense layers, experts in MoE
 * layers, attention everywhere)? */
bool cq_layer_has_linear(const cq_model_config *cfg, int64_t layer, int which);
/* Module name within the layer ("self_attn.q_proj", "block_sparse_moe.experts.3.w1",
 * "mlp.shared_expert.down_proj") into buf; returns buf. */
const char *cq_linear_module(const cq_model_config *cfg, int which, char *buf, size_t n);
/* The weight buffer of Linear `which` in w (NULL when absent). */
float *cq_layer_linear(const cq_layer_weights *w, int which);
/* MoE only: the expert slot of a MoE Linear index, or -1. */
int cq_linear_expert(int which);
/* Routing of one token (exposed for tests): softmax of the router logits in f32, the top_k
 * experts by probability (equal probabilities: lower index first; torch.topk documents no order),
 * renormalized over the top k when norm_topk_prob (always for Mixtral). idx/wt: [top_k]. */
void cq_moe_route(const cq_model_config *cfg, const float *logits, float *probs, int32_t *idx,
                  float *wt);
/* The MoE calibration fallback of the forward context: for experts e with all_tokens[e] != 0
 * the down-input hook point sees that expert's activations of EVERY token of the chunk (the
 * Hessian-only fallback of docs/moe.md), while the layer output still uses the real routing.
 * NULL clears it. The array is borrowed until cleared. */
void cq_llama_moe_all_tokens(cq_llama *m, const unsigned char *all_tokens);

/* Llama's names: "self_attn.q_proj", ..., "mlp.down_proj" (for messages without a config). */
const char *cq_linear_name(int which);
/* The architecture's module name of a Linear ("fc1" for OPT's up slot), or NULL when absent. */
const char *cq_arch_linear_name(const cq_model_config *cfg, int which);
/* Does the architecture have this Linear, and a bias on it? */
bool cq_linear_present(const cq_model_config *cfg, int which);
bool cq_linear_has_bias(const cq_model_config *cfg, int which);
/* Width of the embeddings and lm_head: word_dim, or hidden when 0. */
int64_t cq_word_dim(const cq_model_config *cfg);
/* Shape of a Linear (any `which`, MoE ones too): rows = out features, cols = in features. */
void cq_linear_shape(const cq_model_config *cfg, int which, int64_t *rows, int64_t *cols);
/* The hook point whose input feeds this Linear (CQ_HOOK_EXPERT(slot, part) for experts). */
int cq_linear_hook_point(int which);
/* "<layers>.<layer>.<module><suffix>" into buf, e.g. ("model.decoder.layers.3.fc1", ".weight");
 * suffix may be "" . */
void cq_layer_tensor_name(const cq_model_config *cfg, int64_t layer, const char *module,
                          const char *suffix, char *buf, size_t n);

/* One float tensor of a decoder layer as cq_layer_weights holds it. */
typedef struct cq_layer_tensor {
    const char *name;   /* full checkpoint name (valid during the callback) */
    float *data;        /* the buffer in the cq_layer_weights */
    int ndim;
    int64_t shape[2];
    int lin;            /* CQ_LIN_* for a Linear's weight, else -1 */
} cq_layer_tensor;
typedef int (*cq_layer_tensor_fn)(void *ctx, const cq_layer_tensor *t, cq_error *err);
/* Call fn for every tensor the layer holds under cfg (Linear weights in slot order, each
 * followed by its bias, then the norms), stopping at the first non-CQ_OK return. w may be a
 * zeroed struct (data NULL) to enumerate names and shapes only. */
int cq_layer_foreach(const cq_model_config *cfg, cq_layer_weights *w, int64_t layer,
                     cq_layer_tensor_fn fn, void *ctx, cq_error *err);

/* Allocate every buffer of a layer (zeroed). A zeroed struct is safe to release. */
int cq_layer_alloc(cq_layer_weights *w, const cq_model_config *cfg, cq_error *err);
/* Load layer `layer` ("model.layers.<i>.*") into w (allocated here when w->lin[0] is NULL). */
int cq_layer_load(cq_layer_weights *w, const cq_model_config *cfg, const cq_st_model *st,
                  int64_t layer, cq_error *err);
void cq_layer_release(cq_layer_weights *w);

/* Final norm and output projection. lm_head is embed_tokens when tied. */
typedef struct cq_head_weights {
    float *norm;      /* model.norm.weight [hidden], NULL without a final norm (OPT post-LN) */
    float *lm_head;   /* [vocab x cq_word_dim] */
    float *norm_bias; /* LayerNorm bias [hidden] or NULL */
    float *proj_out;  /* OPT project_out [word_dim x hidden] or NULL */
} cq_head_weights;
int cq_head_load(cq_head_weights *h, const cq_model_config *cfg, const cq_st_model *st,
                 cq_error *err);
void cq_head_release(cq_head_weights *h);

/* ---- runtime ---- */

/* Receives the input of each Linear group (x [n_tokens x cols], row-major; valid only during
 * the call). layer_forward processes sequences in chunks of at most `chunk_tokens`, so the hook
 * is called once per chunk and point, in forward order. Return CQ_OK to go on; CQ_HOOK_SKIP to
 * skip the rest of this chunk (its output rows are then undefined: for GPTQ's true-sequential
 * passes that only need one group's input); a negative cq_status stops the forward with it. */
#define CQ_HOOK_SKIP 1
typedef int (*cq_layer_hook)(void *ctx, int which, const float *x, int64_t n_tokens,
                             int64_t cols);

/* max_seqlen bounds the sequence length of every later call; chunk_tokens (0 = 4096, raised to
 * max_seqlen) bounds the scratch: about chunk_tokens·(3·hidden + 2·intermediate + q/k/v) floats
 * plus max_seqlen² for one head's scores. */
int cq_llama_create(cq_llama **out, const cq_model_config *cfg, int64_t max_seqlen,
                    int64_t chunk_tokens, cq_error *err);
void cq_llama_free(cq_llama *m);
const cq_model_config *cq_llama_config(const cq_llama *m);

/* hidden[n_tokens x hidden] = embed_tokens[ids] as ONE sequence (positions 0..n_tokens-1 where
 * the architecture has learned positions); ids out of [0, vocab) -> CQ_E_USAGE. */
int cq_embed(const cq_model_config *cfg, const cq_st_model *st, const int32_t *ids,
             int64_t n_tokens, float *hidden, cq_error *err);
/* The same for n_seq sequences of seqlen tokens, each starting at position 0 (OPT adds its
 * learned positions and project_in here). */
int cq_embed_seqs(const cq_model_config *cfg, const cq_st_model *st, const int32_t *ids,
                  int64_t n_seq, int64_t seqlen, float *hidden, cq_error *err);

/* One decoder layer over n_seq sequences of seqlen tokens: out = in + attn(norm(in)), then
 * out += mlp(norm(out)) (post-LN OPT: h = norm(in + attn(in)), out = norm(h + mlp(h)), and the
 * QKV_IN hook sees `in` itself). in/out are [n_seq·seqlen x hidden]; out may equal in. */
int cq_layer_forward(cq_llama *m, const cq_layer_weights *w, const float *in, float *out,
                     int64_t n_seq, int64_t seqlen, cq_layer_hook hook, void *hook_ctx,
                     cq_error *err);

/* The sub-blocks, for AWQ's module-to-inspect losses. x is the normed input
 * [n_seq·seqlen x hidden]; out receives o_proj's output (attention) or down_proj's output
 * (MLP), without the residual. */
int cq_attn_forward(cq_llama *m, const cq_layer_weights *w, const float *x, float *out,
                    int64_t n_seq, int64_t seqlen, cq_error *err);
int cq_mlp_forward(cq_llama *m, const cq_layer_weights *w, const float *x, float *out,
                   int64_t n_tokens, cq_error *err);

/* y[n x hidden] = RMSNorm(x) · w, in f32 as HF (x · rsqrt(mean(x²) + eps) · w). */
void cq_rmsnorm(const float *x, const float *w, float *y, int64_t n, int64_t hidden, double eps);
/* y[n x hidden] = LayerNorm(x) · w + b (b may be NULL), as torch in f32 (biased variance). */
void cq_layernorm(const float *x, const float *w, const float *b, float *y, int64_t n,
                  int64_t hidden, double eps);
/* y[n x rows] = x[n x cols] · Wᵀ (+ bias). */
void cq_linear(const float *x, int64_t n, int64_t cols, const float *W, const float *bias,
               int64_t rows, float *y);

/* logits[n_tokens x vocab] of final hidden states (hidden is not modified). */
int cq_head_logits(cq_llama *m, const cq_head_weights *h, const float *hidden, int64_t n_tokens,
                   float *logits, cq_error *err);
/* Sum of -log p(ids[s,t+1] | ...) over t = 0..seqlen-2 of each sequence (seqlen-1 predictions
 * per sequence), added to *nll_sum; *count += n_seq·(seqlen-1). Logits are formed in row chunks
 * of a few MB, never [tokens x vocab]. */
int cq_head_nll(cq_llama *m, const cq_head_weights *h, const float *hidden, const int32_t *ids,
                int64_t n_seq, int64_t seqlen, double *nll_sum, int64_t *count, cq_error *err);

/* ---- evaluation (eval.c) ---- */

/* Supplies layer weights for evaluation; the default reads the checkpoint. Lets a caller
 * evaluate dequantized weights without writing them out. */
typedef int (*cq_layer_source)(void *ctx, int64_t layer, cq_layer_weights *w, cq_error *err);

typedef struct cq_eval_opts {
    int64_t seqlen;          /* window length (2048 in GPTQ's protocol) */
    int64_t max_windows;     /* 0 = all windows of the text */
    size_t act_budget;       /* bytes for the activation buffer of a batch of windows, which
                                every layer updates in place (0 = 512 MiB); at least one
                                window per batch */
    int64_t chunk_tokens;    /* forwarded to cq_llama_create (0 = default) */
    cq_layer_source source;  /* NULL = cq_layer_load from the checkpoint */
    void *source_ctx;
} cq_eval_opts;

typedef struct cq_eval_result {
    double nll_sum;          /* summed in double */
    int64_t n_scored;        /* windows · (seqlen − 1) */
    int64_t n_windows;
    double mean_nll;
    double ppl;              /* exp(mean_nll) */
} cq_eval_result;

/* WikiText-style perplexity (notes §G.2, MODEL.md): non-overlapping windows of seqlen tokens of
 * ids, tail dropped, each window scored on its own for positions 2..seqlen. */
int cq_eval_ppl(const cq_model_config *cfg, const cq_st_model *st, const int32_t *ids,
                int64_t n_ids, const cq_eval_opts *opt, cq_eval_result *res, cq_error *err);

#endif
