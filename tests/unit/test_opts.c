/* The CLI option parser (src/cli/opts.c, compiled in here since it is not in the library):
 * strict numbers, size units, spellings, "--", repeated options, and misuse messages. */
#include "cq_test.h"

#include "cli/opts.c"

#include <string.h>

typedef struct vals {
    int bits, group, sym, count;
    bool flag;
    double damp;
    size_t size;
    const char *fmt;
    cq_strlist inc;
} vals;

static int parse(vals *v, const char *line, char **pos, cq_error *err)
{
    static char buf[512];
    static char *argv[32];
    int argc = 0;
    snprintf(buf, sizeof buf, "cmd %s", line);
    for (char *t = strtok(buf, " "); t && argc < 31; t = strtok(NULL, " "))
        argv[argc++] = t;
    const cq_option opts[] = {
        OPT_INT('b', "bits", &v->bits, "N", "bits", 2, 8, "2|3|4|8"),
        OPT_INT('g', "group", &v->group, "N", "group", -1, 1 << 30, NULL),
        OPT_SETINT(0, "sym", &v->sym, 1, "sym"),
        OPT_SETINT(0, "asym", &v->sym, 0, "asym"),
        OPT_BOOL('x', "flag", &v->flag, "flag"),
        OPT_COUNT('v', "verbose", &v->count, "v"),
        OPT_DOUBLE(0, "damp", &v->damp, "F", "damp"),
        OPT_SIZE(0, "max-shard-size", &v->size, "SIZE", "size"),
        OPT_STRING('f', "format", &v->fmt, "F", "format", "gptq|awq|ct"),
        OPT_LIST(0, "include", &v->inc, "GLOB", "include"),
        OPT_END(),
    };
    int n = cq_opts_parse(opts, argc, argv, err);
    if (pos && n > 0)
        *pos = argv[0];
    return n;
}

CQ_TEST(spellings)
{
    const char *lines[] = {"--bits 8 M", "--bits=8 M", "-b8 M", "-b 8 M", "M --bits 8",
                           "-- M", "--bits 8 -- M"};
    for (size_t i = 0; i < sizeof lines / sizeof *lines; i++) {
        vals v = {.bits = 4};
        cq_error err = CQ_ERROR_INIT;
        char *pos = NULL;
        int n = parse(&v, lines[i], &pos, &err);
        if (n != 1 || strcmp(pos, "M") || v.bits != (i == 5 ? 4 : 8))
            CQ_FAIL("'%s': n %d bits %d (%s)", lines[i], n, v.bits, err.msg);
        cq_strlist_release(&v.inc);
    }
}

CQ_TEST(values)
{
    vals v = {0};
    cq_error err = CQ_ERROR_INIT;
    int n = parse(&v, "--group -1 --asym -xvv --damp 0.05 --max-shard-size 5GB --format=awq "
                      "--include a --include b A B",
                  NULL, &err);
    CQ_CHECK_EQ_INT(n, 2);
    CQ_CHECK_EQ_INT(v.group, -1);
    CQ_CHECK_EQ_INT(v.sym, 0);
    CQ_CHECK(v.flag);
    CQ_CHECK_EQ_INT(v.count, 2);
    CQ_CHECK_NEAR(v.damp, 0.05, 0);
    CQ_CHECK_EQ_INT(v.size, 5000000000LL);
    CQ_CHECK(v.fmt && !strcmp(v.fmt, "awq"));
    CQ_CHECK_EQ_INT(v.inc.n, 2);
    cq_strlist_release(&v.inc);
    size_t s = 0;
    CQ_CHECK_OK(cq_parse_size("2MiB", "x", &s, &err), &err);
    CQ_CHECK_EQ_INT(s, 2 << 20);
    CQ_CHECK_OK(cq_parse_size("123", "x", &s, &err), &err);
    CQ_CHECK_EQ_INT(s, 123);
}

CQ_TEST(misuse)
{
    const char *bad[] = {"--bits 5", "--bits x", "--bits 4x", "--bits", "--group 99999999999",
                         "--group 1e3", "--damp nan", "--damp 1.5.2", "--damp inf",
                         "--max-shard-size 5XB", "--max-shard-size -1", "--format foo",
                         "--sym=1", "--nope", "-z", "--max-shard-size 99999999999999999999GB",
                         "--bits= "};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        vals v = {0};
        cq_error err = CQ_ERROR_INIT;
        int n = parse(&v, bad[i], NULL, &err);
        if (n != CQ_E_USAGE || !err.msg[0] || strchr(err.msg, '\n'))
            CQ_FAIL("'%s': got %d '%s', want a one-line usage error", bad[i], n, err.msg);
        cq_strlist_release(&v.inc);
    }
}
