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
/* The same, but with threads = 0 fewer workers when the work is small: each gets at least 2M
 * elements (row_len per row; a few ms of RTN work). Below that a thread costs more than it
 * saves: on a loaded machine a new thread can wait milliseconds for a core, and the join waits
 * with it (measured: cq-llama-16m's 56 Linears took 3x longer split in two than on one). */
int cq_par_workers_for(int threads, int64_t rows, int64_t row_len);
/* Run fn over [0, rows) split into `workers` contiguous ranges; worker 0 runs on the calling
 * thread. If a thread cannot be created its range runs on the calling thread instead. */
void cq_par_rows(int workers, int64_t rows, cq_rows_fn fn, void *ctx);
double cq_par_now(void);

#endif
