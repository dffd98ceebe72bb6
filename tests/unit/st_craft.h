/* Helpers for tests that craft safetensors files byte by byte (no cquant writer involved). */
#ifndef CQ_TEST_ST_CRAFT_H
#define CQ_TEST_ST_CRAFT_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Write DIR/NAME: the 8-byte little-endian length N, then HDR (hdr_len bytes), then DATA_LEN
 * bytes of a counting pattern. Returns the path in a static buffer. */
static inline const char *craft_raw(const char *dir, const char *name, uint64_t n,
                                    const char *hdr, size_t hdr_len, size_t data_len)
{
    static char path[4096];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        abort();
    FILE *f = fopen(path, "wb");
    if (!f)
        return path;
    unsigned char len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (unsigned char)(n >> (8 * i));
    fwrite(len, 1, 8, f);
    fwrite(hdr, 1, hdr_len, f);
    for (size_t i = 0; i < data_len; i++)
        fputc((int)(i * 7 & 0xff), f);
    fclose(f);
    return path;
}

/* The usual case: N = strlen(hdr). */
static inline const char *craft(const char *dir, const char *name, const char *hdr,
                                size_t data_len)
{
    return craft_raw(dir, name, strlen(hdr), hdr, strlen(hdr), data_len);
}

#endif
