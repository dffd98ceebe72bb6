/* Dense LSB-first bit stream (notes §B.2, §D.2). For b in {2,4,8} each 32-bit word holds 32/b
 * whole values; for b=3 values straddle words, giving GPTQ's 3-words-per-32-values layout. One
 * streaming loop serves every width: a 64-bit accumulator collects b bits per value and spills a
 * word whenever 32 bits are ready. */
#include "cquant/pack.h"
#include "core/cpu.h"

int64_t cq_bits_words(int64_t n, int b)
{
    /* ceil(n*b/32) without forming n*b, which could overflow for absurd n */
    return n / 32 * b + (n % 32 * b + 31) / 32;
}

void cq_bits_pack(const uint32_t *vals, int64_t n, int b, uint32_t *words)
{
    CQ_ASSERT(b >= 1 && b <= 8 && n >= 0);
    const uint64_t mask = (1u << b) - 1;
    uint64_t acc = 0;
    int nacc = 0;
    int64_t w = 0;
    for (int64_t i = 0; i < n; i++) {
        acc |= ((uint64_t)vals[i] & mask) << nacc;
        nacc += b;
        if (nacc >= 32) {
            words[w++] = (uint32_t)acc;
            acc >>= 32;
            nacc -= 32;
        }
    }
    if (nacc > 0) /* trailing partial word: unused high bits stay zero (CT pads with zeros) */
        words[w] = (uint32_t)acc;
}

#include <string.h>

/* Generic path of cq_bits_pack_u8, from value `first` on (first * b a multiple of 32). */
static void pack_u8_tail(const uint8_t *vals, int64_t first, int64_t n, int b, uint32_t *words)
{
    const uint64_t mask = (1u << b) - 1;
    uint64_t acc = 0;
    int nacc = 0;
    int64_t w = first / 32 * b + first % 32 * b / 32; /* = first * b / 32, no overflow */
    for (int64_t i = first; i < n; i++) {
        acc |= ((uint64_t)vals[i] & mask) << nacc;
        nacc += b;
        if (nacc >= 32) {
            words[w++] = (uint32_t)acc;
            acc >>= 32;
            nacc -= 32;
        }
    }
    if (nacc > 0)
        words[w] = (uint32_t)acc;
}

/* 8 values of 4 bits, one per byte of x (little-endian), to 32 bits: merge neighbours
 * pairwise (byte pairs, then 16-bit, then 32-bit halves). */
static uint32_t nibbles8(uint64_t x)
{
    x &= 0x0F0F0F0F0F0F0F0Full;
    x = (x | (x >> 4)) & 0x00FF00FF00FF00FFull;
    x = (x | (x >> 8)) & 0x0000FFFF0000FFFFull;
    return (uint32_t)(x | (x >> 16));
}

/* 8 values of 2 bits to 16 bits, the same way. */
static uint32_t crumbs8(uint64_t x)
{
    x &= 0x0303030303030303ull;
    x = (x | (x >> 6)) & 0x000F000F000F000Full;
    x = (x | (x >> 12)) & 0x000000FF000000FFull;
    return (uint32_t)((x | (x >> 24)) & 0xFFFF);
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* 4 bits, 64 values per step: maddubs with (1, 16) byte weights gives lo | hi << 4 for each
 * byte pair (both masked to 4 bits first, as nibbles8 does), packus narrows the 16-bit sums
 * to bytes. Little-endian bytes of the words are exactly those pairs. Returns values done. */
__attribute__((target("avx2"))) static int64_t pack4_avx2(const uint8_t *vals, int64_t n,
                                                          uint32_t *words)
{
    const __m256i lo4 = _mm256_set1_epi8(0x0F), wts = _mm256_set1_epi16(0x1001);
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        __m256i a = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(vals + i)), lo4);
        __m256i b = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(vals + i + 32)), lo4);
        __m256i p = _mm256_packus_epi16(_mm256_maddubs_epi16(a, wts),
                                        _mm256_maddubs_epi16(b, wts)); /* a0 b0 | a1 b1 */
        p = _mm256_permute4x64_epi64(p, 0xD8);                        /* a0 a1 | b0 b1 */
        _mm256_storeu_si256((__m256i *)(words + i / 8), p);
    }
    return i;
}
#endif

void cq_bits_pack_u8(const uint8_t *vals, int64_t n, int b, uint32_t *words)
{
    CQ_ASSERT(b >= 1 && b <= 8 && n >= 0);
    int64_t i = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t x, y;
    uint32_t v;
#if defined(__x86_64__) && defined(__GNUC__)
    if (b == 4 && cq_cpu_avx2())
        i = pack4_avx2(vals, n, words);
#endif
    if (b == 4) {
        for (; i + 8 <= n; i += 8) {
            memcpy(&x, vals + i, 8);
            words[i / 8] = nibbles8(x);
        }
    } else if (b == 2) {
        for (; i + 16 <= n; i += 16) {
            memcpy(&x, vals + i, 8);
            memcpy(&y, vals + i + 8, 8);
            words[i / 16] = crumbs8(x) | crumbs8(y) << 16;
        }
    } else if (b == 8) {
        for (; i + 4 <= n; i += 4) {
            memcpy(&v, vals + i, 4);
            words[i / 4] = v;
        }
    }
#endif
    pack_u8_tail(vals, i, n, b, words);
}

void cq_bits_unpack(const uint32_t *words, int64_t n, int b, uint32_t *vals)
{
    CQ_ASSERT(b >= 1 && b <= 8 && n >= 0);
    const uint64_t mask = (1u << b) - 1;
    uint64_t acc = 0;
    int nacc = 0;
    int64_t w = 0;
    for (int64_t i = 0; i < n; i++) {
        if (nacc < b) { /* refill: never reads past word ceil(n*b/32)-1 */
            acc |= (uint64_t)words[w++] << nacc;
            nacc += 32;
        }
        vals[i] = (uint32_t)(acc & mask);
        acc >>= b;
        nacc -= b;
    }
}
