/* The pre-tokenizer regexes of GPT-2, Llama-3 and Qwen2, written out by hand. Each function
 * returns the end of the leftmost-first match at pos, following the alternation order of the
 * pattern exactly (onig/Rust semantics: the first alternative that matches wins, quantifiers
 * are greedy and backtrack). The classes are \p{L}, \p{N} and \s (White_Space). */
#include "model/tok_internal.h"
#include "model/unicode.h"

#include <string.h>

static const char re_gpt2[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char re_llama3[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char re_qwen2[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
                               "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

int tok_regex_kind(const char *pattern)
{
    if (strcmp(pattern, re_gpt2) == 0)
        return TOK_RE_GPT2;
    if (strcmp(pattern, re_llama3) == 0)
        return TOK_RE_LLAMA3;
    if (strcmp(pattern, re_qwen2) == 0)
        return TOK_RE_QWEN2;
    return 0;
}

typedef struct cur {
    const unsigned char *s;
    size_t len;
} cur;

/* Code point and its length at p; p < len and the text is valid UTF-8. */
static uint32_t at(const cur *c, size_t p, int *n)
{
    uint32_t cp;
    if (c->s[p] < 0x80) {
        *n = 1;
        return c->s[p];
    }
    *n = cq_utf8_decode(c->s + p, c->len - p, &cp);
    if (*n == 0) { /* unreachable for checked text; treat the byte as "other" */
        *n = 1;
        return 0xFFFD;
    }
    return cp;
}

static int cls_at(const cur *c, size_t p, int *n)
{
    return cq_uni_class(at(c, p, n));
}

/* Advance over characters of class cls (at most max of them; max < 0: no limit). */
static size_t run_cls(const cur *c, size_t p, int cls, int max)
{
    int n;
    while (p < c->len && max != 0 && cls_at(c, p, &n) == cls) {
        p += (size_t)n;
        if (max > 0)
            max--;
    }
    return p;
}

static size_t run_crlf(const cur *c, size_t p)
{
    while (p < c->len && (c->s[p] == '\r' || c->s[p] == '\n'))
        p++;
    return p;
}

/* 's 't 're 've 'm 'll 'd at p (s[p] == '\''); 0 when none. With icase, the (?i:) group:
 * ASCII case folding plus U+017F LATIN SMALL LETTER LONG S, which folds to 's'. */
static size_t contraction(const cur *c, size_t p, int icase)
{
    size_t q = p + 1;
    if (q >= c->len)
        return 0;
    unsigned a = c->s[q], b = q + 1 < c->len ? c->s[q + 1] : 0;
    if (icase) {
        if (a == 0xC5 && b == 0xBF)
            return q + 2;
        a = (a >= 'A' && a <= 'Z') ? a | 0x20 : a;
        b = (b >= 'A' && b <= 'Z') ? b | 0x20 : b;
    }
    if (a == 's' || a == 't' || a == 'm' || a == 'd')
        return q + 1;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
        return q + 2;
    return 0;
}

/* \s+(?!\S) then \s+ at p (s[p] is whitespace): the run, less its last character when a
 * non-space follows and the run has more than one character. */
static size_t space_tail(const cur *c, size_t p, int n0)
{
    size_t e = p, last = p;
    int n;
    while (e < c->len && cls_at(c, e, &n) == CQ_UC_SPACE) {
        last = e;
        e += (size_t)n;
    }
    if (e == c->len)
        return e;
    return last > p ? last : p + (size_t)n0;
}

static size_t gpt2_next(const cur *c, size_t p)
{
    int n0, n1;
    if (c->s[p] == '\'') {
        size_t e = contraction(c, p, 0);
        if (e)
            return e;
    }
    int k = cls_at(c, p, &n0);
    if (c->s[p] == ' ' && p + 1 < c->len) {
        int k1 = cls_at(c, p + 1, &n1);
        if (k1 != CQ_UC_SPACE)
            return run_cls(c, p + 1, k1, -1);
    }
    if (k != CQ_UC_SPACE)
        return run_cls(c, p, k, -1);
    return space_tail(c, p, n0);
}

/* Llama-3 (max_digits 3) and Qwen2 (max_digits 1). */
static size_t llama3_next(const cur *c, size_t p, int max_digits)
{
    int n0, n1;
    if (c->s[p] == '\'') {
        size_t e = contraction(c, p, 1);
        if (e)
            return e;
    }
    int k = cls_at(c, p, &n0);
    if (k == CQ_UC_LETTER)
        return run_cls(c, p, CQ_UC_LETTER, -1);
    int k1 = p + (size_t)n0 < c->len ? cls_at(c, p + (size_t)n0, &n1) : -1;
    /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    if (k != CQ_UC_NUMBER && c->s[p] != '\r' && c->s[p] != '\n' && k1 == CQ_UC_LETTER)
        return run_cls(c, p + (size_t)n0, CQ_UC_LETTER, -1);
    if (k == CQ_UC_NUMBER)
        return run_cls(c, p, CQ_UC_NUMBER, max_digits);
    /*  ?[^\s\p{L}\p{N}]+[\r\n]* */
    if (c->s[p] == ' ' && k1 == CQ_UC_OTHER)
        return run_crlf(c, run_cls(c, p + 1, CQ_UC_OTHER, -1));
    if (k == CQ_UC_OTHER)
        return run_crlf(c, run_cls(c, p, CQ_UC_OTHER, -1));
    /* \s*[\r\n]+ : backtracking leaves the match just after the run's last \r or \n. */
    size_t e = p, nl = 0;
    int n;
    while (e < c->len && cls_at(c, e, &n) == CQ_UC_SPACE) {
        if (c->s[e] == '\r' || c->s[e] == '\n')
            nl = e + 1;
        e += (size_t)n;
    }
    if (nl)
        return nl;
    return space_tail(c, p, n0);
}

size_t tok_regex_next(int kind, const char *s, size_t len, size_t pos)
{
    cur c = {(const unsigned char *)s, len};
    switch (kind) {
    case TOK_RE_GPT2:
        return gpt2_next(&c, pos);
    case TOK_RE_LLAMA3:
        return llama3_next(&c, pos, 3);
    case TOK_RE_QWEN2:
        return llama3_next(&c, pos, 1);
    default:
        return len;
    }
}
