/* On-disk layouts for quantized Linears, independent of the method that produced the codes:
 * "gptq" (GPTQ v1/v2, notes §B), "awq" (AWQ GEMM, §C), "ct" (compressed-tensors
 * pack-quantized, §D). Each layout turns a cq_qresult into named tensors and back. */
#ifndef CQUANT_PACK_H
#define CQUANT_PACK_H

#include "cquant/dtype.h"
#include "cquant/error.h"
#include "cquant/quant.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#define CQ_PACK_MAX_TENSORS 8

/* One tensor of a packed Linear: "<prefix>.<suffix>". */
typedef struct cq_packed {
    char suffix[32];    /* "qweight", "qzeros", "scales", "g_idx", "weight_packed", ... */
    cq_dtype dtype;
    int ndim;
    int64_t shape[2];
    size_t nbytes;
    void *data;         /* owned when produced by pack (free with cq_packed_release); borrowed
                           when filled by the caller for unpack */
} cq_packed;

typedef struct cq_layout {
    const char *name;     /* "gptq", "awq", "ct": the --format value */
    const char *summary;
    /* Can this layout hold a result of these options and shape? One-line reason if not
     * (CQ_E_UNSUPPORTED; CQ_E_USAGE for options no layout accepts). The CLI skips such layers. */
    int (*check)(const cq_qconfig *cfg, int64_t rows, int64_t cols, cq_error *err);
    /* The tensors it writes (names, dtypes, shapes; data NULL), for planning the writer. */
    int (*plan)(const cq_qconfig *cfg, int64_t rows, int64_t cols, cq_packed *out, int *n,
                cq_error *err);
    /* Pack: fills out[0..*n) with allocated data (*n = 0 on failure, nothing left allocated).
     * Scales are written as F16: the packed checkpoint dequantizes with f16(r->scale). A
     * result inconsistent with cfg (bits, sym, groups, codes out of range) is CQ_E_INTERNAL;
     * a scale that is not finite in f16 is CQ_E_NUMERIC. */
    int (*pack)(const cq_qconfig *cfg, const cq_qresult *r, cq_packed *out, int *n,
                cq_error *err);
    /* Decode tensors (as found in a checkpoint, matched by suffix) back to a cq_qresult
     * (allocated here, each array with malloc; release with cq_qresult_release). qcfg is
     * config.json's quantization_config. Hostile shapes/values give CQ_E_FORMAT/CQ_E_SHAPE;
     * unsupported options (bits, formats) CQ_E_UNSUPPORTED. Scales come back as floats exactly
     * equal to the stored f16/bf16 values. One exception to "zero < 2^bits": a GPTQ v1 zero
     * stored as all ones decodes to 2^bits, as every v1 loader computes it (notes §B.3). */
    int (*unpack)(const cJSON *qcfg, const cq_packed *in, int n, int64_t rows, int64_t cols,
                  cq_qresult *out, cq_error *err);
    /* Fill quantization_config (an empty object) for config.json. method: "rtn"/"gptq"/"awq". */
    int (*qconfig)(const cq_qconfig *cfg, const char *method, cJSON *out, cq_error *err);
} cq_layout;

extern const cq_layout cq_layout_gptq;
extern const cq_layout cq_layout_awq;
extern const cq_layout cq_layout_ct;
const cq_layout *cq_layout_find(const char *name);
/* Which layout wrote a checkpoint, from its quantization_config's quant_method (NULL if none
 * matches): "gptq" -> gptq, "awq" -> awq, "compressed-tensors" -> ct. */
const cq_layout *cq_layout_detect(const cJSON *qcfg);
/* Frees the data of p[0..n) (NULL-safe) and zeroes the descriptors. Only for tensors pack
 * produced. */
void cq_packed_release(cq_packed *p, int n);
/* The first of in[0..n) whose suffix is `suffix`, or NULL. */
const cq_packed *cq_packed_find(const cq_packed *in, int n, const char *suffix);

/* Dense little-endian bit stream: value i occupies bits [b*i, b*i+b) of the words
 * (LSB first). For b in {2,4,8} this is the per-word packing of GPTQ; for b=3 it is GPTQ's
 * 3-words-per-32-values stream; compressed-tensors uses the same stream per row.
 * b in 1..8 (the layouts use 2, 3, 4, 8). pack masks each value to b bits and writes exactly
 * cq_bits_words(n, b) words; unused high bits of the last word are zero. unpack reads exactly
 * that many words. */
int64_t cq_bits_words(int64_t n, int b);
void cq_bits_pack(const uint32_t *vals, int64_t n, int b, uint32_t *words);
/* The same stream from byte values (the codes of a cq_qresult row): same words, bit for bit;
 * whole words for b = 2, 4, 8 are built several values at a time. */
void cq_bits_pack_u8(const uint8_t *vals, int64_t n, int b, uint32_t *words);
void cq_bits_unpack(const uint32_t *words, int64_t n, int b, uint32_t *vals);

#endif
