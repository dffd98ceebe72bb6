/* Statistics files (docs/stats.md): a safetensors file with `cquant_stats` metadata and one
 * `<linear>.hessian` F32/F64 [in, in] tensor per Linear, the generic input of `cquant gptq`.
 * The container is cq_st_open's; this validates what the format adds and reads a Hessian. */
#ifndef CQUANT_STATS_H
#define CQUANT_STATS_H

#include "cquant/error.h"
#include "cquant/safetensors.h"

#include <stdbool.h>
#include <stdint.h>

#define CQ_STATS_MAX_SAMPLES ((int64_t)1 << 40)

/* Does the file carry `cquant_stats` metadata (is it meant as a statistics file)? */
bool cq_stats_is(const cq_st_model *m);

/* Validates an opened statistics file read from `path`: `cquant_stats` is "1", `n_samples` a
 * decimal integer in [1, 2^40] (returned), and every `*.hessian` tensor is F32 or F64, 2-D and
 * square. Other tensors are ignored. Errors name the file and the tensor. */
int cq_stats_check(const cq_st_model *m, const char *path, int64_t *n_samples, cq_error *err);

/* The Hessian of the Linear whose weight is `weight_name` (`<module>.weight`): the tensor
 * `<module>.hessian`, or NULL (also for a name not ending in ".weight", and when out of memory
 * for the name: the Linear then takes the no-Hessian path). */
const cq_st_tensor *cq_stats_find(const cq_st_model *m, const char *weight_name);

/* Reads Hessian `t` of a Linear with `cols` in features into h[cols * cols] (row-major,
 * float64). CQ_E_SHAPE unless F32/F64 [cols, cols]; CQ_E_NUMERIC on a NaN/Inf entry (named by
 * row and column). */
int cq_stats_read(const cq_st_tensor *t, int64_t cols, double *h, cq_error *err);

#endif
