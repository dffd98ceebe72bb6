/* cq_read_file: the whole-file reader behind config.json, tokenizer.json and cq_json_load. */
#include "cq_test.h"

#include "cquant/file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[] = "/tmp/cq_test_file.XXXXXX";

static const char *path_of(const char *name)
{
    static char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return p;
}

static void write_bytes(const char *name, const char *data, size_t n)
{
    FILE *f = fopen(path_of(name), "wb");
    CQ_CHECK(f != NULL);
    if (f) {
        CQ_CHECK(fwrite(data, 1, n, f) == n);
        fclose(f);
    }
}

static void expect_fail(const char *name, size_t max, int status, const char *what)
{
    cq_error err = CQ_ERROR_INIT;
    char *d = (char *)1;
    size_t n = 7;
    CQ_CHECK_EQ_INT(cq_read_file(path_of(name), max, 0, &d, &n, &err), status);
    CQ_CHECK(d == NULL && n == 0);
    CQ_CHECK(strstr(err.msg, what) != NULL && strstr(err.msg, name) != NULL);
    CQ_CHECK(strchr(err.msg, '\n') == NULL);
}

CQ_TEST(reads_and_refuses)
{
    CQ_CHECK(mkdtemp(dir) != NULL);
    /* contents with a NUL inside: the length is the file's, and a NUL follows */
    const char data[] = {'{', '}', 0, 'x', '\n'};
    write_bytes("a.json", data, sizeof data);
    cq_error err = CQ_ERROR_INIT;
    char *d = NULL;
    size_t n = 0;
    CQ_CHECK_OK(cq_read_file(path_of("a.json"), 5, 0, &d, &n, &err), &err);
    CQ_CHECK(n == sizeof data && d && memcmp(d, data, n) == 0 && d[n] == 0);
    free(d);
    write_bytes("empty", "", 0);
    CQ_CHECK_OK(cq_read_file(path_of("empty"), 5, 0, &d, &n, &err), &err);
    CQ_CHECK(n == 0 && d && d[0] == 0);
    free(d);
    /* missing: an error, or nothing with CQ_READ_MISSING_OK */
    expect_fail("missing", 100, CQ_E_IO, "cannot open");
    d = (char *)1;
    CQ_CHECK_OK(cq_read_file(path_of("missing"), 100, CQ_READ_MISSING_OK, &d, &n, &err), &err);
    CQ_CHECK(d == NULL && n == 0);
    expect_fail("a.json", 4, CQ_E_FORMAT, "5 bytes is over the 4-byte limit");
    CQ_CHECK(mkdir(path_of("folder"), 0700) == 0);
    expect_fail("folder", 100, CQ_E_IO, "not a regular file");
    /* a FIFO without a writer: refused at once, never waited for */
    CQ_CHECK(mkfifo(path_of("fifo"), 0600) == 0);
    expect_fail("fifo", 100, CQ_E_IO, "not a regular file");
    unlink(path_of("a.json"));
    unlink(path_of("empty"));
    unlink(path_of("fifo"));
    rmdir(path_of("folder"));
    rmdir(dir);
}
