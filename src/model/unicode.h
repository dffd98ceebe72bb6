/* Unicode helpers for the tokenizer: UTF-8 decoding and the character classes the
 * pre-tokenizer regexes use (\p{L}, \p{N}, \s) plus an NFC stability check. Internal header. */
#ifndef CQ_MODEL_UNICODE_H
#define CQ_MODEL_UNICODE_H

#include <stddef.h>
#include <stdint.h>

typedef struct cq_uni_range {
    uint32_t lo, hi;
} cq_uni_range;

extern const char cq_uni_version[];
extern const cq_uni_range cq_uni_letter[], cq_uni_number[], cq_uni_nfc_unsafe[];
extern const int cq_uni_letter_n, cq_uni_number_n, cq_uni_nfc_unsafe_n;

/* Character classes of the pre-tokenizer regexes. */
enum { CQ_UC_OTHER = 0, CQ_UC_LETTER = 1, CQ_UC_NUMBER = 2, CQ_UC_SPACE = 3 };

/* Decode one UTF-8 sequence at s[0..len). Returns its length (1-4) and sets *cp, or 0 when the
 * bytes are not well-formed UTF-8 (overlong, surrogate, > U+10FFFF, truncated). */
int cq_utf8_decode(const unsigned char *s, size_t len, uint32_t *cp);
/* Encode cp as UTF-8 into out (4 bytes room); returns the length. */
int cq_utf8_encode(uint32_t cp, char *out);
/* Offset of the first malformed byte, or -1 when the whole buffer is valid UTF-8. */
int64_t cq_utf8_check(const char *s, size_t len);

int cq_uni_class(uint32_t cp);
/* The Unicode White_Space property (what \s matches in onig and Rust regex). */
int cq_uni_is_space(uint32_t cp);
/* 1 when cp might change under NFC (combining, non-stable, or composes with a previous char). */
int cq_uni_nfc_unsafe_cp(uint32_t cp);

#endif
