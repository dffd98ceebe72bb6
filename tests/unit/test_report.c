/* Report metrics against closed forms, totals weighting, JSON shape, NaN as null. */
#include "cq_test.h"
#include "core/cpu.h"
#include "cquant/report.h"
#include "cquant/sha256.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <string.h>

CQ_TEST(weight_error_closed_form)
{
    const float w[] = {1, 2, 3, 4}, wq[] = {1, 2, 3, 5};
    cq_werr e;
    cq_weight_error(w, wq, 4, &e);
    CQ_CHECK_NEAR(e.mse, 0.25, 1e-15);          /* (5-4)^2 / 4 */
    CQ_CHECK_NEAR(e.max_abs, 1.0, 0);
    CQ_CHECK_NEAR(e.rel_fro, sqrt(1.0 / 30.0), 1e-15); /* 1 / sqrt(1+4+9+16) */
    const float z[] = {0, 0};
    cq_weight_error(z, z, 2, &e);
    CQ_CHECK_NEAR(e.rel_fro, 0, 0);
    const float n[] = {NAN, 1};
    cq_weight_error(n, z, 2, &e);
    CQ_CHECK(isnan(e.max_abs) && isnan(e.mse));
}

CQ_TEST(totals_and_json)
{
    cq_error err = CQ_ERROR_INIT;
    cq_report *r = NULL;
    char *argv[] = {"cquant", "rtn", "M"};
    CQ_CHECK_OK(cq_report_create(&r, "rtn", 3, argv, &err), &err);
    if (!r)
        return;
    const float a[] = {1, 1}, aq[] = {1, 0};          /* sq err 1, sq w 2 */
    const float b[] = {2, 2, 2, 2}, bq[] = {2, 2, 2, 2}; /* sq err 0, sq w 16 */
    cq_layer_report la = {.name = "a.weight", .rows = 1, .cols = 2, .method = "rtn", .bits = 4};
    cq_layer_report lb = {.name = "b.weight", .rows = 2, .cols = 2, .method = "rtn", .bits = 4};
    cq_layer_report ls = {.name = "c.weight", .rows = 3, .cols = 3, .method = "rtn", .bits = 4,
                          .skipped = true, .reason = "does not fit"};
    cq_weight_error(a, aq, 2, &la.err);
    cq_weight_error(b, bq, 4, &lb.err);
    CQ_CHECK_OK(cq_report_add_layer(r, &la, &err), &err);
    CQ_CHECK_OK(cq_report_add_layer(r, &lb, &err), &err);
    CQ_CHECK_OK(cq_report_add_layer(r, &ls, &err), &err);
    CQ_CHECK_OK(cq_report_finish(r, 1.5, &err), &err);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(cq_report_json(r), "totals");
#define TOT(k) cJSON_GetObjectItemCaseSensitive(t, k)->valuedouble
    CQ_CHECK_EQ_INT(TOT("quantized"), 2);
    CQ_CHECK_EQ_INT(TOT("skipped"), 1);
    CQ_CHECK_EQ_INT(TOT("params_quantized"), 6);
    CQ_CHECK_NEAR(TOT("weight_mse"), 1.0 / 6.0, 1e-15);          /* element-weighted */
    CQ_CHECK_NEAR(TOT("rel_frobenius_error"), sqrt(1.0 / 18.0), 1e-15);
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(cq_report_json(r), "layers");
    CQ_CHECK_EQ_INT(cJSON_GetArraySize(layers), 3);
    const cJSON *sk = cJSON_GetArrayItem(layers, 2);
    CQ_CHECK(!strcmp(cJSON_GetObjectItemCaseSensitive(sk, "status")->valuestring, "skipped"));
    CQ_CHECK(!strcmp(cJSON_GetObjectItemCaseSensitive(sk, "reason")->valuestring, "does not fit"));
    CQ_CHECK(!cJSON_GetObjectItemCaseSensitive(sk, "weight_mse"));
    /* a written report refuses to be replaced without force */
    char path[512];
    snprintf(path, sizeof path, "%s/r.json", cq_test_tmpdir());
    CQ_CHECK_OK(cq_report_write(r, path, false, &err), &err);
    cq_error e2 = CQ_ERROR_INIT;
    CQ_CHECK_EQ_INT(cq_report_write(r, path, false, &e2), CQ_E_EXISTS);
    cq_report_free(r);
    cq_report_free(NULL);
}

static void hash_file_case(const char *dir, size_t len)
{
    /* A file of len pseudo-random bytes: cq_report_hash_file (mapped windows) against the
     * one-shot digest of the same bytes in memory. */
    char path[600];
    snprintf(path, sizeof path, "%.500s/hash_%zu.bin", dir, len);
    unsigned char *buf = malloc(len ? len : 1);
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        buf[i] = (unsigned char)x;
    }
    FILE *f = fopen(path, "wb");
    CQ_CHECK(f != NULL);
    if (!f) {
        free(buf);
        return;
    }
    CQ_CHECK(fwrite(buf, 1, len, f) == len);
    fclose(f);
    uint8_t d[32];
    int64_t size = -1;
    char got[65], want[65];
    cq_error err = CQ_ERROR_INIT;
    CQ_CHECK_OK(cq_report_hash_file(path, d, &size, &err), &err);
    cq_sha256_to_hex(d, got);
    cq_sha256_hex(buf, len, want);
    CQ_CHECK_EQ_INT(size, (int64_t)len);
    if (strcmp(got, want) != 0)
        CQ_FAIL("hash of a %zu-byte file: %s, in memory %s", len, got, want);
    remove(path);
    free(buf);
}

CQ_TEST(hash_file_windows_and_fallback)
{
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char dir[512];
    snprintf(dir, sizeof dir, "%s/cq_test_report_XXXXXX", tmp);
    CQ_CHECK(mkdtemp(dir) != NULL);
    /* empty, small, and sizes around the 2 MB mapping window and its multiples */
    static const size_t lens[] = {0, 3, 4096, (2u << 20) - 1, 2u << 20, (2u << 20) + 5,
                                  (6u << 20) + 4097};
    for (size_t i = 0; i < sizeof lens / sizeof *lens; i++)
        hash_file_case(dir, lens[i]);
    rmdir(dir);
    /* not a regular file: read, not mapped (/dev/null is empty: FIPS 180-4 empty digest) */
    uint8_t d[32];
    int64_t size = -1;
    char hex[65];
    cq_error err = CQ_ERROR_INIT;
    CQ_CHECK_OK(cq_report_hash_file("/dev/null", d, &size, &err), &err);
    cq_sha256_to_hex(d, hex);
    CQ_CHECK(strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == 0);
    CQ_CHECK_EQ_INT(size, 0);
    CQ_CHECK_EQ_INT(cq_report_hash_file("/nonexistent/x", d, &size, &err), CQ_E_IO);
}

/* Bytes of a test file: an xorshift stream seeded per file. */
static unsigned char *test_bytes(size_t len, uint32_t seed)
{
    unsigned char *buf = malloc(len ? len : 1);
    uint32_t x = seed;
    for (size_t i = 0; buf && i < len; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        buf[i] = (unsigned char)x;
    }
    return buf;
}

CQ_TEST(hash_files_two_lanes)
{
    /* cq_report_hash_files (two files hashed at once, interleaved) against the portable
     * one-shot digest of each file's bytes in memory, for several lists: lengths around the
     * 64-byte block and the 2 MB window (lanes run out of data at different points), a
     * non-mappable file (/dev/null), one file alone, and with the portable path forced. */
    enum { NF = 9 };
    static const size_t lens[NF] = {(6u << 20) + 4097, 3, (2u << 20) + 5, 0, 100,
                                    (2u << 20) - 1, 4096 + 17, 65, 1u << 20};
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char dir[512], paths[NF + 1][600];
    const char *list[NF + 1];
    char want[NF + 1][65];
    snprintf(dir, sizeof dir, "%s/cq_test_hashes_XXXXXX", tmp);
    CQ_CHECK(mkdtemp(dir) != NULL);
    cq_cpu_force_baseline(true); /* the reference digests: the portable block function */
    for (int i = 0; i < NF; i++) {
        unsigned char *buf = test_bytes(lens[i], 2463534242u + (uint32_t)i);
        snprintf(paths[i], sizeof paths[i], "%.500s/f%d.bin", dir, i);
        FILE *f = fopen(paths[i], "wb");
        CQ_CHECK(f && buf && fwrite(buf, 1, lens[i], f) == lens[i]);
        if (f)
            fclose(f);
        cq_sha256_hex(buf, lens[i], want[i]);
        free(buf);
        list[i] = paths[i];
    }
    cq_cpu_force_baseline(false);
    snprintf(paths[NF], sizeof paths[NF], "/dev/null");
    list[NF] = paths[NF];
    cq_sha256_hex("", 0, want[NF]);
    static const struct { int first, n, baseline; } runs[] = {
        {0, NF + 1, 0}, {0, 3, 0}, {4, 1, 0}, {1, 2, 0}, {5, 5, 0}, {0, NF + 1, 1}};
    for (size_t r = 0; r < sizeof runs / sizeof *runs; r++) {
        uint8_t d[NF + 1][32];
        int64_t bytes[NF + 1];
        cq_error err = CQ_ERROR_INIT;
        cq_cpu_force_baseline(runs[r].baseline != 0);
        CQ_CHECK_OK(cq_report_hash_files(list + runs[r].first, (size_t)runs[r].n, d, bytes, &err),
                    &err);
        cq_cpu_force_baseline(false);
        for (int k = 0; k < runs[r].n; k++) {
            int i = runs[r].first + k;
            char got[65];
            cq_sha256_to_hex(d[k], got);
            if (strcmp(got, want[i]) != 0)
                CQ_FAIL("run %zu: file %d (%zu bytes): %s, want %s", r, i,
                        i < NF ? lens[i] : 0, got, want[i]);
            CQ_CHECK_EQ_INT(bytes[k], i < NF ? (int64_t)lens[i] : 0);
        }
    }
    /* a missing file in the list: an I/O error naming it */
    const char *bad[3] = {list[0], "/nonexistent/x", list[1]};
    uint8_t d[3][32];
    int64_t bytes[3];
    cq_error err = CQ_ERROR_INIT;
    CQ_CHECK_EQ_INT(cq_report_hash_files(bad, 3, d, bytes, &err), CQ_E_IO);
    CQ_CHECK(strstr(err.msg, "/nonexistent/x") != NULL);
    for (int i = 0; i < NF; i++)
        remove(paths[i]);
    rmdir(dir);
}
