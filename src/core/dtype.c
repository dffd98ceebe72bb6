/* dtype table and f16/bf16 <-> f32 conversion. The scalar paths are the reference; the F16C
 * path is taken only when the CPU reports it and gives identical bits (tested on all 65,536
 * patterns). */
#include "cquant/dtype.h"

#include <string.h>

static const cq_dtype_traits traits[CQ_DT_COUNT] = {
    [CQ_DT_F64] = {"F64", 8, 1},  [CQ_DT_F32] = {"F32", 4, 1}, [CQ_DT_F16] = {"F16", 2, 1},
    [CQ_DT_BF16] = {"BF16", 2, 1}, [CQ_DT_I64] = {"I64", 8, 0}, [CQ_DT_I32] = {"I32", 4, 0},
    [CQ_DT_I16] = {"I16", 2, 0},  [CQ_DT_I8] = {"I8", 1, 0},   [CQ_DT_U8] = {"U8", 1, 0},
    [CQ_DT_BOOL] = {"BOOL", 1, 0},
};

const cq_dtype_traits *cq_dtype_info(cq_dtype dt)
{
    return (unsigned)dt < CQ_DT_COUNT ? &traits[dt] : NULL;
}

int cq_dtype_parse(const char *name, cq_dtype *dt)
{
    for (int i = 0; i < CQ_DT_COUNT; i++)
        if (strcmp(name, traits[i].name) == 0) {
            *dt = (cq_dtype)i;
            return 0;
        }
    return -1;
}

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* One value through F16C: the scale of every group of every layer goes f32 -> f16 -> f32 a few
 * times (rounding, packing, checking), and the scalar code's branches cost ~2 ns a call.
 * Finite values and infinities only: NaN payloads take the scalar path. */
static int have_f16c(void);
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
__attribute__((target("f16c"))) static uint16_t f32_to_f16_hw(float f)
{
    return (uint16_t)_cvtss_sh(f, 0); /* 0: round to nearest even, whatever MXCSR says */
}
__attribute__((target("f16c"))) static float f16_to_f32_hw(uint16_t h) { return _cvtsh_ss(h); }
#else
static uint16_t f32_to_f16_hw(float f) { (void)f; return 0; }
static float f16_to_f32_hw(uint16_t h) { (void)h; return 0.0f; }
#endif

float cq_f16_to_f32(uint16_t h)
{
    if ((h & 0x7c00) != 0x7c00 && have_f16c())
        return f16_to_f32_hw(h);
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f) /* Inf/NaN: keep the payload, force quiet like hardware does */
        return bits_f32(sign | 0x7f800000u | (man << 13) | (man ? 0x400000u : 0));
    if (exp == 0) {
        if (man == 0)
            return bits_f32(sign);
        /* subnormal: value = man * 2^-24, exactly representable in f32 */
        float v = (float)man * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    return bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t cq_f32_to_f16(float f)
{
    uint32_t u = f32_bits(f);
    if ((u & 0x7f800000u) != 0x7f800000u && have_f16c())
        return f32_to_f16_hw(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t exp = (u >> 23) & 0xff, man = u & 0x7fffff;
    if (exp == 0xff)
        return sign | 0x7c00 | (man ? (uint16_t)(0x200 | (man >> 13)) : 0);
    int e = (int)exp - 127 + 15;
    if (e >= 0x1f)
        return sign | 0x7c00;
    if (e <= 0) {
        if (e < -10)
            return sign; /* below half the smallest subnormal: rounds to zero */
        man |= 0x800000;
        int shift = 14 - e; /* 13 + (1 - e) */
        uint32_t half = 1u << (shift - 1), rem = man & ((1u << shift) - 1);
        uint32_t r = man >> shift;
        if (rem > half || (rem == half && (r & 1)))
            r++;
        return sign | (uint16_t)r;
    }
    uint32_t r = ((uint32_t)e << 10) | (man >> 13), rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (r & 1)))
        r++; /* a carry into the exponent is correct, up to Inf */
    return sign | (uint16_t)r;
}

float cq_bf16_to_f32(uint16_t h)
{
    return bits_f32((uint32_t)h << 16);
}

uint16_t cq_f32_to_bf16(float f)
{
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffff) > 0x7f800000)
        return (uint16_t)((u >> 16) | 0x40); /* quiet NaN, never rounds to Inf */
    u += 0x7fff + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

#if defined(__x86_64__)
#include <immintrin.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("f16c,avx"))) static void f16_to_f32_f16c(const uint8_t *in, float *out,
                                                                 size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(in + 2 * i));
        _mm256_storeu_ps(out + i, _mm256_cvtph_ps(h));
    }
    for (; i < n; i++) {
        uint16_t h;
        memcpy(&h, in + 2 * i, 2);
        out[i] = cq_f16_to_f32(h);
    }
}
#include <cpuid.h>
/* CPUID leaf 1: ECX bit 28 = AVX, bit 29 = F16C, bit 27 = OSXSAVE; XCR0 must enable the YMM
 * state. (clang 14 rejects __builtin_cpu_supports("f16c"), so ask CPUID directly.) */
static int have_f16c(void)
{
    static int cached = -1;
    if (cached < 0) {
        unsigned a, b, c, d;
        cached = 0;
        if (__get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 27)) && (c & (1u << 28)) &&
            (c & (1u << 29))) {
            unsigned lo, hi;
            __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
            cached = (lo & 6u) == 6u;
        }
    }
    return cached;
}
#else
static int have_f16c(void) { return 0; }
static void f16_to_f32_f16c(const uint8_t *in, float *out, size_t n) { (void)in; (void)out; (void)n; }
#endif

/* bf16 is the high half of an f32: interleaving zero halves below 8 values at a time is the
 * same bit copy as cq_bf16_to_f32 (SSE2, the x86-64 baseline: no run-time check). */
static void bf16_to_f32(const uint8_t *in, float *out, size_t n)
{
    size_t i = 0;
#if defined(__x86_64__) && defined(__SSE2__)
    const __m128i zero = _mm_setzero_si128();
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(in + 2 * i));
        _mm_storeu_si128((__m128i *)(out + i), _mm_unpacklo_epi16(zero, h));
        _mm_storeu_si128((__m128i *)(out + i + 4), _mm_unpackhi_epi16(zero, h));
    }
#endif
    for (; i < n; i++) {
        uint16_t h;
        memcpy(&h, in + 2 * i, 2);
        out[i] = cq_bf16_to_f32(h);
    }
}

static void ints_to_f32(cq_dtype src, const uint8_t *in, float *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        switch (src) {
        case CQ_DT_I64: { int64_t v; memcpy(&v, in + 8 * i, 8); out[i] = (float)v; break; }
        case CQ_DT_I32: { int32_t v; memcpy(&v, in + 4 * i, 4); out[i] = (float)v; break; }
        case CQ_DT_I16: { int16_t v; memcpy(&v, in + 2 * i, 2); out[i] = (float)v; break; }
        case CQ_DT_I8: out[i] = (float)(int8_t)in[i]; break;
        default: out[i] = (float)in[i]; break; /* U8, BOOL */
        }
    }
}

void cq_convert_to_f32(cq_dtype src, const void *vin, float *out, size_t n)
{
    const uint8_t *in = vin;
    uint16_t h;
    switch (src) {
    case CQ_DT_F32:
        memcpy(out, in, n * 4);
        return;
    case CQ_DT_F64:
        for (size_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, in + 8 * i, 8);
            out[i] = (float)d;
        }
        return;
    case CQ_DT_F16:
        /* The hardware path quiets signalling NaNs the same way as the scalar one. */
        if (have_f16c()) {
            f16_to_f32_f16c(in, out, n);
            return;
        }
        for (size_t i = 0; i < n; i++) {
            memcpy(&h, in + 2 * i, 2);
            out[i] = cq_f16_to_f32(h);
        }
        return;
    case CQ_DT_BF16:
        bf16_to_f32(in, out, n);
        return;
    default:
        ints_to_f32(src, in, out, n);
    }
}

int cq_convert_from_f32(cq_dtype dst, const float *in, void *vout, size_t n)
{
    uint8_t *out = vout;
    uint16_t h;
    switch (dst) {
    case CQ_DT_F32:
        memcpy(out, in, n * 4);
        return 0;
    case CQ_DT_F64:
        for (size_t i = 0; i < n; i++) {
            double d = in[i];
            memcpy(out + 8 * i, &d, 8);
        }
        return 0;
    case CQ_DT_F16:
        for (size_t i = 0; i < n; i++) {
            h = cq_f32_to_f16(in[i]);
            memcpy(out + 2 * i, &h, 2);
        }
        return 0;
    case CQ_DT_BF16:
        for (size_t i = 0; i < n; i++) {
            h = cq_f32_to_bf16(in[i]);
            memcpy(out + 2 * i, &h, 2);
        }
        return 0;
    default:
        return -1;
    }
}
