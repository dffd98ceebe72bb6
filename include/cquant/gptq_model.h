/* GPTQ over a whole Llama-family model (notes §E.13, §G), one decoder layer at a time:
 *
 *   for each layer: load it in f32; for each group of Linears sharing an input ([q,k,v], [o],
 *   [gate,up], [down]) run the layer over every calibration sequence collecting that group's
 *   Hessian H = (2/n_seq)·Σ x·xᵀ (true-sequential: one pass per group, the earlier groups
 *   already quantized, the pass stopped after the group's input with CQ_HOOK_SKIP; otherwise
 *   one pass for all four); quantize each Linear with cq_gptq_quantize; then run the quantized
 *   layer in place over the activations to make the next layer's input.
 *
 * The activations are one caller-owned buffer [n_seq·seqlen x hidden] (it may be a mapped
 * file): the Hessian passes write their (unused) output to a one-chunk scratch, the final pass
 * updates the buffer in place. Peak memory is therefore one layer's f32 weights, one group's
 * Hessian (four without true-sequential), GPTQ's work arrays and the activations: see
 * cq_gptq_model_plan. Nothing is printed; results leave through the hooks. */
#ifndef CQUANT_GPTQ_MODEL_H
#define CQUANT_GPTQ_MODEL_H

#include "cquant/error.h"
#include "cquant/model.h"
#include "cquant/quant.h"
#include "cquant/safetensors.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Quality numbers of one quantized Linear, all from H (undamped, as accumulated): with
 * Δ = W − Q, loss(Q) = tr(Δ·H·Δᵀ)/2 = ‖(W−Q)·X‖²_F / n_seq over the calibration tokens X.
 * For GPTQ this is the quantity its column loop minimizes (its own reported loss is the same
 * trace under the damped H); Q is the checkpoint as written (F16 scales). */
typedef struct cq_gptq_lin_stats {
    double gptq_loss;         /* loss(Q_gptq) */
    double gptq_loss_ref;     /* the quantizer's Σ (w−q)²/(2d²) (damped H, f32 scales), §E.10 */
    double rtn_loss;          /* loss(Q_rtn), the min-max grid of the same options */
    double out_energy;        /* tr(W·H·Wᵀ)/2 */
    double rel_output_error;  /* sqrt(loss(Q_gptq) / out_energy) = ‖ΔX‖/‖WX‖ */
    double rtn_rel_output_error;
    double rel_weight_error;  /* ‖W−Q_gptq‖_F / ‖W‖_F */
    double damp_used;         /* final damping fraction of mean(diag H) */
    int damp_tries;
    int64_t dead_cols;
    double seconds;           /* quantize + metrics */
    /* MoE experts (docs/moe.md): set by cq_gptq_model_run, expert = -1 for other Linears */
    int expert;               /* expert slot (n_experts = the shared expert) */
    int64_t routed_tokens;    /* calibration tokens the router sent to it (all: shared) */
    int64_t hessian_tokens;   /* tokens its Hessian was accumulated from */
    bool moe_fallback;        /* routed_tokens < the threshold: H from all the layer's tokens */
} cq_gptq_lin_stats;

/* GPTQ one Linear and measure it (the shared step of the calibration and statistics paths):
 * q_out[rows x cols] receives the dequantized checkpoint weights (F16 scales); *qr is
 * allocated (its scales already rounded to F16); w and h are not modified. Errors are
 * cq_gptq_quantize's (the caller names the Linear). */
int cq_gptq_linear(const cq_qconfig *q, const float *w, int64_t rows, int64_t cols,
                   const double *h, float *q_out, cq_qresult *qr, cq_gptq_lin_stats *st,
                   cq_error *err);

typedef struct cq_gptq_hooks {
    void *ctx;
    /* Quantize this Linear of this layer? (NULL: all.) Others stay float in the forward. */
    bool (*wants)(void *ctx, int64_t layer, int lin);
    /* A Linear is done: w = original weights, qr = its quantized form (borrowed). */
    int (*linear_done)(void *ctx, int64_t layer, int lin, const float *w, const cq_qresult *qr,
                       const cq_gptq_lin_stats *st, cq_error *err);
    /* A layer is done; hidden holds the next layer's input. */
    int (*layer_done)(void *ctx, int64_t layer, const float *hidden, double seconds,
                      cq_error *err);
    /* Optional: the layer's checkpoint weights are loaded into w (f32) and no pass has run; the
     * caller may overwrite any of them in place (AWQ+GPTQ: the AWQ-scaled Linears and norms),
     * and GPTQ then collects its Hessians from and rounds those weights. */
    int (*layer_loaded)(void *ctx, int64_t layer, cq_layer_weights *w, cq_error *err);
} cq_gptq_hooks;

typedef struct cq_gptq_model_opts {
    bool true_sequential;     /* default true (AutoGPTQ's default; [IST] defaults false) */
    int64_t chunk_tokens;     /* tokens per forward chunk (0 = 4096, at least seqlen) */
    int64_t moe_min_tokens;   /* MoE: an expert routed fewer calibration tokens than this gets
                                 the all-tokens Hessian fallback (0 = auto: hidden/8, at least
                                 1; an expert with no token always falls back) */
} cq_gptq_model_opts;

/* The threshold cq_gptq_model_run uses for this config and options. */
int64_t cq_gptq_moe_min_tokens(const cq_model_config *cfg, const cq_gptq_model_opts *o);

void cq_gptq_model_opts_defaults(cq_gptq_model_opts *o);

/* This rank's share [*seq_begin, *seq_end) of the n_seq calibration sequences (whole forward
 * chunks; see cquant/dist.h): all of them in a single process. */
void cq_gptq_model_share(const cq_gptq_model_opts *o, int64_t n_seq, int64_t seqlen,
                         int64_t *seq_begin, int64_t *seq_end);

/* Run layers first_layer .. n_layers-1. hidden[(seq_end-seq_begin)·seqlen x hidden] holds
 * first_layer's input for this rank's share of the n_seq sequences (cq_gptq_model_share;
 * cq_embed of the calibration ids for 0) and is updated in place. Under MPI every rank calls
 * this; hooks: wants and linear_done run on rank 0 only, layer_done on every rank (it is a
 * collective point: the resume state gathers the activations). Errors name the layer
 * and the Linear (non-finite activations: CQ_E_NUMERIC). */
int cq_gptq_model_run(const cq_model_config *cfg, const cq_st_model *st, float *hidden,
                      int64_t n_seq, int64_t seqlen, int64_t first_layer, const cq_qconfig *q,
                      const cq_gptq_model_opts *o, const cq_gptq_hooks *hk, cq_error *err);

/* Planned peak heap of cq_gptq_model_run, by part (bytes). */
typedef struct cq_gptq_plan {
    size_t activations;   /* the hidden buffer (caller's; a mapped file with --offload-dir) */
    size_t layer_weights; /* one layer in f32 */
    size_t hessians;      /* double accumulators alive at once */
    size_t gptq_work;     /* the largest Linear's GPTQ + metrics work arrays */
    size_t forward;       /* cq_llama scratch and the one-chunk output */
    size_t total;
} cq_gptq_plan;

void cq_gptq_model_plan(const cq_model_config *cfg, int64_t n_seq, int64_t seqlen,
                        const cq_gptq_model_opts *o, cq_gptq_plan *p);

#endif
