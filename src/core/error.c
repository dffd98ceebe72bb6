/* Error records and the status -> exit code table. */
#include "cquant/error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void vset(cq_error *err, int code, const char *fmt, va_list ap)
{
    err->code = code;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
}

int cq_errorf(cq_error *err, int code, const char *fmt, ...)
{
    if (err && err->code == CQ_OK) {
        va_list ap;
        va_start(ap, fmt);
        vset(err, code, fmt, ap);
        va_end(ap);
    }
    return code;
}

int cq_errorf_errno(cq_error *err, int code, const char *fmt, ...)
{
    int e = errno;
    if (err && err->code == CQ_OK) {
        va_list ap;
        va_start(ap, fmt);
        vset(err, code, fmt, ap);
        va_end(ap);
        size_t n = strlen(err->msg);
        snprintf(err->msg + n, sizeof err->msg - n, ": %s", strerror(e));
    }
    return code;
}

void cq_error_prefix(cq_error *err, const char *fmt, ...)
{
    if (!err || err->code == CQ_OK)
        return;
    char pre[512], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    /* Truncation is fine here: messages are one line and the head carries the context. */
    size_t n = strlen(pre);
    if (n > sizeof err->msg - 3)
        n = sizeof err->msg - 3;
    memcpy(err->msg, pre, n);
    memcpy(err->msg + n, ": ", 2);
    size_t room = sizeof err->msg - n - 3, m = strlen(old);
    if (m > room)
        m = room;
    memcpy(err->msg + n + 2, old, m);
    err->msg[n + 2 + m] = 0;
}

void cq_error_clear(cq_error *err)
{
    err->code = CQ_OK;
    err->msg[0] = 0;
}

static const struct {
    int code;
    const char *name;
    int exit_code;
} status_table[] = {
    {CQ_OK, "ok", CQ_EXIT_OK},
    {CQ_E_USAGE, "usage", CQ_EXIT_USAGE},
    {CQ_E_IO, "io", CQ_EXIT_IO},
    {CQ_E_FORMAT, "format", CQ_EXIT_INPUT},
    {CQ_E_UNSUPPORTED, "unsupported", CQ_EXIT_INPUT},
    {CQ_E_SHAPE, "shape", CQ_EXIT_INPUT},
    {CQ_E_NUMERIC, "numeric", CQ_EXIT_NUMERIC},
    {CQ_E_NOMEM, "memory", CQ_EXIT_NOMEM},
    {CQ_E_INTERNAL, "internal", CQ_EXIT_INTERNAL},
    {CQ_E_INTERRUPTED, "interrupted", CQ_EXIT_INTERRUPTED},
    {CQ_E_EXISTS, "exists", CQ_EXIT_EXISTS},
};

const char *cq_status_name(int code)
{
    for (size_t i = 0; i < sizeof status_table / sizeof *status_table; i++)
        if (status_table[i].code == code)
            return status_table[i].name;
    return "internal";
}

int cq_exit_code(int code)
{
    for (size_t i = 0; i < sizeof status_table / sizeof *status_table; i++)
        if (status_table[i].code == code)
            return status_table[i].exit_code;
    return CQ_EXIT_INTERNAL;
}

void cq_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "cquant: internal error: assertion '%s' failed at %s:%d\n", expr, file, line);
    abort();
}
