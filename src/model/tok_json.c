/* Reading the tokenizer.json object into a cq_tokenizer. Every field is type-checked; anything
 * the encoder does not implement is CQ_E_UNSUPPORTED, so a loaded tokenizer never silently
 * differs from HF tokenizers. Ids are bounded by the number of entries so that a hostile file
 * cannot make the id table huge. */
#include "model/tok_internal.h"
#include "model/unicode.h"
#include "cquant/checked.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ld {
    cq_tokenizer *t;
    const char *path;
    cq_error *err;
} ld;

static int fmt_err(ld *l, const char *what)
{
    return cq_errorf(l->err, CQ_E_FORMAT, "%s: %s", l->path, what);
}

static int unsup(ld *l, const char *what, const char *name)
{
    /* name comes from the file: keep the message on one line */
    char safe[64];
    size_t i = 0;
    for (; name[i] && i < sizeof safe - 1; i++)
        safe[i] = (unsigned char)name[i] < 0x20 ? '?' : name[i];
    safe[i] = 0;
    return cq_errorf(l->err, CQ_E_UNSUPPORTED, "%s: %s '%s' is not supported", l->path, what, safe);
}

/* Typed getters: a missing member takes the default, a wrong type is a format error. */

static int get_bool(ld *l, const cJSON *o, const char *key, int def, int *out, const char *ctx)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    *out = def;
    if (!v || cJSON_IsNull(v))
        return CQ_OK;
    if (!cJSON_IsBool(v))
        return cq_errorf(l->err, CQ_E_FORMAT, "%s: %s.%s must be a boolean", l->path, ctx, key);
    *out = cJSON_IsTrue(v);
    return CQ_OK;
}

/* A string member copied into the arena; *out NULL when missing or null. */
static int get_str(ld *l, const cJSON *o, const char *key, const char **out, const char *ctx)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    *out = NULL;
    if (!v || cJSON_IsNull(v))
        return CQ_OK;
    if (!cJSON_IsString(v))
        return cq_errorf(l->err, CQ_E_FORMAT, "%s: %s.%s must be a string", l->path, ctx, key);
    *out = tok_arena_dup(&l->t->arena, v->valuestring, strlen(v->valuestring));
    return *out ? CQ_OK : cq_errorf(l->err, CQ_E_NOMEM, "%s: out of memory", l->path);
}

static const char *type_of(const cJSON *o)
{
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(o, "type");
    return cJSON_IsString(ty) ? ty->valuestring : NULL;
}

/* An integer id in [0, limit]. */
static int get_id(const cJSON *v, int64_t limit, int32_t *id)
{
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0) || v->valuedouble > (double)limit ||
        v->valuedouble != (double)(int64_t)v->valuedouble)
        return -1;
    *id = (int32_t)v->valuedouble;
    return 0;
}

static int load_vocab(ld *l, const cJSON *vocab, int64_t limit)
{
    cq_tokenizer *t = l->t;
    if (!cJSON_IsObject(vocab))
        return fmt_err(l, "model.vocab must be an object");
    for (const cJSON *e = vocab->child; e; e = e->next) {
        int32_t id;
        int64_t prev;
        if (!e->string || get_id(e, limit, &id) != 0)
            return fmt_err(l, "model.vocab holds an id that is not an integer in range");
        /* a duplicate key (or one cut short by a "\u0000" escape) would map a token to one
         * of two ids depending on the parser: refuse it */
        if (tok_strmap_get(&t->vocab, e->string, strlen(e->string), &prev))
            return fmt_err(l, "model.vocab lists a token twice");
        const char *k = tok_arena_dup(&t->arena, e->string, strlen(e->string));
        if (!k || tok_strmap_put(&t->vocab, k, strlen(k), id) != 0)
            return cq_errorf(l->err, CQ_E_NOMEM, "%s: out of memory", l->path);
        if (id >= t->n_ids)
            t->n_ids = (int64_t)id + 1;
    }
    return CQ_OK;
}

static int vocab_id(const cq_tokenizer *t, const char *s, size_t n, int32_t *id)
{
    int64_t v;
    if (!tok_strmap_get(&t->vocab, s, n, &v))
        return -1;
    *id = (int32_t)v;
    return 0;
}

/* One merge as (left, right) strings: "a b" (split at the first space) or ["a", "b"]. */
static int merge_parts(const cJSON *m, const char **a, size_t *alen, const char **b, size_t *blen)
{
    if (cJSON_IsString(m)) {
        const char *sp = strchr(m->valuestring, ' ');
        if (!sp)
            return -1;
        *a = m->valuestring, *alen = (size_t)(sp - m->valuestring);
        *b = sp + 1, *blen = strlen(sp + 1);
        return 0;
    }
    if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) &&
        cJSON_IsString(m->child->next)) {
        *a = m->child->valuestring, *alen = strlen(*a);
        *b = m->child->next->valuestring, *blen = strlen(*b);
        return 0;
    }
    return -1;
}

static int load_merges(ld *l, const cJSON *merges)
{
    cq_tokenizer *t = l->t;
    char msg[128];
    if (!merges || cJSON_IsNull(merges))
        return CQ_OK;
    if (!cJSON_IsArray(merges))
        return fmt_err(l, "model.merges must be an array");
    char *cat = NULL;
    size_t cat_cap = 0;
    int32_t rank = 0, rc = CQ_OK;
    for (const cJSON *m = merges->child; m && rc == CQ_OK; m = m->next, rank++) {
        const char *a, *b;
        size_t alen, blen, need;
        int32_t ia, ib, inew;
        snprintf(msg, sizeof msg, "model.merges[%d] ", rank);
        if (merge_parts(m, &a, &alen, &b, &blen) != 0) {
            rc = cq_errorf(l->err, CQ_E_FORMAT, "%s: %sis not \"a b\" or [\"a\", \"b\"]", l->path,
                           msg);
            break;
        }
        if (vocab_id(t, a, alen, &ia) != 0 || vocab_id(t, b, blen, &ib) != 0) {
            rc = cq_errorf(l->err, CQ_E_FORMAT, "%s: %srefers to a token not in the vocab", l->path,
                           msg);
            break;
        }
        /* The merged token drops b's continuing_subword_prefix, as HF does. */
        if (t->cont_prefix && blen >= t->cont_prefix_len &&
            memcmp(b, t->cont_prefix, t->cont_prefix_len) == 0)
            b += t->cont_prefix_len, blen -= t->cont_prefix_len;
        if (cq_add_size(alen, blen, &need) != 0) {
            rc = fmt_err(l, "merge too long");
            break;
        }
        if (need + 1 > cat_cap) {
            char *q = realloc(cat, need + 1);
            if (!q) {
                rc = cq_errorf(l->err, CQ_E_NOMEM, "%s: out of memory", l->path);
                break;
            }
            cat = q, cat_cap = need + 1;
        }
        memcpy(cat, a, alen);
        memcpy(cat + alen, b, blen);
        if (vocab_id(t, cat, alen + blen, &inew) != 0)
            rc = cq_errorf(l->err, CQ_E_FORMAT, "%s: %smakes a token not in the vocab", l->path,
                           msg);
        else if (tok_pairmap_put(&t->merges, ia, ib, rank, inew) != 0)
            rc = cq_errorf(l->err, CQ_E_NOMEM, "%s: out of memory", l->path);
    }
    free(cat);
    return rc;
}

static int load_model_flags(ld *l, const cJSON *model)
{
    cq_tokenizer *t = l->t;
    const char *unk = NULL;
    int rc;
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (dropout && !cJSON_IsNull(dropout) &&
        !(cJSON_IsNumber(dropout) && dropout->valuedouble == 0))
        return unsup(l, "model.dropout", "non-null");
    if ((rc = get_bool(l, model, "byte_fallback", 0, &t->byte_fallback, "model")) ||
        (rc = get_bool(l, model, "fuse_unk", 0, &t->fuse_unk, "model")) ||
        (rc = get_bool(l, model, "ignore_merges", 0, &t->ignore_merges, "model")) ||
        (rc = get_str(l, model, "unk_token", &unk, "model")) ||
        (rc = get_str(l, model, "continuing_subword_prefix", &t->cont_prefix, "model")) ||
        (rc = get_str(l, model, "end_of_word_suffix", &t->eow_suffix, "model")))
        return rc;
    /* An empty prefix/suffix (GPT-2 writes "") is the same as none. */
    if (t->cont_prefix && !*t->cont_prefix)
        t->cont_prefix = NULL;
    if (t->eow_suffix && !*t->eow_suffix)
        t->eow_suffix = NULL;
    t->cont_prefix_len = t->cont_prefix ? strlen(t->cont_prefix) : 0;
    t->eow_suffix_len = t->eow_suffix ? strlen(t->eow_suffix) : 0;
    if (t->cont_prefix_len + t->eow_suffix_len > 64)
        return unsup(l, "model.continuing_subword_prefix/end_of_word_suffix",
                     "longer than 64 bytes");
    t->unk_id = -1;
    if (unk && vocab_id(t, unk, strlen(unk), &t->unk_id) != 0)
        return fmt_err(l, "model.unk_token is not in the vocab");
    return CQ_OK;
}

static int load_model(ld *l, const cJSON *root)
{
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model))
        return fmt_err(l, "missing or non-object \"model\"");
    const char *ty = type_of(model);
    if (ty && strcmp(ty, "BPE") != 0)
        return unsup(l, "model type", ty);
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    /* Ids far beyond the number of entries would only make the id table huge: reject them. */
    int64_t entries = (int64_t)cJSON_GetArraySize(vocab) + (int64_t)cJSON_GetArraySize(added);
    int rc = load_vocab(l, vocab, entries * 4 + 1024);
    if (rc == CQ_OK)
        rc = load_model_flags(l, model);
    if (rc == CQ_OK)
        rc = load_merges(l, cJSON_GetObjectItemCaseSensitive(model, "merges"));
    return rc;
}

static int load_added(ld *l, const cJSON *root)
{
    cq_tokenizer *t = l->t;
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (!arr || cJSON_IsNull(arr))
        return CQ_OK;
    if (!cJSON_IsArray(arr))
        return fmt_err(l, "added_tokens must be an array");
    int n = cJSON_GetArraySize(arr), rc = CQ_OK;
    t->added = calloc((size_t)n + 1, sizeof *t->added);
    if (!t->added)
        return cq_errorf(l->err, CQ_E_NOMEM, "%s: out of memory", l->path);
    int64_t limit = (int64_t)cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(
                        cJSON_GetObjectItemCaseSensitive(root, "model"), "vocab")) *
                        4 +
                    n * 4 + 1024;
    for (const cJSON *e = arr->child; e && rc == CQ_OK; e = e->next) {
        tok_added *a = &t->added[t->n_added];
        if (!cJSON_IsObject(e) ||
            get_id(cJSON_GetObjectItemCaseSensitive(e, "id"), limit, &a->id) != 0)
            return fmt_err(l, "added_tokens entry without a valid integer id");
        if ((rc = get_str(l, e, "content", &a->content, "added_tokens[]")) ||
            (rc = get_bool(l, e, "special", 0, &a->special, "added_tokens[]")) ||
            (rc = get_bool(l, e, "lstrip", 0, &a->lstrip, "added_tokens[]")) ||
            (rc = get_bool(l, e, "rstrip", 0, &a->rstrip, "added_tokens[]")) ||
            (rc = get_bool(l, e, "single_word", 0, &a->single_word, "added_tokens[]")) ||
            (rc = get_bool(l, e, "normalized", 0, &a->normalized, "added_tokens[]")))
            return rc;
        if (!a->content || !*a->content)
            return fmt_err(l, "added_tokens entry without content");
        a->len = strlen(a->content);
        t->added_first[(unsigned char)a->content[0]] = 1;
        if (a->id >= t->n_ids)
            t->n_ids = (int64_t)a->id + 1;
        t->n_added++;
    }
    return rc;
}

static int add_norm(ld *l, const cJSON *n)
{
    cq_tokenizer *t = l->t;
    const char *ty = type_of(n);
    int rc;
    if (!ty)
        return fmt_err(l, "normalizer without a type");
    if (strcmp(ty, "Sequence") == 0) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(n, "normalizers");
        if (!cJSON_IsArray(arr))
            return fmt_err(l, "normalizer Sequence without a normalizers array");
        for (const cJSON *e = arr->child; e; e = e->next)
            if ((rc = add_norm(l, e)) != CQ_OK)
                return rc;
        return CQ_OK;
    }
    if (t->n_norm == TOK_MAX_NORMS)
        return unsup(l, "normalizer chain", "longer than 8");
    tok_norm *nm = &t->norm[t->n_norm];
    if (strcmp(ty, "NFC") == 0) {
        nm->kind = TOK_NORM_NFC;
    } else if (strcmp(ty, "Prepend") == 0) {
        nm->kind = TOK_NORM_PREPEND;
        if ((rc = get_str(l, n, "prepend", &nm->a, "normalizer")) != CQ_OK)
            return rc;
        if (!nm->a)
            return fmt_err(l, "Prepend normalizer without a prepend string");
    } else if (strcmp(ty, "Replace") == 0) {
        nm->kind = TOK_NORM_REPLACE;
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(n, "pattern");
        if (!cJSON_IsObject(pat))
            return fmt_err(l, "Replace normalizer without a pattern");
        if (!cJSON_GetObjectItemCaseSensitive(pat, "String"))
            return unsup(l, "Replace normalizer pattern", "Regex");
        if ((rc = get_str(l, pat, "String", &nm->a, "normalizer.pattern")) ||
            (rc = get_str(l, n, "content", &nm->b, "normalizer")))
            return rc;
        if (!nm->a || !nm->b || !*nm->a)
            return fmt_err(l, "Replace normalizer needs a non-empty pattern and a content");
    } else {
        return unsup(l, "normalizer", ty);
    }
    nm->alen = nm->a ? strlen(nm->a) : 0;
    nm->blen = nm->b ? strlen(nm->b) : 0;
    t->n_norm++;
    return CQ_OK;
}

static int add_split(ld *l, int kind, int regex)
{
    if (l->t->n_split == TOK_MAX_SPLITS)
        return unsup(l, "pre-tokenizer chain", "longer than 4 splits");
    l->t->split[l->t->n_split].kind = kind;
    l->t->split[l->t->n_split].regex = regex;
    l->t->n_split++;
    return CQ_OK;
}

static int pre_bytelevel(ld *l, const cJSON *p)
{
    int use_regex, rc;
    if ((rc = get_bool(l, p, "add_prefix_space", 0, &l->t->bl_prefix_space, "pre_tokenizer")) ||
        (rc = get_bool(l, p, "use_regex", 1, &use_regex, "pre_tokenizer")))
        return rc;
    if (l->t->byte_level)
        return unsup(l, "pre-tokenizer", "two ByteLevel steps");
    /* Our add_prefix_space acts on the whole piece, which matches HF only before any split. */
    if (l->t->bl_prefix_space && l->t->n_split)
        return unsup(l, "pre-tokenizer", "ByteLevel add_prefix_space after a Split");
    l->t->byte_level = 1;
    return use_regex ? add_split(l, TOK_SPLIT_REGEX, TOK_RE_GPT2) : CQ_OK;
}

static int pre_split(ld *l, const cJSON *p)
{
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
    const cJSON *re = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
    const cJSON *beh = cJSON_GetObjectItemCaseSensitive(p, "behavior");
    int invert, rc;
    if (!cJSON_IsString(re))
        return unsup(l, "Split pattern", "non-regex");
    if ((rc = get_bool(l, p, "invert", 0, &invert, "pre_tokenizer")) != CQ_OK)
        return rc;
    if (invert || !cJSON_IsString(beh) || strcmp(beh->valuestring, "Isolated") != 0)
        return unsup(l, "Split behavior", cJSON_IsString(beh) ? beh->valuestring : "?");
    int kind = tok_regex_kind(re->valuestring);
    if (!kind)
        return unsup(l, "Split regex", re->valuestring);
    if (l->t->byte_level || l->t->metaspace)
        return unsup(l, "pre-tokenizer", "Split after ByteLevel/Metaspace");
    return add_split(l, TOK_SPLIT_REGEX, kind);
}

static int prepend_scheme(ld *l, const cJSON *p, int *out)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(p, "prepend_scheme");
    int aps, rc;
    if ((rc = get_bool(l, p, "add_prefix_space", 1, &aps, "Metaspace")) != CQ_OK)
        return rc;
    *out = aps ? TOK_PREPEND_ALWAYS : TOK_PREPEND_NEVER;
    if (!s || cJSON_IsNull(s))
        return CQ_OK;
    if (!cJSON_IsString(s))
        return fmt_err(l, "Metaspace prepend_scheme must be a string");
    if (strcmp(s->valuestring, "always") == 0)
        *out = TOK_PREPEND_ALWAYS;
    else if (strcmp(s->valuestring, "first") == 0)
        *out = TOK_PREPEND_FIRST;
    else if (strcmp(s->valuestring, "never") == 0)
        *out = TOK_PREPEND_NEVER;
    else
        return unsup(l, "Metaspace prepend_scheme", s->valuestring);
    return CQ_OK;
}

static int pre_metaspace(ld *l, const cJSON *p)
{
    cq_tokenizer *t = l->t;
    int split, rc;
    if ((rc = get_str(l, p, "replacement", &t->ms_rep, "Metaspace")) ||
        (rc = get_bool(l, p, "split", 1, &split, "Metaspace")) ||
        (rc = prepend_scheme(l, p, &t->ms_prepend)))
        return rc;
    if (!t->ms_rep || !*t->ms_rep)
        return fmt_err(l, "Metaspace without a replacement");
    if (t->metaspace || t->byte_level || t->n_split)
        return unsup(l, "pre-tokenizer", "Metaspace combined with other steps");
    t->metaspace = 1;
    t->ms_rep_len = strlen(t->ms_rep);
    return split ? add_split(l, TOK_SPLIT_METASPACE, 0) : CQ_OK;
}

static int load_pretok(ld *l, const cJSON *p)
{
    if (!p || cJSON_IsNull(p))
        return CQ_OK;
    const char *ty = type_of(p);
    if (!ty)
        return fmt_err(l, "pre_tokenizer without a type");
    if (strcmp(ty, "Sequence") == 0) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers");
        if (!cJSON_IsArray(arr))
            return fmt_err(l, "pre_tokenizer Sequence without a pretokenizers array");
        for (const cJSON *e = arr->child; e; e = e->next) {
            int rc = load_pretok(l, e);
            if (rc != CQ_OK)
                return rc;
        }
        return CQ_OK;
    }
    if (strcmp(ty, "ByteLevel") == 0)
        return pre_bytelevel(l, p);
    if (strcmp(ty, "Split") == 0)
        return pre_split(l, p);
    if (strcmp(ty, "Metaspace") == 0)
        return pre_metaspace(l, p);
    return unsup(l, "pre_tokenizer", ty);
}

/* The ids of one special token of a TemplateProcessing, from its special_tokens map. */
static int template_special(ld *l, const cJSON *post, const cJSON *item, int32_t *ids, int *n)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(item, "id");
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(post, "special_tokens");
    const cJSON *ent =
        cJSON_IsString(name) ? cJSON_GetObjectItemCaseSensitive(sp, name->valuestring) : NULL;
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(ent, "ids");
    if (!cJSON_IsArray(arr))
        return fmt_err(l, "TemplateProcessing names a special token without ids");
    for (const cJSON *e = arr->child; e; e = e->next) {
        if (*n == TOK_MAX_TEMPLATE)
            return unsup(l, "TemplateProcessing", "more than 8 special tokens on one side");
        if (get_id(e, INT32_MAX, &ids[*n]) != 0 || ids[*n] >= l->t->n_ids)
            return fmt_err(l, "TemplateProcessing special token id out of range");
        (*n)++;
    }
    return CQ_OK;
}

static int post_template(ld *l, const cJSON *post)
{
    cq_tokenizer *t = l->t;
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(post, "single");
    int seen_a = 0;
    if (!cJSON_IsArray(single))
        return fmt_err(l, "TemplateProcessing without a single template");
    t->n_prefix = t->n_suffix = 0;
    for (const cJSON *it = single->child; it; it = it->next) {
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(it, "SpecialToken");
        if (cJSON_GetObjectItemCaseSensitive(it, "Sequence")) {
            seen_a = 1;
            continue;
        }
        if (!cJSON_IsObject(st))
            return fmt_err(l, "TemplateProcessing item is neither SpecialToken nor Sequence");
        int rc = seen_a ? template_special(l, post, st, t->suffix_ids, &t->n_suffix)
                        : template_special(l, post, st, t->prefix_ids, &t->n_prefix);
        if (rc != CQ_OK)
            return rc;
    }
    return CQ_OK;
}

static int load_post(ld *l, const cJSON *p)
{
    if (!p || cJSON_IsNull(p))
        return CQ_OK;
    const char *ty = type_of(p);
    if (!ty)
        return fmt_err(l, "post_processor without a type");
    if (strcmp(ty, "Sequence") == 0) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(p, "processors");
        if (!cJSON_IsArray(arr))
            return fmt_err(l, "post_processor Sequence without a processors array");
        for (const cJSON *e = arr->child; e; e = e->next) {
            int rc = load_post(l, e);
            if (rc != CQ_OK)
                return rc;
        }
        return CQ_OK;
    }
    if (strcmp(ty, "ByteLevel") == 0) /* offsets only: no effect on ids */
        return CQ_OK;
    if (strcmp(ty, "TemplateProcessing") == 0)
        return post_template(l, p);
    return unsup(l, "post_processor", ty);
}

/* Decoding is for tests and messages: ByteLevel, or SentencePiece-style (▁ -> space, <0xXX>). */
static int load_decoder(ld *l, const cJSON *d)
{
    cq_tokenizer *t = l->t;
    const char *ty = d && !cJSON_IsNull(d) ? type_of(d) : NULL;
    if (!ty)
        return CQ_OK;
    if (strcmp(ty, "ByteLevel") == 0) {
        t->decoder = TOK_DEC_BYTELEVEL;
    } else if (strcmp(ty, "Metaspace") == 0) {
        int scheme, rc = prepend_scheme(l, d, &scheme);
        t->decoder = TOK_DEC_SPIECE;
        t->dec_strip = scheme != TOK_PREPEND_NEVER;
        return rc;
    } else if (strcmp(ty, "Sequence") == 0) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(d, "decoders");
        for (const cJSON *e = cJSON_IsArray(arr) ? arr->child : NULL; e; e = e->next) {
            const char *et = type_of(e);
            const cJSON *start = cJSON_GetObjectItemCaseSensitive(e, "start");
            if (et && (strcmp(et, "Replace") == 0 || strcmp(et, "ByteFallback") == 0))
                t->decoder = TOK_DEC_SPIECE;
            if (et && strcmp(et, "Strip") == 0 && cJSON_IsNumber(start))
                t->dec_strip = start->valueint > 0;
            if (et && strcmp(et, "ByteLevel") == 0)
                t->decoder = TOK_DEC_BYTELEVEL;
        }
    }
    return CQ_OK;
}

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the other 68 bytes to
 * U+0100.. in byte order, so every byte is a visible character. */
static void init_byte_map(cq_tokenizer *t)
{
    int extra = 0;
    for (int i = 0; i < 512; i++)
        t->char_byte[i] = -1;
    for (int b = 0; b < 256; b++) {
        int keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        uint32_t cp = keep ? (uint32_t)b : 256u + (uint32_t)extra++;
        t->byte_char_len[b] = (uint8_t)cq_utf8_encode(cp, t->byte_char[b]);
        t->char_byte[cp] = (int16_t)b;
    }
}

static int fill_tables(ld *l)
{
    cq_tokenizer *t = l->t;
    size_t bytes;
    if (t->n_ids == 0)
        return fmt_err(l, "empty vocab");
    if (cq_mul_size((size_t)t->n_ids, sizeof *t->id_tok, &bytes) != 0 ||
        !(t->id_tok = calloc((size_t)t->n_ids, sizeof *t->id_tok)) ||
        !(t->id_len = calloc((size_t)t->n_ids, sizeof *t->id_len)))
        return cq_errorf(l->err, CQ_E_NOMEM, "%s: out of memory", l->path);
    for (size_t i = 0; i < t->vocab.cap; i++) {
        const tok_sent *e = &t->vocab.e[i];
        if (e->key)
            t->id_tok[e->val] = e->key, t->id_len[e->val] = e->len;
    }
    for (int i = 0; i < t->n_added; i++)
        t->id_tok[t->added[i].id] = t->added[i].content,
        t->id_len[t->added[i].id] = (uint32_t)t->added[i].len;
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        if (vocab_id(t, name, strlen(name), &t->byte_fb_id[b]) != 0)
            t->byte_fb_id[b] = -1;
    }
    init_byte_map(t);
    return CQ_OK;
}

int tok_load_json(cq_tokenizer *t, const cJSON *root, const char *path, cq_error *err)
{
    ld lv = {t, path, err}, *l = &lv;
    int rc;
    if (!cJSON_IsObject(root))
        return fmt_err(l, "top level is not a JSON object");
    if ((rc = load_model(l, root)) || (rc = load_added(l, root)) || (rc = fill_tables(l)))
        return rc;
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    if (norm && !cJSON_IsNull(norm) && (rc = add_norm(l, norm)) != CQ_OK)
        return rc;
    if ((rc = load_pretok(l, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"))) ||
        (rc = load_post(l, cJSON_GetObjectItemCaseSensitive(root, "post_processor"))) ||
        (rc = load_decoder(l, cJSON_GetObjectItemCaseSensitive(root, "decoder"))))
        return rc;
    return CQ_OK;
}
