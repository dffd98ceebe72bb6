/* WikiText perplexity of a float checkpoint folder, MODEL.md protocol: non-overlapping windows
 * of CTX, tail dropped, each scored on its own; for comparing quantized outputs after
 * `cquant dequant` (scripts/awq_quality.sh, docs/algorithms.md). The ids come either from TEXT
 * tokenized once with the folder's tokenizer (no BOS) or, with --ids, from a file of raw
 * little-endian int32 ids (e.g. the HF tokenization a reference pipeline used).
 * Prints "ppl@CTX=<value> windows=<n>".
 *   ppl MODEL_DIR TEXT CTX [MAX_WINDOWS]
 *   ppl MODEL_DIR --ids IDS.bin CTX [MAX_WINDOWS]
 */
#include "cquant/model.h"
#include "cquant/safetensors.h"
#include "cquant/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The whole file, with 4 spare zero bytes; NULL (after a message) on failure. */
static char *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return NULL;
    }
    long len = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    char *buf = len >= 0 && fseek(f, 0, SEEK_SET) == 0 ? calloc((size_t)len + 4, 1) : NULL;
    if (buf && fread(buf, 1, (size_t)len, f) != (size_t)len) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (!buf)
        fprintf(stderr, "ppl: cannot read %s\n", path);
    *n = buf ? (size_t)len : 0;
    return buf;
}

int main(int argc, char **argv)
{
    int ids_mode = argc > 2 && !strcmp(argv[2], "--ids"), a = 2 + ids_mode;
    if (argc < a + 2) {
        fprintf(stderr, "usage: ppl MODEL_DIR TEXT CTX [MAX_WINDOWS]\n"
                        "       ppl MODEL_DIR --ids IDS.bin CTX [MAX_WINDOWS]\n");
        return 2;
    }
    size_t n = 0;
    char *data = read_all(argv[a], &n);
    if (!data)
        return 3;
    cq_error err = CQ_ERROR_INIT;
    cq_st_model *st = NULL;
    cq_model_config cfg;
    cq_tokenizer *tok = NULL;
    int32_t *ids = ids_mode ? (int32_t *)data : NULL; /* calloc'd: aligned for int32 */
    int64_t n_ids = ids_mode ? (int64_t)(n / 4) : 0;
    cq_eval_opts o = {.seqlen = atoll(argv[a + 1]),
                      .max_windows = argc > a + 2 ? atoll(argv[a + 2]) : 0};
    cq_eval_result res;
    int rc = cq_st_open(&st, argv[1], &err);
    if (rc == CQ_OK)
        rc = cq_config_load(cq_st_dir(st), &cfg, &err);
    if (rc == CQ_OK)
        rc = cq_config_check(&cfg, st, &err);
    if (rc == CQ_OK && !ids_mode)
        rc = cq_tokenizer_load(&tok, cq_st_dir(st), &err);
    if (rc == CQ_OK && !ids_mode)
        rc = cq_tokenizer_encode(tok, data, n, 0, &ids, &n_ids, &err);
    if (rc == CQ_OK)
        rc = cq_eval_ppl(&cfg, st, ids, n_ids, &o, &res, &err);
    if (rc == CQ_OK)
        printf("ppl@%s=%.4f windows=%lld\n", argv[a + 1], res.ppl, (long long)res.n_windows);
    else
        fprintf(stderr, "ppl: %s\n", err.msg);
    if (!ids_mode)
        free(ids);
    free(data);
    cq_tokenizer_free(tok);
    cq_st_close(st);
    return rc == CQ_OK ? 0 : 1;
}
