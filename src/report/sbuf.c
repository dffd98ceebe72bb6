/* Growable text buffer (see sbuf.h). */
#include "sbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int reserve(cq_sbuf *b, size_t extra)
{
    if (b->oom)
        return -1;
    if (extra < b->cap - b->len)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len <= extra) {
        if (cap > ((size_t)-1) / 2) {
            b->oom = 1;
            return -1;
        }
        cap *= 2;
    }
    char *s = realloc(b->s, cap);
    if (!s) {
        b->oom = 1;
        return -1;
    }
    b->s = s;
    b->cap = cap;
    return 0;
}

void cq_sbuf_put(cq_sbuf *b, const char *s, size_t n)
{
    if (reserve(b, n + 1))
        return;
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

void cq_sbuf_printf(cq_sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || reserve(b, (size_t)n + 1))
        return;
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void cq_sbuf_html(cq_sbuf *b, const char *s)
{
    for (const char *p = s; *p; p++) {
        const char *e = NULL;
        switch (*p) {
        case '&': e = "&amp;"; break;
        case '<': e = "&lt;"; break;
        case '>': e = "&gt;"; break;
        case '"': e = "&quot;"; break;
        case '\'': e = "&#39;"; break;
        default: break;
        }
        if (e)
            cq_sbuf_put(b, e, strlen(e));
        else
            cq_sbuf_put(b, p, 1);
    }
}

int cq_sbuf_finish(cq_sbuf *b, char **out, size_t *len, cq_error *err)
{
    if (!b->oom && reserve(b, 1) == 0)
        b->s[b->len] = 0;
    if (b->oom) {
        cq_sbuf_free(b);
        return cq_errorf(err, CQ_E_NOMEM, "out of memory rendering the report");
    }
    *out = b->s;
    *len = b->len;
    b->s = NULL;
    b->len = b->cap = 0;
    return CQ_OK;
}

void cq_sbuf_free(cq_sbuf *b)
{
    if (!b)
        return;
    free(b->s);
    b->s = NULL;
    b->len = b->cap = 0;
    b->oom = 0;
}
