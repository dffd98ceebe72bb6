/* The BLAS runtime. OpenBLAS is not linked: blas_lazy.c forwards the few cblas/LAPACKE
 * functions cquant calls to it, loaded with dlopen on first use, so commands that make no
 * BLAS call (rtn, inspect, dequant) never pay for loading and initializing it.
 * OpenBLAS starts its worker threads when the library loads, and an idle worker spins
 * (sched_yield) for ~2^28 cycles, about 0.1 s, before it sleeps. */
#ifndef CQ_LINALG_BLAS_THREADS_H
#define CQ_LINALG_BLAS_THREADS_H

#include "cquant/error.h"

#include <stdbool.h>

/* Load OpenBLAS now (idempotent, thread-safe). CQ_E_UNSUPPORTED "cannot load OpenBLAS: ..."
 * when it cannot be found. Commands that compute with BLAS call it first, so a missing
 * library is a one-line error instead of an abort inside a forwarder. */
int cq_blas_load(cq_error *err);
/* true once OpenBLAS is loaded. */
bool cq_blas_loaded(void);
/* A symbol of the loaded OpenBLAS (loading it if needed), or NULL. */
void *cq_blas_symbol(const char *name);

/* Stop OpenBLAS's worker threads if it is loaded and can (blas_thread_shutdown_, the call its
 * own fork handler makes); its next threaded call starts them again. A no-op otherwise. */
void cq_blas_stop_threads(void);

#endif
