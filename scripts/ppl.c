/* WikiText perplexity of a float checkpoint folder (MODEL.md protocol: text tokenized once, no
 * BOS, non-overlapping windows of CTX, tail dropped), for comparing quantized outputs after
 * `cquant dequant`. Prints "ppl=<value> windows=<n>". Used by scripts/awq_quality.sh.
 */
#include "cquant/model.h"
#include "cquant/safetensors.h"
#include "cquant/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: ppl MODEL_DIR TEXT CTX [MAX_WINDOWS]\n");
        return 2;
    }
    cq_error err = CQ_ERROR_INIT;
    cq_st_model *st = NULL;
    cq_model_config cfg;
    cq_tokenizer *tok = NULL;
    FILE *f = fopen(argv[2], "rb");
    if (!f)
        return perror(argv[2]), 3;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)n + 1);
    if (!text || fread(text, 1, (size_t)n, f) != (size_t)n)
        return fprintf(stderr, "read failed\n"), 3;
    fclose(f);
    int32_t *ids = NULL;
    int64_t n_ids = 0;
    cq_eval_opts o = {.seqlen = atoll(argv[3]), .max_windows = argc > 4 ? atoll(argv[4]) : 0};
    cq_eval_result res;
    int rc = cq_st_open(&st, argv[1], &err);
    if (rc == CQ_OK)
        rc = cq_config_load(cq_st_dir(st), &cfg, &err);
    if (rc == CQ_OK)
        rc = cq_config_check(&cfg, st, &err);
    if (rc == CQ_OK)
        rc = cq_tokenizer_load(&tok, cq_st_dir(st), &err);
    if (rc == CQ_OK)
        rc = cq_tokenizer_encode(tok, text, (size_t)n, 0, &ids, &n_ids, &err);
    if (rc == CQ_OK)
        rc = cq_eval_ppl(&cfg, st, ids, n_ids, &o, &res, &err);
    if (rc != CQ_OK)
        return fprintf(stderr, "ppl: %s\n", err.msg), 1;
    printf("ppl=%.4f windows=%lld\n", res.ppl, (long long)res.n_windows);
    return 0;
}
