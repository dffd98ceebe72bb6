/* See blas_threads.h. */
#include "linalg/blas_threads.h"

void cq_blas_stop_threads(void)
{
    if (!cq_blas_loaded())
        return; /* nothing started: loading it just to stop it would start the threads */
    int (*shutdown)(void) = (int (*)(void))cq_blas_symbol("blas_thread_shutdown_");
    if (shutdown)
        shutdown();
}
