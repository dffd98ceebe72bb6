/* The writer's resume mode (cq_st_writer_reopen / mark_written / sync): a write interrupted
 * after some tensors, reopened with the same plan, gives the bytes of one uninterrupted write;
 * a different plan or a missing file is refused. */
#include "cq_test.h"
#include "cq_testutil.h"

#include "cquant/safetensors.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const int64_t shape_a[2] = {4, 8}, shape_b[1] = {16};

static int plan(cq_st_writer **w, const char *dir, int64_t c_rows, size_t shard, cq_error *err)
{
    int64_t sc[2] = {c_rows, 3};
    int rc = cq_st_writer_create(w, dir, shard, err);
    if (rc == CQ_OK)
        rc = cq_st_writer_add(*w, "a", CQ_DT_F32, 2, shape_a, err);
    if (rc == CQ_OK)
        rc = cq_st_writer_add(*w, "b", CQ_DT_I32, 1, shape_b, err);
    if (rc == CQ_OK)
        rc = cq_st_writer_add(*w, "c", CQ_DT_F32, 2, sc, err);
    if (rc == CQ_OK)
        rc = cq_st_writer_meta(*w, "k", "v", err);
    return rc;
}

static float va[32], vc[9];
static int32_t vb[16];

static void run_case(size_t shard, const char *file)
{
    cq_error err = CQ_ERROR_INIT;
    char d1[1024], d2[1100], p1[1200], p2[1200];
    snprintf(d1, sizeof d1, "%s", cq_test_tmpdir());
    snprintf(d2, sizeof d2, "%s/r%zu", d1, shard);
    snprintf(d1 + strlen(d1), sizeof d1 - strlen(d1), "/f%zu", shard);
    CQ_CHECK(mkdir(d1, 0777) == 0 && mkdir(d2, 0777) == 0);
    for (int i = 0; i < 32; i++)
        va[i] = (float)i * 0.5f;
    for (int i = 0; i < 16; i++)
        vb[i] = i * 7 - 3;
    for (int i = 0; i < 9; i++)
        vc[i] = (float)-i;
    /* uninterrupted */
    cq_st_writer *w = NULL;
    int rc = plan(&w, d1, 3, shard, &err);
    if (rc == CQ_OK) rc = cq_st_writer_start(w, &err);
    if (rc == CQ_OK) rc = cq_st_writer_write(w, "a", va, sizeof va, &err);
    if (rc == CQ_OK) rc = cq_st_writer_write(w, "b", vb, sizeof vb, &err);
    if (rc == CQ_OK) rc = cq_st_writer_write(w, "c", vc, sizeof vc, &err);
    if (rc == CQ_OK) rc = cq_st_writer_finish(w, &err);
    CQ_CHECK_OK(rc, &err);
    cq_st_writer_free(w);
    /* interrupted after "c" and "a" (synced), then reopened: "a" marked, "b" and "c" written */
    w = NULL;
    rc = plan(&w, d2, 3, shard, &err);
    if (rc == CQ_OK) rc = cq_st_writer_start(w, &err);
    if (rc == CQ_OK) rc = cq_st_writer_write(w, "c", vc, sizeof vc, &err);
    if (rc == CQ_OK) rc = cq_st_writer_write(w, "a", va, sizeof va, &err);
    if (rc == CQ_OK) rc = cq_st_writer_sync(w, &err);
    CQ_CHECK_OK(rc, &err);
    cq_st_writer_free(w); /* the "kill": no finish */
    w = NULL;
    rc = plan(&w, d2, 3, shard, &err);
    if (rc == CQ_OK) rc = cq_st_writer_reopen(w, &err);
    CQ_CHECK_OK(rc, &err);
    /* nothing counts as written until marked or rewritten */
    cq_error e2 = CQ_ERROR_INIT;
    CQ_CHECK_EQ_INT(cq_st_writer_finish(w, &e2), CQ_E_INTERNAL);
    e2 = (cq_error)CQ_ERROR_INIT;
    CQ_CHECK_EQ_INT(cq_st_writer_mark_written(w, "zz", &e2), CQ_E_INTERNAL);
    if (rc == CQ_OK) rc = cq_st_writer_mark_written(w, "a", &err);
    if (rc == CQ_OK) rc = cq_st_writer_write(w, "b", vb, sizeof vb, &err);
    if (rc == CQ_OK) rc = cq_st_writer_write(w, "c", vc, sizeof vc, &err);
    if (rc == CQ_OK) rc = cq_st_writer_finish(w, &err);
    CQ_CHECK_OK(rc, &err);
    cq_st_writer_free(w);
    snprintf(p1, sizeof p1, "%s/%s", d1, file);
    snprintf(p2, sizeof p2, "%s/%s", d2, file);
    size_t n1 = 0, n2 = 0;
    unsigned char *b1 = cq_test_slurp(p1, &n1), *b2 = cq_test_slurp(p2, &n2);
    CQ_CHECK(b1 && b2 && n1 == n2 && n1 > 0 && !memcmp(b1, b2, n1));
    free(b1);
    free(b2);
    /* another plan (c is 4x3 now) is refused */
    w = NULL;
    err = (cq_error)CQ_ERROR_INIT;
    rc = plan(&w, d2, 4, shard, &err);
    CQ_CHECK_OK(rc, &err);
    /* one file: its header differs; sharded: the plan has another shard count, so a name */
    int r = cq_st_writer_reopen(w, &err);
    CQ_CHECK(r == CQ_E_FORMAT || (shard && r == CQ_E_IO));
    printf("mismatch: %s\n", err.msg);
    cq_st_writer_free(w);
}

CQ_TEST(reopen_single_file) { run_case(0, "model.safetensors"); }

CQ_TEST(reopen_sharded) { run_case(100, "model-00002-of-00002.safetensors"); }

CQ_TEST(reopen_missing_file)
{
    cq_error err = CQ_ERROR_INIT;
    char d[1024];
    snprintf(d, sizeof d, "%s/empty", cq_test_tmpdir());
    CQ_CHECK(mkdir(d, 0777) == 0);
    cq_st_writer *w = NULL;
    CQ_CHECK_OK(plan(&w, d, 3, 0, &err), &err);
    CQ_CHECK_EQ_INT(cq_st_writer_reopen(w, &err), CQ_E_IO);
    cq_st_writer_free(w);
}
