/* Declarative command-line options in the spirit of git's parse-options: one table per command
 * drives both parsing and the generated --help, so help cannot drift from behaviour.
 * Parsing never prints; misuse comes back as CQ_E_USAGE with a one-line message. */
#ifndef CQ_CLI_OPTS_H
#define CQ_CLI_OPTS_H

#include "cquant/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum cq_opt_type {
    CQ_OPT_END = 0,
    CQ_OPT_BOOL,    /* bool *: --x sets true, --no-x sets false */
    CQ_OPT_SETINT,  /* int *: stores .min (e.g. --sym/--asym writing one field) */
    CQ_OPT_INT,     /* int *: strict decimal in [.min, .max], optionally one of .choices */
    CQ_OPT_DOUBLE,  /* double *: strict, finite */
    CQ_OPT_SIZE,    /* size_t *: bytes with an optional K/M/G(B) or KiB/MiB/GiB suffix */
    CQ_OPT_STRING,  /* const char **: borrowed from argv; optionally one of .choices */
    CQ_OPT_LIST,    /* cq_strlist *: repeatable, each occurrence appended */
    CQ_OPT_COUNT,   /* int *: incremented (-v -v) */
} cq_opt_type;

/* A repeatable option's values, borrowed from argv. */
typedef struct cq_strlist {
    const char **items;
    int n;
} cq_strlist;
void cq_strlist_release(cq_strlist *l);

typedef struct cq_option {
    cq_opt_type type;
    char short_name;       /* 0 = none */
    const char *long_name; /* without the dashes; NULL = none */
    void *value;
    const char *argh;      /* placeholder in help: "N", "PATH" */
    const char *help;
    long long min, max;    /* INT range; SETINT value */
    const char *choices;   /* "2|3|4|8" or "gptq|awq|ct" or NULL */
} cq_option;

/* Table rows, git-style. */
#define OPT_BOOL(s, l, v, h) {CQ_OPT_BOOL, (s), (l), (v), NULL, (h), 0, 0, NULL}
#define OPT_COUNT(s, l, v, h) {CQ_OPT_COUNT, (s), (l), (v), NULL, (h), 0, 0, NULL}
#define OPT_SETINT(s, l, v, val, h) {CQ_OPT_SETINT, (s), (l), (v), NULL, (h), (val), 0, NULL}
#define OPT_INT(s, l, v, a, h, lo, hi, ch) {CQ_OPT_INT, (s), (l), (v), (a), (h), (lo), (hi), (ch)}
#define OPT_DOUBLE(s, l, v, a, h) {CQ_OPT_DOUBLE, (s), (l), (v), (a), (h), 0, 0, NULL}
#define OPT_SIZE(s, l, v, a, h) {CQ_OPT_SIZE, (s), (l), (v), (a), (h), 0, 0, NULL}
#define OPT_STRING(s, l, v, a, h, ch) {CQ_OPT_STRING, (s), (l), (v), (a), (h), 0, 0, (ch)}
#define OPT_LIST(s, l, v, a, h) {CQ_OPT_LIST, (s), (l), (v), (a), (h), 0, 0, NULL}
#define OPT_END() {CQ_OPT_END, 0, NULL, NULL, NULL, NULL, 0, 0, NULL}

/* The options every command takes (help, quiet, verbose, json). */
typedef struct cq_common_opts {
    bool help;
    bool quiet;
    int verbose;
    bool json;
} cq_common_opts;

#define CQ_OPT_COMMON(c)                                                                        \
    OPT_BOOL('h', "help", &(c)->help, "show this help and exit"),                               \
    OPT_BOOL('q', "quiet", &(c)->quiet, "errors only on stderr"),                               \
    OPT_COUNT('v', "verbose", &(c)->verbose, "more detail on stderr"),                          \
    OPT_BOOL(0, "json", &(c)->json, "machine-readable summary on stdout")

/* Parse argv[0..argc) (argv[0] is the command name, skipped). Options and positional arguments
 * may be mixed; "--" ends options. Positional arguments are moved to argv[0..ret) in order.
 * Returns the number of positional arguments, or CQ_E_USAGE with a one-line message.
 * Values already in the targets are the defaults. */
int cq_opts_parse(const cq_option *opts, int argc, char **argv, cq_error *err);

/* Print "usage: <usage>" and the option table to f (defaults are read from the targets). */
void cq_opts_help(FILE *f, const char *usage, const char *summary, const cq_option *opts);

/* Strict number parsing shared with positional arguments: whole string, range checked.
 * Return CQ_OK or CQ_E_USAGE naming `what`. */
int cq_parse_ll(const char *s, long long min, long long max, const char *what, long long *out,
                cq_error *err);
int cq_parse_double(const char *s, const char *what, double *out, cq_error *err);
int cq_parse_size(const char *s, const char *what, size_t *out, cq_error *err);

#endif
