/* CPUID checks (see cpu.h). Asked of CPUID directly: clang 14 rejects some feature names in
 * __builtin_cpu_supports. The answers are computed once; a race only computes them twice. */
#include "core/cpu.h"

#include <stddef.h>

static int forced_baseline;

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>

static bool os_saves_ymm(unsigned ecx1)
{
    if (!(ecx1 & (1u << 27))) /* OSXSAVE: xgetbv is allowed */
        return false;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    (void)hi;
    return (lo & 6u) == 6u; /* XMM and YMM state */
}

static int detect(int which)
{
    unsigned a, b, c, d, ecx1;
    if (!__get_cpuid(1, &a, &b, &ecx1, &d) || __get_cpuid_max(0, NULL) < 7)
        return 0;
    __cpuid_count(7, 0, a, b, c, d);
    if (which == 0) /* leaf 7 EBX bit 5 = AVX2; leaf 1 ECX bit 28 = AVX */
        return (b & (1u << 5)) && (ecx1 & (1u << 28)) && os_saves_ymm(ecx1);
    /* leaf 7 EBX bit 29 = SHA; leaf 1 ECX bit 19 = SSE4.1, bit 9 = SSSE3 */
    return (b & (1u << 29)) && (ecx1 & (1u << 19)) && (ecx1 & (1u << 9));
}
#else
static int detect(int which)
{
    (void)which;
    return 0;
}
#endif

static bool cached(int *slot, int which)
{
    int v = __atomic_load_n(slot, __ATOMIC_RELAXED);
    if (v < 0) {
        v = detect(which);
        __atomic_store_n(slot, v, __ATOMIC_RELAXED);
    }
    return v && !__atomic_load_n(&forced_baseline, __ATOMIC_RELAXED);
}

bool cq_cpu_avx2(void)
{
    static int v = -1;
    return cached(&v, 0);
}

bool cq_cpu_shani(void)
{
    static int v = -1;
    return cached(&v, 1);
}

void cq_cpu_force_baseline(bool on)
{
    __atomic_store_n(&forced_baseline, on ? 1 : 0, __ATOMIC_RELAXED);
}
