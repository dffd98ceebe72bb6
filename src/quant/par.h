/* A tiny fork-join over row ranges with plain pthreads, and a monotonic clock. The partition
 * is a pure function of (rows, threads) and every row is computed by one worker alone, so a
 * per-row computation gives the same bytes for any thread count. */
#ifndef CQ_QUANT_PAR_H
#define CQ_QUANT_PAR_H

#include "cquant/error.h"

#include <stdint.h>

typedef void (*cq_rows_fn)(void *ctx, int64_t r0, int64_t r1, int worker);

/* Workers to use for `threads` (0 = online CPUs), never more than rows. */
int cq_par_workers(int threads, int64_t rows);
/* Run fn over [0, rows) split into `workers` contiguous ranges; worker 0 runs on the calling
 * thread. If a thread cannot be created its range runs on the calling thread instead. */
void cq_par_rows(int workers, int64_t rows, cq_rows_fn fn, void *ctx);
double cq_par_now(void);

#endif
