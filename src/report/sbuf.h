/* A growable text buffer for the report renderers (text, HTML). Appends never fail loudly: the
 * first allocation failure sets `oom` and later appends are no-ops, so a renderer checks once at
 * the end instead of after every line. */
#ifndef CQ_REPORT_SBUF_H
#define CQ_REPORT_SBUF_H

#include "cquant/error.h"

#include <stddef.h>

typedef struct cq_sbuf {
    char *s;
    size_t len, cap;
    int oom;
} cq_sbuf;

void cq_sbuf_printf(cq_sbuf *b, const char *fmt, ...) CQ_PRINTF(2, 3);
void cq_sbuf_put(cq_sbuf *b, const char *s, size_t n);
/* Append a string literal. */
#define CQ_SBUF_PUTS(b, lit) cq_sbuf_put((b), (lit), sizeof(lit) - 1)
/* S with &, <, >, " and ' replaced by entities (for HTML text and attribute values). */
void cq_sbuf_html(cq_sbuf *b, const char *s);
/* Hand the text to the caller (*out, *len; NUL-terminated) or CQ_E_NOMEM. Resets b. */
int cq_sbuf_finish(cq_sbuf *b, char **out, size_t *len, cq_error *err);
void cq_sbuf_free(cq_sbuf *b);

#endif
