/* UTF-8 and character classes; the range tables are generated (unicode_tables.c). */
#include "model/unicode.h"

static int in_ranges(const cq_uni_range *r, int n, uint32_t cp)
{
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < r[mid].lo)
            hi = mid - 1;
        else if (cp > r[mid].hi)
            lo = mid + 1;
        else
            return 1;
    }
    return 0;
}

int cq_uni_is_space(uint32_t cp)
{
    /* White_Space (PropList.txt); unchanged since Unicode 6.3 removed U+180E. */
    if (cp < 0x80)
        return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
    return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
           cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

int cq_uni_class(uint32_t cp)
{
    if (cp < 0x80) {
        if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z')
            return CQ_UC_LETTER;
        if (cp >= '0' && cp <= '9')
            return CQ_UC_NUMBER;
        return cq_uni_is_space(cp) ? CQ_UC_SPACE : CQ_UC_OTHER;
    }
    if (cq_uni_is_space(cp))
        return CQ_UC_SPACE;
    if (in_ranges(cq_uni_letter, cq_uni_letter_n, cp))
        return CQ_UC_LETTER;
    if (in_ranges(cq_uni_number, cq_uni_number_n, cp))
        return CQ_UC_NUMBER;
    return CQ_UC_OTHER;
}

int cq_uni_nfc_unsafe_cp(uint32_t cp)
{
    /* The generated table starts at U+0300: nothing below it changes under NFC. */
    return cp >= 0x300 && in_ranges(cq_uni_nfc_unsafe, cq_uni_nfc_unsafe_n, cp);
}

int cq_utf8_decode(const unsigned char *s, size_t len, uint32_t *cp)
{
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    int n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
    if (n == 0 || c > 0xF4 || (size_t)n > len)
        return 0;
    uint32_t v = c & (0x3F >> (n - 1));
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = v << 6 | (s[i] & 0x3F);
    }
    /* Reject overlong forms, surrogates and values past U+10FFFF. */
    if ((n == 3 && v < 0x800) || (n == 4 && (v < 0x10000 || v > 0x10FFFF)) ||
        (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return n;
}

int cq_utf8_encode(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12);
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

int64_t cq_utf8_check(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        int n = cq_utf8_decode(p + i, len - i, &cp);
        if (n == 0)
            return (int64_t)i;
        i += (size_t)n;
    }
    return -1;
}
