/* See blas_threads.h. Weak, so the build links against any BLAS. */
#include "linalg/blas_threads.h"

#include <stddef.h>

extern int blas_thread_shutdown_(void) __attribute__((weak));

void cq_blas_stop_threads(void)
{
    if (blas_thread_shutdown_ != NULL)
        blas_thread_shutdown_();
}
