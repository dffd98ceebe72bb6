/* Loading a Hugging Face tokenizer folder (tokenizer.json plus the transformers config files),
 * decoding, and the getters. The tokenizer.json object itself is read by tok_json.c. */
#include "model/tok_internal.h"
#include "model/unicode.h"
#include "cquant/file.h"
#include "cquant/sha256.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_JSON_BYTES ((size_t)1 << 30)

static int read_file(const char *path, char **data, size_t *len, int missing_ok, cq_error *err)
{
    return cq_read_file(path, MAX_JSON_BYTES, missing_ok ? CQ_READ_MISSING_OK : 0u, data, len,
                        err);
}

/* A token named in a config: "bos_token": "<s>" or {"content": "<s>", ...}. */
static int32_t config_token(const cq_tokenizer *t, const cJSON *cfg, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsObject(v))
        v = cJSON_GetObjectItemCaseSensitive(v, "content");
    return cJSON_IsString(v) ? cq_tokenizer_token_id(t, v->valuestring) : -1;
}

static int load_config_file(cq_tokenizer *t, const char *dir, const char *name, int is_cfg,
                            cq_error *err)
{
    char path[4096], *data;
    size_t len;
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        return cq_errorf(err, CQ_E_USAGE, "%s: path too long", dir);
    int rc = read_file(path, &data, &len, 1, err);
    if (rc != CQ_OK || !data)
        return rc;
    cJSON *cfg = cJSON_ParseWithLength(data, len);
    free(data);
    if (!cJSON_IsObject(cfg)) {
        cJSON_Delete(cfg);
        return cq_errorf(err, CQ_E_FORMAT, "%s: not a JSON object", path);
    }
    if (t->bos_id < 0)
        t->bos_id = config_token(t, cfg, "bos_token");
    if (t->eos_id < 0)
        t->eos_id = config_token(t, cfg, "eos_token");
    /* add_bos_token/add_eos_token rebuild the template, as transformers' Llama tokenizers do. */
    const cJSON *ab = cJSON_GetObjectItemCaseSensitive(cfg, "add_bos_token");
    const cJSON *ae = cJSON_GetObjectItemCaseSensitive(cfg, "add_eos_token");
    if (is_cfg && (cJSON_IsBool(ab) || cJSON_IsBool(ae))) {
        t->n_prefix = cJSON_IsTrue(ab) && t->bos_id >= 0;
        t->prefix_ids[0] = t->bos_id;
        t->n_suffix = cJSON_IsTrue(ae) && t->eos_id >= 0;
        t->suffix_ids[0] = t->eos_id;
    }
    cJSON_Delete(cfg);
    return CQ_OK;
}

int cq_tokenizer_load_buffer(cq_tokenizer **out, const char *data, size_t len,
                             const char *name, const char *config_dir, cq_error *err)
{
    *out = NULL;
    cq_tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        return cq_errorf(err, CQ_E_NOMEM, "%s: out of memory", name);
    t->bos_id = t->eos_id = t->unk_id = -1;
    cq_sha256_hex(data, len, t->hash);
    cJSON *root = cJSON_ParseWithLength(data, len);
    int rc = root ? tok_load_json(t, root, name, err)
                  : cq_errorf(err, CQ_E_FORMAT, "%s: not valid JSON", name);
    cJSON_Delete(root);
    if (rc == CQ_OK && config_dir)
        rc = load_config_file(t, config_dir, "tokenizer_config.json", 1, err);
    if (rc == CQ_OK && config_dir)
        rc = load_config_file(t, config_dir, "special_tokens_map.json", 0, err);
    if (rc != CQ_OK) {
        cq_tokenizer_free(t);
        return rc;
    }
    *out = t;
    return CQ_OK;
}

int cq_tokenizer_load_file(cq_tokenizer **out, const char *json_path, const char *config_dir,
                           cq_error *err)
{
    *out = NULL;
    char *data;
    size_t len;
    int rc = read_file(json_path, &data, &len, 0, err);
    if (rc != CQ_OK)
        return rc;
    rc = cq_tokenizer_load_buffer(out, data, len, json_path, config_dir, err);
    free(data);
    return rc;
}

int cq_tokenizer_load(cq_tokenizer **out, const char *dir, cq_error *err)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s/tokenizer.json", dir) >= (int)sizeof path) {
        *out = NULL;
        return cq_errorf(err, CQ_E_USAGE, "%s: path too long", dir);
    }
    return cq_tokenizer_load_file(out, path, dir, err);
}

void cq_tokenizer_free(cq_tokenizer *t)
{
    if (!t)
        return;
    tok_strmap_free(&t->vocab);
    tok_pairmap_free(&t->merges);
    tok_arena_free(&t->arena);
    free(t->id_tok);
    free(t->id_len);
    free(t->added);
    free(t);
}

static int is_added(const cq_tokenizer *t, int32_t id)
{
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].id == id)
            return 1;
    return 0;
}

/* Append token id's text per the decoder; returns -1 when out of memory. */
static int decode_one(const cq_tokenizer *t, int32_t id, char **out, size_t *n, size_t *cap)
{
    const char *s = t->id_tok[id];
    size_t len = t->id_len[id];
    if (*n + len + 8 > *cap) {
        size_t nc = (*cap + len + 8) * 2;
        char *q = realloc(*out, nc);
        if (!q)
            return -1;
        *out = q, *cap = nc;
    }
    char *o = *out;
    if (is_added(t, id) || t->decoder == TOK_DEC_NONE) {
        memcpy(o + *n, s, len), *n += len;
    } else if (t->decoder == TOK_DEC_BYTELEVEL) {
        for (size_t p = 0; p < len;) {
            uint32_t cp;
            int k = cq_utf8_decode((const unsigned char *)s + p, len - p, &cp);
            k = k > 0 ? k : 1;
            o[(*n)++] = cp < 512 && t->char_byte[cp] >= 0 ? (char)t->char_byte[cp] : '?';
            p += (size_t)k;
        }
    } else if (t->byte_fallback && len == 6 && s[0] == '<' && s[1] == '0' && s[2] == 'x') {
        o[(*n)++] = (char)strtol(s + 3, NULL, 16);
    } else {
        /* SentencePiece style: the word-boundary marker becomes a space. */
        const char *rep = t->ms_rep ? t->ms_rep : "\xE2\x96\x81";
        size_t rl = strlen(rep);
        for (size_t p = 0; p < len;) {
            if (p + rl <= len && memcmp(s + p, rep, rl) == 0)
                o[(*n)++] = ' ', p += rl;
            else
                o[(*n)++] = s[p++];
        }
    }
    return 0;
}

int cq_tokenizer_decode(const cq_tokenizer *t, const int32_t *ids, int64_t n, char **text,
                        size_t *len, cq_error *err)
{
    char *out = malloc(64);
    size_t on = 0, cap = 64;
    *text = NULL;
    *len = 0;
    if (!out)
        return cq_errorf(err, CQ_E_NOMEM, "tokenizer: out of memory");
    for (int64_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_ids || !t->id_tok[ids[i]]) {
            free(out);
            return cq_errorf(err, CQ_E_USAGE,
                             "tokenizer: id %d at position %lld is not in the vocab", ids[i],
                             (long long)i);
        }
        if (decode_one(t, ids[i], &out, &on, &cap) != 0) {
            free(out);
            return cq_errorf(err, CQ_E_NOMEM, "tokenizer: out of memory");
        }
    }
    size_t skip = t->decoder == TOK_DEC_SPIECE && t->dec_strip && on && out[0] == ' ';
    memmove(out, out + skip, on - skip);
    out[on - skip] = 0;
    *text = out;
    *len = on - skip;
    return CQ_OK;
}

int64_t cq_tokenizer_vocab_size(const cq_tokenizer *t)
{
    return t->n_ids;
}
int32_t cq_tokenizer_bos_id(const cq_tokenizer *t)
{
    return t->bos_id;
}
int32_t cq_tokenizer_eos_id(const cq_tokenizer *t)
{
    return t->eos_id;
}
const char *cq_tokenizer_hash(const cq_tokenizer *t)
{
    return t->hash;
}

int cq_tokenizer_adds_bos(const cq_tokenizer *t)
{
    return t->n_prefix > 0 && t->bos_id >= 0 && t->prefix_ids[0] == t->bos_id;
}

const char *cq_tokenizer_token(const cq_tokenizer *t, int32_t id)
{
    return id >= 0 && id < t->n_ids ? t->id_tok[id] : NULL;
}

int32_t cq_tokenizer_token_id(const cq_tokenizer *t, const char *token)
{
    for (int i = 0; i < t->n_added; i++)
        if (strcmp(t->added[i].content, token) == 0)
            return t->added[i].id;
    int64_t id;
    return tok_strmap_get(&t->vocab, token, strlen(token), &id) ? (int32_t)id : -1;
}
