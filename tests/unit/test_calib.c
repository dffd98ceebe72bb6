/* Calibration: MT19937/randint against CPython's random module, GPTQ random windows, AWQ concat
 * blocks, blank-line document splitting, and the calib.bin round trip. */
#include "cq_test.h"
#include "cquant/calib.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* All expected values below were produced with CPython 3 on this machine:
 *   python3 -c "import random; random.seed(0); print([random.randint(0, 1000) for _ in range(5)])"
 *     -> [864, 394, 776, 911, 430]
 *   random.seed(0); [random.getrandbits(32) for _ in range(3)]
 *     -> [3626764237, 1654615998, 3255389356]
 *   random.seed(12345678901234567890); [random.randint(0, 383000) for _ in range(3)]
 *     -> [268444, 286679, 336756]
 *   random.seed(42); [random.getrandbits(40) for _ in range(2)], random.randint(7, 7),
 *   random.randint(0, 2**40) -> [123005401501, 811856239313], 7, 490678074256
 *   random.seed(0); [random.randint(0, 384593 - 2048 - 1) for _ in range(4)]
 *     -> [201979, 220500, 21225, 135746] */
CQ_TEST(mt_matches_cpython)
{
    cq_mt19937 r;
    static const int64_t want0[5] = {864, 394, 776, 911, 430};
    cq_mt_seed(&r, 0);
    for (int i = 0; i < 5; i++)
        CQ_CHECK_EQ_INT(cq_mt_randint(&r, 0, 1000), want0[i]);
    static const uint32_t bits[3] = {3626764237u, 1654615998u, 3255389356u};
    cq_mt_seed(&r, 0);
    for (int i = 0; i < 3; i++)
        CQ_CHECK_EQ_INT(cq_mt_next(&r), bits[i]);
    static const int64_t wantbig[3] = {268444, 286679, 336756};
    cq_mt_seed(&r, 12345678901234567890ull); /* a two-word key */
    for (int i = 0; i < 3; i++)
        CQ_CHECK_EQ_INT(cq_mt_randint(&r, 0, 383000), wantbig[i]);
    cq_mt_seed(&r, 42);
    CQ_CHECK_EQ_INT(cq_mt_getrandbits(&r, 40), 123005401501ll);
    CQ_CHECK_EQ_INT(cq_mt_getrandbits(&r, 40), 811856239313ll);
    CQ_CHECK_EQ_INT(cq_mt_randint(&r, 7, 7), 7);
    CQ_CHECK_EQ_INT(cq_mt_randint(&r, 0, 1ll << 40), 490678074256ll);
}

CQ_TEST(random_windows_follow_gptq)
{
    int64_t len = 384593, S = 2048;
    int32_t *stream = malloc((size_t)len * sizeof(int32_t));
    for (int64_t i = 0; i < len; i++)
        stream[i] = (int32_t)(i * 7 % 8192);
    cq_calib c;
    cq_error err = CQ_ERROR_INIT;
    CQ_CHECK_OK(cq_calib_random(stream, len, 4, S, 0, &c, &err), &err);
    static const int64_t starts[4] = {201979, 220500, 21225, 135746};
    for (int s = 0; s < 4; s++) {
        CQ_CHECK(memcmp(c.ids + s * S, stream + starts[s], (size_t)S * 4) == 0);
    }
    CQ_CHECK(strcmp(c.mode, "random") == 0);
    cq_calib_release(&c);
    CQ_CHECK_EQ_INT(cq_calib_random(stream, S, 1, S, 0, &c, &err), CQ_E_USAGE);
    free(stream);
}

CQ_TEST(split_docs_at_blank_lines)
{
    const char *t = "  first doc\nline two\n\n \t\n\nsecond\n   \nthird  \n\n";
    cq_doc_span *sp = NULL;
    int64_t n = 0;
    cq_error err = CQ_ERROR_INIT;
    CQ_CHECK_OK(cq_calib_split_docs(t, strlen(t), &sp, &n, &err), &err);
    CQ_CHECK_EQ_INT(n, 3);
    if (n == 3) {
        CQ_CHECK(sp[0].len == 18 && memcmp(t + sp[0].off, "first doc\nline two", 18) == 0);
        CQ_CHECK(sp[1].len == 6 && memcmp(t + sp[1].off, "second", 6) == 0);
        CQ_CHECK(sp[2].len == 5 && memcmp(t + sp[2].off, "third", 5) == 0);
    }
    free(sp);
}

CQ_TEST(concat_blocks_follow_autoawq)
{
    /* docs of lengths 3, 0 (skipped), 9 (> max 6, skipped), 5, 4, 6: with max_docs 3 the
     * accepted ones are 3, 5, 4 -> 12 tokens -> 2 blocks of 5, remainder 2 dropped. */
    int32_t d[6][9];
    const int32_t *docs[6];
    int64_t lens[6] = {3, 0, 9, 5, 4, 6};
    for (int i = 0; i < 6; i++) {
        for (int j = 0; j < 9; j++)
            d[i][j] = 100 * i + j;
        docs[i] = d[i];
    }
    cq_calib c;
    cq_error err = CQ_ERROR_INIT;
    CQ_CHECK_OK(cq_calib_concat(docs, lens, 6, 5, 3, 6, &c, &err), &err);
    CQ_CHECK_EQ_INT(c.n, 2);
    CQ_CHECK_EQ_INT(c.seqlen, 5);
    static const int32_t want[10] = {0, 1, 2, 300, 301, 302, 303, 304, 400, 401};
    if (c.n == 2)
        CQ_CHECK(memcmp(c.ids, want, sizeof want) == 0);
    cq_calib_release(&c);
    CQ_CHECK_EQ_INT(cq_calib_concat(docs, lens, 1, 5, 3, 6, &c, &err), CQ_E_USAGE);
}

#include "cquant/safetensors.h"

#include <stdio.h>

CQ_TEST(calib_file_round_trip)
{
    cq_error err = CQ_ERROR_INIT;
    cq_calib c, back;
    int32_t stream[64];
    for (int i = 0; i < 64; i++)
        stream[i] = i * 3;
    CQ_CHECK_OK(cq_calib_random(stream, 64, 3, 8, 7, &c, &err), &err);
    snprintf(c.tokenizer_hash, sizeof c.tokenizer_hash, "abc123");
    snprintf(c.sources, sizeof c.sources, "text/calib-debian-docs.txt");
    char path[512];
    snprintf(path, sizeof path, "%s/calib.bin", cq_test_tmpdir());
    CQ_CHECK_OK(cq_calib_write(path, &c, &err), &err);
    CQ_CHECK_OK(cq_calib_read(path, 192, &back, &err), &err);
    CQ_CHECK_EQ_INT(back.n, 3);
    CQ_CHECK_EQ_INT(back.seqlen, 8);
    if (back.ids)
        CQ_CHECK(memcmp(back.ids, c.ids, 24 * sizeof(int32_t)) == 0);
    CQ_CHECK(strcmp(back.mode, "random") == 0 && strcmp(back.tokenizer_hash, "abc123") == 0);
    CQ_CHECK(strcmp(back.sources, "text/calib-debian-docs.txt") == 0);
    CQ_CHECK_EQ_INT(back.seed, 7);
    cq_calib_release(&back);
    /* a vocabulary that ends at the largest id rejects the file, naming it */
    int32_t mx = 0;
    for (int i = 0; i < 24; i++)
        mx = c.ids[i] > mx ? c.ids[i] : mx;
    CQ_CHECK_EQ_INT(cq_calib_read(path, mx, &back, &err), CQ_E_FORMAT);
    CQ_CHECK(strstr(err.msg, path) && strstr(err.msg, "vocabulary"));
    cq_calib_release(&c);
}

/* Any safetensors with I64 input_ids [n, seqlen] is accepted (e.g. a torch-saved batch). */
CQ_TEST(calib_read_i64)
{
    cq_error err = CQ_ERROR_INIT;
    const char *dir = cq_test_tmpdir();
    char path[512], made[600];
    snprintf(path, sizeof path, "%s/i64.safetensors", dir);
    snprintf(made, sizeof made, "%s/model.safetensors", dir);
    int64_t ids[6] = {5, 0, 9, 1, 2, 3}, shape[2] = {2, 3};
    cq_st_writer *w = NULL;
    int rc = cq_st_writer_create(&w, dir, 0, &err);
    if (rc == CQ_OK) rc = cq_st_writer_add(w, "input_ids", CQ_DT_I64, 2, shape, &err);
    if (rc == CQ_OK) rc = cq_st_writer_start(w, &err);
    if (rc == CQ_OK) rc = cq_st_writer_write(w, "input_ids", ids, sizeof ids, &err);
    if (rc == CQ_OK) rc = cq_st_writer_finish(w, &err);
    cq_st_writer_free(w);
    CQ_CHECK_OK(rc, &err);
    CQ_CHECK(rename(made, path) == 0);
    cq_calib c;
    CQ_CHECK_OK(cq_calib_read(path, 10, &c, &err), &err);
    CQ_CHECK(c.n == 2 && c.seqlen == 3 && c.ids && c.ids[2] == 9 && c.ids[5] == 3);
    cq_calib_release(&c);
    CQ_CHECK_EQ_INT(cq_calib_read(path, 9, &c, &err), CQ_E_FORMAT);
    CQ_CHECK(strstr(err.msg, "input_ids[0][2] = 9") != NULL);
}
