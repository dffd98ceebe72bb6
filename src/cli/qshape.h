/* Finding the packed Linears of a quantized checkpoint and their logical shape (out, in),
 * which each layout records differently: GPTQ in scales/g_idx, AWQ in scales/qweight,
 * compressed-tensors in its weight_shape tensor. */
#ifndef CQ_CLI_QSHAPE_H
#define CQ_CLI_QSHAPE_H

#include "cquant/error.h"
#include "cquant/pack.h"
#include "cquant/safetensors.h"

#include <stdbool.h>
#include <stddef.h>

/* Is NAME the main packed tensor of a Linear ("*.qweight" or "*.weight_packed")? Writes the
 * module prefix (the name without that suffix) to prefix when non-NULL. */
bool cq_qshape_is_primary_ex(const char *name, char *prefix, size_t n);
static inline bool cq_qshape_is_primary(const char *name)
{
    return cq_qshape_is_primary_ex(name, NULL, 0);
}

/* (rows, cols) = (out, in) of the Linear PREFIX stored by LAYOUT in m. CQ_E_FORMAT when the
 * tensors that carry the shape are missing or malformed. */
int cq_qshape_infer(const cq_st_model *m, const cq_layout *layout, const char *prefix,
                    int64_t *rows, int64_t *cols, cq_error *err);

#endif
