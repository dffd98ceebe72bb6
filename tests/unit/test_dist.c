/* cq_dist: the fixed-tree sum against a recursive pairwise reference (bit for bit), the share
 * and owner arithmetic, and error agreement. Run alone it is rank 0 of 1; the CQ_MPI build
 * also runs it under `mpirun -n 3` (ctest mpi.dist_tree), where every rank adds only its share
 * of the leaves and rank 0 must still get the reference bits. */
#include "cq_test.h"

#include "cquant/dist.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { LEN = 3 };

static void ensure_init(void)
{
    static int done;
    if (done++)
        return;
    cq_error err = CQ_ERROR_INIT;
    int argc = 0;
    char **argv = NULL;
    CQ_CHECK_OK(cq_dist_init(&argc, &argv, &err), &err);
    atexit(cq_dist_finalize);
}

/* Leaves whose magnitudes span 2^-30..2^30, so that the summation order shows in the bits. */
static double leaf_value(int64_t i, int k)
{
    uint64_t x = (uint64_t)(i * 2654435761u + (uint64_t)k * 40503u + 12345u);
    x ^= x >> 13;
    x *= 0x9E3779B97F4A7C15ull;
    double m = (double)(x >> 11) / 9007199254740992.0 - 0.5;
    return ldexp(m, (int)((x >> 3) % 61) - 30);
}

/* The definition: node(lo, size) over the padded power-of-two range, absent right halves. */
static double ref(int64_t lo, int64_t size, int64_t n, int k)
{
    if (size == 1)
        return leaf_value(lo, k);
    int64_t half = size / 2;
    if (lo + half >= n)
        return ref(lo, half, n, k);
    return ref(lo, half, n, k) + ref(lo + half, half, n, k);
}

static void check_tree(int64_t n)
{
    cq_error err = CQ_ERROR_INIT;
    cq_dist_tree *t = NULL;
    CQ_CHECK_OK(cq_dist_tree_new(&t, n, LEN, &err), &err);
    int64_t b, e;
    cq_dist_share(n, &b, &e);
    for (int64_t i = b; i < e; i++) {
        double *leaf = cq_dist_tree_slot(t);
        for (int k = 0; k < LEN; k++)
            leaf[k] = leaf_value(i, k);
        CQ_CHECK_OK(cq_dist_tree_add(t, i, leaf, &err), &err);
    }
    double *sum = NULL;
    CQ_CHECK_OK(cq_dist_tree_finish(t, &sum, &err), &err);
    CQ_CHECK((sum != NULL) == (cq_dist_rank() == 0));
    int64_t size = 1;
    while (size < n)
        size *= 2;
    for (int k = 0; sum && k < LEN; k++) {
        double want = ref(0, size, n, k);
        if (memcmp(&want, &sum[k], sizeof want) != 0)
            CQ_FAIL("n=%lld k=%d: tree %.17g, reference %.17g", (long long)n, k, sum[k], want);
    }
    /* the stack stays within the plan */
    if (cq_dist_tree_peak(t) > cq_dist_tree_plan(n, cq_dist_size()))
        CQ_FAIL("n=%lld: %d arrays held, plan %d", (long long)n, cq_dist_tree_peak(t),
                cq_dist_tree_plan(n, cq_dist_size()));
    cq_dist_tree_free(t);
}

CQ_TEST(tree_matches_pairwise_definition)
{
    ensure_init();
    static const int64_t ns[] = {1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 31, 64, 100};
    for (size_t i = 0; i < sizeof ns / sizeof *ns; i++)
        check_tree(ns[i]);
}

/* The reference order matters: a plain running sum gives other bits for these leaves. */
CQ_TEST(order_is_visible_in_the_bits)
{
    int differ = 0;
    for (int k = 0; k < LEN; k++) {
        double seq = 0;
        for (int64_t i = 0; i < 100; i++)
            seq += leaf_value(i, k);
        differ += seq != ref(0, 128, 100, k);
    }
    CQ_CHECK(differ > 0);
}

CQ_TEST(share_and_owner_agree)
{
    ensure_init();
    static const int64_t ns[] = {0, 1, 2, 3, 5, 17, 64};
    for (size_t i = 0; i < sizeof ns / sizeof *ns; i++) {
        int64_t b, e, total = 0;
        cq_dist_share(ns[i], &b, &e);
        CQ_CHECK(b <= e && e <= ns[i]);
        for (int64_t j = b; j < e; j++)
            CQ_CHECK_EQ_INT(cq_dist_owner(ns[i], j), cq_dist_rank());
        total = e - b;
        cq_error err = CQ_ERROR_INIT;
        CQ_CHECK_OK(cq_dist_sum_i64(&total, 1, &err), &err);
        CQ_CHECK_EQ_INT(total, ns[i]);
    }
}

CQ_TEST(agree_spreads_the_first_failure)
{
    ensure_init();
    cq_error err = CQ_ERROR_INIT;
    int last = cq_dist_size() - 1, me = cq_dist_rank();
    int rc = CQ_OK;
    if (me == last)
        rc = cq_errorf(&err, CQ_E_NUMERIC, "boom on %d", me);
    rc = cq_dist_agree(rc, &err);
    CQ_CHECK_EQ_INT(rc, CQ_E_NUMERIC);
    CQ_CHECK(strstr(err.msg, "boom") != NULL);
    cq_error ok = CQ_ERROR_INIT;
    CQ_CHECK_EQ_INT(cq_dist_agree(CQ_OK, &ok), CQ_OK);
}
