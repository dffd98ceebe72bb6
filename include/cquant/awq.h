/* AWQ (notes §C.3, §F): activation-aware scaling and clipping, then the AWQ group quantizer.
 *
 * The pieces are independent of the model so that any block structure can use them:
 *   cq_awq_quantize      the pseudo-quantizer of §C.3 -> cq_qresult (any packer writes it)
 *   cq_awq_x_mean/w_mean statistics of §F.3
 *   cq_awq_search_scale  the ratio grid of §F.4 over a caller-supplied block evaluation
 *   cq_awq_fold_*        folding s into the previous norm / Linear (§F.5)
 *   cq_awq_search_clip   the per-group clipping search of §F.6, cq_awq_apply_clip
 * and the whole-model driver cq_awq_model_run (per decoder layer, §F.1). Matrices are row-major; a Linear weight is W[rows x cols] = [out x in]. */
#ifndef CQUANT_AWQ_H
#define CQUANT_AWQ_H

#include "cquant/error.h"
#include "cquant/model.h"
#include "cquant/quant.h"
#include "cquant/safetensors.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cq_awq_opts {
    int n_grid;           /* scale ratios i/n_grid, i = 0..n_grid-1 (20) */
    bool duo_scaling;     /* AutoAWQ's s = x^r / (w^(1-r) + 1e-4) (true); false: s = x^r */
    bool clip;            /* run the clip search (true) */
    int clip_grid;        /* shrink steps of 1/clip_grid (20) */
    double max_shrink;    /* steps while i < max_shrink·clip_grid (0.5) */
    int64_t clip_tokens;  /* sampled tokens: every max(1, tokens/clip_tokens)-th (512) */
    int threads;          /* row-parallel parts; 0 = online CPUs */
    int64_t moe_min_tokens; /* MoE: experts routed fewer calibration tokens take their
                               statistics from all tokens (0 = auto: hidden/8, at least 1) */
} cq_awq_opts;

void cq_awq_opts_defaults(cq_awq_opts *o);

/* ---- quantizer (§C.3) ---- */

/* Per group (raw min/max, zero not forced into the range): scale = max(max-min, 1e-5)/maxq,
 * zero = clamp(-rint(min/scale), 0, maxq), q = clamp(rint(w/scale) + zero, 0, maxq), rint =
 * round half to even, all in f32 as the reference. cfg->sym gives AutoAWQ's zero_point=False
 * grid (scale = max(|w|max, 1e-5)/(2^(b-1)-1), stored with zero 2^(b-1)). group_size -1 = one
 * group per row. NaN/Inf weights: CQ_E_NUMERIC. */
int cq_awq_quantize(const cq_qconfig *cfg, const float *w, int64_t rows, int64_t cols,
                    cq_qresult *out, cq_error *err);
/* w <- dequant(quant(w)) in place, the same arithmetic without storing codes. A last group
 * shorter than group_size is its own group (AutoAWQ itself requires cols % group == 0). */
void cq_awq_fake_quant(const cq_qconfig *cfg, float *w, int64_t rows, int64_t cols);

/* The quantizer table entry ("awq"): run = cq_awq_quantize on weights already scaled/clipped. */
extern const cq_quantizer cq_quantizer_awq;

/* ---- statistics (§F.3) ---- */

/* x_mean[c] = mean over tokens of |x[t][c]| (summed in double). */
int cq_awq_x_mean(const float *x, int64_t tokens, int64_t cols, float *x_mean, cq_error *err);
/* AutoAWQ's w_mean over the Linears of a group (weights concatenated along rows): |w| divided
 * by its group's max|w| + 1e-6, averaged over all rows. */
int cq_awq_w_mean(float *const *w, const int64_t *rows, int n, int64_t cols, int64_t group,
                  float *w_mean, cq_error *err);

/* ---- scale search (§F.4) ---- */

/* Evaluate the inspected module on the recorded input with trial weights w_scaled[i] (one per
 * Linear of the group, same shapes) into out[out_elems]. During the FP evaluation w_scaled are
 * the original weights. */
typedef int (*cq_awq_block_fn)(void *ctx, float *const *w_scaled, float *out, cq_error *err);

#define CQ_AWQ_MAX_LINEARS 4

typedef struct cq_awq_group {
    const float *x;          /* recorded input [tokens x cols] of the group's Linears */
    int64_t tokens, cols;
    int n_linear;            /* 1..CQ_AWQ_MAX_LINEARS */
    float *const *w;         /* w[i]: [rows[i] x cols], not modified */
    const int64_t *rows;
    cq_awq_block_fn block;   /* NULL: the Linear itself, out = x·Wᵀ (n_linear must be 1):
                                sgemm per trial, or with tokens > 2·cols the same loss from
                                XᵀX formed once (Σ_r Δw_r·XᵀX·Δw_rᵀ) */
    void *block_ctx;
    int64_t out_elems;       /* size of the block output (ignored when block is NULL) */
} cq_awq_group;

typedef struct cq_awq_scale_result {
    float *scales;           /* [cols], caller-owned: the chosen s (all 1 if no ratio won) */
    double *losses;          /* optional caller-owned [n_grid]: loss of each ratio */
    int best;                /* index of the chosen ratio */
    double ratio;            /* best / n_grid */
    double loss_before;      /* loss of the plain AWQ quantizer (s = 1) */
    double loss_after;       /* loss of the chosen ratio */
} cq_awq_scale_result;

/* Ratios r = i/n_grid; s = clamp(x_mean^r / (w_mean^(1-r) + 1e-4), 1e-4) (or x_mean^r),
 * s /= sqrt(max s · min s), inf/NaN -> 1; trial W <- Q(W·s)/s; loss = mean squared difference
 * to the FP output; strict < keeps the best. Every loss NaN: CQ_E_NUMERIC. */
int cq_awq_search_scale(const cq_qconfig *q, const cq_awq_opts *o, const cq_awq_group *g,
                        cq_awq_scale_result *res, cq_error *err);
/* The trial scales of ratio r (exposed for tests and reports). */
void cq_awq_ratio_scales(const float *x_mean, const float *w_mean, int64_t cols, double ratio,
                         bool duo, float *s);

/* ---- folding (§F.5) ---- */

/* norm[c] /= s[c] (and bias); each Linear's column c *= s[c]. */
void cq_awq_fold_norm(float *norm, float *norm_bias, int64_t cols, float *const *w,
                      const int64_t *rows, int n, const float *s);
/* The previous Linear's last `cols` output rows /= s (and its bias); the next Linear's
 * columns *= s. prev is [prev_rows x prev_cols] with prev_rows >= cols. */
void cq_awq_fold_linear(float *prev, float *prev_bias, int64_t prev_rows, int64_t prev_cols,
                        float *next, int64_t next_rows, int64_t cols, const float *s);
/* x[t][c] /= s[c]: the recorded input as the scaled Linears now see it. */
void cq_awq_scale_input(float *x, int64_t tokens, int64_t cols, const float *s);

/* ---- clipping (§F.6) ---- */

/* For each row r and group g: max_val[r·n_groups + g] = the org max|w| shrunk by 1 - i/clip_grid
 * (i < max_shrink·clip_grid) minimizing the mean over sampled tokens of the squared error of the
 * group's partial dot products after clamp + fake quantization (strict <, starting at 1e9). */
int cq_awq_search_clip(const cq_qconfig *q, const cq_awq_opts *o, const float *w, int64_t rows,
                       int64_t cols, const float *x, int64_t tokens, float *max_val,
                       cq_error *err);
/* Clamp each group of w to [-max_val, max_val]. */
void cq_awq_apply_clip(float *w, int64_t rows, int64_t cols, int64_t group, const float *max_val);
/* The report's mean_shrink: mean over groups of max_val / max|w| of the unclipped w (1 for an
 * all-zero group). */
double cq_awq_mean_shrink(const float *w, int64_t rows, int64_t cols, int64_t group,
                          const float *max_val);

/* ---- whole model (§F.1) ---- */

enum { CQ_AWQ_G_QKV, CQ_AWQ_G_O, CQ_AWQ_G_GATEUP, CQ_AWQ_G_DOWN, CQ_AWQ_N_GROUPS };

/* A sparse layer's experts (docs/moe.md). */
typedef struct cq_awq_expert_report {
    int64_t routed_tokens;   /* calibration tokens the router sent to it (all: shared) */
    int64_t stat_tokens;     /* tokens its down scale search and clipping used */
    bool fallback;           /* routed_tokens < min_tokens: statistics from all tokens */
    bool down_searched;
    double down_ratio, down_loss_before, down_loss_after;
    double shrink[3];        /* clip mean max_val/max|w| of gate, up, down (1: not clipped) */
} cq_awq_expert_report;

typedef struct cq_awq_moe_report {
    int64_t n_slots;         /* experts (+1: the shared expert, last) */
    int64_t min_tokens;
    const cq_awq_expert_report *experts;
} cq_awq_moe_report;

typedef struct cq_awq_layer_report {
    int64_t layer;
    struct {
        bool done;           /* false: skipped (v/o shapes differ under GQA) */
        double ratio, loss_before, loss_after;
        double seconds;
    } group[CQ_AWQ_N_GROUPS];
    struct {
        bool clipped;
        double mean_shrink;  /* mean over groups of chosen max_val / org max|w| */
    } lin[CQ_LIN_COUNT];
    /* sparse layers: group[CQ_AWQ_G_GATEUP] is the block's search over every expert's
     * gate/up (the router's columns are scaled with them, so routing is unchanged); the down
     * scales are per expert here. NULL for dense layers. */
    const cq_awq_moe_report *moe;
} cq_awq_layer_report;

const char *cq_awq_group_name(int g);  /* "self_attn.qkv", "self_attn.o", "mlp.gate_up", ... */

/* Called once per layer with its final float weights (scales folded, clipped; norms scaled),
 * ready for cq_awq_quantize. The buffers are valid only during the call. */
typedef int (*cq_awq_layer_fn)(void *ctx, int64_t layer, const cq_layer_weights *w,
                               const cq_awq_layer_report *rep, cq_error *err);

/* Planned peak heap of cq_awq_model_run for n_seq x seqlen calibration tokens (an upper bound
 * from shapes; the caller adds what its layer callback keeps). */
size_t cq_awq_model_plan(const cq_model_config *cfg, int64_t n_seq, int64_t seqlen);

/* AWQ over all decoder layers on calibration sequences ids [n_seq x seqlen]: per layer, the FP
 * forward records each group's input and gives the next layer's (full-precision) input; the four
 * scale searches run on the unmodified layer, then all are folded, then clipping. */
int cq_awq_model_run(const cq_model_config *cfg, const cq_st_model *st, const int32_t *ids,
                     int64_t n_seq, int64_t seqlen, const cq_qconfig *q, const cq_awq_opts *o,
                     cq_awq_layer_fn fn, void *ctx, cq_error *err);

#endif
