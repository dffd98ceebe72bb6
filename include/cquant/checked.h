/* Overflow-checked size arithmetic for every number that comes from a file. */
#ifndef CQUANT_CHECKED_H
#define CQUANT_CHECKED_H

#include <stddef.h>
#include <stdint.h>

/* Each returns 0 and writes *out on success, -1 on overflow (leaving *out untouched). */
static inline int cq_mul_size(size_t a, size_t b, size_t *out)
{
    size_t r;
    if (__builtin_mul_overflow(a, b, &r))
        return -1;
    *out = r;
    return 0;
}

static inline int cq_add_size(size_t a, size_t b, size_t *out)
{
    size_t r;
    if (__builtin_add_overflow(a, b, &r))
        return -1;
    *out = r;
    return 0;
}

static inline int cq_mul_i64(int64_t a, int64_t b, int64_t *out)
{
    int64_t r;
    if (__builtin_mul_overflow(a, b, &r))
        return -1;
    *out = r;
    return 0;
}

#endif
