/* The dense bit stream against a naive bit-by-bit packer written from the definition in notes
 * §B.2/§D.2 (value i occupies stream bits [b*i, b*i+b), LSB first), plus hand-computed words. */
#include "cq_test.h"
#include "core/cpu.h"
#include "cquant/pack.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

static void naive_pack(const uint32_t *v, int64_t n, int b, uint32_t *w, int64_t nw)
{
    memset(w, 0, (size_t)nw * 4);
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < b; j++) {
            int64_t p = i * b + j;
            w[p / 32] |= ((v[i] >> j) & 1u) << (p % 32);
        }
}

static uint32_t naive_get(const uint32_t *w, int64_t i, int b)
{
    uint32_t v = 0;
    for (int j = 0; j < b; j++) {
        int64_t p = i * b + j;
        v |= ((w[p / 32] >> (p % 32)) & 1u) << j;
    }
    return v;
}

CQ_TEST(bits_match_naive_all_widths_and_lengths)
{
    enum { MAXN = 700 };
    uint32_t *v = malloc(MAXN * 4), *got = malloc((MAXN + 8) * 4), *want = malloc(MAXN * 4);
    uint32_t *back = malloc(MAXN * 4);
    uint8_t *v8 = malloc(MAXN);
    int bad = 0;
    /* pass 1 with the portable code forced (the AVX2 4-bit packer otherwise, where present) */
    for (int pass = 0; pass < 2; pass++)
        for (int b = 1; b <= 8; b++)
            for (int64_t n = 0; n <= MAXN; n += (n < 100 ? 1 : 37)) {
                cq_cpu_force_baseline(pass == 1);
                int64_t nw = cq_bits_words(n, b);
                if (nw != (n * b + 31) / 32)
                    bad++;
                for (int64_t i = 0; i < n; i++)
                    v[i] = rnd() & ((1u << b) - 1);
                naive_pack(v, n, b, want, nw);
                for (int i = 0; i < nw + 8; i++)
                    got[i] = 0xA5A5A5A5u; /* sentinel: must be overwritten exactly up to nw */
                cq_bits_pack(v, n, b, got);
                if (memcmp(got, want, (size_t)nw * 4) != 0 || got[nw] != 0xA5A5A5A5u) {
                    if (bad++ < 3)
                        fprintf(stderr, "pack b=%d n=%lld differs\n", b, (long long)n);
                }
                /* the byte-input version: same words, same sentinel, wide bytes masked to b bits */
                for (int64_t i = 0; i < n; i++)
                    v8[i] = (uint8_t)(v[i] | (rnd() & 0xFFu & ~((1u << b) - 1)));
                for (int i = 0; i < nw + 8; i++)
                    got[i] = 0xA5A5A5A5u;
                cq_bits_pack_u8(v8, n, b, got);
                if (memcmp(got, want, (size_t)nw * 4) != 0 || got[nw] != 0xA5A5A5A5u) {
                    if (bad++ < 3)
                        fprintf(stderr, "pack_u8 b=%d n=%lld differs\n", b, (long long)n);
                }
                cq_bits_unpack(want, n, b, back);
                for (int64_t i = 0; i < n; i++)
                    if (back[i] != v[i] || back[i] != naive_get(want, i, b)) {
                        if (bad++ < 3)
                            fprintf(stderr, "unpack b=%d n=%lld i=%lld\n", b, (long long)n,
                                    (long long)i);
                        break;
                    }
            }
    cq_cpu_force_baseline(false);
    CQ_CHECK_EQ_INT(bad, 0);
    free(v), free(got), free(want), free(back), free(v8);
}

CQ_TEST(bits_masks_wide_values)
{
    /* values above 2^b must not leak into neighbours */
    uint32_t v[4] = {0xFFFFFFF1u, 0x12u, 0xFFu, 0x3u}, w[1] = {0};
    cq_bits_pack(v, 4, 4, w);
    CQ_CHECK_EQ_INT(w[0], 0x3F21u);
}

CQ_TEST(bits_golden_words)
{
    uint32_t v[32] = {0}, w[8];
    for (int i = 0; i < 8; i++)
        v[i] = (uint32_t)i;
    cq_bits_pack(v, 8, 4, w);
    CQ_CHECK_EQ_INT(w[0], 0x76543210u);
    uint32_t v8[4] = {1, 2, 3, 0xFE};
    cq_bits_pack(v8, 4, 8, w);
    CQ_CHECK_EQ_INT(w[0], 0xFE030201u);
    uint32_t v2[16] = {1, 2, 3, 0, 3, 3, 3, 3, 0, 0, 0, 0, 0, 0, 0, 1};
    cq_bits_pack(v2, 16, 2, w);
    CQ_CHECK_EQ_INT(w[0], 0x4000FF39u);
}

CQ_TEST(bits_3bit_hand_computed_triple)
{
    /* B.2: word0 = values 0..9 at 3j and the low 2 bits of value 10 at bits 30-31; word1 = bit 2
     * of value 10 at bit 0, values 11..20 at 1+3j, low bit of value 21 at bit 31; word2 = upper
     * 2 bits of value 21 at bits 0-1, values 22..31 at 2+3j.
     * v0=5 -> word0 0x5; v10=7 -> word0 bits 30,31 (0xC0000000) and word1 bit 0; v11=6 -> word1
     * 6<<1 = 0xC; v21=7 -> word1 bit 31 and word2 bits 0-1; v31=4 -> word2 4<<29. */
    uint32_t v[32] = {0}, w[3], back[32];
    v[0] = 5, v[10] = 7, v[11] = 6, v[21] = 7, v[31] = 4;
    cq_bits_pack(v, 32, 3, w);
    CQ_CHECK_EQ_INT(w[0], 0xC0000005u);
    CQ_CHECK_EQ_INT(w[1], 0x8000000Du);
    CQ_CHECK_EQ_INT(w[2], 0x80000003u);
    cq_bits_unpack(w, 32, 3, back);
    CQ_CHECK(memcmp(back, v, sizeof(v)) == 0);
}
