/* SHA-256 (FIPS 180-4) for content hashes of input files (tokenizer, calibration text, reports).
 * Streaming: init, update any number of times, final. */
#ifndef CQUANT_SHA256_H
#define CQUANT_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct cq_sha256 {
    uint32_t h[8];
    uint64_t nbytes;
    uint8_t buf[64];
    size_t nbuf;
} cq_sha256;

void cq_sha256_init(cq_sha256 *s);
void cq_sha256_update(cq_sha256 *s, const void *data, size_t len);
/* Update two independent hashes with LEN bytes each: the same digests as two
 * cq_sha256_update calls, about twice as fast with SHA-NI (the two are interleaved). */
void cq_sha256_update2(cq_sha256 *a, const void *pa, cq_sha256 *b, const void *pb, size_t len);
/* The same for three hashes. */
void cq_sha256_update3(cq_sha256 *a, const void *pa, cq_sha256 *b, const void *pb,
                       cq_sha256 *c, const void *pc, size_t len);
void cq_sha256_final(cq_sha256 *s, uint8_t digest[32]);
/* One-shot digest as 64 lowercase hex characters plus NUL. */
void cq_sha256_hex(const void *data, size_t len, char hex[65]);
/* Digest bytes to 64 lowercase hex characters plus NUL. */
void cq_sha256_to_hex(const uint8_t digest[32], char hex[65]);

#endif
