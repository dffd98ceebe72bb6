/* Reading real checkpoints (../shared) and crafted ones: names, shapes, dtypes and sizes against
 * MODEL.md, values against an independent minimal parse of the same bytes, lazy mapping (RSS
 * does not grow at open), cq_st_release dropping pages, and the f32 conversions. */
#include "cq_test.h"
#include "st_craft.h"

#include "cquant/json.h"
#include "cquant/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

static const char *layer_names[] = {
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
    "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj",
};

/* Check NAME has dtype DT and shape [r, c] (c < 0: rank 1). */
static void check_shape(const cq_st_model *m, const char *name, cq_dtype dt, int64_t r,
                        int64_t c)
{
    const cq_st_tensor *t = cq_st_find(m, name);
    if (!t) {
        CQ_FAIL("tensor '%s' not found", name);
        return;
    }
    int nd = c < 0 ? 1 : 2;
    if (t->dtype != dt || t->ndim != nd || t->shape[0] != r || (nd == 2 && t->shape[1] != c))
        CQ_FAIL("'%s': dtype %d ndim %d shape [%lld, %lld]", name, t->dtype, t->ndim,
                (long long)t->shape[0], (long long)(nd == 2 ? t->shape[1] : -1));
    int64_t numel = r * (c < 0 ? 1 : c);
    CQ_CHECK_EQ_INT(t->numel, numel);
    CQ_CHECK_EQ_INT(t->nbytes, numel * cq_dtype_info(dt)->size);
}

/* Compare every tensor's bytes with an independent parse of its shard file. */
static void check_against_mini(const cq_st_model *m)
{
    for (size_t s = 0; s < cq_st_shard_count(m); s++) {
        size_t size;
        unsigned char *file = cq_test_slurp(cq_st_shard_path(m, s), &size);
        CQ_CHECK(file != NULL);
        for (size_t i = 0; file && i < cq_st_count(m); i++) {
            const cq_st_tensor *t = cq_st_at(m, i);
            if (strcmp(t->file, cq_st_shard_path(m, s)) != 0)
                continue;
            char dt[16];
            int64_t shape[8];
            int nd;
            const void *data;
            size_t nb;
            if (mini_find(file, size, t->name, dt, shape, &nd, &data, &nb) != 0) {
                CQ_FAIL("mini parse misses '%s'", t->name);
                continue;
            }
            CQ_CHECK(strcmp(dt, cq_dtype_info(t->dtype)->name) == 0);
            CQ_CHECK_EQ_INT(nd, t->ndim);
            CQ_CHECK_EQ_INT(nb, t->nbytes);
            if (memcmp(data, t->data, nb) != 0)
                CQ_FAIL("'%s': bytes differ", t->name);
        }
        free(file);
    }
}

CQ_TEST(llama16m)
{
    const char *sh = cq_test_shared();
    if (!sh)
        return;
    cq_error err = CQ_ERROR_INIT;
    cq_st_model *m = NULL;
    const char *dir = cq_test_shared_path("models/cq-llama-16m");
    CQ_CHECK_OK(cq_st_open(&m, dir, &err), &err);
    if (!m)
        return;
    CQ_CHECK_EQ_INT(cq_st_count(m), 74);
    CQ_CHECK_EQ_INT(cq_st_shard_count(m), 3);
    CQ_CHECK(strstr(cq_st_shard_path(m, 0), "model-00001-of-00003.safetensors") != NULL);
    CQ_CHECK(strcmp(cq_st_dir(m), dir) == 0);
    CQ_CHECK(cq_st_metadata(m, "format") && strcmp(cq_st_metadata(m, "format"), "pt") == 0);
    check_shape(m, "model.embed_tokens.weight", CQ_DT_BF16, 8192, 384);
    check_shape(m, "model.norm.weight", CQ_DT_BF16, 384, -1);
    CQ_CHECK(cq_st_find(m, "lm_head.weight") == NULL);
    static const int64_t rows[] = {384, 128, 128, 384, 1024, 1024, 384};
    static const int64_t cols[] = {384, 384, 384, 384, 384, 384, 1024};
    char name[128];
    for (int l = 0; l < 8; l++) {
        for (int k = 0; k < 7; k++) {
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, layer_names[k]);
            check_shape(m, name, CQ_DT_BF16, rows[k], cols[k]);
        }
        snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", l);
        check_shape(m, name, CQ_DT_BF16, 384, -1);
        snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", l);
        check_shape(m, name, CQ_DT_BF16, 384, -1);
    }
    size_t total = 0;
    int64_t params = 0;
    for (size_t i = 0; i < cq_st_count(m); i++) {
        total += cq_st_at(m, i)->nbytes;
        params += cq_st_at(m, i)->numel;
    }
    CQ_CHECK_EQ_INT(total, 31470336);
    CQ_CHECK_EQ_INT(params, 15735168);
    /* the index's own total_size agrees */
    cJSON *idx = NULL;
    const cJSON *md;
    int64_t ts = 0;
    CQ_CHECK_OK(cq_json_load(&idx, cq_test_shared_path(
                                 "models/cq-llama-16m/model.safetensors.index.json"), &err), &err);
    CQ_CHECK_OK(cq_json_get_object(idx, "metadata", &md, "index", &err), &err);
    CQ_CHECK_OK(cq_json_get_int(md, "total_size", 0, INT64_MAX, &ts, "index", &err), &err);
    CQ_CHECK_EQ_INT(ts, 31470336);
    cJSON_Delete(idx);
    check_against_mini(m);
    /* norm weights are bf16 near 1: decode them and compare with a shift-by-16 decode */
    const cq_st_tensor *t = cq_st_find(m, "model.norm.weight");
    float v[384];
    CQ_CHECK_OK(cq_st_read_f32(t, v, &err), &err);
    for (int i = 0; i < 384; i++) {
        const unsigned char *b = (const unsigned char *)t->data + 2 * i;
        uint32_t bits = (uint32_t)(b[0] | b[1] << 8) << 16;
        float ref;
        memcpy(&ref, &bits, 4);
        if (v[i] != ref) {
            CQ_FAIL("norm[%d] %g != %g", i, v[i], ref);
            break;
        }
    }
    cq_st_close(m);
}

CQ_TEST(reference_logits_ids)
{
    if (!cq_test_shared())
        return;
    cq_error err = CQ_ERROR_INIT;
    cq_st_model *m = NULL;
    CQ_CHECK_OK(cq_st_open(&m, cq_test_shared_path(
                               "models/cq-llama-16m/reference_logits.safetensors"), &err), &err);
    if (!m)
        return;
    const cq_st_tensor *ids = cq_st_find(m, "input_ids");
    CQ_CHECK(ids && ids->dtype == CQ_DT_I32 && ids->numel == 128);
    static const int32_t want[] = {1747, 567, 488, 81, 5647, 469, 3449, 365}; /* MODEL.md */
    for (int i = 0; ids && i < 8; i++) {
        int32_t x;
        memcpy(&x, (const char *)ids->data + 4 * i, 4);
        CQ_CHECK_EQ_INT(x, want[i]);
    }
    CQ_CHECK(cq_st_metadata(m, "bos") && strcmp(cq_st_metadata(m, "bos"), "false") == 0);
    CQ_CHECK_EQ_INT(cq_st_metadata_count(m), 4);
    float one;
    CQ_CHECK(cq_st_read_f32(ids, &one, &err) == CQ_E_UNSUPPORTED);
    CQ_CHECK(strstr(err.msg, "input_ids") != NULL);
    cq_st_close(m);
}

CQ_TEST(stories260k)
{
    if (!cq_test_shared())
        return;
    cq_error err = CQ_ERROR_INIT;
    cq_st_model *m = NULL;
    CQ_CHECK_OK(cq_st_open(&m, cq_test_shared_path("models/stories260K/hf"), &err), &err);
    if (!m)
        return;
    CQ_CHECK_EQ_INT(cq_st_count(m), 2 + 5 * 9);
    CQ_CHECK_EQ_INT(cq_st_shard_count(m), 1);
    check_shape(m, "model.embed_tokens.weight", CQ_DT_F32, 512, 64);
    static const int64_t rows[] = {64, 32, 32, 64, 172, 172, 64};
    static const int64_t cols[] = {64, 64, 64, 64, 64, 64, 172};
    char name[128];
    for (int l = 0; l < 5; l++)
        for (int k = 0; k < 7; k++) {
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, layer_names[k]);
            check_shape(m, name, CQ_DT_F32, rows[k], cols[k]);
        }
    check_against_mini(m);
    const cq_st_tensor *t = cq_st_find(m, "model.layers.4.mlp.down_proj.weight");
    float *v = malloc(t->nbytes);
    CQ_CHECK_OK(cq_st_read_f32(t, v, &err), &err);
    CQ_CHECK(memcmp(v, t->data, t->nbytes) == 0); /* F32 -> f32 is a copy */
    free(v);
    cq_st_release(t);
    CQ_CHECK(memcmp(cq_st_find(m, "model.norm.weight")->data, t->data, 0) == 0);
    cq_st_close(m);
    /* a single-file model opened by its path has the folder as dir */
    CQ_CHECK_OK(cq_st_open(&m, cq_test_shared_path("models/stories260K/hf/model.safetensors"),
                           &err), &err);
    if (m)
        CQ_CHECK(strstr(cq_st_dir(m), "stories260K/hf") != NULL);
    cq_st_close(m);
}

static long rss_kb(void)
{
    long pages = 0, res = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &res) != 2)
            res = 0;
        fclose(f);
    }
    return res * (sysconf(_SC_PAGESIZE) / 1024);
}

/* A 1 GiB sparse tensor: open must not read it, touching 64 MiB raises RSS, release drops it. */
CQ_TEST(lazy_and_release)
{
    const char *hdr = "{\"w\":{\"dtype\":\"F32\",\"shape\":[268435456],"
                      "\"data_offsets\":[0,1073741824]}}";
    char path[4096];
    snprintf(path, sizeof path, "%s/sparse.safetensors", cq_test_tmpdir());
    craft(cq_test_tmpdir(), "sparse.safetensors", hdr, 0);
    CQ_CHECK(truncate(path, (off_t)(8 + strlen(hdr) + 1073741824ull)) == 0);
    long before = rss_kb();
    cq_error err = CQ_ERROR_INIT;
    cq_st_model *m = NULL;
    CQ_CHECK_OK(cq_st_open(&m, path, &err), &err);
    if (!m)
        return;
    long opened = rss_kb();
    CQ_CHECK(opened - before < 8 * 1024); /* well under the 1 GiB mapped */
    const cq_st_tensor *t = cq_st_find(m, "w");
    CQ_CHECK(t && t->mapped && t->nbytes == 1073741824ull);
    const volatile unsigned char *p = t->data;
    unsigned sum = 0;
    for (size_t i = 0; i < (64u << 20); i += 4096)
        sum += p[i];
    CQ_CHECK_EQ_INT(sum, 0);
    long touched = rss_kb();
    cq_st_release(t);
    long released = rss_kb();
    fprintf(stderr, "rss kB: before %ld, opened %ld, touched %ld, released %ld\n", before,
            opened, touched, released);
    CQ_CHECK(touched - opened > 48 * 1024);
    CQ_CHECK(touched - released > 48 * 1024);
    CQ_CHECK_EQ_INT(p[12345], 0); /* still readable after release */
    cq_st_close(m);
}

CQ_TEST(read_f32_dtypes)
{
    /* 1.0, -2.5, 256, 2^-24 (the smallest f16 subnormal) in each float dtype */
    static const unsigned char f16[] = {0x00, 0x3c, 0x00, 0xc1, 0x00, 0x5c, 0x01, 0x00};
    static const unsigned char bf16[] = {0x80, 0x3f, 0x20, 0xc0, 0x80, 0x43, 0x80, 0x33};
    double f64[4] = {1.0, -2.5, 256.0, 5.9604644775390625e-08};
    static const float want[4] = {1.0f, -2.5f, 256.0f, 5.9604644775390625e-08f};
    const char *hdr = "{\"a\":{\"dtype\":\"F64\",\"shape\":[4],\"data_offsets\":[0,32]},"
                      "\"b\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[32,40]},"
                      "\"c\":{\"dtype\":\"BF16\",\"shape\":[4,1],\"data_offsets\":[40,48]}}";
    unsigned char buf[1024];
    size_t n = strlen(hdr);
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)((uint64_t)n >> (8 * i));
    memcpy(buf + 8, hdr, n);
    memcpy(buf + 8 + n, f64, 32);
    memcpy(buf + 8 + n + 32, f16, 8);
    memcpy(buf + 8 + n + 40, bf16, 8);
    cq_error err = CQ_ERROR_INIT;
    cq_st_model *m = NULL;
    CQ_CHECK_OK(cq_st_open_buffer(&m, buf, 8 + n + 48, "mem", &err), &err);
    if (!m)
        return;
    const char *names[] = {"a", "b", "c"};
    for (int k = 0; k < 3; k++) {
        float out[4];
        CQ_CHECK_OK(cq_st_read_f32(cq_st_find(m, names[k]), out, &err), &err);
        for (int i = 0; i < 4; i++)
            if (out[i] != want[i])
                CQ_FAIL("%s[%d] = %g, want %g", names[k], i, out[i], want[i]);
    }
    CQ_CHECK(!cq_st_find(m, "a")->mapped);
    cq_st_release(cq_st_find(m, "a")); /* no-op on a borrowed buffer */
    CQ_CHECK(memcmp(buf + 8 + n, f64, 32) == 0);
    /* order: by data offset */
    CQ_CHECK(strcmp(cq_st_at(m, 0)->name, "a") == 0 && strcmp(cq_st_at(m, 2)->name, "c") == 0);
    CQ_CHECK(cq_st_at(m, 3) == NULL);
    cq_st_close(m);
    cq_st_close(NULL);
}
