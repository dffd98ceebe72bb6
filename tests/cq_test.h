/* Minimal test harness: CQ_TEST registers a function, checks print file:line with the numbers,
 * and cq_test_main ends with "N passed, M failed". */
#ifndef CQ_TEST_H
#define CQ_TEST_H

#include "cquant/error.h"

#include <math.h>
#include <stdio.h>

typedef void (*cq_test_fn)(void);
void cq_test_register(const char *name, cq_test_fn fn);
int cq_test_main(int argc, char **argv);
extern int cq_test_failed_checks;

#define CQ_TEST(name)                                                                           \
    static void name(void);                                                                    \
    __attribute__((constructor)) static void reg_##name(void) { cq_test_register(#name, name); } \
    static void name(void)

#define CQ_FAIL(...)                                                                           \
    do {                                                                                       \
        fprintf(stderr, "%s:%d: check failed: ", __FILE__, __LINE__);                          \
        fprintf(stderr, __VA_ARGS__);                                                          \
        fputc('\n', stderr);                                                                   \
        cq_test_failed_checks++;                                                               \
    } while (0)

#define CQ_CHECK(c)                                                                            \
    do {                                                                                       \
        if (!(c))                                                                              \
            CQ_FAIL("%s", #c);                                                                 \
    } while (0)
#define CQ_CHECK_EQ_INT(a, b)                                                                  \
    do {                                                                                       \
        long long a_ = (long long)(a), b_ = (long long)(b);                                    \
        if (a_ != b_)                                                                          \
            CQ_FAIL("%s == %s (got %lld, want %lld)", #a, #b, a_, b_);                         \
    } while (0)
#define CQ_CHECK_NEAR(a, b, tol)                                                               \
    do {                                                                                       \
        double a_ = (double)(a), b_ = (double)(b);                                             \
        if (!(fabs(a_ - b_) <= (tol)))                                                         \
            CQ_FAIL("%s ~ %s (got %.9g, want %.9g, tol %.3g)", #a, #b, a_, b_, (double)(tol)); \
    } while (0)
#define CQ_CHECK_OK(rc, err)                                                                   \
    do {                                                                                       \
        int rc_ = (rc);                                                                        \
        if (rc_ != CQ_OK)                                                                      \
            CQ_FAIL("%s returned %d: %s", #rc, rc_, (err)->msg);                               \
    } while (0)

/* The ../shared folder for model tests. Returns NULL (and the test should return) when it is
 * missing outside CI; in CI (CI=true) a missing folder is a failure, never a skip. */
const char *cq_test_shared(void);
/* Path helpers: "<shared>/<rel>" into a static buffer (not reentrant). */
const char *cq_test_shared_path(const char *rel);
/* A fresh empty temporary directory, removed at exit. */
const char *cq_test_tmpdir(void);

#endif
