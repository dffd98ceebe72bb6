/* SHA-256 as specified in FIPS 180-4 section 6.2; big-endian words, 64-byte blocks.
 * Two block functions: the portable one below, and one on the x86 SHA extensions (SHA-NI),
 * taken when CPUID reports them. Hashing the input shards is a full pass over the model, and
 * the portable code runs at ~200 MB/s, SHA-NI at ~1.5-2 GB/s. */
#include "cquant/sha256.h"
#include "core/cpu.h"

#include <string.h>

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t ror(uint32_t x, int n)
{
    return (x >> n) | (x << (32 - n));
}

static void block_portable(uint32_t h[8], const uint8_t *p)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 =
            k + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
        uint32_t t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        k = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += k;
}

static void blocks_portable(uint32_t h[8], const uint8_t *p, size_t nblocks)
{
    for (; nblocks > 0; nblocks--, p += 64)
        block_portable(h, p);
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define SHANI __attribute__((target("sha,sse4.1")))

/* SHA-NI keeps the state as two vectors, ABEF and CDGH (Intel's "SHA extensions" paper). */
SHANI static void shani_load(const uint32_t h[8], __m128i *abef, __m128i *cdgh)
{
    __m128i cdab = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&h[0]), 0xB1);
    __m128i efgh = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&h[4]), 0x1B);
    *abef = _mm_alignr_epi8(cdab, efgh, 8);
    *cdgh = _mm_blend_epi16(efgh, cdab, 0xF0);
}

SHANI static void shani_store(uint32_t h[8], __m128i abef, __m128i cdgh)
{
    __m128i feba = _mm_shuffle_epi32(abef, 0x1B);
    __m128i dchg = _mm_shuffle_epi32(cdgh, 0xB1);
    _mm_storeu_si128((__m128i *)&h[0], _mm_blend_epi16(feba, dchg, 0xF0));
    _mm_storeu_si128((__m128i *)&h[4], _mm_alignr_epi8(dchg, feba, 8));
}

/* Schedule words W[4i..4i+3] of block P, given the previous 16 in W (a ring of 4 vectors):
 * the first 16 are the message (big-endian), the rest msg2(msg1(W[i-16..], W[i-12..]) +
 * W[i-7..i-4], W[i-4..]). */
SHANI static inline __m128i shani_sched(__m128i w[4], const uint8_t *p, int i)
{
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
    __m128i m;
    if (i < 4) {
        m = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * i)), bswap);
    } else {
        m = _mm_sha256msg1_epu32(w[i & 3], w[(i + 1) & 3]);
        m = _mm_add_epi32(m, _mm_alignr_epi8(w[(i + 3) & 3], w[(i + 2) & 3], 4));
        m = _mm_sha256msg2_epu32(m, w[(i + 3) & 3]);
    }
    w[i & 3] = m;
    return _mm_add_epi32(m, _mm_loadu_si128((const __m128i *)&K[4 * i]));
}

/* 4 rounds: sha256rnds2 does 2 with the low two words of (W + K), then 2 more with the high
 * two moved down. */
SHANI static inline void shani_rounds(__m128i *abef, __m128i *cdgh, __m128i wk)
{
    *cdgh = _mm_sha256rnds2_epu32(*cdgh, *abef, wk);
    *abef = _mm_sha256rnds2_epu32(*abef, *cdgh, _mm_shuffle_epi32(wk, 0x0E));
}

/* The loop is unrolled (the ring indices become constants and w stays in registers): 20%
 * faster than the rolled loop. */
SHANI static void blocks_shani(uint32_t h[8], const uint8_t *p, size_t nblocks)
{
    __m128i abef, cdgh;
    shani_load(h, &abef, &cdgh);
    for (; nblocks > 0; nblocks--, p += 64) {
        __m128i abef0 = abef, cdgh0 = cdgh, w[4];
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++)
            shani_rounds(&abef, &cdgh, shani_sched(w, p, i));
        abef = _mm_add_epi32(abef, abef0);
        cdgh = _mm_add_epi32(cdgh, cdgh0);
    }
    shani_store(h, abef, cdgh);
}

/* Two independent messages at once. One message is a chain of dependent sha256rnds2 (each
 * waits for the last); interleaving a second chain fills the unit's idle cycles, so two
 * files hash in little more than the time of one. */
SHANI static void blocks2_shani(uint32_t ha[8], const uint8_t *pa, uint32_t hb[8],
                                const uint8_t *pb, size_t nblocks)
{
    __m128i abef_a, cdgh_a, abef_b, cdgh_b;
    shani_load(ha, &abef_a, &cdgh_a);
    shani_load(hb, &abef_b, &cdgh_b);
    for (; nblocks > 0; nblocks--, pa += 64, pb += 64) {
        __m128i a0 = abef_a, c0 = cdgh_a, b0 = abef_b, d0 = cdgh_b, wa[4], wb[4];
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++) {
            __m128i ka = shani_sched(wa, pa, i), kb = shani_sched(wb, pb, i);
            shani_rounds(&abef_a, &cdgh_a, ka);
            shani_rounds(&abef_b, &cdgh_b, kb);
        }
        abef_a = _mm_add_epi32(abef_a, a0);
        cdgh_a = _mm_add_epi32(cdgh_a, c0);
        abef_b = _mm_add_epi32(abef_b, b0);
        cdgh_b = _mm_add_epi32(cdgh_b, d0);
    }
    shani_store(ha, abef_a, cdgh_a);
    shani_store(hb, abef_b, cdgh_b);
}
/* Three messages at once: the same with a third chain (about 12% more bytes per cycle than
 * two on this machine's EPYC: the unit is nearly busy with two). */
SHANI static void blocks3_shani(uint32_t *h[3], const uint8_t *p[3], size_t nblocks)
{
    __m128i abef[3], cdgh[3];
    const uint8_t *pa = p[0], *pb = p[1], *pc = p[2];
    for (int l = 0; l < 3; l++)
        shani_load(h[l], &abef[l], &cdgh[l]);
    for (; nblocks > 0; nblocks--, pa += 64, pb += 64, pc += 64) {
        __m128i a0 = abef[0], c0 = cdgh[0], a1 = abef[1], c1 = cdgh[1], a2 = abef[2], c2 = cdgh[2];
        __m128i wa[4], wb[4], wc[4];
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++) {
            __m128i ka = shani_sched(wa, pa, i), kb = shani_sched(wb, pb, i);
            __m128i kc = shani_sched(wc, pc, i);
            shani_rounds(&abef[0], &cdgh[0], ka);
            shani_rounds(&abef[1], &cdgh[1], kb);
            shani_rounds(&abef[2], &cdgh[2], kc);
        }
        abef[0] = _mm_add_epi32(abef[0], a0), cdgh[0] = _mm_add_epi32(cdgh[0], c0);
        abef[1] = _mm_add_epi32(abef[1], a1), cdgh[1] = _mm_add_epi32(cdgh[1], c1);
        abef[2] = _mm_add_epi32(abef[2], a2), cdgh[2] = _mm_add_epi32(cdgh[2], c2);
    }
    for (int l = 0; l < 3; l++)
        shani_store(h[l], abef[l], cdgh[l]);
}
#undef SHANI
#else
static void blocks_shani(uint32_t h[8], const uint8_t *p, size_t nblocks)
{
    blocks_portable(h, p, nblocks);
}

static void blocks2_shani(uint32_t ha[8], const uint8_t *pa, uint32_t hb[8], const uint8_t *pb,
                          size_t nblocks)
{
    blocks_portable(ha, pa, nblocks);
    blocks_portable(hb, pb, nblocks);
}

static void blocks3_shani(uint32_t *h[3], const uint8_t *p[3], size_t nblocks)
{
    for (int l = 0; l < 3; l++)
        blocks_portable(h[l], p[l], nblocks);
}
#endif

static void blocks(uint32_t h[8], const uint8_t *p, size_t nblocks)
{
    if (cq_cpu_shani())
        blocks_shani(h, p, nblocks);
    else
        blocks_portable(h, p, nblocks);
}

void cq_sha256_init(cq_sha256 *s)
{
    static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, h0, sizeof h0);
    s->nbytes = 0;
    s->nbuf = 0;
}

void cq_sha256_update(cq_sha256 *s, const void *data, size_t len)
{
    const uint8_t *p = data;
    s->nbytes += len;
    if (s->nbuf) {
        size_t take = 64 - s->nbuf < len ? 64 - s->nbuf : len;
        memcpy(s->buf + s->nbuf, p, take);
        s->nbuf += take, p += take, len -= take;
        if (s->nbuf < 64)
            return;
        blocks(s->h, s->buf, 1);
        s->nbuf = 0;
    }
    size_t nblocks = len / 64;
    if (nblocks) {
        blocks(s->h, p, nblocks);
        p += 64 * nblocks;
        len -= 64 * nblocks;
    }
    memcpy(s->buf, p, len);
    s->nbuf = len;
}

void cq_sha256_update2(cq_sha256 *a, const void *pa, cq_sha256 *b, const void *pb, size_t len)
{
    size_t nblocks = len / 64;
    if (a->nbuf || b->nbuf || !nblocks || !cq_cpu_shani()) {
        cq_sha256_update(a, pa, len);
        cq_sha256_update(b, pb, len);
        return;
    }
    blocks2_shani(a->h, pa, b->h, pb, nblocks);
    a->nbytes += 64 * nblocks;
    b->nbytes += 64 * nblocks;
    cq_sha256_update(a, (const uint8_t *)pa + 64 * nblocks, len - 64 * nblocks);
    cq_sha256_update(b, (const uint8_t *)pb + 64 * nblocks, len - 64 * nblocks);
}

void cq_sha256_update3(cq_sha256 *a, const void *pa, cq_sha256 *b, const void *pb,
                       cq_sha256 *c, const void *pc, size_t len)
{
    size_t nblocks = len / 64;
    if (a->nbuf || b->nbuf || c->nbuf || !nblocks || !cq_cpu_shani()) {
        cq_sha256_update2(a, pa, b, pb, len);
        cq_sha256_update(c, pc, len);
        return;
    }
    uint32_t *h[3] = {a->h, b->h, c->h};
    const uint8_t *p[3] = {pa, pb, pc};
    blocks3_shani(h, p, nblocks);
    size_t done = 64 * nblocks;
    a->nbytes += done, b->nbytes += done, c->nbytes += done;
    cq_sha256_update(a, p[0] + done, len - done);
    cq_sha256_update(b, p[1] + done, len - done);
    cq_sha256_update(c, p[2] + done, len - done);
}

void cq_sha256_final(cq_sha256 *s, uint8_t digest[32])
{
    /* Padding: 0x80, zeros to 56 mod 64, then the bit length as a big-endian 64-bit word. */
    uint64_t bits = s->nbytes * 8;
    uint8_t pad[72] = {0x80};
    size_t npad = (s->nbuf < 56 ? 56 : 120) - s->nbuf;
    for (int i = 0; i < 8; i++)
        pad[npad + i] = (uint8_t)(bits >> (56 - 8 * i));
    cq_sha256_update(s, pad, npad + 8);
    for (int i = 0; i < 8; i++) {
        digest[4 * i] = (uint8_t)(s->h[i] >> 24);
        digest[4 * i + 1] = (uint8_t)(s->h[i] >> 16);
        digest[4 * i + 2] = (uint8_t)(s->h[i] >> 8);
        digest[4 * i + 3] = (uint8_t)s->h[i];
    }
}

void cq_sha256_to_hex(const uint8_t digest[32], char hex[65])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 15];
    }
    hex[64] = 0;
}

void cq_sha256_hex(const void *data, size_t len, char hex[65])
{
    cq_sha256 s;
    uint8_t d[32];
    cq_sha256_init(&s);
    cq_sha256_update(&s, data, len);
    cq_sha256_final(&s, d);
    cq_sha256_to_hex(d, hex);
}
