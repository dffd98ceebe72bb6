/* Writer round trips: what is read back (by cquant's reader and by an independent minimal parse)
 * equals what was written, byte for byte; shard assignment matches an independent rendering of
 * huggingface_hub's greedy split; the index text is exactly what transformers writes; headers
 * are padded to 8; the same plan gives the same bytes. */
#include "cq_test.h"
#include "st_craft.h"

#include "cquant/json.h"
#include "cquant/safetensors.h"

#include <sys/stat.h>
#include <unistd.h>

typedef struct spec {
    const char *name;
    cq_dtype dt;
    int ndim;
    int64_t shape[3];
} spec;

static const spec specs[] = {
    {"model.layers.0.mlp.up_proj.weight", CQ_DT_BF16, 2, {24, 16}},
    {"model.embed_tokens.weight", CQ_DT_F16, 2, {32, 16}},
    {"model.layers.0.self_attn.q_proj.g_idx", CQ_DT_I32, 1, {16}},
    {"model.layers.0.self_attn.q_proj.qweight", CQ_DT_I32, 2, {2, 16}},
    {"scalar", CQ_DT_F32, 0, {0}},
    {"empty", CQ_DT_F16, 2, {0, 7}},
    {"big.f64", CQ_DT_F64, 3, {4, 5, 6}},
    {"ids", CQ_DT_I64, 1, {9}},
    {"mask", CQ_DT_BOOL, 1, {5}},
    {"q8", CQ_DT_I8, 1, {3}},
    {"u8", CQ_DT_U8, 2, {3, 3}},
    {"i16", CQ_DT_I16, 1, {1}},
    {"model.norm.weight", CQ_DT_F32, 1, {16}},
};
#define NSPEC (sizeof specs / sizeof specs[0])

static size_t spec_bytes(const spec *s)
{
    size_t n = (size_t)cq_dtype_info(s->dt)->size;
    for (int i = 0; i < s->ndim; i++)
        n *= (size_t)s->shape[i];
    return n;
}

static void fill(unsigned char *b, size_t n, size_t seed)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)((i * 131 + seed * 17 + 3) & 0xff);
}

/* Write all specs into DIR with MAX; tensors written in reverse order. */
static int write_all(const char *dir, size_t max, cq_error *err)
{
    cq_st_writer *w = NULL;
    int rc = cq_st_writer_create(&w, dir, max, err);
    for (size_t i = 0; i < NSPEC && rc == CQ_OK; i++)
        rc = cq_st_writer_add(w, specs[i].name, specs[i].dt, specs[i].ndim, specs[i].shape, err);
    if (rc == CQ_OK)
        rc = cq_st_writer_meta(w, "quant_method", "gptq", err);
    if (rc == CQ_OK)
        rc = cq_st_writer_start(w, err);
    for (size_t k = NSPEC; k-- > 0 && rc == CQ_OK;) {
        size_t n = spec_bytes(&specs[k]);
        unsigned char *b = malloc(n + 1);
        fill(b, n, k);
        rc = cq_st_writer_write(w, specs[k].name, b, n, err);
        free(b);
    }
    if (rc == CQ_OK)
        rc = cq_st_writer_finish(w, err);
    cq_st_writer_free(w);
    return rc;
}

/* huggingface_hub split_state_dict_into_shards_factory, restated: returns the shard number
 * (0-based, in listing order) of each spec. */
static size_t ref_split(size_t max, size_t *shard_of)
{
    size_t listed = 0, cur_members[NSPEC], ncur = 0, cur_size = 0;
    for (size_t i = 0; i < NSPEC; i++) {
        size_t sz = spec_bytes(&specs[i]);
        if (max && sz > max) {
            shard_of[i] = listed++;
            continue;
        }
        if (max && ncur && cur_size + sz > max) {
            for (size_t k = 0; k < ncur; k++)
                shard_of[cur_members[k]] = listed;
            listed++;
            ncur = cur_size = 0;
        }
        cur_members[ncur++] = i;
        cur_size += sz;
    }
    for (size_t k = 0; k < ncur; k++)
        shard_of[cur_members[k]] = listed;
    if (ncur)
        listed++;
    return listed;
}

static int rank_of(cq_dtype d)
{
    static const cq_dtype order[] = {CQ_DT_BOOL, CQ_DT_U8,  CQ_DT_I8,  CQ_DT_I16, CQ_DT_F16,
                                     CQ_DT_BF16, CQ_DT_I32, CQ_DT_F32, CQ_DT_F64, CQ_DT_I64};
    for (int i = 0; i < 10; i++)
        if (order[i] == d)
            return i;
    return -1;
}

/* Every shard file: header length a multiple of 8, tensors laid out by dtype rank descending
 * then name, and the independent parse agrees with the written bytes. */
static void check_shard_files(const cq_st_model *m)
{
    for (size_t s = 0; s < cq_st_shard_count(m); s++) {
        size_t size;
        unsigned char *f = cq_test_slurp(cq_st_shard_path(m, s), &size);
        if (!f) {
            CQ_FAIL("cannot read shard %zu", s);
            continue;
        }
        uint64_t n = 0;
        for (int i = 7; i >= 0; i--)
            n = n << 8 | f[i];
        CQ_CHECK_EQ_INT(n % 8, 0);
        CQ_CHECK(memcmp(f + 8, "{\"__metadata__\":{\"format\":\"pt\",\"quant_method\":\"gptq\"}",
                        53) == 0);
        const cq_st_tensor *prev = NULL;
        for (size_t i = 0; i < cq_st_count(m); i++) {
            const cq_st_tensor *t = cq_st_at(m, i);
            if (strcmp(t->file, cq_st_shard_path(m, s)) != 0)
                continue;
            if (prev && t->nbytes && prev->nbytes) {
                int rp = rank_of(prev->dtype), rt = rank_of(t->dtype);
                CQ_CHECK(rp > rt || (rp == rt && strcmp(prev->name, t->name) < 0));
            }
            if (t->nbytes)
                prev = t;
            char dt[16];
            int64_t shape[8];
            int nd;
            const void *data;
            size_t nb;
            CQ_CHECK(mini_find(f, size, t->name, dt, shape, &nd, &data, &nb) == 0 &&
                     nb == t->nbytes && memcmp(data, t->data, nb) == 0 && nd == t->ndim);
        }
        free(f);
    }
}

static void round_trip(size_t max, const char *sub)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", cq_test_tmpdir(), sub);
    mkdir(dir, 0755);
    cq_error err = CQ_ERROR_INIT;
    CQ_CHECK_OK(write_all(dir, max, &err), &err);
    cq_st_model *m = NULL;
    CQ_CHECK_OK(cq_st_open(&m, dir, &err), &err);
    if (!m)
        return;
    size_t shard_of[NSPEC], want_shards = ref_split(max, shard_of);
    CQ_CHECK_EQ_INT(cq_st_count(m), NSPEC);
    CQ_CHECK_EQ_INT(cq_st_shard_count(m), want_shards);
    for (size_t k = 0; k < NSPEC; k++) {
        const cq_st_tensor *t = cq_st_find(m, specs[k].name);
        if (!t) {
            CQ_FAIL("max %zu: '%s' missing", max, specs[k].name);
            continue;
        }
        size_t n = spec_bytes(&specs[k]);
        unsigned char *b = malloc(n + 1);
        fill(b, n, k);
        CQ_CHECK(t->dtype == specs[k].dt && t->ndim == specs[k].ndim && t->nbytes == n);
        CQ_CHECK(memcmp(t->data, b, n) == 0);
        free(b);
        char want[64];
        if (want_shards == 1)
            snprintf(want, sizeof want, "/model.safetensors");
        else
            snprintf(want, sizeof want, "/model-%05zu-of-%05zu.safetensors", shard_of[k] + 1,
                     want_shards);
        if (!strstr(t->file, want))
            CQ_FAIL("max %zu: '%s' in %s, want %s", max, t->name, t->file, want);
    }
    CQ_CHECK(cq_st_metadata(m, "quant_method") &&
             strcmp(cq_st_metadata(m, "quant_method"), "gptq") == 0);
    check_shard_files(m);
    cq_st_close(m);
    char idx[4200];
    snprintf(idx, sizeof idx, "%s/model.safetensors.index.json", dir);
    CQ_CHECK(access(idx, F_OK) == (want_shards > 1 ? 0 : -1));
    if (want_shards > 1) {
        cJSON *root = NULL;
        const cJSON *md;
        int64_t total = 0, want_total = 0;
        for (size_t k = 0; k < NSPEC; k++)
            want_total += (int64_t)spec_bytes(&specs[k]);
        CQ_CHECK_OK(cq_json_load(&root, idx, &err), &err);
        CQ_CHECK_OK(cq_json_get_object(root, "metadata", &md, idx, &err), &err);
        CQ_CHECK_OK(cq_json_get_int(md, "total_size", 0, INT64_MAX, &total, idx, &err), &err);
        CQ_CHECK_EQ_INT(total, want_total);
        cJSON_Delete(root);
    }
}

CQ_TEST(round_trips)
{
    round_trip(0, "nolimit");
    round_trip(1u << 30, "large");
    round_trip(1024, "m1024"); /* big.f64 (960 B) fits; others pack */
    round_trip(700, "m700");   /* big.f64 over the max: alone */
    round_trip(300, "m300");
    round_trip(64, "m64");
    round_trip(1, "m1"); /* everything but the empty tensor is alone */
}

static int same_file(const char *a, const char *b)
{
    size_t na = 0, nb = 0;
    unsigned char *x = cq_test_slurp(a, &na), *y = cq_test_slurp(b, &nb);
    int same = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

CQ_TEST(deterministic)
{
    char a[4096], b[4096], pa[4200], pb[4200];
    cq_error err = CQ_ERROR_INIT;
    snprintf(a, sizeof a, "%s/det_a", cq_test_tmpdir());
    snprintf(b, sizeof b, "%s/det_b", cq_test_tmpdir());
    mkdir(a, 0755);
    mkdir(b, 0755);
    CQ_CHECK_OK(write_all(a, 300, &err), &err);
    CQ_CHECK_OK(write_all(b, 300, &err), &err);
    size_t shard_of[NSPEC], n = ref_split(300, shard_of);
    for (size_t s = 1; s <= n; s++) {
        snprintf(pa, sizeof pa, "%s/model-%05zu-of-%05zu.safetensors", a, s, n);
        snprintf(pb, sizeof pb, "%s/model-%05zu-of-%05zu.safetensors", b, s, n);
        CQ_CHECK(same_file(pa, pb));
    }
    snprintf(pa, sizeof pa, "%s/model.safetensors.index.json", a);
    snprintf(pb, sizeof pb, "%s/model.safetensors.index.json", b);
    CQ_CHECK(same_file(pa, pb));
}

/* The index text, exactly as json.dumps(indent=2, sort_keys=True) + "\n" renders it. */
CQ_TEST(index_text)
{
    char dir[4096], p[4200];
    snprintf(dir, sizeof dir, "%s/idx", cq_test_tmpdir());
    mkdir(dir, 0755);
    cq_error err = CQ_ERROR_INIT;
    cq_st_writer *w = NULL;
    int64_t s4 = 4, s16 = 16;
    float zero[16] = {0};
    CQ_CHECK_OK(cq_st_writer_create(&w, dir, 20, &err), &err);
    CQ_CHECK_OK(cq_st_writer_add(w, "b", CQ_DT_F32, 1, &s4, &err), &err);
    CQ_CHECK_OK(cq_st_writer_add(w, "\xc3\xa9t\xf0\x9f\x98\x80\"q", CQ_DT_F32, 1, &s4, &err),
                &err);
    CQ_CHECK_OK(cq_st_writer_add(w, "big", CQ_DT_F32, 1, &s16, &err), &err);
    CQ_CHECK_OK(cq_st_writer_add(w, "a", CQ_DT_F32, 1, &s4, &err), &err);
    CQ_CHECK_OK(cq_st_writer_start(w, &err), &err);
    CQ_CHECK_OK(cq_st_writer_write(w, "big", zero, 64, &err), &err);
    CQ_CHECK_OK(cq_st_writer_write(w, "a", zero, 16, &err), &err);
    CQ_CHECK_OK(cq_st_writer_write(w, "b", zero, 16, &err), &err);
    CQ_CHECK_OK(cq_st_writer_write(w, "\xc3\xa9t\xf0\x9f\x98\x80\"q", zero, 16, &err), &err);
    CQ_CHECK_OK(cq_st_writer_finish(w, &err), &err);
    cq_st_writer_free(w);
    /* b (16) opens a shard; the next 16 would make 32 > 20, so b's shard is listed first and
     * the second name opens another; big is over the max: listed second, alone; a closes the
     * open shard (listed third) and ends in the fourth. */
    const char *want = "{\n  \"metadata\": {\n    \"total_size\": 112\n  },\n  \"weight_map\": {\n"
                       "    \"a\": \"model-00004-of-00004.safetensors\",\n"
                       "    \"b\": \"model-00001-of-00004.safetensors\",\n"
                       "    \"big\": \"model-00002-of-00004.safetensors\",\n"
                       "    \"\\u00e9t\\ud83d\\ude00\\\"q\": \"model-00003-of-00004.safetensors\"\n"
                       "  }\n}\n";
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    size_t n;
    char *got = cq_test_slurp(p, &n);
    CQ_CHECK(got && n == strlen(want) && memcmp(got, want, n) == 0);
    if (got && (n != strlen(want) || memcmp(got, want, n) != 0))
        fprintf(stderr, "got:\n%.*s\nwant:\n%s", (int)n, got, want);
    free(got);
    cq_st_model *m = NULL;
    CQ_CHECK_OK(cq_st_open(&m, dir, &err), &err);
    CQ_CHECK(m && cq_st_find(m, "\xc3\xa9t\xf0\x9f\x98\x80\"q") != NULL);
    cq_st_close(m);
}

CQ_TEST(misuse)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/misuse", cq_test_tmpdir());
    mkdir(dir, 0755);
    cq_error err = CQ_ERROR_INIT;
    cq_st_writer *w = NULL;
    int64_t s2 = 2, neg = -1;
    float x[2] = {1, 2};
    CQ_CHECK_OK(cq_st_writer_create(&w, dir, 0, &err), &err);
    CQ_CHECK(cq_st_writer_add(w, "n", CQ_DT_F32, 1, &neg, &err) == CQ_E_USAGE);
    cq_error_clear(&err);
    CQ_CHECK(cq_st_writer_add(w, "__metadata__", CQ_DT_F32, 1, &s2, &err) == CQ_E_USAGE);
    cq_error_clear(&err);
    CQ_CHECK(cq_st_writer_add(w, "bad\xff", CQ_DT_F32, 1, &s2, &err) == CQ_E_USAGE);
    cq_error_clear(&err);
    CQ_CHECK(cq_st_writer_meta(w, "format", "tf", &err) == CQ_E_USAGE);
    cq_error_clear(&err);
    CQ_CHECK_OK(cq_st_writer_add(w, "a", CQ_DT_F32, 1, &s2, &err), &err);
    CQ_CHECK_OK(cq_st_writer_add(w, "b", CQ_DT_F32, 1, &s2, &err), &err);
    CQ_CHECK_OK(cq_st_writer_start(w, &err), &err);
    CQ_CHECK(cq_st_writer_write(w, "zz", x, 8, &err) == CQ_E_INTERNAL);
    CQ_CHECK(strstr(err.msg, "'zz'") != NULL);
    cq_error_clear(&err);
    CQ_CHECK(cq_st_writer_write(w, "a", x, 4, &err) == CQ_E_INTERNAL);
    cq_error_clear(&err);
    CQ_CHECK_OK(cq_st_writer_write(w, "a", x, 8, &err), &err);
    CQ_CHECK(cq_st_writer_write(w, "a", x, 8, &err) == CQ_E_INTERNAL);
    cq_error_clear(&err);
    CQ_CHECK(cq_st_writer_finish(w, &err) == CQ_E_INTERNAL);
    CQ_CHECK(strstr(err.msg, "'b' was planned but not written") != NULL);
    cq_st_writer_free(w);
    cq_st_writer_free(NULL);
    /* the same name twice */
    cq_error_clear(&err);
    CQ_CHECK_OK(cq_st_writer_create(&w, dir, 0, &err), &err);
    CQ_CHECK_OK(cq_st_writer_add(w, "a", CQ_DT_F32, 1, &s2, &err), &err);
    CQ_CHECK_OK(cq_st_writer_add(w, "a", CQ_DT_F16, 1, &s2, &err), &err);
    CQ_CHECK(cq_st_writer_start(w, &err) == CQ_E_USAGE);
    CQ_CHECK(strstr(err.msg, "'a' planned twice") != NULL);
    cq_st_writer_free(w);
}

CQ_TEST(empty_plan)
{
    char dir[4096], p[4200];
    snprintf(dir, sizeof dir, "%s/emptyplan", cq_test_tmpdir());
    mkdir(dir, 0755);
    cq_error err = CQ_ERROR_INIT;
    cq_st_writer *w = NULL;
    CQ_CHECK_OK(cq_st_writer_create(&w, dir, 10, &err), &err);
    CQ_CHECK_OK(cq_st_writer_start(w, &err), &err);
    CQ_CHECK_OK(cq_st_writer_finish(w, &err), &err);
    cq_st_writer_free(w);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    size_t n;
    unsigned char *f = cq_test_slurp(p, &n);
    /* {"__metadata__":{"format":"pt"}} is 32 bytes: already a multiple of 8 */
    CQ_CHECK(f && n == 40 && f[0] == 32 && memcmp(f + 8, "{\"__metadata__\":{\"format\":\"pt\"}}",
                                                  32) == 0);
    free(f);
}
