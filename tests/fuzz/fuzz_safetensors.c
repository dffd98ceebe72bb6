/* libFuzzer target: any byte string as a safetensors file. The reader must return a status
 * (never crash, read out of bounds or leak) and, when it accepts, every tensor must lie inside
 * the input and be fully covered. Built with clang -fsanitize=fuzzer (CQ_FUZZ=ON) or linked with
 * replay_main.c to replay the corpus as a ctest. */
#include "cquant/safetensors.h"
#include "fuzz_util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy = fuzz_copy(data, size);
    if (!copy)
        return 0;
    cq_error err = CQ_ERROR_INIT;
    cq_st_model *m = NULL;
    int rc = cq_st_open_buffer(&m, copy, size, "fuzz.safetensors", &err);
    if (rc == CQ_OK) {
        size_t covered = 0;
        for (size_t i = 0; i < cq_st_count(m); i++) {
            const cq_st_tensor *t = cq_st_at(m, i);
            const uint8_t *p = t->data;
            if (p < copy || p + t->nbytes > copy + size || cq_st_find(m, t->name) != t)
                abort();
            covered += t->nbytes;
            volatile uint8_t sink = 0;
            for (size_t k = 0; k < t->nbytes; k++) /* touch every byte */
                sink ^= p[k];
            (void)sink;
        }
        /* the data section is exactly the tensors: header length + 8 + covered == size */
        uint64_t n = 0;
        for (int i = 7; i >= 0; i--)
            n = n << 8 | copy[i];
        if (8 + n + covered != size)
            abort();
        cq_st_close(m);
    } else {
        if (m)
            abort();
        fuzz_check_refusal(rc, &err);
    }
    free(copy);
    return 0;
}
