/* Encoding: split on added tokens, normalize each piece, pre-tokenize it into words (regex or
 * Metaspace splits), and hand each word to BPE (tok_bpe.c). */
#include "model/tok_internal.h"
#include "model/unicode.h"
#include "cquant/checked.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tok_nomem(tok_enc *c)
{
    return cq_errorf(c->err, CQ_E_NOMEM, "tokenizer: out of memory");
}

int tok_grow(void **p, size_t *cap, size_t need, size_t sz)
{
    if (need <= *cap)
        return 0;
    size_t nc = *cap ? *cap : 64, bytes;
    while (nc < need)
        nc *= 2;
    if (cq_mul_size(nc, sz, &bytes) != 0)
        return -1;
    void *q = realloc(*p, bytes);
    if (!q)
        return -1;
    *p = q;
    *cap = nc;
    return 0;
}

int tok_emit(tok_enc *c, int32_t id)
{
    if (tok_grow((void **)&c->ids, &c->cap, c->n + 1, sizeof *c->ids) != 0)
        return tok_nomem(c);
    c->ids[c->n++] = id;
    return CQ_OK;
}

int tok_buf_put(tok_buf *b, const char *s, size_t n)
{
    if (tok_grow((void **)&b->p, &b->cap, b->n + n + 1, 1) != 0)
        return -1;
    memcpy(b->p + b->n, s, n);
    b->n += n;
    return 0;
}

static int split_level(tok_enc *c, int level, const char *s, size_t n)
{
    const cq_tokenizer *t = c->t;
    int rc;
    if (n == 0)
        return CQ_OK;
    if (level == t->n_split)
        return tok_bpe_word(c, s, n);
    if (t->split[level].kind == TOK_SPLIT_REGEX) {
        for (size_t p = 0; p < n;) {
            size_t e = tok_regex_next(t->split[level].regex, s, n, p);
            if (e <= p || e > n)
                return cq_errorf(c->err, CQ_E_INTERNAL, "tokenizer: regex made no progress");
            if ((rc = split_level(c, level + 1, s + p, e - p)) != CQ_OK)
                return rc;
            p = e;
        }
        return CQ_OK;
    }
    /* Metaspace split: MergedWithNext, each word starts at a replacement character. */
    size_t start = 0, r = t->ms_rep_len;
    for (size_t p = 1; p + r <= n; p++) {
        if (memcmp(s + p, t->ms_rep, r) == 0) {
            if ((rc = split_level(c, level + 1, s + start, p - start)) != CQ_OK)
                return rc;
            start = p;
        }
    }
    return split_level(c, level + 1, s + start, n - start);
}

/* Replace every occurrence of a by b in src into dst. */
static int replace_into(tok_buf *dst, const char *src, size_t n, const char *a, size_t alen,
                        const char *b, size_t blen)
{
    dst->n = 0;
    size_t last = 0;
    for (size_t p = 0; alen && p + alen <= n;) {
        if (memcmp(src + p, a, alen) == 0) {
            if (tok_buf_put(dst, src + last, p - last) != 0 || tok_buf_put(dst, b, blen) != 0)
                return -1;
            p += alen;
            last = p;
        } else {
            p++;
        }
    }
    return tok_buf_put(dst, src + last, n - last);
}

static int prepend_into(tok_buf *dst, const char *src, size_t n, const char *a, size_t alen)
{
    dst->n = 0;
    return tok_buf_put(dst, a, alen) != 0 || tok_buf_put(dst, src, n) != 0 ? -1 : 0;
}

static int nfc_check(tok_enc *c, const char *s, size_t n)
{
    for (size_t p = 0; p < n;) {
        uint32_t cp;
        int k = cq_utf8_decode((const unsigned char *)s + p, n - p, &cp);
        if (k <= 0)
            k = 1;
        else if (cq_uni_nfc_unsafe_cp(cp))
            return cq_errorf(c->err, CQ_E_UNSUPPORTED,
                             "tokenizer: NFC normalizer: text is not NFC-stable at U+%04X "
                             "(full NFC is not implemented)",
                             (unsigned)cp);
        p += (size_t)k;
    }
    return CQ_OK;
}

/* The normalizer chain over (*s, *n), writing into the two scratch buffers in turn. */
static int normalize(tok_enc *c, const char **s, size_t *n, int *cur)
{
    const cq_tokenizer *t = c->t;
    int rc;
    for (int i = 0; i < t->n_norm; i++) {
        const tok_norm *nm = &t->norm[i];
        tok_buf *dst = &c->nb[*cur];
        if (nm->kind == TOK_NORM_NFC) {
            if ((rc = nfc_check(c, *s, *n)) != CQ_OK)
                return rc;
            continue;
        }
        if (nm->kind == TOK_NORM_PREPEND && *n == 0) /* HF prepends to non-empty text only */
            continue;
        int bad = nm->kind == TOK_NORM_PREPEND
                      ? prepend_into(dst, *s, *n, nm->a, nm->alen)
                      : replace_into(dst, *s, *n, nm->a, nm->alen, nm->b, nm->blen);
        if (bad)
            return tok_nomem(c);
        *s = dst->p, *n = dst->n, *cur ^= 1;
    }
    return CQ_OK;
}

/* Metaspace: spaces become the replacement, which is also prepended per prepend_scheme
 * ("first": only to the piece at offset 0 of the text) unless already there. */
static int metaspace(tok_enc *c, const char **s, size_t *n, int *cur, int at_start)
{
    const cq_tokenizer *t = c->t;
    if (replace_into(&c->nb[*cur], *s, *n, " ", 1, t->ms_rep, t->ms_rep_len) != 0)
        return tok_nomem(c);
    *s = c->nb[*cur].p, *n = c->nb[*cur].n, *cur ^= 1;
    int want =
        t->ms_prepend == TOK_PREPEND_ALWAYS || (t->ms_prepend == TOK_PREPEND_FIRST && at_start);
    if (!want || *n == 0 || (*n >= t->ms_rep_len && memcmp(*s, t->ms_rep, t->ms_rep_len) == 0))
        return CQ_OK;
    if (prepend_into(&c->nb[*cur], *s, *n, t->ms_rep, t->ms_rep_len) != 0)
        return tok_nomem(c);
    *s = c->nb[*cur].p, *n = c->nb[*cur].n, *cur ^= 1;
    return CQ_OK;
}

/* One piece of text between added tokens: normalize, pre-tokenize, BPE. */
static int encode_piece(tok_enc *c, const char *s, size_t n, int at_start)
{
    const cq_tokenizer *t = c->t;
    int cur = 0, rc;
    if ((rc = normalize(c, &s, &n, &cur)) != CQ_OK)
        return rc;
    if (t->metaspace && (rc = metaspace(c, &s, &n, &cur, at_start)) != CQ_OK)
        return rc;
    if (t->bl_prefix_space && n && s[0] != ' ') {
        if (prepend_into(&c->nb[cur], s, n, " ", 1) != 0)
            return tok_nomem(c);
        s = c->nb[cur].p, n = c->nb[cur].n;
    }
    return split_level(c, 0, s, n);
}

static int is_word_char(uint32_t cp)
{
    int k = cq_uni_class(cp);
    return cp == '_' || k == CQ_UC_LETTER || k == CQ_UC_NUMBER;
}

/* The code point that ends just before s[p] (p > 0). */
static uint32_t cp_before(const char *s, size_t p)
{
    size_t q = p - 1;
    while (q > 0 && ((unsigned char)s[q] & 0xC0) == 0x80)
        q--;
    uint32_t cp = 0xFFFD;
    cq_utf8_decode((const unsigned char *)s + q, p - q, &cp);
    return cp;
}

static uint32_t cp_at(const char *s, size_t len, size_t p)
{
    uint32_t cp = 0xFFFD;
    cq_utf8_decode((const unsigned char *)s + p, len - p, &cp);
    return cp;
}

/* Longest added token starting at p (honouring single_word); -1 when none. */
static int added_at(const cq_tokenizer *t, const char *s, size_t len, size_t p)
{
    int best = -1;
    for (int i = 0; i < t->n_added; i++) {
        const tok_added *a = &t->added[i];
        if (a->len == 0 || a->len > len - p || memcmp(s + p, a->content, a->len) != 0)
            continue;
        if (best >= 0 && t->added[best].len >= a->len)
            continue;
        if (a->single_word && ((p > 0 && is_word_char(cp_before(s, p))) ||
                               (p + a->len < len && is_word_char(cp_at(s, len, p + a->len)))))
            continue;
        best = i;
    }
    return best;
}

static int tok_encode_text(const cq_tokenizer *t, const char *s, size_t len, tok_enc *c)
{
    size_t piece = 0, p = 0;
    int rc;
    while (p < len) {
        int a = t->added_first[(unsigned char)s[p]] ? added_at(t, s, len, p) : -1;
        if (a < 0) {
            p++;
            continue;
        }
        const tok_added *at = &t->added[a];
        /* lstrip/rstrip: the token also swallows the whitespace beside it. */
        size_t ms = p, me = p + at->len;
        while (at->lstrip && ms > piece && cq_uni_is_space(cp_before(s, ms))) {
            ms--;
            while (ms > piece && ((unsigned char)s[ms] & 0xC0) == 0x80)
                ms--;
        }
        while (at->rstrip && me < len && cq_uni_is_space(cp_at(s, len, me))) {
            me++;
            while (me < len && ((unsigned char)s[me] & 0xC0) == 0x80)
                me++;
        }
        if ((rc = encode_piece(c, s + piece, ms - piece, piece == 0)) != CQ_OK ||
            (rc = tok_emit(c, at->id)) != CQ_OK)
            return rc;
        piece = p = me;
    }
    return encode_piece(c, s + piece, len - piece, piece == 0);
}

static void enc_free(tok_enc *c)
{
    free(c->ids);
    tok_strmap_free(&c->cache);
    tok_arena_free(&c->cache_keys);
    free(c->pool);
    free(c->syms);
    free(c->heap);
    free(c->nb[0].p);
    free(c->nb[1].p);
    free(c->word.p);
}

int cq_tokenizer_encode(const cq_tokenizer *t, const char *text, size_t len, int add_special,
                        int32_t **ids, int64_t *n, cq_error *err)
{
    *ids = NULL;
    *n = 0;
    if (!text || len == 0) /* the empty text still gets its special tokens */
        text = "", len = 0;
    int64_t bad = cq_utf8_check(text, len);
    if (bad >= 0)
        return cq_errorf(err, CQ_E_FORMAT, "tokenizer: text is not valid utf-8 at byte %lld",
                         (long long)bad);
    tok_enc c = {.t = t, .err = err};
    int rc = CQ_OK;
    for (int i = 0; add_special && i < t->n_prefix && rc == CQ_OK; i++)
        rc = tok_emit(&c, t->prefix_ids[i]);
    if (rc == CQ_OK)
        rc = tok_encode_text(t, text, len, &c);
    for (int i = 0; add_special && i < t->n_suffix && rc == CQ_OK; i++)
        rc = tok_emit(&c, t->suffix_ids[i]);
    if (rc == CQ_OK) {
        *ids = c.ids;
        *n = (int64_t)c.n;
        c.ids = NULL;
    }
    enc_free(&c);
    return rc;
}
