/* WikiText perplexity of a float checkpoint folder on pre-tokenized ids (raw little-endian int32,
 * e.g. the HF tokenization the reference pipeline uses), MODEL.md protocol: non-overlapping
 * windows of CTX, tail dropped, each scored on its own. For checking `cquant gptq` outputs after
 * `cquant dequant` (scripts/gptq_quality.sh). Prints "ppl@CTX=<value> windows=<n>". */
#include "cquant/model.h"
#include "cquant/safetensors.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: ppl_ids MODEL_DIR IDS.bin CTX [MAX_WINDOWS]\n");
        return 2;
    }
    cq_error err = CQ_ERROR_INIT;
    cq_st_model *st = NULL;
    cq_model_config cfg;
    FILE *f = fopen(argv[2], "rb");
    if (!f)
        return perror(argv[2]), 3;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    int32_t *ids = malloc((size_t)n + 4);
    if (!ids || fread(ids, 1, (size_t)n, f) != (size_t)n)
        return fprintf(stderr, "read failed\n"), 3;
    fclose(f);
    cq_eval_opts o = {.seqlen = atoll(argv[3]), .max_windows = argc > 4 ? atoll(argv[4]) : 0};
    cq_eval_result res;
    int rc = cq_st_open(&st, argv[1], &err);
    if (rc == CQ_OK)
        rc = cq_config_load(cq_st_dir(st), &cfg, &err);
    if (rc == CQ_OK)
        rc = cq_config_check(&cfg, st, &err);
    if (rc == CQ_OK)
        rc = cq_eval_ppl(&cfg, st, ids, n / 4, &o, &res, &err);
    if (rc != CQ_OK)
        return fprintf(stderr, "ppl_ids: %s\n", err.msg), 1;
    printf("ppl@%s=%.4f windows=%lld\n", argv[3], res.ppl, (long long)res.n_windows);
    cq_st_close(st);
    free(ids);
    return 0;
}
