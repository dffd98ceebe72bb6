/* BPE on one word, following HF tokenizers' Word::merge_all: a min-heap of (rank, position);
 * the lowest rank merges first and ties go to the leftmost pair; stale heap entries are
 * skipped. Words of up to 256 bytes are cached per encode call, which is what makes running
 * text fast (words repeat). */
#include "model/tok_internal.h"
#include "model/unicode.h"
#include "cquant/checked.h"

#include <stdlib.h>
#include <string.h>

#define CACHE_MAX_WORD 256

static int heap_less(const tok_hent *a, const tok_hent *b)
{
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static int heap_push(tok_enc *c, int32_t pos, const tok_pent *m)
{
    if (tok_grow((void **)&c->heap, &c->heap_cap, c->heap_n + 1, sizeof *c->heap) != 0)
        return tok_nomem(c);
    size_t i = c->heap_n++;
    tok_hent e = {m->rank, pos, m->new_id};
    while (i > 0 && heap_less(&e, &c->heap[(i - 1) / 2])) {
        c->heap[i] = c->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    c->heap[i] = e;
    return CQ_OK;
}

static tok_hent heap_pop(tok_enc *c)
{
    tok_hent top = c->heap[0], e = c->heap[--c->heap_n];
    size_t i = 0, n = c->heap_n;
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        const tok_hent *best = &e;
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

static int add_sym(tok_enc *c, size_t *ns, int32_t id)
{
    if (tok_grow((void **)&c->syms, &c->syms_cap, *ns + 1, sizeof *c->syms) != 0)
        return tok_nomem(c);
    tok_sym *s = &c->syms[*ns];
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
static int init_syms(tok_enc *c, const char *w, size_t len, size_t *ns)
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

static int merge_all(tok_enc *c, size_t ns)
{
    const tok_pairmap *mp = &c->t->merges;
    tok_sym *s = c->syms;
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
        tok_hent top = heap_pop(c);
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
static int whole_word_id(tok_enc *c, const char *w, size_t len, int32_t *id)
{
    const cq_tokenizer *t = c->t;
    const char *key = w;
    size_t klen = len;
    if (t->byte_level) {
        c->word.n = 0;
        for (size_t i = 0; i < len; i++) {
            unsigned b = (unsigned char)w[i];
            if (tok_buf_put(&c->word, t->byte_char[b], t->byte_char_len[b]) != 0)
                return tok_nomem(c);
        }
        key = c->word.p, klen = c->word.n;
    }
    int64_t v;
    *id = tok_strmap_get(&t->vocab, key, klen, &v) ? (int32_t)v : -1;
    return CQ_OK;
}

static int cache_store(tok_enc *c, const char *w, size_t len, size_t first)
{
    size_t cnt = c->n - first;
    if (tok_grow((void **)&c->pool, &c->pool_cap, c->pool_n + cnt, sizeof *c->pool) != 0)
        return tok_nomem(c);
    const char *key = tok_arena_dup(&c->cache_keys, w, len);
    if (!key)
        return tok_nomem(c);
    if (cnt) /* a word can yield no ids (unknown characters and no unk token) */
        memcpy(c->pool + c->pool_n, c->ids + first, cnt * sizeof *c->pool);
    if (tok_strmap_put(&c->cache, key, len, (int64_t)c->pool_n << 16 | (int64_t)cnt) != 0)
        return tok_nomem(c);
    c->pool_n += cnt;
    return CQ_OK;
}

int tok_bpe_word(tok_enc *c, const char *w, size_t len)
{
    int64_t v;
    int rc;
    int cacheable = len <= CACHE_MAX_WORD;
    if (cacheable && tok_strmap_get(&c->cache, w, len, &v)) {
        size_t off = (size_t)(v >> 16), cnt = (size_t)(v & 0xFFFF);
        if (cnt == 0)
            return CQ_OK;
        if (tok_grow((void **)&c->ids, &c->cap, c->n + cnt, sizeof *c->ids) != 0)
            return tok_nomem(c);
        memcpy(c->ids + c->n, c->pool + off, cnt * sizeof *c->ids);
        c->n += cnt;
        return CQ_OK;
    }
    size_t first = c->n, ns;
    int32_t whole = -1;
    if (c->t->ignore_merges && (rc = whole_word_id(c, w, len, &whole)) != CQ_OK)
        return rc;
    if (whole >= 0) {
        if ((rc = tok_emit(c, whole)) != CQ_OK)
            return rc;
    } else {
        if ((rc = init_syms(c, w, len, &ns)) != CQ_OK || (rc = merge_all(c, ns)) != CQ_OK)
            return rc;
        for (int32_t i = ns ? 0 : -1; i >= 0; i = c->syms[i].next)
            if ((rc = tok_emit(c, c->syms[i].id)) != CQ_OK)
                return rc;
    }
    return cacheable ? cache_store(c, w, len, first) : CQ_OK;
}
