/* Resource planning for quantization runs: the peak memory a run will need and the bytes it will
 * write, computed from shapes before anything is allocated or created, so `--max-memory` and a
 * full disk are refused up front with a one-line error instead of failing half way.
 * The estimates are upper bounds of the heap buffers the drivers allocate per Linear (see
 * cq_plan_linear_bytes) plus the pages of the input tensor in flight and a fixed overhead. */
#ifndef CQUANT_PLAN_H
#define CQUANT_PLAN_H

#include "cquant/error.h"

#include <stddef.h>
#include <stdint.h>

/* Process baseline: binary, libraries, OpenBLAS buffers, the report and JSON trees. */
#define CQ_PLAN_FIXED_OVERHEAD ((size_t)16 << 20)

typedef struct cq_plan {
    size_t peak_bytes;        /* planned peak: fixed overhead + the worst tensor in flight */
    size_t output_bytes;      /* planned bytes written (tensors, headers, small files) */
    const char *peak_tensor;  /* borrowed name of the tensor that sets the peak, or NULL */
} cq_plan;

/* Heap bytes to quantize one Linear [rows x cols]: two f32 copies of the weight (input and
 * dequantized check), the codes, scales, zeros and g_idx, the packed tensors, and with
 * `hessian` (GPTQ) the f64 H [cols x cols] and its inverse Cholesky factor. Saturates at
 * SIZE_MAX instead of overflowing. */
size_t cq_plan_linear_bytes(int64_t rows, int64_t cols, int bits, int group_size, int hessian);

/* Account one tensor in flight: `heap` bytes of buffers plus `mapped` bytes of input pages. */
void cq_plan_tensor(cq_plan *p, const char *name, size_t heap, size_t mapped);
/* Account bytes written. */
void cq_plan_output(cq_plan *p, size_t bytes);

/* CQ_E_NOMEM "planned peak memory X exceeds --max-memory Y (tensor 'T')" when limit > 0 and
 * p->peak_bytes > limit. */
int cq_plan_check_memory(const cq_plan *p, size_t limit, cq_error *err);
/* CQ_E_IO when the filesystem holding DIR has fewer than p->output_bytes available to us
 * (statvfs f_bavail; the environment variable CQ_TEST_DISK_FREE, when set, replaces that
 * number: a test hook). A DIR that cannot be examined is not an error (the write will tell). */
int cq_plan_check_disk(const cq_plan *p, const char *dir, cq_error *err);

/* "1.5 GiB", "12.0 MiB", "512 B" into buf. */
void cq_format_bytes(size_t bytes, char *buf, size_t n);

#endif
