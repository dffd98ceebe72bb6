/* Test harness runner; see cq_test.h. */
#include "cq_test.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_TESTS 256
static struct {
    const char *name;
    cq_test_fn fn;
} tests[MAX_TESTS];
static int n_tests;
int cq_test_failed_checks;
static int shared_missing_fatal;
static char tmpdir[256];

void cq_test_register(const char *name, cq_test_fn fn)
{
    if (n_tests < MAX_TESTS) {
        tests[n_tests].name = name;
        tests[n_tests].fn = fn;
        n_tests++;
    }
}

const char *cq_test_shared(void)
{
    const char *s = getenv("CQ_SHARED");
    static char buf[4096];
    if (!s)
        s = "../shared";
    snprintf(buf, sizeof buf, "%s/models/cq-llama-16m/config.json", s);
    if (access(buf, R_OK) == 0)
        return s;
    const char *ci = getenv("CI");
    if (ci && strcmp(ci, "true") == 0) {
        fprintf(stderr, "shared folder '%s' is missing and CI=true: failing\n", s);
        shared_missing_fatal = 1;
        cq_test_failed_checks++;
    } else {
        fprintf(stderr, "note: shared folder '%s' missing: model checks not run\n", s);
    }
    return NULL;
}

const char *cq_test_shared_path(const char *rel)
{
    static char buf[4096];
    const char *s = getenv("CQ_SHARED");
    snprintf(buf, sizeof buf, "%s/%s", s ? s : "../shared", rel);
    return buf;
}

static void rm_tmpdir(void)
{
    if (tmpdir[0]) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
            fprintf(stderr, "note: could not remove %s\n", tmpdir);
    }
}

const char *cq_test_tmpdir(void)
{
    if (!tmpdir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(tmpdir, sizeof tmpdir, "%s/cqtest.XXXXXX", t ? t : "/tmp");
        if (!mkdtemp(tmpdir)) {
            perror("mkdtemp");
            exit(1);
        }
        atexit(rm_tmpdir);
    }
    return tmpdir;
}

int cq_test_main(int argc, char **argv)
{
    int passed = 0, failed = 0;
    for (int i = 0; i < n_tests; i++) {
        if (argc > 1 && strcmp(argv[1], tests[i].name) != 0)
            continue;
        int before = cq_test_failed_checks;
        tests[i].fn();
        if (cq_test_failed_checks == before) {
            passed++;
        } else {
            failed++;
            fprintf(stderr, "FAILED: %s\n", tests[i].name);
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed || shared_missing_fatal ? 1 : 0;
}

int main(int argc, char **argv) { return cq_test_main(argc, argv); }
