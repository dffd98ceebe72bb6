/* End-to-end check of `cquant rtn` against the spec, with nothing shared with the product:
 * runs the binary on cq-llama-16m, reads its output with the tests' own minimal safetensors
 * parser (tests/cq_testutil.c), decodes qweight/qzeros/scales/g_idx with its own bit loops
 * (notes §B.1-B.3), and recomputes the reference min-max RTN (§B.4, float32 as the reference's
 * torch code does) from the original bf16 weights. Every integer code must match exactly, and
 * every stored scale must equal the reference scale rounded to F16. */
#include "cq_test.h"
#include "cq_testutil.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- GPTQ decoding (notes §B.2): value i of a packed run at bits [b*i, b*i+b) ---- */
static uint32_t unpack_word_formula(const unsigned char *words, size_t stride, int64_t i, int b,
                                    size_t col)
{
    int per = 32 / b;                       /* b in {2,4,8}: whole values per word */
    uint32_t w = cq_test_rd32(words, (size_t)(i / per) * stride + col);
    return (w >> (b * (i % per))) & ((1u << b) - 1);
}

static uint32_t unpack_3bit(const unsigned char *words, size_t stride, int64_t i, size_t col)
{
    /* 3 words hold 32 values as one 96-bit little-endian stream */
    int64_t triple = i / 32, j = i % 32, bit = 3 * j, v = 0;
    for (int k = 0; k < 3; k++, bit++) {
        int64_t wi = triple * 3 + bit / 32;
        uint32_t w = cq_test_rd32(words, (size_t)wi * stride + col);
        v |= (int64_t)((w >> (bit % 32)) & 1u) << k;
    }
    return (uint32_t)v;
}

static uint32_t unpack(const unsigned char *words, size_t stride, int64_t i, int b, size_t col)
{
    if (b == 3)
        return unpack_3bit(words, stride, i, col);
    return unpack_word_formula(words, stride, i, b, col);
}

/* All codes of qweight [cols/32*b, rows] into codes[k * rows + n], walking the words in
 * storage order (same bit rules as unpack(), cache-friendly). */
static void decode_qweight(const unsigned char *qw, int64_t rows, int64_t cols, int b,
                           uint8_t *codes)
{
    int64_t nwr = cols / 32 * b; /* packed rows */
    if (b != 3) {
        int per = 32 / b;
        for (int64_t wr = 0; wr < nwr; wr++)
            for (int64_t n = 0; n < rows; n++) {
                uint32_t w = cq_test_rd32(qw, (size_t)(wr * rows + n));
                for (int j = 0; j < per; j++)
                    codes[(wr * per + j) * rows + n] = (uint8_t)((w >> (b * j)) & ((1u << b) - 1));
            }
        return;
    }
    for (int64_t t = 0; t < nwr / 3; t++) /* triples: 96-bit streams of 32 values */
        for (int64_t n = 0; n < rows; n++) {
            uint64_t lo = cq_test_rd32(qw, (size_t)((3 * t) * rows + n));
            uint64_t mid = cq_test_rd32(qw, (size_t)((3 * t + 1) * rows + n));
            uint64_t hi = cq_test_rd32(qw, (size_t)((3 * t + 2) * rows + n));
            for (int j = 0; j < 32; j++) {
                int bit = 3 * j;
                uint32_t v = 0;
                for (int k = 0; k < 3; k++, bit++) {
                    uint64_t word = bit < 32 ? lo : bit < 64 ? mid : hi;
                    v |= (uint32_t)((word >> (bit % 32)) & 1u) << k;
                }
                codes[(32 * t + j) * rows + n] = (uint8_t)v;
            }
        }
}

/* ---- reference RTN (notes §B.4), float32 like the reference's torch code ---- */
typedef struct refgrp {
    float scale;
    float zero;
} refgrp;

static uint32_t ref_code(float w, refgrp g, int bits)
{
    float q = nearbyintf(w / g.scale) + g.zero, maxq = (float)((1 << bits) - 1);
    q = q < 0 ? 0 : q > maxq ? maxq : q;
    return (uint32_t)q;
}

typedef struct counts {
    long long codes, bad_codes, scales, bad_scales, zeros, bad_zeros, gidx_bad, layers;
    long long deq, bad_deq;
    double sum_sq_err, sum_sq_w;
} counts;

/* Original weight of `name` as float, from the sharded bf16 checkpoint. */
static float *original(const char *name, int64_t *rows, int64_t *cols)
{
    static cJSON *index;
    char path[4096];
    if (!index) {
        index = cq_test_load_json(
            cq_test_shared_path("models/cq-llama-16m/model.safetensors.index.json"));
    }
    const cJSON *file = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(index, "weight_map"), name);
    if (!file)
        return NULL;
    /* the three shards stay loaded for the whole run (freed at exit by the OS) */
    static cq_test_stfile shards[8];
    static char shard_names[8][256];
    static int n_shards;
    cq_test_stfile *f = NULL;
    for (int i = 0; i < n_shards; i++)
        if (!strcmp(shard_names[i], file->valuestring))
            f = &shards[i];
    if (!f && n_shards < 8) {
        snprintf(path, sizeof path, "models/cq-llama-16m/%s", file->valuestring);
        if (cq_test_st_load(&shards[n_shards], cq_test_shared_path(path)) != 0)
            return NULL;
        snprintf(shard_names[n_shards], sizeof shard_names[0], "%s", file->valuestring);
        f = &shards[n_shards++];
    }
    if (!f)
        return NULL;
    const char *dt;
    int64_t shape[2];
    int nd;
    const unsigned char *p = cq_test_st_get(f, name, &dt, shape, &nd);
    float *w = NULL;
    if (p && !strcmp(dt, "BF16") && nd == 2) {
        *rows = shape[0];
        *cols = shape[1];
        w = malloc((size_t)(shape[0] * shape[1]) * sizeof *w);
        for (int64_t i = 0; i < shape[0] * shape[1]; i++)
            w[i] = cq_test_bf16_value(cq_test_rd16(p, (size_t)i));
    }
    return w;
}

static void check_layer(const cq_test_stfile *q, const cq_test_stfile *dq, const char *module,
                        int bits, int group, int sym, int v1, counts *c)
{
    const float *deq = NULL;
    char name[512];
    int64_t rows, cols, sh[2];
    const char *dt;
    int nd;
    snprintf(name, sizeof name, "%s.weight", module);
    float *w = original(name, &rows, &cols);
    if (!w) {
        CQ_FAIL("cannot read original '%s'", name);
        return;
    }
    int64_t G = group > 0 ? group : cols, ng = (cols + G - 1) / G;
    const unsigned char *qw, *qz, *sc, *gi;
#define GET(var, suf)                                                                          \
    snprintf(name, sizeof name, "%s." suf, module);                                            \
    var = cq_test_st_get(q, name, &dt, sh, &nd);                                               \
    if (!var) {                                                                                \
        CQ_FAIL("'%s' missing", name);                                                         \
        free(w);                                                                               \
        return;                                                                                \
    }
    GET(qw, "qweight");
    CQ_CHECK_EQ_INT(sh[0], cols / 32 * bits);
    CQ_CHECK_EQ_INT(sh[1], rows);
    GET(qz, "qzeros");
    CQ_CHECK_EQ_INT(sh[0], ng);
    CQ_CHECK_EQ_INT(sh[1], rows / 32 * bits);
    GET(sc, "scales");
    CQ_CHECK(!strcmp(dt, "F16"));
    GET(gi, "g_idx");
    uint8_t *codes = malloc((size_t)(rows * cols));
    decode_qweight(qw, rows, cols, bits, codes);
    /* spot-check the per-value decoder against the bulk one on the first output channel */
    for (int64_t k = 0; k < cols; k++)
        if (unpack(qw, (size_t)rows, k, bits, 0) != codes[k * rows])
            CQ_FAIL("%s: decoders disagree at k=%lld", module, (long long)k);
    if (dq) { /* `cquant dequant` output: F32 "<module>.weight" */
        snprintf(name, sizeof name, "%s.weight", module);
        deq = (const float *)cq_test_st_get(dq, name, &dt, sh, &nd);
        if (!deq || strcmp(dt, "F32") || sh[0] != rows || sh[1] != cols)
            CQ_FAIL("dequantized '%s' missing or not F32 [%lld, %lld]", name, (long long)rows,
                    (long long)cols);
    }
    for (int64_t k = 0; k < cols; k++)
        c->gidx_bad += (int64_t)(int32_t)cq_test_rd32(gi, (size_t)k) != k / G;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t g = 0; g < ng; g++) {
            int64_t k0 = g * G, k1 = k0 + G < cols ? k0 + G : cols;
            refgrp ref;
            cq_test_minmax_f32(w + r * cols + k0, k1 - k0, bits, sym, &ref.scale, &ref.zero);
            uint16_t s = cq_test_rd16(sc, (size_t)(g * rows + r));
            c->scales++;
            c->bad_scales += s != cq_test_f16_round(ref.scale);
            const unsigned char *zrow = qz + 4 * (size_t)(g * (rows / 32 * bits));
            uint32_t z = unpack(zrow, 1, r, bits, 0) + (v1 ? 1 : 0);
            c->zeros++;
            c->bad_zeros += z != (uint32_t)ref.zero;
            float s16 = (float)cq_test_f16_value(cq_test_f16_round(ref.scale));
            for (int64_t k = k0; k < k1; k++) {
                uint32_t got = codes[k * rows + r];
                uint32_t want = ref_code(w[r * cols + k], ref, bits);
                /* the stored checkpoint's weight: f16 scale times (q - zero), in float32 */
                float wq = s16 * ((float)want - ref.zero);
                double d = (double)w[r * cols + k] - (double)wq;
                c->sum_sq_err += d * d;
                c->sum_sq_w += (double)w[r * cols + k] * (double)w[r * cols + k];
                if (deq) {
                    float dv;
                    memcpy(&dv, (const unsigned char *)deq + 4 * (size_t)(r * cols + k), 4);
                    c->deq++;
                    c->bad_deq += dv != wq;
                }
                c->codes++;
                if (got != want && c->bad_codes++ < 3)
                    fprintf(stderr, "%s [%lld,%lld]: code %u, reference %u (w %.9g scale %.9g)\n",
                            module, (long long)r, (long long)k, got, want, w[r * cols + k],
                            ref.scale);
            }
        }
    c->layers++;
    free(codes);
    free(w);
}

static double totals_num(const cJSON *rep, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(rep, "totals"), key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static void run_case(const char *args, int bits, int group, int sym, int dequant)
{
    char out[1024], cmd[4096], path[1200];
    const char *bin = getenv("CQ_BIN");
    if (!bin) {
        CQ_FAIL("CQ_BIN is not set");
        return;
    }
    snprintf(out, sizeof out, "%s/rtn-b%d-g%d-%s", cq_test_tmpdir(), bits, group,
             sym ? "sym" : "asym");
    snprintf(cmd, sizeof cmd, "'%s' -q rtn %s '%s' -o '%s' >/dev/null", bin, args,
             cq_test_shared_path("models/cq-llama-16m"), out);
    if (system(cmd) != 0) {
        CQ_FAIL("command failed: %s", cmd);
        return;
    }
    cq_test_stfile q;
    snprintf(path, sizeof path, "%s/model.safetensors", out);
    if (cq_test_st_load(&q, path) != 0) {
        CQ_FAIL("cannot parse %s", path);
        return;
    }
    cq_test_stfile dq = {0}, *dqp = NULL;
    if (dequant) {
        snprintf(cmd, sizeof cmd, "'%s' -q dequant '%s' -o '%s-dq' >/dev/null", bin, out, out);
        snprintf(path, sizeof path, "%s-dq/model.safetensors", out);
        if (system(cmd) != 0 || cq_test_st_load(&dq, path) != 0)
            CQ_FAIL("dequant failed: %s", cmd);
        else
            dqp = &dq;
    }
    /* v1 ("gptq") stores zero-1; v2 stores the zero (notes §B.3) */
    snprintf(path, sizeof path, "%s/config.json", out);
    cJSON *cfg = cq_test_load_json(path);
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cfg, "quantization_config"), "checkpoint_format");
    int v1 = cJSON_IsString(fmt) && !strcmp(fmt->valuestring, "gptq");
    CQ_CHECK(cJSON_IsString(fmt) && v1 == sym);
    counts c = {0};
    static const char *const mods[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                       "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj",
                                       "mlp.down_proj"};
    for (int l = 0; l < 8; l++)
        for (int m = 0; m < 7; m++) {
            char module[128];
            snprintf(module, sizeof module, "model.layers.%d.%s", l, mods[m]);
            check_layer(&q, dqp, module, bits, group, sym, v1, &c);
        }
    printf("%s: %lld layers, codes %lld (%lld differ), scales %lld (%lld differ), zeros %lld "
           "(%lld differ), g_idx %lld bad, dequantized %lld (%lld differ)\n",
           args, c.layers, c.codes, c.bad_codes, c.scales, c.bad_scales, c.zeros, c.bad_zeros,
           c.gidx_bad, c.deq, c.bad_deq);
    CQ_CHECK_EQ_INT(c.bad_deq, 0);
    if (dequant)
        CQ_CHECK_EQ_INT(c.deq, 12582912);
    /* the report's totals against the same quantities computed here */
    snprintf(path, sizeof path, "%s/cquant-report.json", out);
    cJSON *rep = cq_test_load_json(path);
    double mse = c.sum_sq_err / (double)c.codes, rel = sqrt(c.sum_sq_err / c.sum_sq_w);
    printf("  weight mse %.6g (report %.6g), rel frobenius %.6g (report %.6g)\n", mse,
           totals_num(rep, "weight_mse"), rel, totals_num(rep, "rel_frobenius_error"));
    CQ_CHECK_NEAR(totals_num(rep, "weight_mse") / mse, 1.0, 1e-9);
    CQ_CHECK_NEAR(totals_num(rep, "rel_frobenius_error") / rel, 1.0, 1e-9);
    CQ_CHECK_EQ_INT(totals_num(rep, "quantized"), 56);
    CQ_CHECK_EQ_INT(totals_num(rep, "skipped"), 0);
    cJSON_Delete(rep);
    if (dqp)
        cq_test_st_free(dqp);
    CQ_CHECK_EQ_INT(c.layers, 56);
    CQ_CHECK_EQ_INT(c.codes, 12582912);
    CQ_CHECK_EQ_INT(c.bad_codes, 0);
    CQ_CHECK_EQ_INT(c.bad_scales, 0);
    CQ_CHECK_EQ_INT(c.bad_zeros, 0);
    CQ_CHECK_EQ_INT(c.gidx_bad, 0);
    /* the float tensors are copied byte-exact: embedding keeps BF16 [8192,384] */
    const char *dt;
    int64_t sh[2];
    int nd;
    CQ_CHECK(cq_test_st_get(&q, "model.embed_tokens.weight", &dt, sh, &nd) &&
             !strcmp(dt, "BF16"));
    cJSON_Delete(cfg);
    cq_test_st_free(&q);
}

CQ_TEST(rtn_w4g128_sym)
{
    if (cq_test_shared())
        run_case("--bits 4 --group 128 --sym", 4, 128, 1, 0);
}

CQ_TEST(rtn_w4g128_asym)
{
    if (cq_test_shared())
        run_case("--bits 4 --group 128 --asym", 4, 128, 0, 1);
}

CQ_TEST(rtn_w3g128_sym)
{
    if (cq_test_shared())
        run_case("--bits 3 --group 128", 3, 128, 1, 0);
}

CQ_TEST(rtn_w8_per_channel_sym)
{
    if (cq_test_shared())
        run_case("--bits 8 --group -1", 8, -1, 1, 0);
}
