/* SHA-256 against the FIPS 180-4 / NIST example vectors, plus streaming in odd-sized pieces
 * compared with the one-shot digest. Every test runs on both block functions (portable and,
 * where the CPU has it, SHA-NI), and the two are compared on random buffers of many lengths. */
#include "cq_test.h"
#include "core/cpu.h"
#include "cquant/sha256.h"

#include <stdlib.h>
#include <string.h>

static void check_hex(const char *msg, size_t len, const char *want)
{
    char hex[65];
    cq_sha256_hex(msg, len, hex);
    if (strcmp(hex, want) != 0)
        CQ_FAIL("sha256 of %zu bytes: got %s want %s", len, hex, want);
}

static void nist_vectors(void)
{
    check_hex("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    check_hex("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    check_hex(m448, strlen(m448),
              "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    const char *m896 =
        "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopq"
        "klmnopqrlmnopqrsmnopqrstnopqrstu";
    check_hex(m896, strlen(m896),
              "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

static void million_a_streamed(void)
{
    /* NIST long vector: one million 'a', fed in pieces of 1..97 bytes to cross block edges. */
    char *a = malloc(1000000);
    CQ_CHECK(a != NULL);
    if (!a)
        return;
    memset(a, 'a', 1000000);
    cq_sha256 s;
    uint8_t d[32];
    char hex[65];
    cq_sha256_init(&s);
    size_t off = 0, step = 1;
    while (off < 1000000) {
        size_t n = step < 1000000 - off ? step : 1000000 - off;
        cq_sha256_update(&s, a + off, n);
        off += n;
        step = step % 97 + 1;
    }
    cq_sha256_final(&s, d);
    cq_sha256_to_hex(d, hex);
    CQ_CHECK(strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0") == 0);
    free(a);
}

static void padding_edges(void)
{
    /* Lengths around the 55/56/64-byte padding boundaries: one-shot vs byte-at-a-time. */
    unsigned char buf[130];
    for (int i = 0; i < 130; i++)
        buf[i] = (unsigned char)(i * 7 + 3);
    for (size_t len = 0; len <= 130; len++) {
        char h1[65], h2[65];
        uint8_t d[32];
        cq_sha256_hex(buf, len, h1);
        cq_sha256 s;
        cq_sha256_init(&s);
        for (size_t i = 0; i < len; i++)
            cq_sha256_update(&s, buf + i, 1);
        cq_sha256_final(&s, d);
        cq_sha256_to_hex(d, h2);
        if (strcmp(h1, h2) != 0)
            CQ_FAIL("len %zu: %s vs %s", len, h1, h2);
    }
    /* Digests of the same bytes from Python's hashlib (an independent implementation). */
    check_hex((const char *)buf, 55,
              "e7313d333c272e639f790978283f9eb392e843d0f29b7016828bb1daa4aac70b");
    check_hex((const char *)buf, 56,
              "4324d65f3c103567f5589c710bc08f8523f929a9272e3af36fc968e52abc6c27");
    check_hex((const char *)buf, 64,
              "39e3d7b6b5d075d37d053ad89b24b41bef4f3c29760c84447cab3f3be1882241");
    check_hex((const char *)buf, 119,
              "9ce7368e4daf32341631b492e80359dc9f594b48453cd0dd5bf0b19279cc177e");
    check_hex((const char *)buf, 130,
              "4d5e47a2e8510a314576c238f6ff19d389d3ef3aaaca8b2e530263a5d15741da");
}

/* Runs the checks above with the automatic choice (SHA-NI where present) and again with the
 * portable block function forced. */
static void both_paths(void (*fn)(void))
{
    cq_cpu_force_baseline(false);
    fn();
    cq_cpu_force_baseline(true);
    fn();
    cq_cpu_force_baseline(false);
}

CQ_TEST(nist_vectors_both_paths)
{
    both_paths(nist_vectors);
}

CQ_TEST(million_a_streamed_both_paths)
{
    both_paths(million_a_streamed);
}

CQ_TEST(padding_edges_both_paths)
{
    both_paths(padding_edges);
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint8_t next_byte(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint8_t)(rng >> 32);
}

static void digest_pieces(const uint8_t *buf, size_t len, size_t piece, uint8_t d[32])
{
    cq_sha256 s;
    cq_sha256_init(&s);
    for (size_t off = 0; off < len; off += piece)
        cq_sha256_update(&s, buf + off, piece < len - off ? piece : len - off);
    cq_sha256_final(&s, d);
}

CQ_TEST(shani_matches_portable_random)
{
    /* Random bytes, every length 0..600 plus some multi-block sizes, one-shot and in pieces
     * that split blocks unevenly: the digest of the SHA-NI path must equal the portable one. */
    enum { MAX = 70000 };
    uint8_t *buf = malloc(MAX);
    CQ_CHECK(buf != NULL);
    if (!buf)
        return;
    for (size_t i = 0; i < MAX; i++)
        buf[i] = next_byte();
    static const size_t big[] = {1023, 1024, 4095, 4096, 4097, 65535, 65536, 69999, 70000};
    int mismatches = 0, compared = 0;
    for (size_t k = 0; k < 601 + sizeof big / sizeof *big; k++) {
        size_t len = k < 601 ? k : big[k - 601];
        size_t piece = 1 + (len * 31 + 7) % 150;
        uint8_t a[32], b[32], c[32], d[32];
        cq_cpu_force_baseline(false);
        digest_pieces(buf, len, len ? len : 1, a);
        digest_pieces(buf, len, piece, b);
        cq_cpu_force_baseline(true);
        digest_pieces(buf, len, len ? len : 1, c);
        digest_pieces(buf, len, piece, d);
        cq_cpu_force_baseline(false);
        compared++;
        if (memcmp(a, c, 32) || memcmp(b, d, 32) || memcmp(a, b, 32)) {
            if (mismatches++ < 5)
                CQ_FAIL("length %zu (pieces of %zu): fast and portable digests differ", len,
                        piece);
        }
    }
    CQ_CHECK_EQ_INT(mismatches, 0);
    CQ_CHECK_EQ_INT(compared, 610);
    /* Say which path "fast" was, so a green run without SHA-NI is not read as a test of it. */
    cq_cpu_force_baseline(false);
    printf("sha256: SHA-NI %s\n", cq_cpu_shani() ? "present: both paths compared"
                                                         : "absent: portable path only");
    free(buf);
}

CQ_TEST(update2_matches_two_updates)
{
    /* cq_sha256_update2 on two random buffers, in pieces of varying length (some leaving a
     * partial block behind, which takes the one-stream path), on both block functions: the
     * digests equal those of cq_sha256_update run on each buffer alone. */
    enum { MAX = 20000 };
    uint8_t *a = malloc(MAX), *b = malloc(MAX);
    CQ_CHECK(a && b);
    if (!a || !b) {
        free(a), free(b);
        return;
    }
    for (size_t i = 0; i < MAX; i++)
        a[i] = next_byte(), b[i] = next_byte();
    static const size_t pieces[] = {64, 4096, 1, 63, 65, 128 * 64, 1000, 7};
    int bad = 0;
    for (int base = 0; base < 2; base++)
        for (size_t k = 0; k < sizeof pieces / sizeof *pieces; k++) {
            cq_sha256 x, y, x1, y1;
            uint8_t dx[32], dy[32], dx1[32], dy1[32];
            cq_cpu_force_baseline(base != 0);
            cq_sha256_init(&x), cq_sha256_init(&y);
            size_t off = 0;
            for (size_t step = pieces[k]; off + step <= MAX; off += step)
                cq_sha256_update2(&x, a + off, &y, b + off, step);
            cq_sha256_final(&x, dx), cq_sha256_final(&y, dy);
            cq_cpu_force_baseline(true);
            cq_sha256_init(&x1), cq_sha256_init(&y1);
            cq_sha256_update(&x1, a, off), cq_sha256_update(&y1, b, off);
            cq_sha256_final(&x1, dx1), cq_sha256_final(&y1, dy1);
            cq_cpu_force_baseline(false);
            if (memcmp(dx, dx1, 32) || memcmp(dy, dy1, 32))
                if (bad++ < 3)
                    CQ_FAIL("update2 in pieces of %zu (%s path): digests differ", pieces[k],
                            base ? "portable" : "fast");
        }
    CQ_CHECK_EQ_INT(bad, 0);
    free(a), free(b);
}

CQ_TEST(update3_matches_three_updates)
{
    /* cq_sha256_update3 as update2 above: pieces that end mid-block switch to the one-stream
     * path; digests equal the portable one-stream digests of each buffer. */
    enum { MAX = 12000 };
    uint8_t *buf[3];
    for (int l = 0; l < 3; l++) {
        buf[l] = malloc(MAX);
        CQ_CHECK(buf[l] != NULL);
        if (!buf[l])
            return;
        for (size_t i = 0; i < MAX; i++)
            buf[l][i] = next_byte();
    }
    static const size_t pieces[] = {64, 4096, 1, 63, 65, 1000, 7};
    int bad = 0;
    for (int base = 0; base < 2; base++)
        for (size_t k = 0; k < sizeof pieces / sizeof *pieces; k++) {
            cq_sha256 s[3], r[3];
            uint8_t d[3][32], e[3][32];
            cq_cpu_force_baseline(base != 0);
            for (int l = 0; l < 3; l++)
                cq_sha256_init(&s[l]);
            size_t off = 0;
            for (size_t step = pieces[k]; off + step <= MAX; off += step)
                cq_sha256_update3(&s[0], buf[0] + off, &s[1], buf[1] + off, &s[2], buf[2] + off,
                                  step);
            cq_cpu_force_baseline(true);
            for (int l = 0; l < 3; l++) {
                cq_sha256_final(&s[l], d[l]);
                cq_sha256_init(&r[l]);
                cq_sha256_update(&r[l], buf[l], off);
                cq_sha256_final(&r[l], e[l]);
                if (memcmp(d[l], e[l], 32) && bad++ < 3)
                    CQ_FAIL("update3 lane %d in pieces of %zu (%s path): digests differ", l,
                            pieces[k], base ? "portable" : "fast");
            }
            cq_cpu_force_baseline(false);
        }
    CQ_CHECK_EQ_INT(bad, 0);
    for (int l = 0; l < 3; l++)
        free(buf[l]);
}
