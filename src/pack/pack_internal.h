/* Helpers shared by the layout files: tensor descriptors, result validation, strict lookups of
 * checkpoint tensors and quantization_config keys. Not part of the public interface. */
#ifndef CQ_PACK_INTERNAL_H
#define CQ_PACK_INTERNAL_H

#include "cquant/pack.h"

#include <stdbool.h>
#include <string.h>

/* Word i of checkpoint data, which may sit at any byte offset. */
static inline uint32_t cq_pk_ld32(const void *base, size_t i)
{
    uint32_t v;
    memcpy(&v, (const char *)base + i * 4, 4);
    return v;
}

/* Fill a descriptor (data NULL); fails with CQ_E_NOMEM when the byte count overflows. */
int cq_pk_desc(cq_packed *p, const char *suffix, cq_dtype dt, int ndim, int64_t d0, int64_t d1,
               cq_error *err);
/* Allocate zeroed data for every planned tensor; on failure frees what it took. */
int cq_pk_alloc_all(cq_packed *p, int n, cq_error *err);

/* Groups a layout expects for cols input features (group_size -1 = one group). */
int64_t cq_pk_groups(int group_size, int64_t cols);
/* A result a packer may trust: options match cfg, arrays present, codes and zeros in range,
 * symmetric zeros equal 2^(b-1), g_idx inside [0, n_groups). */
int cq_pk_check_result(const cq_qconfig *cfg, const cq_qresult *r, cq_error *err);
/* True when g_idx[c] == c / G for every column (no act-order permutation of groups). */
bool cq_pk_gidx_trivial(const cq_qresult *r);
/* Round a scale to f16, refusing values that do not survive as finite numbers. */
int cq_pk_scale_f16(float s, uint16_t *out, cq_error *err);

/* The tensor `suffix` with exactly this dtype and shape, data present and nbytes exact.
 * ndim 1 ignores d1. Missing: CQ_E_FORMAT; wrong dtype: CQ_E_FORMAT; wrong shape: CQ_E_SHAPE. */
int cq_pk_need(const cq_packed *in, int n, const char *suffix, cq_dtype dt, int ndim, int64_t d0,
               int64_t d1, const cq_packed **out, cq_error *err);
/* As cq_pk_need for a float tensor of any of F16/BF16/F32. */
int cq_pk_need_float(const cq_packed *in, int n, const char *suffix, int64_t d0, int64_t d1,
                     const cq_packed **out, cq_error *err);

/* Allocate the arrays of an unpacked result (each with malloc, released by
 * cq_qresult_release). */
int cq_pk_result_alloc(cq_qresult *r, int64_t rows, int64_t cols, int bits, int group_size,
                       int64_t n_groups, bool sym, cq_error *err);
void cq_pk_result_free(cq_qresult *r);
/* g_idx from a checkpoint tensor: values must lie in [0, n_groups). */
int cq_pk_read_gidx(const cq_packed *t, int64_t cols, int64_t n_groups, int32_t *g_idx,
                    cq_error *err);
void cq_pk_default_gidx(int32_t *g_idx, int64_t cols, int group_size);

/* quantization_config getters: 1 found, 0 absent, negative status when the wrong type. */
int cq_pk_json_int(const cJSON *obj, const char *key, int64_t *v, cq_error *err);
int cq_pk_json_bool(const cJSON *obj, const char *key, bool *v, cq_error *err);
/* *v borrows the string; a JSON null counts as absent. */
int cq_pk_json_str(const cJSON *obj, const char *key, const char **v, cq_error *err);

#endif
