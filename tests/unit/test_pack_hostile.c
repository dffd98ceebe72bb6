/* Refusals and hostile input: check() on shapes/options a layout cannot hold, pack() on
 * inconsistent results, unpack() on wrong shapes, dtypes, sizes, g_idx and configs (each a
 * specific status, never a crash), the GPTQ v1 overflow case, misaligned data, a small fuzz
 * loop, quantization_config contents and the registry. */
#include "cq_test.h"
#include "cq_rand.h"
#include "cq_testutil.h"
#include "cquant/dtype.h"
#include "cquant/pack.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x13198a2e03707344ull;

/* A packed layer with its quantization_config, for mutation. */
typedef struct fixture {
    const cq_layout *L;
    cq_qconfig c;
    cq_qresult r;
    cq_packed p[CQ_PACK_MAX_TENSORS];
    int np;
    cJSON *qc;
} fixture;

static void fx_make(fixture *f, const cq_layout *L, cq_qconfig c, int64_t rows, int64_t cols)
{
    cq_error err = CQ_ERROR_INIT;
    f->L = L, f->c = c, f->np = 0;
    cq_test_random_qresult(&f->r, &c, rows, cols, c.act_order && !c.static_groups, &rng);
    CQ_CHECK_OK(L->pack(&c, &f->r, f->p, &f->np, &err), &err);
    f->qc = cJSON_CreateObject();
    CQ_CHECK_OK(L->qconfig(&c, "gptq", f->qc, &err), &err);
}

static void fx_free(fixture *f)
{
    cq_packed_release(f->p, f->np);
    cq_qresult_release(&f->r);
    cJSON_Delete(f->qc);
}

/* unpack with a mutated copy of the descriptors; returns the status and checks that a failed
 * unpack leaves nothing allocated. */
static int try_unpack(const fixture *f, const cJSON *qc, const cq_packed *p, int np, int64_t rows,
                      int64_t cols)
{
    cq_error err = CQ_ERROR_INIT;
    cq_qresult out;
    int rc = f->L->unpack(qc, p, np, rows, cols, &out, &err);
    if (rc != CQ_OK)
        CQ_CHECK(out.q == NULL && out.scale == NULL && err.msg[0] != 0);
    else
        cq_qresult_release(&out);
    return rc;
}

#define EXPECT_RC(expr, want, what)                                                            \
    do {                                                                                       \
        int rc_ = (expr);                                                                      \
        if (rc_ != (want))                                                                     \
            CQ_FAIL("%s %s: got %d, want %d", f->L->name, what, rc_, (int)(want));            \
    } while (0)

static bool optional_tensor(const fixture *f, const char *s)
{
    return f->L == &cq_layout_gptq && strcmp(s, "g_idx") == 0;
}

static void mutate_each_tensor(const fixture *f)
{
    int64_t R = f->r.rows, C = f->r.cols;
    for (int i = 0; i < f->np; i++) {
        cq_packed m[CQ_PACK_MAX_TENSORS];
        const char *s = f->p[i].suffix;
        /* missing */
        memcpy(m, f->p, sizeof(m));
        m[i] = m[f->np - 1];
        EXPECT_RC(try_unpack(f, f->qc, m, f->np - 1, R, C),
                  optional_tensor(f, s) ? CQ_OK : CQ_E_FORMAT, s);
#define MUT(stmt, want)                                                                        \
    do {                                                                                       \
        memcpy(m, f->p, sizeof(m));                                                            \
        stmt;                                                                                  \
        EXPECT_RC(try_unpack(f, f->qc, m, f->np, R, C), want, #stmt);                          \
    } while (0)
        MUT(m[i].dtype = CQ_DT_I16, CQ_E_FORMAT);
        MUT(m[i].dtype = CQ_DT_F64, CQ_E_FORMAT);
        MUT(m[i].shape[0] += 1, CQ_E_SHAPE);
        MUT(m[i].ndim = 3 - m[i].ndim, CQ_E_SHAPE);
        if (f->p[i].ndim == 2)
            MUT(m[i].shape[1] -= 1, CQ_E_SHAPE);
        MUT(m[i].nbytes -= 4, CQ_E_FORMAT);
        MUT(m[i].nbytes += 4, CQ_E_FORMAT);
        MUT(m[i].data = NULL, CQ_E_FORMAT);
#undef MUT
    }
    /* the caller's shape disagrees with the tensors */
    EXPECT_RC(try_unpack(f, f->qc, f->p, f->np, R + 32, C), CQ_E_SHAPE, "rows+32");
    EXPECT_RC(try_unpack(f, f->qc, f->p, f->np, R, C * 2), CQ_E_SHAPE, "cols*2");
    EXPECT_RC(try_unpack(f, f->qc, f->p, f->np, 0, C), CQ_E_SHAPE, "rows 0");
    EXPECT_RC(try_unpack(f, f->qc, f->p, f->np, R, -C), CQ_E_SHAPE, "cols < 0");
    EXPECT_RC(try_unpack(f, f->qc, NULL, 0, R, C), CQ_E_FORMAT, "no tensors");
    EXPECT_RC(try_unpack(f, NULL, f->p, f->np, R, C), CQ_E_FORMAT, "no config");
}

static void bad_gidx(const fixture *f, const char *name)
{
    const cq_packed *g = cq_packed_find(f->p, f->np, name);
    if (!g) {
        CQ_FAIL("%s: no %s", f->L->name, name);
        return;
    }
    const int32_t vals[3] = {-1, 1 << 30, (int32_t)f->r.n_groups /* one past the last */};
    cq_packed m[CQ_PACK_MAX_TENSORS];
    int32_t *copy = malloc(g->nbytes);
    for (int v = 0; v < 3; v++) {
        memcpy(copy, g->data, g->nbytes);
        copy[f->r.cols / 2] = vals[v];
        memcpy(m, f->p, sizeof(m));
        m[g - f->p].data = copy;
        EXPECT_RC(try_unpack(f, f->qc, m, f->np, f->r.rows, f->r.cols), CQ_E_FORMAT, name);
    }
    free(copy);
}

/* A copy of the config with key set to a JSON value given as text (NULL text: removed). */
static int try_cfg(const fixture *f, const char *path, const char *key, const char *json)
{
    cJSON *qc = cJSON_Duplicate(f->qc, true), *obj = qc;
    if (path) /* "config_groups/group_0/weights" */
        obj = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(qc, "config_groups"),
                                                      "group_0"), "weights");
    cJSON_DeleteItemFromObject(obj, key);
    if (json)
        cJSON_AddItemToObject(obj, key, cJSON_Parse(json));
    int rc = try_unpack(f, qc, f->p, f->np, f->r.rows, f->r.cols);
    cJSON_Delete(qc);
    return rc;
}

/* Edits of each layout's quantization_config (see try_cfg; W: inside the compressed-tensors
 * weights group) and the status unpack must answer. */
#define G &cq_layout_gptq
#define A &cq_layout_awq
#define T &cq_layout_ct
#define W "config_groups/group_0/weights"
static const struct cfg_case {
    const cq_layout *L;
    const char *path, *key, *json;
    int want;
    const char *what;
} cfg_cases[] = {
    {G, NULL, "bits", NULL, CQ_E_FORMAT, "bits missing"},
    {G, NULL, "bits", "\"4\"", CQ_E_FORMAT, "bits string"},
    {G, NULL, "bits", "4.5", CQ_E_FORMAT, "bits 4.5"},
    {G, NULL, "bits", "5", CQ_E_UNSUPPORTED, "bits 5"},
    {G, NULL, "bits", "4294967300", CQ_E_UNSUPPORTED, "bits 2^32+4"},
    {G, NULL, "bits", "3", CQ_E_SHAPE, "bits 3 vs 4-bit tensors"},
    {G, NULL, "group_size", NULL, CQ_E_FORMAT, "group missing"},
    {G, NULL, "group_size", "0", CQ_E_FORMAT, "group 0"},
    {G, NULL, "group_size", "64", CQ_E_SHAPE, "group 64 vs 4 groups"},
    {G, NULL, "sym", "1", CQ_E_FORMAT, "sym not bool"},
    {G, NULL, "checkpoint_format", "\"marlin\"", CQ_E_FORMAT, "formats differ"},
    {G, NULL, "format", "\"gptq\"", CQ_E_FORMAT, "formats differ 2"},
    {A, NULL, "bits", "3", CQ_E_UNSUPPORTED, "bits 3"},
    {A, NULL, "bits", NULL, CQ_E_FORMAT, "bits missing"},
    {A, NULL, "group_size", "-1", CQ_E_UNSUPPORTED, "group -1"},
    {A, NULL, "group_size", "48", CQ_E_SHAPE, "group 48 vs 64 cols"},
    {A, NULL, "zero_point", "false", CQ_E_UNSUPPORTED, "no zero point"},
    {A, NULL, "version", "\"gemv\"", CQ_E_UNSUPPORTED, "gemv"},
    {T, W, "num_bits", "5", CQ_E_UNSUPPORTED, "5 bits"},
    {T, W, "num_bits", NULL, CQ_E_UNSUPPORTED, "bits missing"},
    {T, W, "type", "\"float\"", CQ_E_UNSUPPORTED, "float"},
    {T, W, "strategy", "\"tensor\"", CQ_E_UNSUPPORTED, "tensor strategy"},
    {T, W, "group_size", "-7", CQ_E_FORMAT, "group -7"},
    {T, W, "group_size", "32", CQ_E_SHAPE, "group 32 vs 4 groups"},
    {T, W, "symmetric", "true", CQ_OK, "sym drops zero point"},
    {T, NULL, "format", "\"int-quantized\"", CQ_E_UNSUPPORTED, "format"},
    {T, NULL, "config_groups", "{}", CQ_E_FORMAT, "no groups"},
    {T, NULL, "config_groups", NULL, CQ_E_FORMAT, "groups missing"},
};
#undef G
#undef A
#undef T
#undef W

static void try_cfgs(const fixture *f)
{
    for (size_t i = 0; i < sizeof cfg_cases / sizeof cfg_cases[0]; i++) {
        const struct cfg_case *k = &cfg_cases[i];
        if (k->L == f->L)
            EXPECT_RC(try_cfg(f, k->path, k->key, k->json), k->want, k->what);
    }
}

CQ_TEST(gptq_unpack_hostile)
{
    fixture fx, *f = &fx;
    fx_make(f, &cq_layout_gptq, cq_test_qconfig(4, 32, false, true, false), 64, 128);
    mutate_each_tensor(f);
    bad_gidx(f, "g_idx");
    try_cfgs(f);
    cJSON *qc = cJSON_Duplicate(f->qc, true);
    cJSON_ReplaceItemInObject(qc, "format", cJSON_CreateString("marlin"));
    cJSON_ReplaceItemInObject(qc, "checkpoint_format", cJSON_CreateString("marlin"));
    EXPECT_RC(try_unpack(f, qc, f->p, f->np, 64, 128), CQ_E_UNSUPPORTED, "marlin");
    cJSON_Delete(qc);
    fx_free(f);
}

CQ_TEST(awq_unpack_hostile)
{
    fixture fx, *f = &fx;
    fx_make(f, &cq_layout_awq, cq_test_qconfig(4, 32, false, false, false), 16, 64);
    mutate_each_tensor(f);
    try_cfgs(f);
    /* AutoAWQ's own spellings are accepted */
    cJSON *qc = cJSON_Duplicate(f->qc, true);
    cJSON_DeleteItemFromObject(qc, "bits");
    cJSON_DeleteItemFromObject(qc, "group_size");
    cJSON_AddNumberToObject(qc, "w_bit", 4);
    cJSON_AddNumberToObject(qc, "q_group_size", 32);
    EXPECT_RC(try_unpack(f, qc, f->p, f->np, 16, 64), CQ_OK, "w_bit/q_group_size");
    cJSON_Delete(qc);
    fx_free(f);
}

CQ_TEST(ct_unpack_hostile)
{
    fixture fx, *f = &fx;
    fx_make(f, &cq_layout_ct, cq_test_qconfig(4, 16, false, true, false), 33, 64);
    mutate_each_tensor(f);
    bad_gidx(f, "weight_g_idx");
    try_cfgs(f);
    /* weight_shape disagreeing with the caller's shape */
    const cq_packed *sh = cq_packed_find(f->p, f->np, "weight_shape");
    int64_t bad[2] = {33, 65};
    cq_packed m[CQ_PACK_MAX_TENSORS];
    memcpy(m, f->p, sizeof(m));
    m[sh - f->p].data = bad;
    EXPECT_RC(try_unpack(f, f->qc, m, f->np, 33, 64), CQ_E_SHAPE, "weight_shape");
    fx_free(f);
}

CQ_TEST(gptq_v1_overflow_field_decodes_to_2_pow_b)
{
    /* A v1 zero of 0 is stored as -1: all ones. Loaders read it as (2^b - 1) + 1 = 2^b (§B.3). */
    static const int bits[] = {2, 3, 4, 8};
    for (int i = 0; i < 4; i++) {
        fixture fx, *f = &fx;
        fx_make(f, &cq_layout_gptq, cq_test_qconfig(bits[i], 32, true, false, false), 32, 64);
        cq_packed *qz = (cq_packed *)cq_packed_find(f->p, f->np, "qzeros");
        memset(qz->data, 0xFF, qz->nbytes);
        cq_error err = CQ_ERROR_INIT;
        cq_qresult out;
        int rc = f->L->unpack(f->qc, f->p, f->np, 32, 64, &out, &err);
        if (bits[i] == 8) {
            CQ_CHECK_EQ_INT(rc, CQ_E_UNSUPPORTED); /* 256 does not fit the uint8 zero */
        } else {
            CQ_CHECK_OK(rc, &err);
            int bad = 0;
            for (int64_t j = 0; rc == CQ_OK && j < out.n_groups * out.rows; j++)
                bad += out.zero[j] != (1 << bits[i]);
            CQ_CHECK_EQ_INT(bad, 0);
            if (rc == CQ_OK)
                CQ_CHECK(memcmp(out.q, f->r.q, 32 * 64) == 0);
            cq_qresult_release(&out);
        }
        fx_free(f);
    }
}

CQ_TEST(unpack_misaligned_data)
{
    /* safetensors data offsets need not be 4-aligned: decode from byte offset 1 */
    const cq_layout *Ls[3] = {&cq_layout_gptq, &cq_layout_awq, &cq_layout_ct};
    for (int l = 0; l < 3; l++) {
        fixture fx, *f = &fx;
        fx_make(f, Ls[l], cq_test_qconfig(4, 32, false, false, false), 32, 64);
        cq_packed m[CQ_PACK_MAX_TENSORS];
        char *bufs[CQ_PACK_MAX_TENSORS];
        for (int i = 0; i < f->np; i++) {
            m[i] = f->p[i];
            bufs[i] = malloc(m[i].nbytes + 1);
            memcpy(bufs[i] + 1, m[i].data, m[i].nbytes);
            m[i].data = bufs[i] + 1;
        }
        cq_error err = CQ_ERROR_INIT;
        cq_qresult out;
        CQ_CHECK_OK(f->L->unpack(f->qc, m, f->np, 32, 64, &out, &err), &err);
        if (err.code == CQ_OK) {
            CQ_CHECK(memcmp(out.q, f->r.q, 32 * 64) == 0);
            CQ_CHECK(memcmp(out.zero, f->r.zero, (size_t)(32 * f->r.n_groups)) == 0);
        }
        cq_qresult_release(&out);
        for (int i = 0; i < f->np; i++)
            free(bufs[i]);
        fx_free(f);
    }
}

CQ_TEST(unpack_fuzz_never_crashes)
{
    /* random shape lies and byte noise: any status, but a success must be self-consistent */
    const cq_layout *Ls[3] = {&cq_layout_gptq, &cq_layout_awq, &cq_layout_ct};
    for (int iter = 0; iter < 300; iter++) {
        fixture fx, *f = &fx;
        int l = iter % 3, b = l == 1 ? 4 : (int[]){2, 3, 4, 8}[cq_rand_u32(&rng) % 4];
        fx_make(f, Ls[l],
                cq_test_qconfig(b, 32, l != 1 && cq_rand_u32(&rng) % 2,
                                l != 1 && cq_rand_u32(&rng) % 2, false),
                32, 64);
        cq_packed m[CQ_PACK_MAX_TENSORS];
        memcpy(m, f->p, sizeof(m));
        int i = (int)(cq_rand_u32(&rng) % (unsigned)f->np);
        for (int k = 0; k < 8; k++)
            ((unsigned char *)m[i].data)[cq_rand_u32(&rng) % m[i].nbytes] =
                (unsigned char)cq_rand_u32(&rng);
        if (cq_rand_u32(&rng) % 4 == 0)
            m[i].shape[cq_rand_u32(&rng) % 2] += (int64_t)(cq_rand_u32(&rng) % 5) - 2;
        cq_error err = CQ_ERROR_INIT;
        cq_qresult out;
        if (f->L->unpack(f->qc, m, f->np, 32, 64, &out, &err) == CQ_OK) {
            int bad = 0;
            for (int64_t j = 0; j < 32 * 64; j++)
                bad += out.q[j] >= (1u << out.bits);
            for (int64_t c = 0; c < 64; c++)
                bad += out.g_idx[c] < 0 || out.g_idx[c] >= out.n_groups;
            CQ_CHECK_EQ_INT(bad, 0);
            cq_qresult_release(&out);
        }
        fx_free(f);
    }
}

/* ---------- check() and pack() refusals ---------- */

static int chk(const cq_layout *L, cq_qconfig c, int64_t rows, int64_t cols)
{
    cq_error err = CQ_ERROR_INIT;
    int rc = L->check(&c, rows, cols, &err);
    if (rc != CQ_OK && (!err.msg[0] || strchr(err.msg, '\n')))
        CQ_FAIL("%s: refusal without a one-line reason", L->name);
    return rc;
}

/* One check() case: the layout, the options cq_test_qconfig takes, the shape, the status. */
typedef struct chk_case {
    const cq_layout *L;
    int bits, group;
    bool sym, act_order, static_groups;
    int64_t rows, cols;
    int want;
} chk_case;

CQ_TEST(check_refusals)
{
    const cq_layout *G = &cq_layout_gptq, *A = &cq_layout_awq, *T = &cq_layout_ct;
    const chk_case cases[] = {
        {A, 3, 128, false, false, false, 64, 128, CQ_E_UNSUPPORTED},
        {A, 8, 128, false, false, false, 64, 128, CQ_E_UNSUPPORTED},
        {A, 4, 128, true, false, false, 64, 128, CQ_E_UNSUPPORTED},
        {A, 4, -1, false, false, false, 64, 128, CQ_E_UNSUPPORTED},
        {A, 4, 128, false, false, false, 60, 128, CQ_E_UNSUPPORTED},
        {A, 4, 128, false, false, false, 64, 192, CQ_E_UNSUPPORTED},
        {A, 4, 128, false, true, false, 64, 128, CQ_E_UNSUPPORTED},
        {A, 4, 128, false, true, true, 64, 128, CQ_OK},
        {A, 4, 64, false, false, false, 8, 192, CQ_OK},
        {G, 4, 64, true, false, false, 64, 96, CQ_E_UNSUPPORTED},
        {G, 4, 128, true, false, false, 64, 64, CQ_E_UNSUPPORTED},
        {G, 5, 32, true, false, false, 64, 64, CQ_E_UNSUPPORTED},
        {G, 4, 0, true, false, false, 64, 64, CQ_E_USAGE},
        {T, 5, 32, true, false, false, 64, 64, CQ_E_UNSUPPORTED},
        {T, 4, 32, true, false, false, 64, 48, CQ_E_UNSUPPORTED},
        {T, 4, -2, true, false, false, 64, 64, CQ_E_USAGE},
        {G, 4, 32, true, false, false, 0, 64, CQ_E_SHAPE},
        {A, 4, 32, false, false, false, 8, 0, CQ_E_SHAPE},
        {T, 4, -1, false, false, false, 0, 8, CQ_E_SHAPE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const chk_case *k = &cases[i];
        cq_qconfig c = cq_test_qconfig(k->bits, k->group, k->sym, k->act_order, k->static_groups);
        int rc = chk(k->L, c, k->rows, k->cols);
        if (rc != k->want)
            CQ_FAIL("case %zu (%s b%d g%d %lldx%lld): got %d, want %d", i, k->L->name, k->bits,
                    k->group, (long long)k->rows, (long long)k->cols, rc, k->want);
    }
    for (int b = 2; b <= 8; b += (b == 4 ? 4 : 1)) {
        cq_qconfig per_row_sym = cq_test_qconfig(b, -1, true, false, false);
        cq_qconfig per_row_asym = cq_test_qconfig(b, -1, false, false, false);
        CQ_CHECK_EQ_INT(chk(G, per_row_sym, 64, 48), CQ_E_UNSUPPORTED);
        CQ_CHECK_EQ_INT(chk(G, per_row_sym, 48, 64), CQ_E_UNSUPPORTED);
        CQ_CHECK_EQ_INT(chk(G, per_row_sym, 32, 32), CQ_OK);
        CQ_CHECK_EQ_INT(chk(T, per_row_asym, 7, 45), CQ_OK);
    }
}

static int pk(const cq_layout *L, const cq_qconfig *c, const cq_qresult *r)
{
    cq_error err = CQ_ERROR_INIT;
    cq_packed p[CQ_PACK_MAX_TENSORS];
    int n = -1, rc = L->pack(c, r, p, &n, &err);
    if (rc != CQ_OK)
        CQ_CHECK_EQ_INT(n, 0);
    else
        cq_packed_release(p, n);
    return rc;
}

CQ_TEST(pack_refusals)
{
    cq_qconfig c = cq_test_qconfig(4, 32, false, false, false);
    cq_qresult r;
    cq_test_random_qresult(&r, &c, 32, 64, false, &rng);
    CQ_CHECK_EQ_INT(pk(&cq_layout_gptq, &c, &r), CQ_OK);
    cq_qconfig c8 = cq_test_qconfig(8, 32, false, false, false);
    CQ_CHECK_EQ_INT(pk(&cq_layout_gptq, &c8, &r), CQ_E_INTERNAL); /* bits disagree */
    r.q[5] = 16;
    CQ_CHECK_EQ_INT(pk(&cq_layout_ct, &c, &r), CQ_E_INTERNAL); /* code out of range */
    r.q[5] = 0, r.zero[3] = 200;
    CQ_CHECK_EQ_INT(pk(&cq_layout_awq, &c, &r), CQ_E_INTERNAL);
    r.zero[3] = 0, r.g_idx[9] = 2;
    CQ_CHECK_EQ_INT(pk(&cq_layout_gptq, &c, &r), CQ_E_INTERNAL); /* g_idx past n_groups */
    r.g_idx[9] = 1; /* valid but permuted: AWQ has no g_idx, CT without actorder neither */
    CQ_CHECK_EQ_INT(pk(&cq_layout_awq, &c, &r), CQ_E_UNSUPPORTED);
    CQ_CHECK_EQ_INT(pk(&cq_layout_ct, &c, &r), CQ_E_INTERNAL);
    CQ_CHECK_EQ_INT(pk(&cq_layout_gptq, &c, &r), CQ_OK);
    r.g_idx[9] = 0, r.scale[7] = 1e6f; /* f16 overflow */
    CQ_CHECK_EQ_INT(pk(&cq_layout_gptq, &c, &r), CQ_E_NUMERIC);
    CQ_CHECK_EQ_INT(pk(&cq_layout_ct, &c, &r), CQ_E_NUMERIC);
    r.scale[7] = 0.01f;
    cq_qconfig cs = cq_test_qconfig(4, 32, true, false, false);
    r.sym = true; /* sym result whose zeros are not 8 */
    CQ_CHECK_EQ_INT(pk(&cq_layout_gptq, &cs, &r), CQ_E_INTERNAL);
    cq_qresult_release(&r);
}

/* ---------- quantization_config and registry ---------- */

static const cJSON *at(const cJSON *o, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(o, k);
}

static bool is_str(const cJSON *o, const char *k, const char *v)
{
    const char *s = cJSON_GetStringValue(at(o, k));
    return s && strcmp(s, v) == 0;
}

static bool is_num(const cJSON *o, const char *k, double v)
{
    return cJSON_IsNumber(at(o, k)) && cJSON_GetNumberValue(at(o, k)) == v;
}

CQ_TEST(gptq_qconfig_contents)
{
    cq_error err = CQ_ERROR_INIT;
    cq_qconfig c = cq_test_qconfig(4, 128, true, true, false);
    cJSON *q = cJSON_CreateObject();
    CQ_CHECK_OK(cq_layout_gptq.qconfig(&c, "gptq", q, &err), &err);
    CQ_CHECK(is_str(q, "quant_method", "gptq") && is_num(q, "bits", 4) &&
             is_num(q, "group_size", 128) && cJSON_IsTrue(at(q, "desc_act")) &&
             cJSON_IsTrue(at(q, "sym")) && is_num(q, "damp_percent", 0.01) &&
             cJSON_IsTrue(at(q, "true_sequential")) && cJSON_IsFalse(at(q, "static_groups")) &&
             is_str(q, "checkpoint_format", "gptq") && is_str(q, "format", "gptq") &&
             cJSON_IsFalse(at(q, "lm_head")) && cJSON_IsNull(at(q, "model_name_or_path")) &&
             is_str(q, "model_file_base_name", "model") && !at(q, "meta"));
    cJSON_Delete(q);
    c = cq_test_qconfig(3, -1, false, false, true);
    q = cJSON_CreateObject();
    CQ_CHECK_OK(cq_layout_gptq.qconfig(&c, "rtn", q, &err), &err);
    CQ_CHECK(is_str(q, "checkpoint_format", "gptq_v2") && is_str(q, "format", "gptq_v2") &&
             is_num(q, "group_size", -1) && cJSON_IsFalse(at(q, "sym")) &&
             cJSON_IsTrue(at(q, "static_groups")) && is_str(q, "quant_method", "gptq") &&
             is_str(at(q, "meta"), "quantizer", "cquant") && is_str(at(q, "meta"), "method", "rtn"));
    cJSON_Delete(q);
}

CQ_TEST(awq_qconfig_exact)
{
    cq_error err = CQ_ERROR_INIT;
    cq_qconfig c = cq_test_qconfig(4, 128, false, false, false);
    cJSON *q = cJSON_CreateObject();
    CQ_CHECK_OK(cq_layout_awq.qconfig(&c, "awq", q, &err), &err);
    char *s = cJSON_PrintUnformatted(q);
    CQ_CHECK(strcmp(s, "{\"quant_method\":\"awq\",\"zero_point\":true,\"group_size\":128,"
                       "\"bits\":4,\"version\":\"gemm\",\"modules_to_not_convert\":null}") == 0);
    cJSON_free(s);
    cJSON_Delete(q);
}

CQ_TEST(ct_qconfig_contents)
{
    static const struct { int group; bool sym, ao, st; const char *strategy, *actorder; } cs[] = {
        {128, true, false, false, "group", NULL},
        {-1, false, false, false, "channel", NULL},
        {64, false, true, false, "group", "group"},
        {64, true, true, true, "group", "weight"},
    };
    for (int i = 0; i < 4; i++) {
        cq_error err = CQ_ERROR_INIT;
        cq_qconfig c = cq_test_qconfig(8, cs[i].group, cs[i].sym, cs[i].ao, cs[i].st);
        cJSON *q = cJSON_CreateObject();
        CQ_CHECK_OK(cq_layout_ct.qconfig(&c, "gptq", q, &err), &err);
        const cJSON *g0 = at(at(q, "config_groups"), "group_0"), *w = at(g0, "weights");
        const cJSON *ig = at(q, "ignore"), *tg = at(g0, "targets");
        CQ_CHECK(is_str(q, "quant_method", "compressed-tensors") &&
                 is_str(q, "format", "pack-quantized") &&
                 is_str(q, "quantization_status", "compressed") &&
                 cJSON_GetArraySize(ig) == 1 &&
                 strcmp(cJSON_GetStringValue(cJSON_GetArrayItem(ig, 0)), "lm_head") == 0 &&
                 cJSON_GetArraySize(tg) == 1 &&
                 strcmp(cJSON_GetStringValue(cJSON_GetArrayItem(tg, 0)), "Linear") == 0);
        CQ_CHECK(is_num(w, "num_bits", 8) && is_str(w, "type", "int") &&
                 cJSON_IsBool(at(w, "symmetric")) &&
                 cJSON_IsTrue(at(w, "symmetric")) == cs[i].sym &&
                 is_str(w, "strategy", cs[i].strategy) && cJSON_IsFalse(at(w, "dynamic")) &&
                 is_str(w, "observer", "minmax"));
        CQ_CHECK(cs[i].group > 0 ? is_num(w, "group_size", cs[i].group)
                                 : cJSON_IsNull(at(w, "group_size")));
        CQ_CHECK(cs[i].actorder ? is_str(w, "actorder", cs[i].actorder)
                                : cJSON_IsNull(at(w, "actorder")));
        cJSON_Delete(q);
    }
}

CQ_TEST(registry)
{
    CQ_CHECK(cq_layout_find("gptq") == &cq_layout_gptq);
    CQ_CHECK(cq_layout_find("awq") == &cq_layout_awq);
    CQ_CHECK(cq_layout_find("ct") == &cq_layout_ct);
    CQ_CHECK(cq_layout_find("marlin") == NULL && cq_layout_find(NULL) == NULL);
    cJSON *q = cJSON_Parse("{\"quant_method\":\"compressed-tensors\"}");
    CQ_CHECK(cq_layout_detect(q) == &cq_layout_ct);
    cJSON_Delete(q);
    q = cJSON_Parse("{\"quant_method\":\"bitsandbytes\"}");
    CQ_CHECK(cq_layout_detect(q) == NULL && cq_layout_detect(NULL) == NULL);
    cJSON_Delete(q);
    q = cJSON_Parse("{\"quant_method\":7}");
    CQ_CHECK(cq_layout_detect(q) == NULL);
    cJSON_Delete(q);
    cq_packed_release(NULL, 3); /* NULL-safe */
}
