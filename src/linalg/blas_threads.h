/* OpenBLAS starts its worker threads when the library loads, and an idle worker spins
 * (sched_yield) for ~2^28 cycles, about 0.1 s, before it sleeps. A command that makes no BLAS
 * call (rtn) would share its cores with that spinning for its whole run. */
#ifndef CQ_LINALG_BLAS_THREADS_H
#define CQ_LINALG_BLAS_THREADS_H

/* Stop OpenBLAS's worker threads if this OpenBLAS can (blas_thread_shutdown_, the call its own
 * fork handler makes); its next threaded call starts them again. A no-op with another BLAS. */
void cq_blas_stop_threads(void);

#endif
