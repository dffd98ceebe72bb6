/* Encoding: split on added tokens, normalize, pre-tokenize into words, BPE-merge each word.
 * BPE follows HF tokenizers' Word::merge_all: a min-heap of (rank, position); the lowest rank
 * merges first and ties go to the leftmost pair; stale heap entries are skipped. Words of up to
 * 256 bytes are cached per call, which is what makes running text fast (words repeat). */
#include "model/tok_internal.h"
#include "model/unicode.h"
#include "cquant/checked.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CACHE_MAX_WORD 256

typedef struct sym {
    int32_t id, prev, next, alive;
} sym;

typedef struct hent {
    int32_t rank, pos, new_id;
} hent;

typedef struct buf {
    char *p;
    size_t n, cap;
} buf;

typedef struct enc {
    const cq_tokenizer *t;
    int32_t *ids;
    size_t n, cap;
    tok_strmap cache;
    tok_arena cache_keys;
    int32_t *pool;
    size_t pool_n, pool_cap;
    sym *syms;
    size_t syms_cap;
    hent *heap;
    size_t heap_n, heap_cap;
    buf nb[2], word;
    cq_error *err;
} enc;

static int nomem(enc *c) { return cq_errorf(c->err, CQ_E_NOMEM, "tokenizer: out of memory"); }

/* Grow *p (elements of size sz) to hold at least need elements. */
static int grow(void **p, size_t *cap, size_t need, size_t sz)
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

static int emit(enc *c, int32_t id)
{
    if (grow((void **)&c->ids, &c->cap, c->n + 1, sizeof *c->ids) != 0)
        return nomem(c);
    c->ids[c->n++] = id;
    return CQ_OK;
}

static int buf_put(buf *b, const char *s, size_t n)
{
    if (grow((void **)&b->p, &b->cap, b->n + n + 1, 1) != 0)
        return -1;
    memcpy(b->p + b->n, s, n);
    b->n += n;
    return 0;
}

/* ---- BPE on one word ---- */

static int heap_less(const hent *a, const hent *b)
{
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static int heap_push(enc *c, int32_t pos, const tok_pent *m)
{
    if (grow((void **)&c->heap, &c->heap_cap, c->heap_n + 1, sizeof *c->heap) != 0)
        return nomem(c);
    size_t i = c->heap_n++;
    hent e = {m->rank, pos, m->new_id};
    while (i > 0 && heap_less(&e, &c->heap[(i - 1) / 2])) {
        c->heap[i] = c->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    c->heap[i] = e;
    return CQ_OK;
}

static hent heap_pop(enc *c)
{
    hent top = c->heap[0], e = c->heap[--c->heap_n];
    size_t i = 0, n = c->heap_n;
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        const hent *best = &e;
        if (l < n && heap_less(&c->heap[l], best))
            best = &c->heap[l], m = l;
        if (l + 1 < n && heap_less(&c->heap[l + 1], best))
            m = l + 1;
        if (m == i)
            break;
        c->heap[i] = c->heap[m];
        i = m;
    }
    if (n)
        c->heap[i] = e;
    return top;
}

static int add_sym(enc *c, size_t *ns, int32_t id)
{
    if (grow((void **)&c->syms, &c->syms_cap, *ns + 1, sizeof *c->syms) != 0)
        return nomem(c);
    sym *s = &c->syms[*ns];
    s->id = id;
    s->prev = (int32_t)*ns - 1;
    s->next = (int32_t)*ns + 1;
    s->alive = 1;
    (*ns)++;
    return CQ_OK;
}

/* The vocab string of one character of the word, with continuing_subword_prefix and
 * end_of_word_suffix as HF adds them. */
static size_t char_string(const cq_tokenizer *t, const char *ch, size_t chn, int first, int last,
                          char *out)
{
    size_t k = 0;
    if (!first && t->cont_prefix) {
        memcpy(out, t->cont_prefix, t->cont_prefix_len);
        k = t->cont_prefix_len;
    }
    memcpy(out + k, ch, chn);
    k += chn;
    if (last && t->eow_suffix) {
        memcpy(out + k, t->eow_suffix, t->eow_suffix_len);
        k += t->eow_suffix_len;
    }
    return k;
}

/* Initial symbols: one per character (per byte for byte-level), with HF's byte_fallback and
 * unk handling, including its quirk that a pending unk is not flushed before fallback bytes. */
static int init_syms(enc *c, const char *w, size_t len, size_t *ns)
{
    const cq_tokenizer *t = c->t;
    char tmp[80];
    int32_t unk_pending = 0;
    int rc;
    *ns = 0;
    for (size_t i = 0; i < len;) {
        const char *ch;
        size_t chn, step;
        if (t->byte_level) {
            unsigned b = (unsigned char)w[i];
            ch = t->byte_char[b], chn = t->byte_char_len[b], step = 1;
        } else {
            uint32_t cp;
            int n = cq_utf8_decode((const unsigned char *)w + i, len - i, &cp);
            ch = w + i, chn = n > 0 ? (size_t)n : 1, step = chn;
        }
        size_t k = char_string(t, ch, chn, i == 0, i + step == len, tmp);
        i += step;
        int64_t id;
        if (tok_strmap_get(&t->vocab, tmp, k, &id)) {
            if (unk_pending && (rc = add_sym(c, ns, t->unk_id)) != CQ_OK)
                return rc;
            unk_pending = 0;
            if ((rc = add_sym(c, ns, (int32_t)id)) != CQ_OK)
                return rc;
            continue;
        }
        if (t->byte_fallback) {
            size_t j = 0;
            while (j < k && t->byte_fb_id[(unsigned char)tmp[j]] >= 0)
                j++;
            if (j == k) {
                for (j = 0; j < k; j++)
                    if ((rc = add_sym(c, ns, t->byte_fb_id[(unsigned char)tmp[j]])) != CQ_OK)
                        return rc;
                continue;
            }
        }
        if (t->unk_id >= 0) {
            if (unk_pending && !t->fuse_unk && (rc = add_sym(c, ns, t->unk_id)) != CQ_OK)
                return rc;
            unk_pending = 1;
        }
    }
    if (unk_pending)
        return add_sym(c, ns, t->unk_id);
    return CQ_OK;
}

static int merge_all(enc *c, size_t ns)
{
    const tok_pairmap *mp = &c->t->merges;
    sym *s = c->syms;
    int rc;
    if (ns == 0)
        return CQ_OK;
    s[ns - 1].next = -1;
    c->heap_n = 0;
    for (size_t i = 0; i + 1 < ns; i++) {
        const tok_pent *m = tok_pairmap_get(mp, s[i].id, s[i + 1].id);
        if (m && (rc = heap_push(c, (int32_t)i, m)) != CQ_OK)
            return rc;
    }
    while (c->heap_n) {
        hent top = heap_pop(c);
        s = c->syms;
        if (!s[top.pos].alive || s[top.pos].next < 0)
            continue;
        int32_t nx = s[top.pos].next;
        const tok_pent *m = tok_pairmap_get(mp, s[top.pos].id, s[nx].id);
        if (!m || m->new_id != top.new_id)
            continue;
        s[top.pos].id = top.new_id;
        s[top.pos].next = s[nx].next;
        s[nx].alive = 0;
        if (s[nx].next >= 0)
            s[s[nx].next].prev = top.pos;
        int32_t pv = s[top.pos].prev, nn = s[top.pos].next;
        if (pv >= 0 && (m = tok_pairmap_get(mp, s[pv].id, s[top.pos].id)) &&
            (rc = heap_push(c, pv, m)) != CQ_OK)
            return rc;
        if (nn >= 0 && (m = tok_pairmap_get(mp, s[top.pos].id, s[nn].id)) &&
            (rc = heap_push(c, top.pos, m)) != CQ_OK)
            return rc;
    }
    return CQ_OK;
}

/* ignore_merges: a word that is itself a vocab entry is one token (Llama-3). */
static int whole_word_id(enc *c, const char *w, size_t len, int32_t *id)
{
    const cq_tokenizer *t = c->t;
    const char *key = w;
    size_t klen = len;
    if (t->byte_level) {
        c->word.n = 0;
        for (size_t i = 0; i < len; i++) {
            unsigned b = (unsigned char)w[i];
            if (buf_put(&c->word, t->byte_char[b], t->byte_char_len[b]) != 0)
                return nomem(c);
        }
        key = c->word.p, klen = c->word.n;
    }
    int64_t v;
    *id = tok_strmap_get(&t->vocab, key, klen, &v) ? (int32_t)v : -1;
    return CQ_OK;
}

static int cache_store(enc *c, const char *w, size_t len, size_t first)
{
    size_t cnt = c->n - first;
    if (grow((void **)&c->pool, &c->pool_cap, c->pool_n + cnt, sizeof *c->pool) != 0)
        return nomem(c);
    const char *key = tok_arena_dup(&c->cache_keys, w, len);
    if (!key)
        return nomem(c);
    if (cnt) /* a word can yield no ids (unknown characters and no unk token) */
        memcpy(c->pool + c->pool_n, c->ids + first, cnt * sizeof *c->pool);
    if (tok_strmap_put(&c->cache, key, len, (int64_t)c->pool_n << 16 | (int64_t)cnt) != 0)
        return nomem(c);
    c->pool_n += cnt;
    return CQ_OK;
}

static int bpe_word(enc *c, const char *w, size_t len)
{
    int64_t v;
    int rc;
    int cacheable = len <= CACHE_MAX_WORD;
    if (cacheable && tok_strmap_get(&c->cache, w, len, &v)) {
        size_t off = (size_t)(v >> 16), cnt = (size_t)(v & 0xFFFF);
        if (cnt == 0)
            return CQ_OK;
        if (grow((void **)&c->ids, &c->cap, c->n + cnt, sizeof *c->ids) != 0)
            return nomem(c);
        memcpy(c->ids + c->n, c->pool + off, cnt * sizeof *c->ids);
        c->n += cnt;
        return CQ_OK;
    }
    size_t first = c->n, ns;
    int32_t whole = -1;
    if (c->t->ignore_merges && (rc = whole_word_id(c, w, len, &whole)) != CQ_OK)
        return rc;
    if (whole >= 0) {
        if ((rc = emit(c, whole)) != CQ_OK)
            return rc;
    } else {
        if ((rc = init_syms(c, w, len, &ns)) != CQ_OK || (rc = merge_all(c, ns)) != CQ_OK)
            return rc;
        for (int32_t i = ns ? 0 : -1; i >= 0; i = c->syms[i].next)
            if ((rc = emit(c, c->syms[i].id)) != CQ_OK)
                return rc;
    }
    return cacheable ? cache_store(c, w, len, first) : CQ_OK;
}

/* ---- pre-tokenization ---- */

static int split_level(enc *c, int level, const char *s, size_t n)
{
    const cq_tokenizer *t = c->t;
    int rc;
    if (n == 0)
        return CQ_OK;
    if (level == t->n_split)
        return bpe_word(c, s, n);
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
static int replace_into(buf *dst, const char *src, size_t n, const char *a, size_t alen,
                        const char *b, size_t blen)
{
    dst->n = 0;
    size_t last = 0;
    for (size_t p = 0; alen && p + alen <= n;) {
        if (memcmp(src + p, a, alen) == 0) {
            if (buf_put(dst, src + last, p - last) != 0 || buf_put(dst, b, blen) != 0)
                return -1;
            p += alen;
            last = p;
        } else {
            p++;
        }
    }
    return buf_put(dst, src + last, n - last);
}

static int prepend_into(buf *dst, const char *src, size_t n, const char *a, size_t alen)
{
    dst->n = 0;
    return buf_put(dst, a, alen) != 0 || buf_put(dst, src, n) != 0 ? -1 : 0;
}

static int nfc_check(enc *c, const char *s, size_t n)
{
    for (size_t p = 0; p < n;) {
        uint32_t cp;
        int k = cq_utf8_decode((const unsigned char *)s + p, n - p, &cp);
        if (k <= 0)
            k = 1;
        else if (cq_uni_nfc_unsafe_cp(cp))
            return cq_errorf(c->err, CQ_E_UNSUPPORTED,
                             "tokenizer: NFC normalizer: text is not NFC-stable at U+%04X "
                             "(full NFC is not implemented)", (unsigned)cp);
        p += (size_t)k;
    }
    return CQ_OK;
}

/* Normalizers, Metaspace / ByteLevel prefixes, then the split levels. */
static int encode_piece(enc *c, const char *s, size_t n, int at_start)
{
    const cq_tokenizer *t = c->t;
    int cur = 0, rc;
    for (int i = 0; i < t->n_norm; i++) {
        const tok_norm *nm = &t->norm[i];
        buf *dst = &c->nb[cur];
        int bad = 0;
        if (nm->kind == TOK_NORM_NFC) {
            if ((rc = nfc_check(c, s, n)) != CQ_OK)
                return rc;
            continue;
        }
        if (nm->kind == TOK_NORM_PREPEND) {
            if (n == 0)
                continue;
            bad = prepend_into(dst, s, n, nm->a, nm->alen);
        } else {
            bad = replace_into(dst, s, n, nm->a, nm->alen, nm->b, nm->blen);
        }
        if (bad)
            return nomem(c);
        s = dst->p, n = dst->n, cur ^= 1;
    }
    if (t->metaspace) {
        buf *dst = &c->nb[cur];
        if (replace_into(dst, s, n, " ", 1, t->ms_rep, t->ms_rep_len) != 0)
            return nomem(c);
        s = dst->p, n = dst->n, cur ^= 1;
        int want = t->ms_prepend == TOK_PREPEND_ALWAYS ||
                   (t->ms_prepend == TOK_PREPEND_FIRST && at_start);
        if (want && n && !(n >= t->ms_rep_len && memcmp(s, t->ms_rep, t->ms_rep_len) == 0)) {
            if (prepend_into(&c->nb[cur], s, n, t->ms_rep, t->ms_rep_len) != 0)
                return nomem(c);
            s = c->nb[cur].p, n = c->nb[cur].n, cur ^= 1;
        }
    }
    if (t->bl_prefix_space && n && s[0] != ' ') {
        if (prepend_into(&c->nb[cur], s, n, " ", 1) != 0)
            return nomem(c);
        s = c->nb[cur].p, n = c->nb[cur].n;
    }
    return split_level(c, 0, s, n);
}

/* ---- added tokens ---- */

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

static int tok_encode_text(const cq_tokenizer *t, const char *s, size_t len, enc *c)
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
            (rc = emit(c, at->id)) != CQ_OK)
            return rc;
        piece = p = me;
    }
    return encode_piece(c, s + piece, len - piece, piece == 0);
}

static void enc_free(enc *c)
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
    enc c = {.t = t, .err = err};
    int rc = CQ_OK;
    for (int i = 0; add_special && i < t->n_prefix && rc == CQ_OK; i++)
        rc = emit(&c, t->prefix_ids[i]);
    if (rc == CQ_OK)
        rc = tok_encode_text(t, text, len, &c);
    for (int i = 0; add_special && i < t->n_suffix && rc == CQ_OK; i++)
        rc = emit(&c, t->suffix_ids[i]);
    if (rc == CQ_OK) {
        *ids = c.ids;
        *n = (int64_t)c.n;
        c.ids = NULL;
    }
    enc_free(&c);
    return rc;
}
