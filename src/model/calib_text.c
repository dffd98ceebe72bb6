/* Calibration and evaluation text from files: plain text or JSON Lines ("text" per line), either
 * possibly gzipped; tokenized with the model's tokenizer into GPTQ random windows or AutoAWQ
 * concat blocks (calib.h, docs/calib.md). */
#include "cquant/calib.h"

#include "cquant/checked.h"
#include "cquant/json.h"
#include "cquant/log.h"
#include "cquant/model.h"
#include "cquant/sha256.h"
#include "cquant/tokenizer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define JOIN "\n\n"

/* A growing byte buffer. */
typedef struct tbuf {
    char *p;
    size_t len, cap;
} tbuf;

static int tbuf_reserve(tbuf *b, size_t extra, const char *path, cq_error *err)
{
    size_t need;
    if (cq_add_size(b->len, extra, &need) || cq_add_size(need, 1, &need))
        return cq_errorf(err, CQ_E_NOMEM, "%s: text too large", path);
    if (need <= b->cap)
        return CQ_OK;
    size_t cap = b->cap ? b->cap : 1 << 16;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *np = realloc(b->p, cap);
    if (!np)
        return cq_errorf(err, CQ_E_NOMEM, "%s: out of memory for %zu bytes of text", path, cap);
    b->p = np;
    b->cap = cap;
    return CQ_OK;
}

static int tbuf_add(tbuf *b, const void *data, size_t n, const char *path, cq_error *err)
{
    int rc = tbuf_reserve(b, n, path, err);
    if (rc == CQ_OK && n) {
        memcpy(b->p + b->len, data, n);
        b->len += n;
        b->p[b->len] = 0;
    }
    return rc;
}

/* fopen(path, "rb") of a regular file only: O_NONBLOCK so that a FIFO without a writer cannot
 * block the open (then S_ISREG refuses it). NULL with errno set (EINVAL: not a regular file). */
static FILE *open_regular(const char *path)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat st;
    FILE *f = NULL;
    if (fstat(fd, &st) == 0 && !S_ISREG(st.st_mode))
        errno = EINVAL;
    else
        f = fdopen(fd, "rb");
    if (!f) {
        int e = errno;
        close(fd);
        errno = e;
    }
    return f;
}

/* The whole file as it is on disk. */
static int read_raw(const char *path, tbuf *out, cq_error *err)
{
    FILE *f = open_regular(path);
    if (!f && errno == EINVAL)
        return cq_errorf(err, CQ_E_IO, "%s: not a regular file", path);
    if (!f)
        return cq_errorf_errno(err, CQ_E_IO, "%s: cannot open", path);
    int rc = CQ_OK;
    char *chunk = malloc(1 << 16);
    if (!chunk)
        rc = cq_errorf(err, CQ_E_NOMEM, "%s: out of memory", path);
    size_t n;
    while (rc == CQ_OK && (n = fread(chunk, 1, 1 << 16, f)) > 0) {
        rc = out->len + n > CQ_TEXT_MAX_BYTES
                 ? cq_errorf(err, CQ_E_FORMAT, "%s: larger than %zu MiB", path,
                             CQ_TEXT_MAX_BYTES >> 20)
                 : tbuf_add(out, chunk, n, path, err);
    }
    if (rc == CQ_OK && ferror(f))
        rc = cq_errorf_errno(err, CQ_E_IO, "%s: read failed", path);
    free(chunk);
    fclose(f);
    return rc;
}

static int is_gzip(const tbuf *b)
{
    return b->len >= 2 && (unsigned char)b->p[0] == 0x1f && (unsigned char)b->p[1] == 0x8b;
}

/* Inflate every gzip member of in (gzip -c a b > c concatenates members, and zcat reads all). */
static int gunzip(const char *path, const tbuf *in, tbuf *out, cq_error *err)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 15 + 16) != Z_OK)
        return cq_errorf(err, CQ_E_NOMEM, "%s: cannot start zlib", path);
    z.next_in = (Bytef *)in->p;
    z.avail_in = (uInt)0;
    size_t consumed = 0;
    int rc = CQ_OK, zr = Z_OK;
    while (rc == CQ_OK) {
        if (z.avail_in == 0 && consumed < in->len) {
            size_t take = in->len - consumed > (1u << 30) ? (1u << 30) : in->len - consumed;
            z.next_in = (Bytef *)in->p + consumed;
            z.avail_in = (uInt)take;
            consumed += take;
        }
        if (out->len >= CQ_TEXT_MAX_BYTES) {
            rc = cq_errorf(err, CQ_E_FORMAT, "%s: decompresses to more than %zu MiB", path,
                           CQ_TEXT_MAX_BYTES >> 20);
            break;
        }
        if ((rc = tbuf_reserve(out, 1 << 20, path, err)) != CQ_OK)
            break;
        z.next_out = (Bytef *)out->p + out->len;
        z.avail_out = (uInt)(out->cap - out->len - 1);
        uInt before = z.avail_out;
        zr = inflate(&z, Z_NO_FLUSH);
        out->len += before - z.avail_out;
        out->p[out->len] = 0;
        if (zr == Z_STREAM_END) {
            if (z.avail_in == 0 && consumed == in->len)
                break;
            if (z.avail_in >= 2 && z.next_in[0] == 0x1f && z.next_in[1] == 0x8b) {
                inflateReset(&z); /* the next member */
                continue;
            }
            break; /* trailing garbage after a complete member: gzip warns and ignores it */
        }
        if (zr != Z_OK && zr != Z_BUF_ERROR)
            rc = cq_errorf(err, CQ_E_FORMAT, "%s: bad gzip data (%s)", path,
                           z.msg ? z.msg : "zlib error");
        else if (zr == Z_BUF_ERROR && z.avail_in == 0 && consumed == in->len)
            rc = cq_errorf(err, CQ_E_FORMAT, "%s: gzip data is truncated", path);
    }
    inflateEnd(&z);
    return rc;
}

/* Does NAME end in SUFFIX? */
static int ends_with(const char *name, const char *suffix)
{
    size_t n = strlen(name), s = strlen(suffix);
    return n >= s && !strcmp(name + n - s, suffix);
}

static int is_jsonl_name(const char *path)
{
    return ends_with(path, ".jsonl") || ends_with(path, ".jsonl.gz");
}

typedef struct text_acc {
    tbuf text;
    cq_doc_span *docs;
    int64_t n_docs;
    size_t cap_docs;
    int want_docs;
} text_acc;

static int add_doc(text_acc *a, size_t off, size_t len, const char *path, cq_error *err)
{
    if (!a->want_docs)
        return CQ_OK;
    if ((size_t)a->n_docs == a->cap_docs) {
        size_t nc = a->cap_docs ? a->cap_docs * 2 : 256;
        cq_doc_span *nd = realloc(a->docs, nc * sizeof *nd);
        if (!nd)
            return cq_errorf(err, CQ_E_NOMEM, "%s: out of memory for documents", path);
        a->docs = nd;
        a->cap_docs = nc;
    }
    a->docs[a->n_docs++] = (cq_doc_span){off, len};
    return CQ_OK;
}

/* Append one text (a file or a jsonl line) to the joined text, "\n\n" between texts. */
static int add_text(text_acc *a, const char *s, size_t n, const char *path, cq_error *err)
{
    int rc = a->text.len ? tbuf_add(&a->text, JOIN, 2, path, err) : CQ_OK;
    return rc == CQ_OK ? tbuf_add(&a->text, s, n, path, err) : rc;
}

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

/* A jsonl line's document: its text stripped (AutoAWQ: line.strip()), empty ones dropped. */
static int add_line_doc(text_acc *a, size_t off, size_t n, const char *path, cq_error *err)
{
    const char *t = a->text.p;
    while (n && is_ws(t[off]))
        off++, n--;
    while (n && is_ws(t[off + n - 1]))
        n--;
    return n ? add_doc(a, off, n, path, err) : CQ_OK;
}

static int jsonl_line(text_acc *a, const char *line, size_t n, int64_t lineno, const char *path,
                      cq_error *err)
{
    char what[4200];
    snprintf(what, sizeof what, "%s:%lld", path, (long long)lineno);
    cJSON *o = NULL;
    int rc = cq_json_parse(&o, line, n, what, err);
    const cJSON *t = rc == CQ_OK ? cJSON_GetObjectItemCaseSensitive(o, "text") : NULL;
    if (rc == CQ_OK && !cJSON_IsString(t))
        rc = cq_errorf(err, CQ_E_FORMAT, "%s: no \"text\" string in this line", what);
    if (rc == CQ_OK) {
        size_t before = a->text.len ? a->text.len + 2 : 0, len = strlen(t->valuestring);
        rc = add_text(a, t->valuestring, len, path, err);
        if (rc == CQ_OK)
            rc = add_line_doc(a, before, len, path, err);
    }
    cJSON_Delete(o);
    return rc;
}

static int add_jsonl(text_acc *a, const tbuf *raw, const char *path, cq_error *err)
{
    size_t p = 0, texts = 0;
    int64_t lineno = 0;
    int rc = CQ_OK;
    while (p < raw->len && rc == CQ_OK) {
        const char *nl = memchr(raw->p + p, '\n', raw->len - p);
        size_t e = nl ? (size_t)(nl - raw->p) : raw->len, b = p;
        lineno++;
        while (b < e && is_ws(raw->p[b]))
            b++;
        if (b < e) { /* blank lines are allowed (a trailing newline makes one) */
            rc = jsonl_line(a, raw->p + b, e - b, lineno, path, err);
            texts++;
        }
        p = e + 1;
    }
    if (rc == CQ_OK && texts == 0)
        rc = cq_errorf(err, CQ_E_FORMAT, "%s: no JSON lines", path);
    return rc;
}

static int add_plain(text_acc *a, const tbuf *raw, const char *path, cq_error *err)
{
    if (!cq_utf8_valid(raw->p, raw->len))
        return cq_errorf(err, CQ_E_FORMAT, "%s: not UTF-8 text", path);
    size_t base = a->text.len ? a->text.len + 2 : 0;
    int rc = add_text(a, raw->p, raw->len, path, err);
    cq_doc_span *sp = NULL;
    int64_t n = 0;
    if (rc == CQ_OK && a->want_docs)
        rc = cq_calib_split_docs(raw->p, raw->len, &sp, &n, err);
    for (int64_t i = 0; i < n && rc == CQ_OK; i++)
        rc = add_doc(a, base + sp[i].off, sp[i].len, path, err);
    free(sp);
    return rc;
}

/* Append {"file": basename, "sha256": hex} to the sources array. */
static void add_source(cJSON *arr, const char *path, const tbuf *raw)
{
    char hex[65];
    const char *slash = strrchr(path, '/');
    cq_sha256_hex(raw->p ? raw->p : "", raw->len, hex);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "file", slash ? slash + 1 : path);
    cJSON_AddStringToObject(o, "sha256", hex);
    cJSON_AddItemToArray(arr, o);
}

static int read_one(text_acc *a, const char *path, cJSON *sources, cq_error *err)
{
    tbuf raw = {0}, plain = {0};
    int rc = read_raw(path, &raw, err);
    if (rc == CQ_OK && sources)
        add_source(sources, path, &raw);
    const tbuf *t = &raw;
    if (rc == CQ_OK && is_gzip(&raw)) {
        rc = gunzip(path, &raw, &plain, err);
        t = &plain;
    }
    if (rc == CQ_OK && t->len == 0)
        rc = cq_errorf(err, CQ_E_FORMAT, "%s: empty%s", path, t == &plain ? " after gunzip" : "");
    if (rc == CQ_OK)
        rc = is_jsonl_name(path) ? add_jsonl(a, t, path, err) : add_plain(a, t, path, err);
    free(raw.p);
    free(plain.p);
    return rc;
}

static int sources_json(cJSON *arr, char *out, size_t cap, cq_error *err)
{
    char *s = cJSON_PrintUnformatted(arr);
    if (!s)
        return cq_errorf(err, CQ_E_NOMEM, "out of memory for the sources list");
    int fits = strlen(s) < cap;
    if (fits)
        memcpy(out, s, strlen(s) + 1);
    free(s);
    /* Too many files for the field: keep the count and say so rather than cut the JSON. */
    if (!fits)
        snprintf(out, cap, "[{\"file\":\"(%d files; list too long)\"}]", cJSON_GetArraySize(arr));
    return CQ_OK;
}

int cq_text_read(const char *const *paths, int n_paths, char **text, size_t *len,
                 cq_doc_span **docs, int64_t *n_docs, char *sources, size_t sources_cap,
                 cq_error *err)
{
    text_acc a;
    memset(&a, 0, sizeof a);
    a.want_docs = docs != NULL;
    *text = NULL;
    *len = 0;
    if (docs) {
        *docs = NULL;
        *n_docs = 0;
    }
    cJSON *src = sources ? cJSON_CreateArray() : NULL;
    int rc = n_paths < 1 ? cq_errorf(err, CQ_E_USAGE, "no text files given") : CQ_OK;
    if (rc == CQ_OK && sources && !src)
        rc = cq_errorf(err, CQ_E_NOMEM, "out of memory");
    for (int i = 0; i < n_paths && rc == CQ_OK; i++)
        rc = read_one(&a, paths[i], src, err);
    if (rc == CQ_OK && sources)
        rc = sources_json(src, sources, sources_cap, err);
    cJSON_Delete(src);
    if (rc != CQ_OK) {
        free(a.text.p);
        free(a.docs);
        return rc;
    }
    *text = a.text.p;
    *len = a.text.len;
    if (docs) {
        *docs = a.docs;
        *n_docs = a.n_docs;
    }
    return CQ_OK;
}

int cq_calib_is_safetensors(const char *path)
{
    FILE *f = open_regular(path);
    unsigned char h[9];
    if (!f)
        return 0;
    size_t n = fread(h, 1, sizeof h, f);
    int ok = fseek(f, 0, SEEK_END) == 0;
    long size = ok ? ftell(f) : -1;
    fclose(f);
    if (n < 9 || size < 9 || h[8] != '{')
        return 0;
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = hl << 8 | h[i];
    return hl >= 2 && hl <= (uint64_t)size - 8;
}

/* ---- tokenized calibration ---- */

cq_calib_text_opts cq_calib_text_defaults(void)
{
    return (cq_calib_text_opts){CQ_CALIB_RANDOM, 128, 0, 0, -1};
}

int64_t cq_calib_default_seqlen(const cq_calib_text_opts *opt, int64_t max_pos)
{
    if (opt->seqlen > 0)
        return opt->seqlen;
    if (opt->mode == CQ_CALIB_CONCAT || opt->mode == CQ_CALIB_SPLIT)
        return 512;
    return max_pos > 0 && max_pos < 2048 ? max_pos : 2048;
}

/* "'a.txt'" or "'a.txt' (and 2 more files)" for messages. */
static void name_files(const char *const *paths, int n, char *buf, size_t cap)
{
    if (n > 1)
        snprintf(buf, cap, "%s (and %d more file%s)", paths[0], n - 1, n > 2 ? "s" : "");
    else
        snprintf(buf, cap, "%s", n ? paths[0] : "(no file)");
}

static int encode(const cq_tokenizer *tok, const char *s, size_t n, int bos, int32_t **ids,
                  int64_t *len, cq_error *err)
{
    int32_t *raw = NULL;
    int64_t nr = 0;
    int rc = cq_tokenizer_encode(tok, s, n, 0, &raw, &nr, err);
    int32_t b = cq_tokenizer_bos_id(tok);
    if (rc != CQ_OK || !bos || b < 0) { /* no BOS asked, or the tokenizer has none */
        *ids = raw;
        *len = nr;
        return rc;
    }
    *ids = malloc(((size_t)nr + 1) * sizeof **ids);
    if (!*ids) {
        free(raw);
        return cq_errorf(err, CQ_E_NOMEM, "out of memory for %lld tokens", (long long)nr);
    }
    (*ids)[0] = b;
    if (nr)
        memcpy(*ids + 1, raw, (size_t)nr * sizeof *raw);
    *len = nr + 1;
    free(raw);
    return CQ_OK;
}

static int random_windows(const cq_tokenizer *tok, const char *text, size_t len,
                          const cq_calib_text_opts *opt, int64_t seqlen, const char *names,
                          cq_calib *out, cq_error *err)
{
    int32_t *ids = NULL;
    int64_t n = 0;
    int rc = encode(tok, text, len, opt->bos == 1, &ids, &n, err);
    if (rc == CQ_OK && n <= seqlen)
        rc = cq_errorf(err, CQ_E_FORMAT, "%s: too little text: %lld tokens; random windows of "
                       "%lld need more (give more text or a smaller --seqlen)", names,
                       (long long)n, (long long)seqlen);
    if (rc == CQ_OK)
        rc = cq_calib_random(ids, n, opt->n > 0 ? opt->n : 128, seqlen, opt->seed, out, err);
    if (rc == CQ_OK)
        out->bos = opt->bos == 1;
    free(ids);
    return rc;
}

/* AutoAWQ tokenizes every document (all of them, then filters); we stop once enough short
 * documents are accepted, which selects the same ones. */
static int concat_blocks(const cq_tokenizer *tok, const char *text, const cq_doc_span *docs,
                         int64_t n_docs, const cq_calib_text_opts *opt, int64_t seqlen,
                         const char *names, cq_calib *out, cq_error *err)
{
    int64_t max_docs = opt->n > 0 ? opt->n : 128, accepted = 0, used = 0, total = 0;
    bool split = opt->mode == CQ_CALIB_SPLIT; /* n = blocks; long documents kept */
    int64_t want = split ? max_docs * seqlen : 0, max_len = split ? INT64_MAX : seqlen;
    int32_t **ids = calloc(n_docs ? (size_t)n_docs : 1, sizeof *ids);
    int64_t *lens = calloc(n_docs ? (size_t)n_docs : 1, sizeof *lens);
    int rc = ids && lens ? CQ_OK : cq_errorf(err, CQ_E_NOMEM, "out of memory for documents");
    int bos = opt->bos != 0;
    for (int64_t d = 0; d < n_docs && (split ? total < want : accepted < max_docs) &&
                        rc == CQ_OK; d++, used = d) {
        rc = encode(tok, text + docs[d].off, docs[d].len, bos, &ids[d], &lens[d], err);
        accepted += rc == CQ_OK && lens[d] > 0 && lens[d] <= seqlen;
        total += rc == CQ_OK ? lens[d] : 0;
    }
    if (rc == CQ_OK)
        rc = cq_calib_concat((const int32_t *const *)ids, lens, used, seqlen,
                             split ? INT64_MAX : max_docs, max_len, out, err);
    if (rc == CQ_OK && split) {
        out->n = out->n < max_docs ? out->n : max_docs; /* the first n blocks */
        strcpy(out->mode, "split");
    }
    if (rc == CQ_E_USAGE) { /* fewer tokens than one block: a property of the input */
        cq_error_prefix(err, "%s: too little text", names);
        rc = err->code = CQ_E_FORMAT;
    }
    if (rc == CQ_OK)
        out->bos = bos;
    for (int64_t d = 0; ids && d < n_docs; d++)
        free(ids[d]);
    free(ids);
    free(lens);
    return rc;
}

int cq_calib_from_text_tok(const cq_tokenizer *tok, int64_t max_pos, const char *const *paths,
                           int n_paths, const cq_calib_text_opts *opt, cq_calib *out,
                           cq_error *err)
{
    memset(out, 0, sizeof *out);
    cq_calib_text_opts d = cq_calib_text_defaults();
    if (!opt)
        opt = &d;
    int64_t seqlen = cq_calib_default_seqlen(opt, max_pos);
    if (opt->n < 0 || seqlen < 2)
        return cq_errorf(err, CQ_E_USAGE, "calibration needs n >= 1 and seqlen >= 2");
    char *text = NULL, sources[sizeof out->sources], names[512];
    size_t len = 0;
    cq_doc_span *docs = NULL;
    int64_t n_docs = 0;
    int concat = opt->mode == CQ_CALIB_CONCAT || opt->mode == CQ_CALIB_SPLIT;
    name_files(paths, n_paths, names, sizeof names);
    int rc = cq_text_read(paths, n_paths, &text, &len, concat ? &docs : NULL, &n_docs, sources,
                          sizeof sources, err);
    if (rc == CQ_OK && concat)
        rc = concat_blocks(tok, text, docs, n_docs, opt, seqlen, names, out, err);
    else if (rc == CQ_OK)
        rc = random_windows(tok, text, len, opt, seqlen, names, out, err);
    if (rc == CQ_OK) {
        snprintf(out->tokenizer_hash, sizeof out->tokenizer_hash, "%s", cq_tokenizer_hash(tok));
        memcpy(out->sources, sources, sizeof sources);
        out->seed = concat ? 0 : opt->seed;
    }
    free(text);
    free(docs);
    return rc;
}

int cq_calib_from_text(const char *model_dir, const char *const *paths, int n_paths,
                       const cq_calib_text_opts *opt, cq_calib *out, cq_error *err)
{
    memset(out, 0, sizeof *out);
    cq_model_config cfg;
    cq_tokenizer *tok = NULL;
    int rc = cq_config_load(model_dir, &cfg, err);
    if (rc == CQ_OK)
        rc = cq_tokenizer_load(&tok, model_dir, err);
    if (rc == CQ_OK)
        rc = cq_calib_from_text_tok(tok, cfg.max_pos, paths, n_paths, opt, out, err);
    cq_tokenizer_free(tok);
    return rc;
}

/* sha256 of DIR/tokenizer.json's bytes, as cq_tokenizer_hash computes it, without parsing. */
static int model_tokenizer_hash(const char *model_dir, char hex[65])
{
    char path[4200];
    snprintf(path, sizeof path, "%s/tokenizer.json", model_dir);
    FILE *f = open_regular(path); /* a FIFO named tokenizer.json must not block the run */
    if (!f)
        return -1;
    cq_sha256 s;
    cq_sha256_init(&s);
    char *buf = malloc(1 << 16);
    size_t n;
    int rc = buf ? 0 : -1;
    while (buf && (n = fread(buf, 1, 1 << 16, f)) > 0)
        cq_sha256_update(&s, buf, n);
    if (ferror(f))
        rc = -1;
    fclose(f);
    free(buf);
    uint8_t dg[32];
    cq_sha256_final(&s, dg);
    cq_sha256_to_hex(dg, hex);
    return rc;
}

int cq_calib_check_tokenizer(const cq_calib *c, const char *calib_path, const char *model_dir)
{
    char hex[65];
    if (model_tokenizer_hash(model_dir, hex) != 0) {
        cq_warn("%s: cannot check its tokenizer: %s has no readable tokenizer.json", calib_path,
                model_dir);
        return CQ_CALIB_TOK_NO_MODEL_TOKENIZER;
    }
    if (!c->tokenizer_hash[0]) {
        cq_warn("%s: no tokenizer_hash in its metadata: cannot check that it was tokenized with "
                "%s's tokenizer", calib_path, model_dir);
        return CQ_CALIB_TOK_MISSING;
    }
    if (strcmp(c->tokenizer_hash, hex) != 0) {
        cq_warn("%s: made with another tokenizer (tokenizer_hash %.12s…, %s/tokenizer.json is "
                "%.12s…): its token ids may mean other text", calib_path, c->tokenizer_hash,
                model_dir, hex);
        return CQ_CALIB_TOK_MISMATCH;
    }
    return CQ_CALIB_TOK_MATCH;
}

int cq_calib_load(const char *model_dir, const char *const *paths, int n_paths,
                  const cq_calib_text_opts *opt, cq_calib *out, cq_error *err)
{
    memset(out, 0, sizeof *out);
    if (n_paths != 1 || !cq_calib_is_safetensors(paths[0]))
        return cq_calib_from_text(model_dir, paths, n_paths, opt, out, err);
    cq_model_config cfg;
    int rc = cq_config_load(model_dir, &cfg, err);
    if (rc == CQ_OK)
        rc = cq_calib_read(paths[0], cfg.vocab, out, err);
    if (rc == CQ_OK)
        cq_calib_check_tokenizer(out, paths[0], model_dir);
    return rc;
}
