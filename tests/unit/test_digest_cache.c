/* The input digest cache (src/report/digest_cache.c) behind cq_report_hash_files: a hit needs
 * the same path, device, inode, size, mtime and ctime; a rewritten file misses; a file changed
 * within the settle window is not stored; a damaged cache file is ignored; "off" disables it.
 * Digests are checked against the FIPS 180-4 test vectors. */
#include "cq_test.h"

#include "cquant/report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char ABC[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
static const char XYZ[] = "3608bca1e44ea6c4d268eb6db02260269892c0b42b86bbf1e77a6fa16c3c9282";

static char cache[4096], file_a[4096];

static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CQ_CHECK(f != NULL);
    fputs(text, f);
    fclose(f);
}

static char *slurp(const char *path)
{
    static char buf[1 << 16];
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

/* The hex digest cq_report_hash_files gives for PATH. */
static const char *hash_hex(const char *path)
{
    static char hex[65];
    const char *paths[1] = {path};
    uint8_t d[1][32];
    int64_t bytes[1];
    cq_error err = CQ_ERROR_INIT;
    CQ_CHECK_OK(cq_report_hash_files(paths, 1, d, bytes, &err), &err);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[0][i]);
    return hex;
}

static void setup(void)
{
    snprintf(cache, sizeof cache, "%s/sub/digests", cq_test_tmpdir());
    snprintf(file_a, sizeof file_a, "%s/a.bin", cq_test_tmpdir());
    setenv("CQ_DIGEST_CACHE", cache, 1);
    setenv("CQ_DIGEST_SETTLE", "-1", 1); /* files made just now may be stored */
    remove(cache);
}

CQ_TEST(hit_miss_and_trust)
{
    setup();
    put(file_a, "abc");
    CQ_CHECK(strcmp(hash_hex(file_a), ABC) == 0);
    const char *c = slurp(cache);
    CQ_CHECK(c != NULL && strstr(c, ABC) != NULL && strstr(c, "/a.bin\n") != NULL);
    /* An entry whose stat data match is trusted: plant another digest and it is returned
     * (which is how the test sees that a hit skips the hash). */
    char planted[1 << 16];
    snprintf(planted, sizeof planted, "%s", c);
    char *at = strstr(planted, ABC);
    memcpy(at, XYZ, 64);
    put(cache, planted);
    CQ_CHECK(strcmp(hash_hex(file_a), XYZ) == 0);
    /* Rewriting the file (same size) changes its ctime: a miss, the true digest, stored. */
    put(file_a, "xyz");
    CQ_CHECK(strcmp(hash_hex(file_a), XYZ) == 0);
    put(file_a, "abc");
    CQ_CHECK(strcmp(hash_hex(file_a), ABC) == 0);
    CQ_CHECK(strstr(slurp(cache), ABC) != NULL && strstr(slurp(cache), XYZ) == NULL);
}

CQ_TEST(racy_files_not_stored)
{
    setup();
    setenv("CQ_DIGEST_SETTLE", "3600", 1); /* everything is "just changed" */
    put(file_a, "abc");
    CQ_CHECK(strcmp(hash_hex(file_a), ABC) == 0);
    CQ_CHECK(slurp(cache) == NULL); /* nothing to store: the cache file was not written */
}

CQ_TEST(damaged_cache_ignored)
{
    setup();
    put(file_a, "abc");
    struct stat st;
    CQ_CHECK(stat(file_a, &st) == 0);
    char text[16384];
    /* garbage, a short digest, a relative path, a non-hex digest, all for this very file */
    snprintf(text, sizeof text,
             "garbage\n%llu %llu 3 1 2 3\n%llu %llu %lld %lld %lld %lld %lld %.60s %s\n"
             "%llu %llu %lld %lld %lld %lld %lld %s a.bin\n"
             "%llu %llu %lld %lld %lld %lld %lld %s %s\n",
             (unsigned long long)st.st_dev, (unsigned long long)st.st_ino,
             (unsigned long long)st.st_dev, (unsigned long long)st.st_ino,
             (long long)st.st_size, (long long)st.st_mtim.tv_sec,
             (long long)st.st_mtim.tv_nsec, (long long)st.st_ctim.tv_sec,
             (long long)st.st_ctim.tv_nsec, XYZ, file_a, (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino, (long long)st.st_size,
             (long long)st.st_mtim.tv_sec, (long long)st.st_mtim.tv_nsec,
             (long long)st.st_ctim.tv_sec, (long long)st.st_ctim.tv_nsec, XYZ,
             (unsigned long long)st.st_dev, (unsigned long long)st.st_ino,
             (long long)st.st_size, (long long)st.st_mtim.tv_sec,
             (long long)st.st_mtim.tv_nsec, (long long)st.st_ctim.tv_sec,
             (long long)st.st_ctim.tv_nsec,
             "zz08bca1e44ea6c4d268eb6db02260269892c0b42b86bbf1e77a6fa16c3c9282", file_a);
    CQ_CHECK(strlen(text) < sizeof text - 1);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/sub", cq_test_tmpdir());
    mkdir(dir, 0700);
    put(cache, text);
    CQ_CHECK(strcmp(hash_hex(file_a), ABC) == 0);
}

CQ_TEST(off)
{
    setup();
    setenv("CQ_DIGEST_CACHE", "off", 1);
    put(file_a, "abc");
    CQ_CHECK(strcmp(hash_hex(file_a), ABC) == 0);
    CQ_CHECK(slurp(cache) == NULL);
}
