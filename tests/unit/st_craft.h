/* Helpers for tests that craft safetensors files byte by byte (no cquant writer involved). */
#ifndef CQ_TEST_ST_CRAFT_H
#define CQ_TEST_ST_CRAFT_H

#include "cq_testutil.h"

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

/* An independent minimal reader for files whose tensor entries are written compactly as
 * "NAME":{"dtype":"X","shape":[..],"data_offsets":[B,E]} (HF and cquant both do): finds NAME
 * by plain string search in the header and parses the fields with sscanf. Returns 0 on success
 * and fills the outputs; *data points into FILE. */
static inline int mini_find(const unsigned char *file, size_t size, const char *name,
                            char dtype[16], int64_t shape[8], int *ndim, const void **data,
                            size_t *nbytes)
{
    if (size < 8)
        return -1;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | file[i];
    if (n > size - 8)
        return -1;
    char *hdr = malloc(n + 1), key[512];
    if (!hdr)
        return -1;
    memcpy(hdr, file + 8, n);
    hdr[n] = 0;
    snprintf(key, sizeof key, "\"%s\":{\"dtype\":\"", name);
    char *p = strstr(hdr, key);
    int rc = -1;
    if (p && sscanf(p + strlen(key), "%15[^\"]", dtype) == 1) {
        char *s = strstr(p, "\"shape\":[") + 9;
        *ndim = 0;
        while (*s != ']') {
            long long v = strtoll(s, &s, 10);
            shape[(*ndim)++] = v;
            if (*s == ',')
                s++;
        }
        unsigned long long b, e;
        char *o = strstr(s, "\"data_offsets\":[");
        if (o && sscanf(o, "\"data_offsets\":[%llu,%llu]", &b, &e) == 2) {
            *data = file + 8 + n + b;
            *nbytes = (size_t)(e - b);
            rc = 0;
        }
    }
    free(hdr);
    return rc;
}
