/* libFuzzer target: any byte string as tokenizer.json (cq_tokenizer_load_buffer). Loading must
 * return a status and a one-line message; an accepted tokenizer must encode a few fixed texts and
 * the input's own first bytes to ids inside its vocabulary, and decode them back without error.
 * Built with libFuzzer (CQ_FUZZ=ON) or replay_main.c (ctest). */
#include "cquant/tokenizer.h"
#include "fuzz_util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void roundtrip(const cq_tokenizer *tok, const char *text, size_t len)
{
    cq_error err = CQ_ERROR_INIT;
    int32_t *ids = NULL;
    int64_t n = 0;
    int64_t vocab = cq_tokenizer_vocab_size(tok);
    for (int special = 0; special < 2; special++) {
        int rc = cq_tokenizer_encode(tok, text, len, special, &ids, &n, &err);
        if (rc != CQ_OK) {
            /* malformed UTF-8 (the input's own bytes) is the only expected refusal */
            if (err.code != rc || !err.msg[0] || strchr(err.msg, '\n') || ids)
                abort();
            return;
        }
        for (int64_t i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= vocab)
                abort();
        char *out = NULL;
        size_t out_len = 0;
        rc = cq_tokenizer_decode(tok, ids, n, &out, &out_len, &err);
        if (rc != CQ_OK && (err.code != rc || strchr(err.msg, '\n')))
            abort();
        if (rc == CQ_OK && (!out || out[out_len] != 0)) /* text may hold NULs: len rules */
            abort();
        free(out);
        free(ids);
        ids = NULL;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = fuzz_copy(data, size);
    if (!copy)
        return 0;
    cq_error err = CQ_ERROR_INIT;
    cq_tokenizer *tok = NULL;
    int rc = cq_tokenizer_load_buffer(&tok, copy, size, "fuzz/tokenizer.json", NULL, &err);
    if (rc != CQ_OK) {
        if (tok)
            abort();
        fuzz_check_refusal(rc, &err);
        free(copy);
        return 0;
    }
    static const char *const texts[] = {
        "", " ", "Hello world", "  leading and trailing  ", "caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87",
        "line\nbreak\ttab", "12345 67,89", "<s></s><unk>", "\xf0\x9f\x98\x80 emoji"};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++)
        roundtrip(tok, texts[i], strlen(texts[i]));
    roundtrip(tok, copy, size < 64 ? size : 64);
    cq_tokenizer_free(tok);
    free(copy);
    return 0;
}
