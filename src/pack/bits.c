/* Dense LSB-first bit stream (notes §B.2, §D.2). For b in {2,4,8} each 32-bit word holds 32/b
 * whole values; for b=3 values straddle words, giving GPTQ's 3-words-per-32-values layout. One
 * streaming loop serves every width: a 64-bit accumulator collects b bits per value and spills a
 * word whenever 32 bits are ready. */
#include "cquant/pack.h"

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
