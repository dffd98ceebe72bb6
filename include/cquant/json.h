/* Strict JSON helpers shared by every module (config.json, index files, reports).
 * Loading is size-capped, rejects invalid UTF-8, raw control bytes in strings, "\u0000" escapes
 * (cJSON would silently cut the string there) and anything after the top-level value.
 * Getters look keys up case-sensitively, reject a key that appears twice in the object, and name
 * the file (`what`) and key in their one-line errors: "'config.json': key 'hidden_size': expected
 * an integer, got a string". A missing key is CQ_E_FORMAT; test with cq_json_has first when it
 * is optional. */
#ifndef CQUANT_JSON_H
#define CQUANT_JSON_H

#include "cquant/error.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#define CQ_JSON_MAX_FILE (64u << 20)

/* Read and parse PATH (at most CQ_JSON_MAX_FILE bytes). Caller frees *out with cJSON_Delete. */
int cq_json_load(cJSON **out, const char *path, cq_error *err);
int cq_json_load_capped(cJSON **out, const char *path, size_t max_bytes, cq_error *err);
/* As cq_json_load, but every number becomes a raw item holding its literal text (cJSON_IsRaw,
 * valuestring), so that writing the tree back keeps "0.0" and "1e-06" as they were. For files
 * cquant copies to its output (config.json); not for reading values with the getters. */
int cq_json_load_verbatim(cJSON **out, const char *path, cq_error *err);
/* Parse LEN bytes of TEXT (need not be NUL-terminated) with the same checks; WHAT names the
 * source in messages. */
int cq_json_parse(cJSON **out, const char *text, size_t len, const char *what, cq_error *err);

/* Returns 0 when TEXT[0..len) is valid UTF-8 JSON text for cJSON: no invalid UTF-8 (overlong,
 * surrogate, > U+10FFFF), no raw control byte other than tab/LF/CR, no "\u0000" escape.
 * Otherwise -1 and *bad_off is the offending byte's offset and *why a short reason. */
int cq_json_check_text(const char *text, size_t len, size_t *bad_off, const char **why);

/* 1 when S[0..n) is valid UTF-8 (RFC 3629: no overlongs, surrogates or code points above
 * U+10FFFF), else 0. */
int cq_utf8_valid(const char *s, size_t n);

/* Replace control bytes in ERR's message with '?': names taken from files may hold newlines,
 * and messages must stay one line. */
void cq_error_printable(cq_error *err);

/* 1 when OBJ is an object holding KEY (case-sensitive), else 0. */
int cq_json_has(const cJSON *obj, const char *key);
/* Each getter fails with CQ_E_FORMAT when OBJ is not an object, KEY is missing or repeated, or
 * the value has the wrong type. Returned pointers are borrowed from OBJ. */
int cq_json_get_string(const cJSON *obj, const char *key, const char **out, const char *what,
                       cq_error *err);
/* An integral number in [min, max] (and |v| <= 2^53, where doubles are exact). */
int cq_json_get_int(const cJSON *obj, const char *key, int64_t min, int64_t max, int64_t *out,
                    const char *what, cq_error *err);
/* A finite number. */
int cq_json_get_double(const cJSON *obj, const char *key, double *out, const char *what,
                       cq_error *err);
int cq_json_get_bool(const cJSON *obj, const char *key, int *out, const char *what, cq_error *err);
int cq_json_get_object(const cJSON *obj, const char *key, const cJSON **out, const char *what,
                       cq_error *err);
int cq_json_get_array(const cJSON *obj, const char *key, const cJSON **out, const char *what,
                      cq_error *err);
/* CQ_E_FORMAT naming the first key that OBJ holds twice (cJSON keeps both copies). */
int cq_json_check_unique(const cJSON *obj, const char *what, cq_error *err);

/* Write cJSON_Print(root) plus a newline to PATH atomically (temp file, fsync, rename).
 * Refuses (CQ_E_EXISTS) to replace an existing PATH unless force. */
int cq_json_write_file(const cJSON *root, const char *path, int force, cq_error *err);

#endif
