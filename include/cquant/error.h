/* cquant error reporting: every fallible function returns a cq_status and takes
 * `cq_error *err` last. The first (deepest) message wins; callers add context with
 * cq_error_prefix. No global error state: each thread passes its own cq_error. */
#ifndef CQUANT_ERROR_H
#define CQUANT_ERROR_H

#if defined(__GNUC__)
#define CQ_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CQ_PRINTF(f, a)
#endif

typedef enum cq_status {
    CQ_OK = 0,
    CQ_E_USAGE = -1,       /* bad flag, value out of range, missing argument */
    CQ_E_IO = -2,          /* open/read/write/fsync/rename failed */
    CQ_E_FORMAT = -3,      /* malformed or hostile input file */
    CQ_E_UNSUPPORTED = -4, /* well-formed but not handled: dtype, bits, layout, architecture */
    CQ_E_SHAPE = -5,       /* shapes disagree with config or with each other */
    CQ_E_NUMERIC = -6,     /* NaN/Inf, Hessian not positive definite after max damping */
    CQ_E_NOMEM = -7,       /* allocation failed or the planned peak exceeds --max-memory */
    CQ_E_INTERNAL = -8,    /* a bug */
    CQ_E_INTERRUPTED = -9, /* SIGINT/SIGTERM */
    CQ_E_EXISTS = -10,     /* the output exists and --force was not given */
} cq_status;

typedef struct cq_error {
    int code;
    char msg[512];
} cq_error;

#define CQ_ERROR_INIT {CQ_OK, {0}}

/* Record `code` and the message unless an error is already recorded; returns `code`. */
int cq_errorf(cq_error *err, int code, const char *fmt, ...) CQ_PRINTF(3, 4);
/* As cq_errorf, with ": <strerror(errno)>" appended (errno read at entry). */
int cq_errorf_errno(cq_error *err, int code, const char *fmt, ...) CQ_PRINTF(3, 4);
/* Prepend "<context>: " to a recorded message (no-op when no error is recorded). */
void cq_error_prefix(cq_error *err, const char *fmt, ...) CQ_PRINTF(2, 3);
void cq_error_clear(cq_error *err);
/* "usage", "io", "format", ...: stable names for JSON output. */
const char *cq_status_name(int code);
/* The CLI's documented, stable exit codes (docs/cli.md). */
int cq_exit_code(int code);

#define CQ_EXIT_OK 0
#define CQ_EXIT_INTERNAL 1
#define CQ_EXIT_USAGE 2
#define CQ_EXIT_IO 3
#define CQ_EXIT_INPUT 4
#define CQ_EXIT_NUMERIC 5
#define CQ_EXIT_NOMEM 6
#define CQ_EXIT_EXISTS 7
#define CQ_EXIT_INTERRUPTED 130

/* Internal invariants only; never for anything input can trigger. */
#define CQ_ASSERT(x) ((x) ? (void)0 : cq_assert_fail(#x, __FILE__, __LINE__))
void cq_assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));

#endif
