/* Tensor element types and the exact conversions between F16/BF16 and F32. */
#ifndef CQUANT_DTYPE_H
#define CQUANT_DTYPE_H

#include <stddef.h>
#include <stdint.h>

typedef enum cq_dtype {
    CQ_DT_F64, CQ_DT_F32, CQ_DT_F16, CQ_DT_BF16,
    CQ_DT_I64, CQ_DT_I32, CQ_DT_I16, CQ_DT_I8, CQ_DT_U8, CQ_DT_BOOL,
    CQ_DT_COUNT
} cq_dtype;

typedef struct cq_dtype_traits {
    const char *name;   /* safetensors spelling: "F32", "BF16", ... */
    int size;           /* bytes per element */
    int is_float;
} cq_dtype_traits;

const cq_dtype_traits *cq_dtype_info(cq_dtype dt);
/* Returns 0 and sets *dt for a supported safetensors dtype string; -1 otherwise. */
int cq_dtype_parse(const char *name, cq_dtype *dt);

/* Exact conversions: NaN payload class, Inf and subnormals are kept; f32 -> 16-bit rounds to
 * nearest even (NaN stays NaN). */
float cq_f16_to_f32(uint16_t h);
uint16_t cq_f32_to_f16(float f);
float cq_bf16_to_f32(uint16_t h);
uint16_t cq_f32_to_bf16(float f);

/* Convert n elements of a float dtype (F64/F32/F16/BF16, little-endian, any alignment) to f32.
 * Integer dtypes are converted by value. Uses F16C when the CPU has it. */
void cq_convert_to_f32(cq_dtype src, const void *in, float *out, size_t n);
/* Convert n f32 values to a float dtype (F64/F32/F16/BF16). Returns -1 for other dtypes. */
int cq_convert_from_f32(cq_dtype dst, const float *in, void *out, size_t n);

#endif
