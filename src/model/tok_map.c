/* Arena and hash maps for the tokenizer: vocab lookups and merge ranks are the hot path of BPE. */
#include "model/tok_internal.h"

#include <stdlib.h>
#include <string.h>

struct tok_block {
    tok_block *next;
    size_t used, cap;
    char data[];
};

char *tok_arena_dup(tok_arena *a, const char *s, size_t len)
{
    if (len > ((size_t)1 << 30))
        return NULL;
    tok_block *b = a->head;
    if (!b || b->cap - b->used < len + 1) {
        size_t cap = len + 1 > 65536 ? len + 1 : 65536;
        b = malloc(sizeof *b + cap);
        if (!b)
            return NULL;
        b->next = a->head;
        b->used = 0;
        b->cap = cap;
        a->head = b;
    }
    char *p = b->data + b->used;
    memcpy(p, s, len);
    p[len] = 0;
    b->used += len + 1;
    return p;
}

void tok_arena_free(tok_arena *a)
{
    tok_block *b = a->head;
    while (b) {
        tok_block *n = b->next;
        free(b);
        b = n;
    }
    a->head = NULL;
}

static uint32_t hash_bytes(const char *s, size_t len)
{
    /* FNV-1a 32 */
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static size_t str_slot(const tok_sent *e, size_t cap, const char *key, size_t len, uint32_t h)
{
    size_t i = h & (cap - 1);
    while (e[i].key && !(e[i].hash == h && e[i].len == len && memcmp(e[i].key, key, len) == 0))
        i = (i + 1) & (cap - 1);
    return i;
}

static int strmap_grow(tok_strmap *m)
{
    size_t cap = m->cap ? m->cap * 2 : 64;
    tok_sent *e = calloc(cap, sizeof *e);
    if (!e)
        return -1;
    for (size_t i = 0; i < m->cap; i++)
        if (m->e[i].key)
            e[str_slot(e, cap, m->e[i].key, m->e[i].len, m->e[i].hash)] = m->e[i];
    free(m->e);
    m->e = e;
    m->cap = cap;
    return 0;
}

int tok_strmap_put(tok_strmap *m, const char *key, size_t len, int64_t val)
{
    if (len > INT32_MAX)
        return -1;
    if ((m->n + 1) * 2 > m->cap && strmap_grow(m) != 0)
        return -1;
    uint32_t h = hash_bytes(key, len);
    size_t i = str_slot(m->e, m->cap, key, len, h);
    if (!m->e[i].key) {
        m->e[i].key = key;
        m->e[i].len = (uint32_t)len;
        m->e[i].hash = h;
        m->n++;
    }
    m->e[i].val = val;
    return 0;
}

int tok_strmap_get(const tok_strmap *m, const char *key, size_t len, int64_t *val)
{
    if (!m->cap)
        return 0;
    size_t i = str_slot(m->e, m->cap, key, len, hash_bytes(key, len));
    if (!m->e[i].key)
        return 0;
    *val = m->e[i].val;
    return 1;
}

void tok_strmap_free(tok_strmap *m)
{
    free(m->e);
    m->e = NULL;
    m->cap = m->n = 0;
}

static size_t pair_slot(const tok_pent *e, size_t cap, uint64_t key)
{
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    size_t i = (size_t)(h >> 32) & (cap - 1);
    while (e[i].used && e[i].key != key)
        i = (i + 1) & (cap - 1);
    return i;
}

static int pairmap_grow(tok_pairmap *m)
{
    size_t cap = m->cap ? m->cap * 2 : 1024;
    tok_pent *e = calloc(cap, sizeof *e);
    if (!e)
        return -1;
    for (size_t i = 0; i < m->cap; i++)
        if (m->e[i].used)
            e[pair_slot(e, cap, m->e[i].key)] = m->e[i];
    free(m->e);
    m->e = e;
    m->cap = cap;
    return 0;
}

int tok_pairmap_put(tok_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t new_id)
{
    if ((m->n + 1) * 2 > m->cap && pairmap_grow(m) != 0)
        return -1;
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    size_t i = pair_slot(m->e, m->cap, key);
    if (!m->e[i].used) {
        m->e[i].used = 1;
        m->e[i].key = key;
        m->n++;
    }
    /* A repeated pair keeps the later rank, as a HashMap built from the list does in HF. */
    m->e[i].rank = rank;
    m->e[i].new_id = new_id;
    return 0;
}

const tok_pent *tok_pairmap_get(const tok_pairmap *m, int32_t a, int32_t b)
{
    if (!m->cap)
        return NULL;
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    size_t i = pair_slot(m->e, m->cap, key);
    return m->e[i].used ? &m->e[i] : NULL;
}

void tok_pairmap_free(tok_pairmap *m)
{
    free(m->e);
    m->e = NULL;
    m->cap = m->n = 0;
}
