/* A synthetic Llama checkpoint with random BF16 weights (N(0, 0.02²)-ish, norms 1) and a random
 * calib.bin, for memory/speed measurements of `cquant gptq` at shapes no real model here has
 * (scripts/bench_gptq_e2e.sh: Llama-7B layer shapes).
 *   synth_llama OUTDIR LAYERS HIDDEN INTER HEADS KV_HEADS VOCAB N_SEQ SEQLEN */
#include "cquant/calib.h"
#include "cquant/dtype.h"
#include "cquant/safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static double uniform(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

static int put(cq_st_writer *w, const char *name, int64_t rows, int64_t cols, float val,
               cq_error *err)
{
    size_t n = (size_t)(rows * cols);
    uint16_t *b = malloc(n * 2);
    float *f = malloc(n * sizeof *f);
    if (!b || !f)
        return cq_errorf(err, CQ_E_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) /* sum of 3 uniforms: roughly normal, std 0.02 */
        f[i] = val != 0 ? val : (float)((uniform() + uniform() + uniform() - 1.5) * 0.04);
    cq_convert_from_f32(CQ_DT_BF16, f, b, n);
    int rc = cq_st_writer_write(w, name, b, n * 2, err);
    free(b);
    free(f);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 10) {
        fprintf(stderr, "usage: synth_llama OUTDIR LAYERS HIDDEN INTER HEADS KV_HEADS VOCAB "
                        "N_SEQ SEQLEN\n");
        return 2;
    }
    const char *dir = argv[1];
    int64_t L = atoll(argv[2]), H = atoll(argv[3]), I = atoll(argv[4]), nh = atoll(argv[5]);
    int64_t kv = atoll(argv[6]), V = atoll(argv[7]), ns = atoll(argv[8]), S = atoll(argv[9]);
    int64_t hd = H / nh;
    cq_error err = CQ_ERROR_INIT;
    cq_st_writer *w = NULL;
    char path[4096], name[256];
    struct { const char *n; int64_t r, c; } lin[7] = {
        {"self_attn.q_proj", nh * hd, H}, {"self_attn.k_proj", kv * hd, H},
        {"self_attn.v_proj", kv * hd, H}, {"self_attn.o_proj", H, nh * hd},
        {"mlp.gate_proj", I, H},          {"mlp.up_proj", I, H},
        {"mlp.down_proj", H, I}};
    mkdir(dir, 0777);
    int rc = cq_st_writer_create(&w, dir, (size_t)2 << 30, &err);
    int64_t shp[2] = {V, H}, nshp[1] = {H};
    if (rc == CQ_OK)
        rc = cq_st_writer_add(w, "model.embed_tokens.weight", CQ_DT_BF16, 2, shp, &err);
    if (rc == CQ_OK)
        rc = cq_st_writer_add(w, "model.norm.weight", CQ_DT_BF16, 1, nshp, &err);
    for (int64_t l = 0; l < L && rc == CQ_OK; l++) {
        for (int k = 0; k < 7 && rc == CQ_OK; k++) {
            int64_t s2[2] = {lin[k].r, lin[k].c};
            snprintf(name, sizeof name, "model.layers.%lld.%s.weight", (long long)l, lin[k].n);
            rc = cq_st_writer_add(w, name, CQ_DT_BF16, 2, s2, &err);
        }
        snprintf(name, sizeof name, "model.layers.%lld.input_layernorm.weight", (long long)l);
        if (rc == CQ_OK)
            rc = cq_st_writer_add(w, name, CQ_DT_BF16, 1, nshp, &err);
        snprintf(name, sizeof name, "model.layers.%lld.post_attention_layernorm.weight",
                 (long long)l);
        if (rc == CQ_OK)
            rc = cq_st_writer_add(w, name, CQ_DT_BF16, 1, nshp, &err);
    }
    if (rc == CQ_OK)
        rc = cq_st_writer_start(w, &err);
    if (rc == CQ_OK)
        rc = put(w, "model.embed_tokens.weight", V, H, 0, &err);
    if (rc == CQ_OK)
        rc = put(w, "model.norm.weight", 1, H, 1, &err);
    for (int64_t l = 0; l < L && rc == CQ_OK; l++) {
        for (int k = 0; k < 7 && rc == CQ_OK; k++) {
            snprintf(name, sizeof name, "model.layers.%lld.%s.weight", (long long)l, lin[k].n);
            rc = put(w, name, lin[k].r, lin[k].c, 0, &err);
        }
        snprintf(name, sizeof name, "model.layers.%lld.input_layernorm.weight", (long long)l);
        if (rc == CQ_OK)
            rc = put(w, name, 1, H, 1, &err);
        snprintf(name, sizeof name, "model.layers.%lld.post_attention_layernorm.weight",
                 (long long)l);
        if (rc == CQ_OK)
            rc = put(w, name, 1, H, 1, &err);
    }
    if (rc == CQ_OK)
        rc = cq_st_writer_finish(w, &err);
    cq_st_writer_free(w);
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = rc == CQ_OK ? fopen(path, "w") : NULL;
    if (f) {
        fprintf(f,
                "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", "
                "\"hidden_size\": %lld, \"intermediate_size\": %lld, \"num_hidden_layers\": %lld, "
                "\"num_attention_heads\": %lld, \"num_key_value_heads\": %lld, "
                "\"vocab_size\": %lld, \"max_position_embeddings\": 4096, "
                "\"rms_norm_eps\": 1e-05, \"rope_theta\": 10000.0, "
                "\"tie_word_embeddings\": true, \"torch_dtype\": \"bfloat16\"}\n",
                (long long)H, (long long)I, (long long)L, (long long)nh, (long long)kv,
                (long long)V);
        fclose(f);
    }
    cq_calib cal = {.n = ns, .seqlen = S};
    snprintf(cal.mode, sizeof cal.mode, "random");
    cal.ids = malloc((size_t)(ns * S) * sizeof *cal.ids);
    for (int64_t i = 0; cal.ids && i < ns * S; i++)
        cal.ids[i] = (int32_t)(uniform() * (double)V);
    snprintf(path, sizeof path, "%s/calib.bin", dir);
    if (rc == CQ_OK)
        rc = cq_calib_write(path, &cal, &err);
    cq_calib_release(&cal);
    if (rc != CQ_OK) {
        fprintf(stderr, "synth_llama: %s\n", err.msg);
        return 1;
    }
    return 0;
}
