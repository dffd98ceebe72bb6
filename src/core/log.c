/* stderr diagnostics; the only place in the library that prints. */
#include "cquant/log.h"

#include "cquant/dist.h"

#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

static int g_level = CQ_LOG_INFO;
static int g_bar_open;

void cq_log_set_level(int level) { g_level = level; }
/* Under mpirun only rank 0 reports progress. */
int cq_log_level(void) { return cq_dist_rank() > 0 ? CQ_LOG_QUIET : g_level; }

static void vline(const char *prefix, const char *fmt, va_list ap)
{
    if (g_bar_open) {
        fputc('\n', stderr);
        g_bar_open = 0;
    }
    fputs(prefix, stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void cq_info(const char *fmt, ...)
{
    if (cq_log_level() < CQ_LOG_INFO)
        return;
    va_list ap;
    va_start(ap, fmt);
    vline("", fmt, ap);
    va_end(ap);
}

void cq_debug(const char *fmt, ...)
{
    if (cq_log_level() < CQ_LOG_DEBUG)
        return;
    va_list ap;
    va_start(ap, fmt);
    vline("", fmt, ap);
    va_end(ap);
}

void cq_warn(const char *fmt, ...)
{
    if (cq_log_level() < CQ_LOG_INFO)
        return;
    va_list ap;
    va_start(ap, fmt);
    vline("cquant: warning: ", fmt, ap);
    va_end(ap);
}

void cq_progress(const char *task, int64_t done, int64_t total, const char *what)
{
    if (cq_log_level() < CQ_LOG_INFO)
        return;
    if (!isatty(2)) {
        fprintf(stderr, "%s [%lld/%lld] %s\n", task, (long long)done, (long long)total,
                what ? what : "");
        return;
    }
    int width = 30, fill = total > 0 ? (int)(width * done / total) : width;
    fprintf(stderr, "\r%s [", task);
    for (int i = 0; i < width; i++)
        fputc(i < fill ? '#' : '.', stderr);
    fprintf(stderr, "] %lld/%lld %-48.48s", (long long)done, (long long)total, what ? what : "");
    g_bar_open = 1;
}

void cq_progress_end(void)
{
    if (g_bar_open) {
        fputc('\n', stderr);
        g_bar_open = 0;
    }
}
