/* Calibration window selection and CPython-compatible random numbers (see calib.h). */
#include "cquant/calib.h"

#include "cquant/checked.h"

#include <stdlib.h>
#include <string.h>

/* ---- MT19937 (Matsumoto & Nishimura 2002, mt19937ar.c), as CPython's _randommodule.c ---- */

static void mt_init_genrand(cq_mt19937 *r, uint32_t s)
{
    r->mt[0] = s;
    for (int i = 1; i < 624; i++)
        r->mt[i] = 1812433253u * (r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) + (uint32_t)i;
    r->idx = 624;
}

/* init_by_array; CPython's random.seed(n) passes the little-endian 32-bit words of |n|
 * (one zero word for n = 0). */
void cq_mt_seed(cq_mt19937 *r, uint64_t seed)
{
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    int klen = key[1] ? 2 : 1;
    mt_init_genrand(r, 19650218u);
    int i = 1, j = 0;
    for (int k = 624 > klen ? 624 : klen; k; k--) {
        r->mt[i] = (r->mt[i] ^ ((r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) * 1664525u)) + key[j] +
                   (uint32_t)j;
        i++, j++;
        if (i >= 624) {
            r->mt[0] = r->mt[623];
            i = 1;
        }
        if (j >= klen)
            j = 0;
    }
    for (int k = 623; k; k--) {
        r->mt[i] = (r->mt[i] ^ ((r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) * 1566083941u)) -
                   (uint32_t)i;
        i++;
        if (i >= 624) {
            r->mt[0] = r->mt[623];
            i = 1;
        }
    }
    r->mt[0] = 0x80000000u;
}

uint32_t cq_mt_next(cq_mt19937 *r)
{
    if (r->idx >= 624) {
        for (int k = 0; k < 624; k++) {
            uint32_t y = (r->mt[k] & 0x80000000u) | (r->mt[(k + 1) % 624] & 0x7fffffffu);
            r->mt[k] = r->mt[(k + 397) % 624] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
        }
        r->idx = 0;
    }
    uint32_t y = r->mt[r->idx++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

/* CPython getrandbits: 32-bit words least significant first; the last word keeps its top
 * (k mod 32) bits. */
uint64_t cq_mt_getrandbits(cq_mt19937 *r, int k)
{
    if (k <= 32)
        return cq_mt_next(r) >> (32 - k);
    uint64_t lo = cq_mt_next(r);
    uint64_t hi = cq_mt_next(r) >> (64 - k);
    return lo | hi << 32;
}

/* random.randint(a, b) = a + _randbelow(b - a + 1); _randbelow(n): k = n.bit_length(),
 * draw getrandbits(k) until < n. */
int64_t cq_mt_randint(cq_mt19937 *r, int64_t a, int64_t b)
{
    uint64_t n = (uint64_t)b - (uint64_t)a + 1u;
    if (n == 0) /* the full 64-bit range */
        return (int64_t)cq_mt_getrandbits(r, 64);
    int k = 64 - __builtin_clzll(n);
    uint64_t v;
    do
        v = cq_mt_getrandbits(r, k);
    while (v >= n);
    return (int64_t)((uint64_t)a + v);
}

/* ---- window selection ---- */

void cq_calib_release(cq_calib *c)
{
    if (!c)
        return;
    free(c->ids);
    memset(c, 0, sizeof *c);
}

static int calib_alloc(cq_calib *out, int64_t n, int64_t seqlen, cq_error *err)
{
    memset(out, 0, sizeof *out);
    size_t bytes;
    if (n < 0 || seqlen < 1 || cq_mul_size((size_t)n, (size_t)seqlen, &bytes) ||
        cq_mul_size(bytes, sizeof(int32_t), &bytes))
        return cq_errorf(err, CQ_E_USAGE, "calibration size %lld x %lld out of range",
                         (long long)n, (long long)seqlen);
    out->ids = malloc(bytes ? bytes : 1);
    if (!out->ids)
        return cq_errorf(err, CQ_E_NOMEM, "out of memory for %lld calibration windows",
                         (long long)n);
    out->n = n;
    out->seqlen = seqlen;
    out->bos = -1; /* the caller knows how the ids were made */
    return CQ_OK;
}

int cq_calib_random(const int32_t *stream, int64_t len, int64_t n, int64_t seqlen,
                    uint64_t seed, cq_calib *out, cq_error *err)
{
    if (len <= seqlen)
        return cq_errorf(err, CQ_E_USAGE, "calibration text has %lld tokens; random windows of "
                         "%lld need more", (long long)len, (long long)seqlen);
    int rc = calib_alloc(out, n, seqlen, err);
    if (rc != CQ_OK)
        return rc;
    cq_mt19937 r;
    cq_mt_seed(&r, seed);
    for (int64_t s = 0; s < n; s++) {
        int64_t i = cq_mt_randint(&r, 0, len - seqlen - 1);
        memcpy(out->ids + s * seqlen, stream + i, (size_t)seqlen * sizeof(int32_t));
    }
    strcpy(out->mode, "random");
    out->seed = seed;
    return CQ_OK;
}

int cq_calib_concat(const int32_t *const *docs, const int64_t *lens, int64_t n_docs,
                    int64_t block, int64_t max_docs, int64_t max_doc_len, cq_calib *out,
                    cq_error *err)
{
    int64_t total = 0, accepted = 0, last = 0;
    for (int64_t d = 0; d < n_docs && accepted < max_docs; d++, last = d) {
        if (lens[d] > 0 && lens[d] <= max_doc_len) {
            total += lens[d];
            accepted++;
        }
    }
    if ((block < 1 || total / block < 1) && max_doc_len == INT64_MAX)
        return cq_errorf(err, CQ_E_USAGE, "calibration documents give %lld tokens, less than "
                         "one block of %lld", (long long)total, (long long)block);
    if (block < 1 || total / block < 1)
        return cq_errorf(err, CQ_E_USAGE, "calibration documents give %lld tokens (after skipping "
                         "documents over %lld tokens), less than one block of %lld",
                         (long long)total, (long long)max_doc_len, (long long)block);
    int rc = calib_alloc(out, total / block, block, err);
    int64_t pos = 0, cap = out->n * block;
    for (int64_t d = 0; rc == CQ_OK && d < last && pos < cap; d++) {
        if (lens[d] <= 0 || lens[d] > max_doc_len)
            continue;
        int64_t take = cap - pos < lens[d] ? cap - pos : lens[d];
        memcpy(out->ids + pos, docs[d], (size_t)take * sizeof(int32_t));
        pos += take;
    }
    if (rc == CQ_OK)
        strcpy(out->mode, "concat");
    return rc;
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'; }

/* End of the line starting at p (index of '\n' or len). */
static size_t line_end(const char *t, size_t p, size_t len)
{
    const char *nl = memchr(t + p, '\n', len - p);
    return nl ? (size_t)(nl - t) : len;
}

static int blank(const char *t, size_t a, size_t b)
{
    for (size_t i = a; i < b; i++)
        if (!is_space(t[i]))
            return 0;
    return 1;
}

static int push_span(cq_doc_span **spans, int64_t *n, size_t *cap, const char *t, size_t a,
                     size_t b, cq_error *err)
{
    while (a < b && is_space(t[a]))
        a++;
    while (b > a && is_space(t[b - 1]))
        b--;
    if (a == b)
        return CQ_OK;
    if ((size_t)*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        cq_doc_span *ns = realloc(*spans, nc * sizeof *ns);
        if (!ns)
            return cq_errorf(err, CQ_E_NOMEM, "out of memory splitting documents");
        *spans = ns;
        *cap = nc;
    }
    (*spans)[(*n)++] = (cq_doc_span){a, b - a};
    return CQ_OK;
}

int cq_calib_split_docs(const char *text, size_t len, cq_doc_span **spans, int64_t *n,
                        cq_error *err)
{
    *spans = NULL;
    *n = 0;
    size_t cap = 0, doc = 0, p = 0;
    int rc = CQ_OK;
    while (p < len && rc == CQ_OK) {
        size_t e = line_end(text, p, len);
        if (blank(text, p, e)) {
            rc = push_span(spans, n, &cap, text, doc, p, err);
            doc = e;
        }
        p = e + 1;
    }
    if (rc == CQ_OK)
        rc = push_span(spans, n, &cap, text, doc, len, err);
    if (rc != CQ_OK) {
        free(*spans);
        *spans = NULL;
        *n = 0;
    }
    return rc;
}
