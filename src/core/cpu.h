/* Run-time CPU feature checks for the optional fast paths (SHA-NI hashing, AVX2 quantization
 * kernels). Every fast path has a portable twin that gives the same bytes; tests switch the
 * fast ones off with cq_cpu_force_baseline to compare the two. */
#ifndef CQ_CORE_CPU_H
#define CQ_CORE_CPU_H

#include <stdbool.h>

/* AVX2 usable: CPUID says so and the OS saves the YMM state (XCR0). */
bool cq_cpu_avx2(void);
/* x86 SHA extensions plus the SSSE3/SSE4.1 shuffles the SHA-NI code uses. */
bool cq_cpu_shani(void);
/* on: every query above answers false from now on (the portable paths run); off: the CPU's
 * real answers again. For tests and benchmarks; not while other threads are computing. */
void cq_cpu_force_baseline(bool on);

#endif
