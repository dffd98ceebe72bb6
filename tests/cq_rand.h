/* Reproducible random numbers for the tests and scripts/bench: xorshift64* on a state the caller
 * owns (any non-zero seed), so each file keeps its own fixed stream. Header-only (static
 * inline) so the standalone bench programs can use it without the test harness. */
#ifndef CQ_RAND_H
#define CQ_RAND_H

#include <math.h>
#include <stdint.h>

static inline uint64_t cq_rand_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

/* 32 uniform bits (the high half: the best-mixed ones). */
static inline uint32_t cq_rand_u32(uint64_t *s)
{
    return (uint32_t)(cq_rand_next(s) >> 32);
}

/* Uniform in [0, 1). */
static inline double cq_rand_uniform(uint64_t *s)
{
    return (double)(cq_rand_next(s) >> 11) * 0x1.0p-53;
}

/* Standard normal (Box-Muller). */
static inline double cq_rand_normal(uint64_t *s)
{
    double u = cq_rand_uniform(s) + 1e-12, v = cq_rand_uniform(s);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

#endif
