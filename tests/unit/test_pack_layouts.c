/* Each layout x bits x sym/asym x group size (incl. -1 and act-order g_idx): pack, then decode
 * the tensors with decoders written here from notes §B/§C/§D (bit by bit, never calling unpack
 * or cq_bits_unpack) and compare with f16(scale) * (q - zero) from the result; and
 * unpack(pack(r)) == r. Golden words, hostile inputs and check() refusals follow. */
#include "cq_test.h"
#include "cq_rand.h"
#include "cq_testutil.h"
#include "cquant/dtype.h"
#include "cquant/pack.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---------- fixtures ---------- */

static uint64_t rng = 0x243f6a8885a308d3ull;

/* Reference dequant of the result: f16(scale) * (q - zero). */
static double ref_w(const cq_qresult *r, int64_t n, int64_t k)
{
    int64_t g = r->g_idx[k];
    double s = cq_f16_to_f32(cq_f32_to_f16(r->scale[g * r->rows + n]));
    return s * ((double)r->q[n * r->cols + k] - (double)r->zero[g * r->rows + n]);
}

/* ---------- independent decoders ---------- */

static uint32_t word_at(const cq_packed *t, int64_t i)
{
    uint32_t w;
    memcpy(&w, (const char *)t->data + i * 4, 4);
    return w;
}

/* bit p of a stream whose words sit at t[base + stride*j] */
static uint32_t stream_bits(const cq_packed *t, int64_t base, int64_t stride, int64_t pos, int b)
{
    uint32_t v = 0;
    for (int j = 0; j < b; j++) {
        int64_t p = pos * b + j;
        v |= ((word_at(t, base + stride * (p / 32)) >> (p % 32)) & 1u) << j;
    }
    return v;
}

static double f16_at(const cq_packed *t, int64_t i)
{
    uint16_t h;
    memcpy(&h, (const char *)t->data + i * 2, 2);
    return cq_f16_to_f32(h);
}

static const cq_packed *get(const cq_packed *p, int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (strcmp(p[i].suffix, s) == 0)
            return &p[i];
    return NULL;
}

/* §B: q along input in qweight[k*b/32][n]; zeros along output in qzeros[g]; v1 adds one. */
static int64_t decode_gptq(const cq_packed *p, int np, const cq_qresult *r, bool v1)
{
    const cq_packed *qw = get(p, np, "qweight"), *qz = get(p, np, "qzeros");
    const cq_packed *sc = get(p, np, "scales"), *gi = get(p, np, "g_idx");
    int64_t bad = 0, out = r->rows;
    for (int64_t n = 0; n < r->rows; n++)
        for (int64_t k = 0; k < r->cols; k++) {
            int32_t g;
            memcpy(&g, (const char *)gi->data + k * 4, 4);
            double q = stream_bits(qw, n, out, k, r->bits);
            double z = stream_bits(qz, g * qz->shape[1], 1, n, r->bits) + (v1 ? 1 : 0);
            bad += f16_at(sc, g * out + n) * (q - z) != ref_w(r, n, k);
        }
    return bad;
}

/* §C: qweight[k][n/8] nibble i = column 8c + ORDER[i]; qzeros likewise; scales [k/G][n]. */
static int64_t decode_awq(const cq_packed *p, int np, const cq_qresult *r)
{
    static const int order[8] = {0, 2, 4, 6, 1, 3, 5, 7};
    const cq_packed *qw = get(p, np, "qweight"), *qz = get(p, np, "qzeros");
    const cq_packed *sc = get(p, np, "scales");
    int64_t bad = 0, nc = r->rows / 8;
    for (int64_t n = 0; n < r->rows; n++) {
        int nib = 0;
        while (order[nib] != n % 8)
            nib++;
        for (int64_t k = 0; k < r->cols; k++) {
            int64_t g = k / r->group_size;
            double q = (word_at(qw, k * nc + n / 8) >> (4 * nib)) & 15u;
            double z = (word_at(qz, g * nc + n / 8) >> (4 * nib)) & 15u;
            bad += f16_at(sc, g * r->rows + n) * (q - z) != ref_w(r, n, k);
        }
    }
    return bad;
}

/* §D: signed codes q_s = stored - 2^(b-1), zp likewise (0 when symmetric), w = (q_s - zp)*s. */
static int64_t decode_ct(const cq_packed *p, int np, const cq_qresult *r, bool sym)
{
    const cq_packed *wp = get(p, np, "weight_packed"), *ws = get(p, np, "weight_scale");
    const cq_packed *zp = get(p, np, "weight_zero_point"), *gi = get(p, np, "weight_g_idx");
    const cq_packed *sh = get(p, np, "weight_shape");
    int64_t bad = 0, ng = ws->shape[1], off = 1 << (r->bits - 1), shape[2];
    memcpy(shape, sh->data, sizeof(shape));
    bad += shape[0] != r->rows || shape[1] != r->cols || (zp == NULL) != sym;
    for (int64_t n = 0; n < r->rows; n++)
        for (int64_t k = 0; k < r->cols; k++) {
            int32_t g = (int32_t)(k / (r->group_size > 0 ? r->group_size : r->cols));
            if (gi)
                memcpy(&g, (const char *)gi->data + k * 4, 4);
            double qs = (double)stream_bits(wp, n * wp->shape[1], 1, k, r->bits) - off;
            double z = zp ? (double)stream_bits(zp, g, ng, n, r->bits) - off : 0;
            bad += f16_at(ws, n * ng + g) * (qs - z) != ref_w(r, n, k);
        }
    return bad;
}

/* ---------- round trip ---------- */

static int64_t compare(const cq_qresult *a, const cq_qresult *r)
{
    int64_t bad = a->rows != r->rows || a->cols != r->cols || a->bits != r->bits ||
                  a->group_size != r->group_size || a->n_groups != r->n_groups || a->sym != r->sym;
    if (bad)
        return bad;
    bad += memcmp(a->q, r->q, (size_t)(r->rows * r->cols)) != 0;
    bad += memcmp(a->zero, r->zero, (size_t)(r->rows * r->n_groups)) != 0;
    bad += memcmp(a->g_idx, r->g_idx, (size_t)r->cols * 4) != 0;
    for (int64_t i = 0; i < r->rows * r->n_groups; i++)
        bad += a->scale[i] != cq_f16_to_f32(cq_f32_to_f16(r->scale[i]));
    return bad;
}

/* Pack, check the plan, decode independently, round-trip through unpack with our own config. */
static void run_case(const cq_layout *L, const cq_qconfig *c, int64_t rows, int64_t cols,
                     bool permute)
{
    cq_error err = CQ_ERROR_INIT;
    cq_qresult r, back;
    cq_packed p[CQ_PACK_MAX_TENSORS], plan[CQ_PACK_MAX_TENSORS];
    int np = 0, npl = 0;
    cq_test_random_qresult(&r, c, rows, cols, permute, &rng);
    CQ_CHECK_OK(L->check(c, rows, cols, &err), &err);
    CQ_CHECK_OK(L->plan(c, rows, cols, plan, &npl, &err), &err);
    CQ_CHECK_OK(L->pack(c, &r, p, &np, &err), &err);
    CQ_CHECK_EQ_INT(np, npl);
    for (int i = 0; i < np && i < npl; i++)
        CQ_CHECK(strcmp(p[i].suffix, plan[i].suffix) == 0 && p[i].dtype == plan[i].dtype &&
                 p[i].shape[0] == plan[i].shape[0] && p[i].shape[1] == plan[i].shape[1] &&
                 p[i].nbytes == plan[i].nbytes && plan[i].data == NULL);
    int64_t bad = -1;
    if (L == &cq_layout_gptq)
        bad = decode_gptq(p, np, &r, c->sym);
    else if (L == &cq_layout_awq)
        bad = decode_awq(p, np, &r);
    else
        bad = decode_ct(p, np, &r, c->sym);
    if (bad != 0)
        CQ_FAIL("%s b=%d g=%d sym=%d perm=%d [%lld,%lld]: %lld values differ", L->name, c->bits,
                c->group_size, c->sym, permute, (long long)rows, (long long)cols, (long long)bad);
    cJSON *qc = cJSON_CreateObject();
    CQ_CHECK_OK(L->qconfig(c, "gptq", qc, &err), &err);
    CQ_CHECK(cq_layout_detect(qc) == L);
    CQ_CHECK_OK(L->unpack(qc, p, np, rows, cols, &back, &err), &err);
    if (err.code == CQ_OK && compare(&back, &r) != 0)
        CQ_FAIL("%s b=%d g=%d sym=%d perm=%d: round trip differs", L->name, c->bits,
                c->group_size, c->sym, permute);
    cq_qresult_release(&back);
    cJSON_Delete(qc);
    cq_packed_release(p, np);
    cq_qresult_release(&r);
}

CQ_TEST(gptq_all_bits_groups_sym_asym_actorder)
{
    static const int bits[] = {2, 3, 4, 8}, groups[] = {-1, 32, 64, 128};
    for (int bi = 0; bi < 4; bi++)
        for (int gi = 0; gi < 4; gi++)
            for (int s = 0; s < 2; s++)
                for (int perm = 0; perm < 2; perm++) {
                    cq_qconfig c = cq_test_qconfig(bits[bi], groups[gi], s, perm, false);
                    run_case(&cq_layout_gptq, &c, 64, 256, perm && groups[gi] > 0);
                }
    cq_qconfig c = cq_test_qconfig(3, 32, false, false, false);
    run_case(&cq_layout_gptq, &c, 96, 32, false);
}

CQ_TEST(awq_groups_and_shapes)
{
    static const int groups[] = {8, 32, 64, 128};
    for (int gi = 0; gi < 4; gi++) {
        cq_qconfig c = cq_test_qconfig(4, groups[gi], false, false, false);
        run_case(&cq_layout_awq, &c, 40, 128, false);
        run_case(&cq_layout_awq, &c, 8, groups[gi], false);
    }
    /* act-order with static groups: k // G */
    cq_qconfig c = cq_test_qconfig(4, 32, false, true, true);
    run_case(&cq_layout_awq, &c, 16, 64, false);
}

CQ_TEST(ct_all_bits_groups_sym_asym_actorder)
{
    static const int bits[] = {2, 3, 4, 8}, groups[] = {-1, 16, 48};
    for (int bi = 0; bi < 4; bi++)
        for (int gi = 0; gi < 3; gi++)
            for (int s = 0; s < 2; s++)
                for (int perm = 0; perm < 2; perm++) {
                    cq_qconfig c = cq_test_qconfig(bits[bi], groups[gi], s, perm, false);
                    /* odd sizes: rows 33 pads the zero-point stream, cols 96/45 the codes */
                    run_case(&cq_layout_ct, &c, 33, groups[gi] > 0 ? 96 : 45,
                             perm && groups[gi] > 0);
                    run_case(&cq_layout_ct, &c, 3, groups[gi] > 0 ? 48 : 7, false);
                }
    /* actorder "weight": no weight_g_idx */
    cq_qconfig c = cq_test_qconfig(4, 16, true, true, true);
    run_case(&cq_layout_ct, &c, 8, 64, false);
}

/* ---------- golden words ---------- */

static void pack_one(const cq_layout *L, const cq_qconfig *c, const cq_qresult *r, cq_packed *p,
                     int *np)
{
    cq_error err = CQ_ERROR_INIT;
    CQ_CHECK_OK(L->pack(c, r, p, np, &err), &err);
}

CQ_TEST(gptq_sym_qzeros_golden)
{
    static const struct { int bits; uint32_t w[3]; int nw; } cases[] = {
        {4, {0x77777777u}, 1},
        {8, {0x7F7F7F7Fu}, 1},
        {2, {0x55555555u}, 1},
        /* 3-bit: zero 4 stored as 3 = 0b011, 32 times as one 96-bit stream */
        {3, {0xDB6DB6DBu, 0xB6DB6DB6u, 0x6DB6DB6Du}, 3},
    };
    for (int i = 0; i < 4; i++) {
        cq_qconfig c = cq_test_qconfig(cases[i].bits, 32, true, false, false);
        cq_qresult r;
        cq_packed p[CQ_PACK_MAX_TENSORS];
        int np = 0;
        cq_test_random_qresult(&r, &c, 64, 64, false, &rng);
        pack_one(&cq_layout_gptq, &c, &r, p, &np);
        const cq_packed *qz = get(p, np, "qzeros");
        int64_t nw = qz ? qz->shape[0] * qz->shape[1] : 0, bad = nw == 0;
        for (int64_t j = 0; j < nw; j++)
            bad += word_at(qz, j) != cases[i].w[j % cases[i].nw];
        if (bad)
            CQ_FAIL("bits %d: %lld qzeros words differ (first %08x)", cases[i].bits,
                    (long long)bad, nw ? word_at(qz, 0) : 0);
        cq_packed_release(p, np);
        cq_qresult_release(&r);
    }
}

CQ_TEST(awq_nibble_order_hand_example)
{
    /* one input column, 8 outputs: codes q[n] = n, zeros 15 - n. Nibbles 0..7 hold columns
     * 0,2,4,6,1,3,5,7: codes word 0x75316420, zeros nibbles F,D,B,9,E,C,A,8 -> 0x8ACE9BDF. */
    cq_qconfig c = cq_test_qconfig(4, 1, false, false, false);
    cq_qresult r;
    cq_test_random_qresult(&r, &c, 8, 1, false, &rng);
    for (int n = 0; n < 8; n++)
        r.q[n] = (uint8_t)n, r.zero[n] = (uint8_t)(15 - n), r.scale[n] = 0.5f;
    cq_packed p[CQ_PACK_MAX_TENSORS];
    int np = 0;
    pack_one(&cq_layout_awq, &c, &r, p, &np);
    CQ_CHECK_EQ_INT(np, 3);
    if (np == 3) {
        CQ_CHECK_EQ_INT(word_at(get(p, np, "qweight"), 0), 0x75316420u);
        CQ_CHECK_EQ_INT(word_at(get(p, np, "qzeros"), 0), 0x8ACE9BDFu);
    }
    cq_packed_release(p, np);
    cq_qresult_release(&r);
}

CQ_TEST(ct_sym_stores_unsigned_codes)
{
    /* sym 4-bit: code q is CT's q_s + 8, so the stored nibbles are our codes */
    cq_qconfig c = cq_test_qconfig(4, -1, true, false, false);
    cq_qresult r;
    cq_test_random_qresult(&r, &c, 1, 8, false, &rng);
    for (int k = 0; k < 8; k++)
        r.q[k] = (uint8_t)(15 - 2 * k % 16);
    cq_packed p[CQ_PACK_MAX_TENSORS];
    int np = 0;
    pack_one(&cq_layout_ct, &c, &r, p, &np);
    CQ_CHECK_EQ_INT(np, 3);
    if (np == 3)
        CQ_CHECK_EQ_INT(word_at(get(p, np, "weight_packed"), 0), 0x13579BDFu);
    cq_packed_release(p, np);
    cq_qresult_release(&r);
}
