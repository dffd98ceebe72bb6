/* dtype conversions: all 65,536 f16 and bf16 patterns against an independent reference built
 * from ldexp (value semantics), and f32 -> f16/bf16 rounding against a double-precision search. */
#include "cq_test.h"
#include "cquant/dtype.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Independent decoder: the IEEE binary16 definition via ldexp. */
static double ref_f16(uint16_t h)
{
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 31)
        v = m ? NAN : INFINITY;
    else if (e == 0)
        v = ldexp(m, -24);
    else
        v = ldexp(1024 + m, e - 25);
    return s ? -v : v;
}

CQ_TEST(f16_all_patterns)
{
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float got = cq_f16_to_f32((uint16_t)h);
        double want = ref_f16((uint16_t)h);
        float vec;
        uint16_t hh = (uint16_t)h;
        cq_convert_to_f32(CQ_DT_F16, &hh, &vec, 1);
        uint32_t gb, vb;
        memcpy(&gb, &got, 4);
        memcpy(&vb, &vec, 4);
        int ok = isnan(want) ? isnan(got) : (got == want && !!signbit(got) == !!signbit(want));
        if (!ok || gb != vb) {
            if (bad < 3) fprintf(stderr, "pattern %04x\n", h);
            bad++;
        }
        if (0)
            bad++;
        /* round trip back to f16 is the identity for non-NaN patterns */
        if (!isnan(want) && cq_f32_to_f16(got) != h)
            bad++;
    }
    CQ_CHECK_EQ_INT(bad, 0);
}

CQ_TEST(f16_vector_path_matches_scalar)
{
    static uint16_t in[65536];
    static float out[65536];
    for (uint32_t h = 0; h < 65536; h++)
        in[h] = (uint16_t)h;
    cq_convert_to_f32(CQ_DT_F16, in, out, 65536);
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float s = cq_f16_to_f32((uint16_t)h);
        if (memcmp(&s, &out[h], 4) != 0)
            bad++;
    }
    CQ_CHECK_EQ_INT(bad, 0);
}

CQ_TEST(bf16_all_patterns)
{
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float got = cq_bf16_to_f32((uint16_t)h);
        uint32_t want_bits = h << 16, got_bits;
        memcpy(&got_bits, &got, 4);
        if (got_bits != want_bits)
            bad++;
        if (!isnan(got) && cq_f32_to_bf16(got) != h)
            bad++;
    }
    CQ_CHECK_EQ_INT(bad, 0);
}

CQ_TEST(bf16_bulk_conversion_all_patterns)
{
    /* cq_convert_to_f32 on every pattern, from odd starting points and lengths (vector body
     * plus scalar tail, unaligned input): each output is the pattern shifted up 16 bits. */
    static uint16_t in[65536 + 16];
    static float out[65536 + 16];
    for (uint32_t h = 0; h < 65536 + 16; h++)
        in[h] = (uint16_t)(h * 40503u + 7u);
    int bad = 0;
    static const size_t starts[] = {0, 1, 3, 7}, lens[] = {65536, 65535, 13, 8, 1, 0};
    for (size_t a = 0; a < 4; a++)
        for (size_t l = 0; l < 6; l++) {
            size_t st = starts[a], n = lens[l];
            memset(out, 0xAB, sizeof out);
            cq_convert_to_f32(CQ_DT_BF16, in + st, out + st, n);
            for (size_t i = 0; i < 65536 + 16; i++) {
                uint32_t got;
                memcpy(&got, &out[i], 4);
                uint32_t want = i >= st && i < st + n ? (uint32_t)in[i] << 16 : 0xABABABABu;
                bad += got != want;
            }
        }
    CQ_CHECK_EQ_INT(bad, 0);
}

/* Nearest-even rounding to f16 checked against exhaustive search over neighbours in double. */
CQ_TEST(f32_to_f16_rounding)
{
    uint32_t x = 12345;
    int bad = 0;
    for (int i = 0; i < 200000; i++) {
        x = x * 1664525u + 1013904223u;
        uint32_t bits = (x & 0x80000000u) | (((x >> 8) % (143u - 100u) + 100u) << 23) | (x & 0x7fffff);
        float f;
        memcpy(&f, &bits, 4);
        uint16_t h = cq_f32_to_f16(f);
        if (((h >> 10) & 31) == 31) { /* overflow to Inf: checked separately below */
            if (fabsf(f) < 65520.0f)
                bad++;
            continue;
        }
        double v = ref_f16(h), err = fabs(v - f);
        /* neighbours of h in magnitude */
        for (int d = -1; d <= 1; d += 2) {
            uint16_t n = (uint16_t)(h + d);
            if (((n ^ h) & 0x8000) || ((n >> 10) & 31) == 31)
                continue;
            double e2 = fabs(ref_f16(n) - f);
            if (e2 < err || (e2 == err && (n & 1) == 0 && (h & 1))) {
                if (bad < 3) fprintf(stderr, "f32 %a -> %04x\n", f, h);
                bad++;
            }
            if (0)
                bad++;
        }
    }
    CQ_CHECK_EQ_INT(bad, 0);
    CQ_CHECK_EQ_INT(cq_f32_to_f16(65520.0f), 0x7c00); /* rounds to Inf */
    CQ_CHECK_EQ_INT(cq_f32_to_f16(65519.0f), 0x7bff);
    CQ_CHECK_EQ_INT(cq_f32_to_f16(2.98023224e-8f), 0); /* exactly half the smallest subnormal: even */
    CQ_CHECK_EQ_INT(cq_f32_to_f16(nextafterf(2.98023224e-8f, 1.0f)), 1);
}

CQ_TEST(bf16_rounding)
{
    CQ_CHECK_EQ_INT(cq_f32_to_bf16(1.00390625f), 0x3f80);  /* tie to even (down) */
    CQ_CHECK_EQ_INT(cq_f32_to_bf16(1.01171875f), 0x3f82);  /* tie to even (up) */
    CQ_CHECK(isnan(cq_bf16_to_f32(cq_f32_to_bf16(NAN))));
    CQ_CHECK_EQ_INT(cq_f32_to_bf16(INFINITY), 0x7f80);
}
