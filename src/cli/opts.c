/* Table-driven option parsing and --help generation (see opts.h). Numbers are parsed strictly:
 * the whole token must be consumed and the value must be in range; atoi-style silent garbage is
 * the failure this file exists to prevent. */
#include "opts.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void cq_strlist_release(cq_strlist *l)
{
    if (!l)
        return;
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

int cq_parse_ll(const char *s, long long min, long long max, const char *what, long long *out,
                cq_error *err)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || end == s)
        return cq_errorf(err, CQ_E_USAGE, "%s expects an integer, got '%s'", what, s);
    if (errno == ERANGE || v < min || v > max)
        return cq_errorf(err, CQ_E_USAGE, "%s: %s is out of range [%lld, %lld]", what, s, min,
                         max);
    *out = v;
    return CQ_OK;
}

int cq_parse_double(const char *s, const char *what, double *out, cq_error *err)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || end == s)
        return cq_errorf(err, CQ_E_USAGE, "%s expects a number, got '%s'", what, s);
    if (errno == ERANGE || !isfinite(v))
        return cq_errorf(err, CQ_E_USAGE, "%s: %s is out of range", what, s);
    *out = v;
    return CQ_OK;
}

/* Decimal suffixes follow huggingface_hub's max_shard_size ("5GB" = 5e9); the IEC ones are 2^k. */
static const struct {
    const char *suffix;
    uint64_t mult;
} size_units[] = {
    {"", 1},          {"B", 1},           {"K", 1000},         {"KB", 1000},
    {"M", 1000000},   {"MB", 1000000},    {"G", 1000000000},   {"GB", 1000000000},
    {"KiB", 1 << 10}, {"MiB", 1 << 20},   {"GiB", 1u << 30},   {"T", 1000000000000ull},
    {"TB", 1000000000000ull},
};

int cq_parse_size(const char *s, const char *what, size_t *out, cq_error *err)
{
    char *end = NULL;
    errno = 0;
    if (!*s || *s == '-' || *s == '+')
        return cq_errorf(err, CQ_E_USAGE, "%s expects a size like 5GB, got '%s'", what, s);
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || errno == ERANGE)
        return cq_errorf(err, CQ_E_USAGE, "%s expects a size like 5GB, got '%s'", what, s);
    for (size_t i = 0; i < sizeof size_units / sizeof *size_units; i++) {
        if (strcasecmp(end, size_units[i].suffix) != 0)
            continue;
        unsigned long long r;
        if (__builtin_mul_overflow(v, size_units[i].mult, &r) || r > SIZE_MAX)
            return cq_errorf(err, CQ_E_USAGE, "%s: %s is too large", what, s);
        *out = (size_t)r;
        return CQ_OK;
    }
    return cq_errorf(err, CQ_E_USAGE, "%s: unknown size unit in '%s' (use B, KB, MB, GB, MiB, GiB)",
                     what, s);
}

static int in_choices(const char *choices, const char *v)
{
    size_t n = strlen(v);
    for (const char *p = choices; p && *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, v, n) == 0)
            return 1;
        p = bar ? bar + 1 : NULL;
    }
    return 0;
}

/* How the option was spelled, for messages: "--bits" or "-b". */
static void opt_name(const cq_option *o, int as_short, char *buf, size_t n)
{
    if (as_short || !o->long_name)
        snprintf(buf, n, "-%c", o->short_name);
    else
        snprintf(buf, n, "--%s", o->long_name);
}

static int takes_arg(const cq_option *o)
{
    return o->type == CQ_OPT_INT || o->type == CQ_OPT_DOUBLE || o->type == CQ_OPT_SIZE ||
           o->type == CQ_OPT_STRING || o->type == CQ_OPT_LIST;
}

static int list_push(cq_strlist *l, const char *v, cq_error *err)
{
    const char **items = realloc(l->items, (size_t)(l->n + 1) * sizeof *items);
    if (!items)
        return cq_errorf(err, CQ_E_NOMEM, "out of memory parsing options");
    items[l->n++] = v;
    l->items = items;
    return CQ_OK;
}

static int set_value(const cq_option *o, const char *name, const char *arg, cq_error *err)
{
    long long ll;
    int rc = CQ_OK;
    if (o->choices && (o->type == CQ_OPT_INT || o->type == CQ_OPT_STRING) &&
        !in_choices(o->choices, arg))
        return cq_errorf(err, CQ_E_USAGE, "%s: '%s' is not one of %s", name, arg, o->choices);
    switch (o->type) {
    case CQ_OPT_INT:
        if ((rc = cq_parse_ll(arg, o->min, o->max, name, &ll, err)) == CQ_OK)
            *(int *)o->value = (int)ll;
        return rc;
    case CQ_OPT_DOUBLE:
        return cq_parse_double(arg, name, (double *)o->value, err);
    case CQ_OPT_SIZE:
        return cq_parse_size(arg, name, (size_t *)o->value, err);
    case CQ_OPT_STRING:
        *(const char **)o->value = arg;
        return CQ_OK;
    case CQ_OPT_LIST:
        return list_push((cq_strlist *)o->value, arg, err);
    default:
        return cq_errorf(err, CQ_E_INTERNAL, "%s: bad option type", name);
    }
}

static void set_flag(const cq_option *o, bool on)
{
    if (o->type == CQ_OPT_BOOL)
        *(bool *)o->value = on;
    else if (o->type == CQ_OPT_SETINT)
        *(int *)o->value = (int)o->min;
    else if (o->type == CQ_OPT_COUNT)
        *(int *)o->value += 1;
}

static const cq_option *find_long(const cq_option *opts, const char *name, size_t len, bool *neg)
{
    *neg = false;
    for (const cq_option *o = opts; o->type != CQ_OPT_END; o++)
        if (o->long_name && strlen(o->long_name) == len && !strncmp(o->long_name, name, len))
            return o;
    if (len > 3 && !strncmp(name, "no-", 3))
        for (const cq_option *o = opts; o->type != CQ_OPT_END; o++)
            if (o->type == CQ_OPT_BOOL && o->long_name && strlen(o->long_name) == len - 3 &&
                !strncmp(o->long_name, name + 3, len - 3)) {
                *neg = true;
                return o;
            }
    return NULL;
}

/* "--name", "--name=value" or "--name value"; *i advances past what was consumed. */
static int parse_long(const cq_option *opts, int argc, char **argv, int *i, cq_error *err)
{
    const char *s = argv[*i] + 2, *eq = strchr(s, '=');
    size_t len = eq ? (size_t)(eq - s) : strlen(s);
    bool neg;
    const cq_option *o = find_long(opts, s, len, &neg);
    char name[80];
    if (!o)
        return cq_errorf(err, CQ_E_USAGE, "unknown option '--%.*s'", (int)len, s);
    opt_name(o, 0, name, sizeof name);
    if (!takes_arg(o)) {
        if (eq)
            return cq_errorf(err, CQ_E_USAGE, "%s takes no value", name);
        set_flag(o, !neg);
        return CQ_OK;
    }
    if (eq)
        return set_value(o, name, eq + 1, err);
    if (*i + 1 >= argc)
        return cq_errorf(err, CQ_E_USAGE, "%s requires a value", name);
    *i += 1;
    return set_value(o, name, argv[*i], err);
}

/* "-b 4", "-b4", and bundled flags "-qv". */
static int parse_short(const cq_option *opts, int argc, char **argv, int *i, cq_error *err)
{
    for (const char *p = argv[*i] + 1; *p; p++) {
        const cq_option *o = opts;
        while (o->type != CQ_OPT_END && o->short_name != *p)
            o++;
        if (o->type == CQ_OPT_END)
            return cq_errorf(err, CQ_E_USAGE, "unknown option '-%c'", *p);
        char name[8];
        opt_name(o, 1, name, sizeof name);
        if (!takes_arg(o)) {
            set_flag(o, true);
            continue;
        }
        if (p[1])
            return set_value(o, name, p + 1, err);
        if (*i + 1 >= argc)
            return cq_errorf(err, CQ_E_USAGE, "%s requires a value", name);
        *i += 1;
        return set_value(o, name, argv[*i], err);
    }
    return CQ_OK;
}

int cq_opts_parse(const cq_option *opts, int argc, char **argv, cq_error *err)
{
    int npos = 0, rc;
    bool only_args = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (only_args || a[0] != '-' || a[1] == 0) { /* "-" alone is a positional (stdin/stdout) */
            argv[npos++] = argv[i];
            continue;
        }
        if (!strcmp(a, "--")) {
            only_args = true;
            continue;
        }
        rc = a[1] == '-' ? parse_long(opts, argc, argv, &i, err)
                         : parse_short(opts, argc, argv, &i, err);
        if (rc != CQ_OK)
            return rc;
    }
    return npos;
}

static void default_text(const cq_option *o, char *buf, size_t n)
{
    buf[0] = 0;
    if (o->type == CQ_OPT_INT)
        snprintf(buf, n, " (default %d)", *(int *)o->value);
    else if (o->type == CQ_OPT_DOUBLE)
        snprintf(buf, n, " (default %g)", *(double *)o->value);
    else if (o->type == CQ_OPT_SIZE && *(size_t *)o->value)
        snprintf(buf, n, " (default %zu bytes)", *(size_t *)o->value);
    else if (o->type == CQ_OPT_STRING && *(const char **)o->value)
        snprintf(buf, n, " (default %s)", *(const char **)o->value);
}

void cq_opts_help(FILE *f, const char *usage, const char *summary, const cq_option *opts)
{
    fprintf(f, "usage: %s\n", usage);
    if (summary)
        fprintf(f, "\n%s\n", summary);
    fputc('\n', f);
    for (const cq_option *o = opts; o->type != CQ_OPT_END; o++) {
        char left[96], def[96];
        int n = snprintf(left, sizeof left, "    ");
        if (o->short_name)
            n += snprintf(left + n, sizeof left - n, "-%c%s", o->short_name,
                          o->long_name ? ", " : "");
        else
            n += snprintf(left + n, sizeof left - n, "    ");
        if (o->long_name)
            n += snprintf(left + n, sizeof left - n, "--%s", o->long_name);
        if (takes_arg(o))
            snprintf(left + n, sizeof left - n, " %s", o->choices ? o->choices
                                                                  : o->argh ? o->argh : "X");
        default_text(o, def, sizeof def);
        if (strlen(left) > 28)
            fprintf(f, "%s\n%30s%s%s\n", left, "", o->help, def);
        else
            fprintf(f, "%-30s%s%s\n", left, o->help, def);
    }
}
