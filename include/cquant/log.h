/* Progress and diagnostics on stderr. The library reports through here only; the CLI sets the
 * level (-q: errors only, default: per-layer lines, -v: details). */
#ifndef CQUANT_LOG_H
#define CQUANT_LOG_H

#include "cquant/error.h"

#include <stdint.h>

enum { CQ_LOG_QUIET = 0, CQ_LOG_INFO = 1, CQ_LOG_DEBUG = 2 };

void cq_log_set_level(int level);
int cq_log_level(void);
/* A line on stderr at INFO (cq_info) or DEBUG (cq_debug); warnings print at INFO and above. */
void cq_info(const char *fmt, ...) CQ_PRINTF(1, 2);
void cq_debug(const char *fmt, ...) CQ_PRINTF(1, 2);
void cq_warn(const char *fmt, ...) CQ_PRINTF(1, 2);

/* Progress of `total` steps: a redrawn bar when stderr is a TTY, otherwise one line per step.
 * `what` names the current item. Silent in quiet mode. */
void cq_progress(const char *task, int64_t done, int64_t total, const char *what);
void cq_progress_end(void);

#endif
