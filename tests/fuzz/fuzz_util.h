/* Helpers of the fuzz targets (header-only: a libFuzzer binary is built from its one file). */
#ifndef CQ_FUZZ_UTIL_H
#define CQ_FUZZ_UTIL_H

#include "cquant/error.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The input in a heap block of exactly SIZE bytes (1 when empty), so ASan sees any read past
 * its end; NULL when out of memory. */
static inline void *fuzz_copy(const uint8_t *data, size_t size)
{
    void *copy = malloc(size ? size : 1);
    if (copy && size)
        memcpy(copy, data, size);
    return copy;
}

/* A refusal must carry its own status and a one-line message; abort() otherwise. */
static inline void fuzz_check_refusal(int rc, const cq_error *err)
{
    if (rc != CQ_OK && (err->code != rc || !err->msg[0] || strchr(err->msg, '\n')))
        abort();
}

#endif
