/* Internals of sha256.c exposed for tests and benchmarks: which block function runs. */
#ifndef CQ_CORE_SHA256_IMPL_H
#define CQ_CORE_SHA256_IMPL_H

#include <stdbool.h>

/* Whether this CPU has the x86 SHA extensions (and SSE4.1/SSSE3) that the fast path uses. */
bool cq_sha256_have_shani(void);
/* on: use the portable block function from now on; off: back to the automatic choice.
 * Not for use while another thread is hashing (tests call it between digests). */
void cq_sha256_force_portable(bool on);

#endif
