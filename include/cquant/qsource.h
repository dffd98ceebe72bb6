/* Layer weights of a quantized checkpoint for the f32 forward pass: each packed Linear
 * (GPTQ v1/v2, AWQ GEMM, compressed-tensors pack-quantized; cq_layout_detect on config.json's
 * quantization_config) is decoded with its layout's unpack and cq_qresult_dequant when its layer
 * is loaded, so a quantized output is evaluated exactly as its `cquant dequant` f32 copy would
 * be, without writing one. Linears a quantizer skipped ("<module>.weight" in float) are read
 * as they are. Use cq_qsource_layer as a cq_layer_source (cq_eval_opts.source). */
#ifndef CQUANT_QSOURCE_H
#define CQUANT_QSOURCE_H

#include "cquant/error.h"
#include "cquant/model.h"
#include "cquant/safetensors.h"

#include <stdint.h>

typedef struct cq_qsource cq_qsource;

/* *out = NULL and CQ_OK when MODEL_DIR/config.json has no quantization_config (a float
 * checkpoint: use cq_config_check and the default source). Otherwise checks that every Linear
 * of every layer is there, packed or in float, and the norms, with the shapes cfg implies
 * (CQ_E_SHAPE/CQ_E_FORMAT naming the tensor); an unknown quant_method is CQ_E_UNSUPPORTED.
 * st and cfg must outlive the source. */
int cq_qsource_open(cq_qsource **out, const char *model_dir, const cq_model_config *cfg,
                    const cq_st_model *st, cq_error *err);
void cq_qsource_free(cq_qsource *q);
/* The layout's name ("gptq", "awq", "ct") and how many Linears are packed. */
const char *cq_qsource_layout(const cq_qsource *q);
int64_t cq_qsource_packed(const cq_qsource *q);

/* A cq_layer_source: ctx is the cq_qsource. Fills w (allocated here when w->lin[0] is NULL). */
int cq_qsource_layer(void *ctx, int64_t layer, cq_layer_weights *w, cq_error *err);

#endif
