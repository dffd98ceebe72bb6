/* SHA-256 against the FIPS 180-4 / NIST example vectors, plus streaming in odd-sized pieces
 * compared with the one-shot digest. */
#include "cq_test.h"
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

CQ_TEST(nist_vectors)
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

CQ_TEST(million_a_streamed)
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

CQ_TEST(padding_edges)
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
