/* Strict JSON loading and typed getters (see cquant/json.h). */
#include "cquant/json.h"

#include "cquant/file.h"
#include "cquant/outdir.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Length of the UTF-8 sequence at S (at most N bytes), or 0 when invalid (RFC 3629: no
 * overlongs, no surrogates, nothing above U+10FFFF). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
    if (len == 0 || c > 0xf4 || c == 0xc0 || c == 0xc1 || len > n)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] >= 0xa0) || (c == 0xf0 && s[1] < 0x90) ||
        (c == 0xf4 && s[1] >= 0x90))
        return 0;
    return len;
}

int cq_utf8_valid(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq(u + i, n - i);
        if (!k)
            return 0;
        i += k;
    }
    return 1;
}

static int is_u0000(const char *p, size_t left)
{
    return left >= 6 && p[1] == 'u' && memcmp(p + 2, "0000", 4) == 0;
}

int cq_json_check_text(const char *text, size_t len, size_t *bad_off, const char **why)
{
    const unsigned char *s = (const unsigned char *)text;
    int in_string = 0;
    for (size_t i = 0; i < len;) {
        unsigned c = s[i];
        *bad_off = i;
        if (c >= 0x80) {
            size_t k = utf8_seq(s + i, len - i);
            if (!k)
                return *why = "invalid UTF-8", -1;
            i += k;
            continue;
        }
        if (c < 0x20 && (in_string || (c != '\t' && c != '\n' && c != '\r')))
            return *why = "control byte", -1;
        if (in_string && c == '\\') {
            if (is_u0000(text + i, len - i))
                return *why = "\\u0000 escape", -1;
            i += 2; /* the escaped byte is ASCII in valid JSON; cJSON checks the rest */
            continue;
        }
        if (c == '"')
            in_string = !in_string;
        i++;
    }
    return 0;
}

void cq_error_printable(cq_error *err)
{
    if (!err)
        return;
    for (char *p = err->msg; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
}

int cq_json_parse(cJSON **out, const char *text, size_t len, const char *what, cq_error *err)
{
    size_t off;
    const char *why;
    *out = NULL;
    if (cq_json_check_text(text, len, &off, &why) != 0)
        return cq_errorf(err, CQ_E_FORMAT, "'%s': not valid JSON text: %s at byte %zu", what, why,
                         off);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        size_t at = end && end >= text ? (size_t)(end - text) : 0;
        return cq_errorf(err, CQ_E_FORMAT, "'%s': not valid JSON (near byte %zu)", what, at);
    }
    for (size_t i = (size_t)(end - text); i < len; i++)
        if (!strchr(" \t\r\n", text[i])) {
            cJSON_Delete(root);
            return cq_errorf(err, CQ_E_FORMAT, "'%s': unexpected data after the JSON value at "
                             "byte %zu", what, i);
        }
    *out = root;
    return CQ_OK;
}

/* Number literals of TEXT in document order, skipping strings (TEXT is valid JSON). */
static size_t next_number(const char *text, size_t len, size_t *pos, size_t *start)
{
    size_t i = *pos;
    while (i < len) {
        char c = text[i];
        if (c == '"') {
            for (i++; i < len && text[i] != '"'; i++)
                if (text[i] == '\\')
                    i++;
            i++;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            size_t b = i;
            while (i < len && strchr("+-.eE0123456789", text[i]))
                i++;
            *start = b, *pos = i;
            return i - b;
        } else {
            i++;
        }
    }
    *pos = len;
    return 0;
}

/* cJSON keeps children in document order, as next_number walks the text. */
static int replace_numbers(cJSON *v, const char *text, size_t len, size_t *pos)
{
    for (; v; v = v->next) {
        if (cJSON_IsNumber(v)) {
            size_t start, n = next_number(text, len, pos, &start);
            char *lit = n ? malloc(n + 1) : NULL;
            if (!lit)
                return -1;
            memcpy(lit, text + start, n);
            lit[n] = 0;
            v->type = cJSON_Raw;
            v->valuestring = lit;
        } else if (v->child && replace_numbers(v->child, text, len, pos) != 0) {
            return -1;
        }
    }
    return 0;
}

/* Turn every number of ROOT (parsed from TEXT) into a raw item holding its literal, so that a
 * rewritten file keeps "0.0" a float: cJSON prints integral doubles as "0", and strict loaders
 * (transformers 5 config classes) then reject a float field holding an int. On a mismatch the
 * tree keeps whatever numbers were not yet converted, which print as before. */
static void keep_number_text(cJSON *root, const char *text, size_t len)
{
    size_t pos = 0;
    (void)replace_numbers(root, text, len, &pos);
}

static int load_capped(cJSON **out, const char *path, size_t max_bytes, int verbatim,
                       cq_error *err)
{
    *out = NULL;
    char *buf;
    size_t n;
    int rc = cq_read_file(path, max_bytes, 0, &buf, &n, err);
    if (rc == CQ_OK)
        rc = cq_json_parse(out, buf, n, path, err);
    if (rc == CQ_OK && verbatim)
        keep_number_text(*out, buf, n);
    free(buf);
    return rc;
}

int cq_json_load_capped(cJSON **out, const char *path, size_t max_bytes, cq_error *err)
{
    return load_capped(out, path, max_bytes, 0, err);
}

int cq_json_load_verbatim(cJSON **out, const char *path, cq_error *err)
{
    return load_capped(out, path, CQ_JSON_MAX_FILE, 1, err);
}

int cq_json_load(cJSON **out, const char *path, cq_error *err)
{
    return cq_json_load_capped(out, path, CQ_JSON_MAX_FILE, err);
}

int cq_json_has(const cJSON *obj, const char *key)
{
    return cJSON_IsObject(obj) && cJSON_GetObjectItemCaseSensitive(obj, key) != NULL;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int cq_json_check_unique(const cJSON *obj, const char *what, cq_error *err)
{
    size_t n = 0, i = 0;
    for (const cJSON *c = obj ? obj->child : NULL; c; c = c->next)
        n++;
    if (n < 2)
        return CQ_OK;
    const char **keys = malloc(n * sizeof *keys);
    if (!keys)
        return cq_errorf(err, CQ_E_NOMEM, "'%s': out of memory", what);
    for (const cJSON *c = obj->child; c; c = c->next)
        keys[i++] = c->string ? c->string : "";
    qsort(keys, n, sizeof *keys, cmp_str);
    int rc = CQ_OK;
    for (i = 1; i < n && rc == CQ_OK; i++)
        if (strcmp(keys[i - 1], keys[i]) == 0)
            rc = cq_errorf(err, CQ_E_FORMAT, "'%s': duplicate key '%s'", what, keys[i]);
    free(keys);
    cq_error_printable(err);
    return rc;
}

static const char *type_name(const cJSON *v)
{
    if (cJSON_IsString(v))
        return "a string";
    if (cJSON_IsNumber(v))
        return "a number";
    if (cJSON_IsBool(v))
        return "a boolean";
    if (cJSON_IsNull(v))
        return "null";
    if (cJSON_IsArray(v))
        return "an array";
    return cJSON_IsObject(v) ? "an object" : "invalid";
}

/* The single value of KEY in OBJ: missing, repeated and non-object parents are errors. */
static int lookup(const cJSON *obj, const char *key, const cJSON **out, const char *what,
                  cq_error *err)
{
    if (!cJSON_IsObject(obj))
        return cq_errorf(err, CQ_E_FORMAT, "'%s': expected an object holding key '%s'", what,
                         key);
    const cJSON *found = NULL;
    for (const cJSON *c = obj->child; c; c = c->next)
        if (c->string && strcmp(c->string, key) == 0) {
            if (found)
                return cq_errorf(err, CQ_E_FORMAT, "'%s': duplicate key '%s'", what, key);
            found = c;
        }
    if (!found)
        return cq_errorf(err, CQ_E_FORMAT, "'%s': missing key '%s'", what, key);
    *out = found;
    return CQ_OK;
}

static int wrong_type(const cJSON *v, const char *key, const char *want, const char *what,
                      cq_error *err)
{
    return cq_errorf(err, CQ_E_FORMAT, "'%s': key '%s': expected %s, got %s", what, key, want,
                     type_name(v));
}

int cq_json_get_string(const cJSON *obj, const char *key, const char **out, const char *what,
                       cq_error *err)
{
    const cJSON *v;
    int rc = lookup(obj, key, &v, what, err);
    if (rc != CQ_OK)
        return rc;
    if (!cJSON_IsString(v) || !v->valuestring)
        return wrong_type(v, key, "a string", what, err);
    *out = v->valuestring;
    return CQ_OK;
}

int cq_json_get_int(const cJSON *obj, const char *key, int64_t min, int64_t max, int64_t *out,
                    const char *what, cq_error *err)
{
    const cJSON *v;
    int rc = lookup(obj, key, &v, what, err);
    if (rc != CQ_OK)
        return rc;
    if (!cJSON_IsNumber(v))
        return wrong_type(v, key, "an integer", what, err);
    double d = v->valuedouble;
    if (!(fabs(d) <= 9007199254740992.0) || d != floor(d))
        return cq_errorf(err, CQ_E_FORMAT, "'%s': key '%s': expected an integer, got %.17g",
                         what, key, d);
    int64_t i = (int64_t)d;
    if (i < min || i > max)
        return cq_errorf(err, CQ_E_FORMAT, "'%s': key '%s': %lld is outside [%lld, %lld]", what,
                         key, (long long)i, (long long)min, (long long)max);
    *out = i;
    return CQ_OK;
}

int cq_json_get_double(const cJSON *obj, const char *key, double *out, const char *what,
                       cq_error *err)
{
    const cJSON *v;
    int rc = lookup(obj, key, &v, what, err);
    if (rc != CQ_OK)
        return rc;
    if (!cJSON_IsNumber(v))
        return wrong_type(v, key, "a number", what, err);
    if (!isfinite(v->valuedouble))
        return cq_errorf(err, CQ_E_FORMAT, "'%s': key '%s': number out of range", what, key);
    *out = v->valuedouble;
    return CQ_OK;
}

int cq_json_get_bool(const cJSON *obj, const char *key, int *out, const char *what, cq_error *err)
{
    const cJSON *v;
    int rc = lookup(obj, key, &v, what, err);
    if (rc != CQ_OK)
        return rc;
    if (!cJSON_IsBool(v))
        return wrong_type(v, key, "a boolean", what, err);
    *out = cJSON_IsTrue(v) ? 1 : 0;
    return CQ_OK;
}

int cq_json_get_object(const cJSON *obj, const char *key, const cJSON **out, const char *what,
                       cq_error *err)
{
    const cJSON *v;
    int rc = lookup(obj, key, &v, what, err);
    if (rc != CQ_OK)
        return rc;
    if (!cJSON_IsObject(v))
        return wrong_type(v, key, "an object", what, err);
    *out = v;
    return CQ_OK;
}

int cq_json_get_array(const cJSON *obj, const char *key, const cJSON **out, const char *what,
                      cq_error *err)
{
    const cJSON *v;
    int rc = lookup(obj, key, &v, what, err);
    if (rc != CQ_OK)
        return rc;
    if (!cJSON_IsArray(v))
        return wrong_type(v, key, "an array", what, err);
    *out = v;
    return CQ_OK;
}

int cq_json_write_file(const cJSON *root, const char *path, int force, cq_error *err)
{
    char *text = cJSON_Print(root);
    if (!text)
        return cq_errorf(err, CQ_E_NOMEM, "'%s': cannot render JSON", path);
    size_t n = strlen(text);
    cq_atomic_file f;
    int rc = cq_atomic_file_begin(&f, path, force, err);
    if (rc == CQ_OK)
        rc = cq_atomic_file_write(&f, text, n, err);
    if (rc == CQ_OK)
        rc = cq_atomic_file_write(&f, "\n", 1, err);
    if (rc == CQ_OK)
        rc = cq_atomic_file_commit(&f, err);
    else
        cq_atomic_file_abort(&f);
    cJSON_free(text);
    return rc;
}
