/* libFuzzer target: any byte string as calib.bin (cq_calib_read: a safetensors file with
 * input_ids [n, seqlen] I32/I64 and __metadata__). The reader takes a path, so each input is
 * written to one file under TMPDIR (made once per process). Read with vocab 64 and with no
 * vocabulary check: a status and a one-line message, or n, seqlen >= 1, every id in range and
 * NUL-terminated metadata strings. Inactive (accepts everything) until cquant/calib.h exists:
 * branch `model` brings it. Built with libFuzzer (CQ_FUZZ=ON) or replay_main.c (ctest). */
#if __has_include("cquant/calib.h")
#include "cquant/calib.h"
#define HAVE_CALIB 1
#endif

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#ifdef HAVE_CALIB
static char path[600];

static void cleanup(void) { unlink(path); }

static void check(int64_t vocab)
{
    cq_calib c;
    cq_error err = CQ_ERROR_INIT;
    int rc = cq_calib_read(path, vocab, &c, &err);
    if (rc != CQ_OK) {
        if (err.code != rc || !err.msg[0] || strchr(err.msg, '\n'))
            abort();
        return;
    }
    if (c.n < 1 || c.seqlen < 1 || !c.ids || memchr(c.mode, 0, sizeof c.mode) == NULL ||
        memchr(c.tokenizer_hash, 0, sizeof c.tokenizer_hash) == NULL ||
        memchr(c.sources, 0, sizeof c.sources) == NULL)
        abort();
    for (int64_t i = 0; i < c.n * c.seqlen; i++)
        if (c.ids[i] < 0 || (vocab > 0 && c.ids[i] >= vocab))
            abort();
    cq_calib_release(&c);
}
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
#ifdef HAVE_CALIB
    if (!path[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(path, sizeof path, "%s/cqfuzz-calib.%ld.bin", tmp && *tmp ? tmp : "/tmp",
                 (long)getpid());
        atexit(cleanup);
    }
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
        abort();
    check(64);
    check(0);
#else
    (void)data;
    (void)size;
#endif
    return 0;
}
