/* Calibration text inputs (calib_text.c): plain/jsonl/gzip reading, document spans, sources with
 * sha256, hostile files, concat blocks against a naive AutoAWQ reimplementation, random windows
 * from text, and the tokenizer-hash check. */
#include "cq_test.h"
#include "cquant/calib.h"
#include "cquant/log.h"
#include "cquant/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static const char *tmp_path(const char *name)
{
    static char buf[8][4096];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", cq_test_tmpdir(), name);
    return buf[k];
}

static const char *write_file(const char *name, const void *data, size_t n)
{
    const char *p = tmp_path(name);
    FILE *f = fopen(p, "wb");
    if (!f || fwrite(data, 1, n, f) != n)
        CQ_FAIL("cannot write %s", p);
    if (f)
        fclose(f);
    return p;
}

/* gzip of data (one member) into buf; returns its length. */
static size_t gz(const char *data, size_t n, unsigned char *buf, size_t cap)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
    z.next_in = (Bytef *)data;
    z.avail_in = (uInt)n;
    z.next_out = buf;
    z.avail_out = (uInt)cap;
    deflate(&z, Z_FINISH);
    size_t out = cap - z.avail_out;
    deflateEnd(&z);
    return out;
}

static int span_is(const char *text, cq_doc_span s, const char *want)
{
    return s.len == strlen(want) && memcmp(text + s.off, want, s.len) == 0;
}

CQ_TEST(plain_jsonl_and_gzip)
{
    const char *a_txt = "alpha\n\nbeta  \n";
    const char *b_jsonl = "{\"text\": \" gamma \"}\n\n{\"text\":\"de\\nlta\",\"x\":1}\n";
    const char *paths[2] = {write_file("a.txt", a_txt, strlen(a_txt)),
                            write_file("b.jsonl", b_jsonl, strlen(b_jsonl))};
    char *text = NULL;
    size_t len = 0;
    cq_doc_span *docs = NULL;
    int64_t nd = 0;
    cq_error err = CQ_ERROR_INIT;
    CQ_CHECK_OK(cq_text_read(paths, 2, &text, &len, &docs, &nd, NULL, 0, &err), &err);
    const char *want = "alpha\n\nbeta  \n\n\n gamma \n\nde\nlta";
    CQ_CHECK(len == strlen(want) && text && !strcmp(text, want));
    CQ_CHECK_EQ_INT(nd, 4);
    if (nd == 4) {
        CQ_CHECK(span_is(text, docs[0], "alpha") && span_is(text, docs[1], "beta"));
        CQ_CHECK(span_is(text, docs[2], "gamma") && span_is(text, docs[3], "de\nlta"));
    }
    free(text);
    free(docs);

    /* the same jsonl gzipped (named .jsonl.gz), and a .dat holding two gzip members: the magic
     * bytes decide, not the name */
    unsigned char z[4096];
    size_t zn = gz(b_jsonl, strlen(b_jsonl), z, sizeof z);
    const char *g = write_file("b.jsonl.gz", z, zn);
    CQ_CHECK_OK(cq_text_read(&g, 1, &text, &len, NULL, NULL, NULL, 0, &err), &err);
    CQ_CHECK(text && !strcmp(text, " gamma \n\nde\nlta"));
    free(text);
    size_t n1 = gz("one\n", 4, z, sizeof z);
    size_t n2 = gz("two\n", 4, z + n1, sizeof z - n1);
    const char *d = write_file("c.dat", z, n1 + n2);
    CQ_CHECK_OK(cq_text_read(&d, 1, &text, &len, NULL, NULL, NULL, 0, &err), &err);
    CQ_CHECK(text && len == 8 && !strcmp(text, "one\ntwo\n"));
    free(text);
}

CQ_TEST(sources_name_and_sha256)
{
    const char *h = write_file("h.txt", "hello\n", 6);
    char src[1024];
    char *text = NULL;
    size_t len;
    cq_error err = CQ_ERROR_INIT;
    CQ_CHECK_OK(cq_text_read(&h, 1, &text, &len, NULL, NULL, src, sizeof src, &err), &err);
    /* sha256sum of "hello\n" */
    CQ_CHECK(!strcmp(src, "[{\"file\":\"h.txt\",\"sha256\":"
                          "\"5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03\"}]"));
    free(text);
}

/* Each hostile input: the status, a one-line message naming the file, and a phrase. */
static void expect_bad(const char *path, int code, const char *phrase)
{
    char *text = NULL;
    size_t len;
    cq_error err = CQ_ERROR_INIT;
    int rc = cq_text_read(&path, 1, &text, &len, NULL, NULL, NULL, 0, &err);
    CQ_CHECK_EQ_INT(rc, code);
    if (!strstr(err.msg, path) || strchr(err.msg, '\n') || !strstr(err.msg, phrase))
        CQ_FAIL("message for %s: '%s' (want the file and '%s', one line)", path, err.msg, phrase);
    CQ_CHECK(text == NULL);
}

CQ_TEST(hostile_text_files)
{
    unsigned char z[4096];
    expect_bad(write_file("empty.txt", "", 0), CQ_E_FORMAT, "empty");
    expect_bad(write_file("bad.gz", "\x1f\x8bthis is not deflate data", 26), CQ_E_FORMAT,
               "bad gzip");
    const char *text = "some text that will be cut short in its gzip form, repeated. "
                       "some text that will be cut short in its gzip form, repeated.";
    size_t zn = gz(text, strlen(text), z, sizeof z);
    expect_bad(write_file("cut.txt.gz", z, zn / 2), CQ_E_FORMAT, "truncated");
    zn = gz("", 0, z, sizeof z);
    expect_bad(write_file("empty.gz", z, zn), CQ_E_FORMAT, "empty after gunzip");
    expect_bad(write_file("notext.jsonl", "{\"text\":\"ok\"}\n{\"body\":\"x\"}\n", 28),
               CQ_E_FORMAT, ":2: no \"text\"");
    expect_bad(write_file("badjson.jsonl", "{\"text\": \"x\"\n", 13), CQ_E_FORMAT, ":1");
    expect_bad(write_file("blank.jsonl", "\n  \n", 4), CQ_E_FORMAT, "no JSON lines");
    expect_bad(write_file("latin1.txt", "caf\xe9\n", 5), CQ_E_FORMAT, "not UTF-8");
    expect_bad(tmp_path("missing.txt"), CQ_E_IO, "cannot open");
}

CQ_TEST(safetensors_sniffing)
{
    const char st[] = "\x10\0\0\0\0\0\0\0{\"__metadata__\":{}}";
    CQ_CHECK(cq_calib_is_safetensors(write_file("x.st", st, 8 + 16)));
    CQ_CHECK(!cq_calib_is_safetensors(write_file("t.txt", "{\"text\": \"looks like json\"}", 26)));
    CQ_CHECK(!cq_calib_is_safetensors(write_file("s.st", "\xff\0\0\0\0\0\0\0{}", 10)));
    CQ_CHECK(!cq_calib_is_safetensors(tmp_path("nope")));
}

static cq_tokenizer *tiny_tokenizer(char *dir, size_t cap)
{
    const char *src = getenv("CQ_SRC");
    cq_tokenizer *tok = NULL;
    cq_error err = CQ_ERROR_INIT;
    snprintf(dir, cap, "%s/data/models/cq-llama-tiny", src ? src : ".");
    CQ_CHECK_OK(cq_tokenizer_load(&tok, dir, &err), &err);
    return tok;
}

/* AutoAWQ's get_calib_dataset written out plainly: strip, encode (BOS first), skip empty and
 * longer than block, stop after max_docs, concatenate, cut into blocks, drop the rest. */
static int64_t naive_concat(const cq_tokenizer *tok, const char *const *docs, int n_docs,
                            int64_t block, int64_t max_docs, int32_t *out, int64_t cap)
{
    int64_t total = 0, accepted = 0;
    for (int d = 0; d < n_docs && accepted < max_docs; d++) {
        int32_t *ids = NULL;
        int64_t n = 0;
        cq_error err = CQ_ERROR_INIT;
        CQ_CHECK_OK(cq_tokenizer_encode(tok, docs[d], strlen(docs[d]), 1, &ids, &n, &err), &err);
        if (n > 1 && n <= block) { /* n == 1: only BOS, an empty document (never given here) */
            for (int64_t i = 0; i < n && total < cap; i++)
                out[total++] = ids[i];
            accepted++;
        }
        free(ids);
    }
    return total / block;
}

CQ_TEST(concat_blocks_match_naive_autoawq)
{
    char dir[4096];
    cq_tokenizer *tok = tiny_tokenizer(dir, sizeof dir);
    if (!tok)
        return;
    /* documents of various lengths; the long one (> 16 tokens) is skipped */
    const char *docs[] = {
        "The cat sat on the mat.",
        "A much longer document that goes on and on, with many words, far more than sixteen "
        "tokens of the tiny model's vocabulary, so AutoAWQ would skip it entirely.",
        "Debian packages are built from source.",
        "Perplexity is the exponential of the mean negative log-likelihood.",
        "Short one.",
        "Never reached: max_docs stops before this.",
    };
    char text[2048] = "";
    for (size_t i = 0; i < sizeof docs / sizeof *docs; i++) {
        strcat(text, i ? "\n  \n" : "  ");
        strcat(text, docs[i]);
    }
    const char *p = write_file("docs.txt", text, strlen(text));
    int32_t want[256];
    int64_t nb = naive_concat(tok, docs, 6, 16, 4, want, 256);
    cq_calib_text_opts o = cq_calib_text_defaults();
    o.mode = CQ_CALIB_CONCAT;
    o.n = 4;
    o.seqlen = 16;
    cq_calib c;
    cq_error err = CQ_ERROR_INIT;
    CQ_CHECK_OK(cq_calib_from_text_tok(tok, 2048, &p, 1, &o, &c, &err), &err);
    CQ_CHECK(nb >= 2); /* the case is meant to give more than one block */
    CQ_CHECK_EQ_INT(c.n, nb);
    CQ_CHECK_EQ_INT(c.seqlen, 16);
    CQ_CHECK(c.n == nb && memcmp(c.ids, want, (size_t)(nb * 16) * 4) == 0);
    CQ_CHECK(!strcmp(c.mode, "concat") && c.bos == 1);
    CQ_CHECK(!strcmp(c.tokenizer_hash, cq_tokenizer_hash(tok)));
    cq_calib_release(&c);
    /* too little text for one block: a one-line input error naming the file */
    o.seqlen = 512;
    CQ_CHECK_EQ_INT(cq_calib_from_text_tok(tok, 2048, &p, 1, &o, &c, &err), CQ_E_FORMAT);
    CQ_CHECK(strstr(err.msg, p) && strstr(err.msg, "too little text"));
    cq_tokenizer_free(tok);
}

/* Split: every document kept (the long one spans blocks), the first n blocks of the stream. */
CQ_TEST(split_blocks_keep_long_documents)
{
    char dir[4096];
    cq_tokenizer *tok = tiny_tokenizer(dir, sizeof dir);
    if (!tok)
        return;
    const char *docs[] = {
        "The cat sat on the mat.",
        "A much longer document that goes on and on, with many words, far more than sixteen "
        "tokens of the tiny model's vocabulary, which the split mode keeps.",
        "Debian packages are built from source.",
        "Short one.",
    };
    char text[2048] = "";
    int32_t want[512];
    int64_t total = 0;
    for (size_t i = 0; i < sizeof docs / sizeof *docs; i++) {
        strcat(text, i ? "\n\n" : "");
        strcat(text, docs[i]);
        int32_t *ids = NULL;
        int64_t n = 0;
        cq_error e = CQ_ERROR_INIT;
        CQ_CHECK_OK(cq_tokenizer_encode(tok, docs[i], strlen(docs[i]), 1, &ids, &n, &e), &e);
        for (int64_t k = 0; k < n && total < 512; k++)
            want[total++] = ids[k];
        free(ids);
    }
    const char *p = write_file("split.txt", text, strlen(text));
    cq_calib_text_opts o = cq_calib_text_defaults();
    o.mode = CQ_CALIB_SPLIT;
    o.seqlen = 8;
    cq_calib c;
    cq_error err = CQ_ERROR_INIT;
    for (int64_t n = 1; n <= 1000; n *= 3) { /* 1, 3, 9, 27, 81 (fewer when text runs out) */
        o.n = n;
        CQ_CHECK_OK(cq_calib_from_text_tok(tok, 2048, &p, 1, &o, &c, &err), &err);
        int64_t expect = total / 8 < n ? total / 8 : n;
        CQ_CHECK_EQ_INT(c.n, expect);
        CQ_CHECK(c.n == expect && memcmp(c.ids, want, (size_t)(expect * 8) * 4) == 0);
        CQ_CHECK(!strcmp(c.mode, "split") && c.bos == 1);
        cq_calib_release(&c);
    }
    CQ_CHECK(total / 8 > 3); /* the long document really spans blocks */
    cq_tokenizer_free(tok);
}

/* Random windows from text: the stream is the text's tokens (no BOS by default, one BOS first
 * with bos = 1), windows at random.seed(7); randint(0, len - 9) starts, drawn here with
 * cq_mt_randint (checked against CPython in test_calib.c; the WikiText starts from Python are
 * checked through the CLI in test_evalcli.c). */
CQ_TEST(random_windows_from_text)
{
    char dir[4096];
    cq_tokenizer *tok = tiny_tokenizer(dir, sizeof dir);
    if (!tok)
        return;
    const char *text = "Calibration text for the random protocol: windows of eight tokens are "
                       "drawn from one stream of tokens with Python's random module.";
    const char *p = write_file("r.txt", text, strlen(text));
    int32_t *ids = NULL;
    int64_t n = 0;
    cq_error err = CQ_ERROR_INIT;
    CQ_CHECK_OK(cq_tokenizer_encode(tok, text, strlen(text), 0, &ids, &n, &err), &err);
    cq_calib_text_opts o = cq_calib_text_defaults();
    o.n = 3;
    o.seqlen = 8;
    o.seed = 7;
    cq_calib c;
    CQ_CHECK_OK(cq_calib_from_text_tok(tok, 2048, &p, 1, &o, &c, &err), &err);
    cq_mt19937 r;
    cq_mt_seed(&r, 7);
    for (int s = 0; s < 3 && c.ids; s++) {
        int64_t i = cq_mt_randint(&r, 0, n - 9);
        CQ_CHECK(memcmp(c.ids + s * 8, ids + i, 32) == 0);
    }
    CQ_CHECK(c.bos == 0 && c.seed == 7 && !strcmp(c.mode, "random"));
    cq_calib_release(&c);
    o.bos = 1; /* BOS first, then the same stream */
    CQ_CHECK_OK(cq_calib_from_text_tok(tok, 2048, &p, 1, &o, &c, &err), &err);
    cq_mt_seed(&r, 7);
    for (int s = 0; s < 3 && c.ids; s++) {
        int64_t i = cq_mt_randint(&r, 0, n + 1 - 9);
        for (int t = 0; t < 8; t++)
            CQ_CHECK_EQ_INT(c.ids[s * 8 + t], i + t == 0 ? 1 : ids[i + t - 1]);
    }
    CQ_CHECK(c.bos == 1);
    cq_calib_release(&c);
    o.bos = 0;
    o.seqlen = n; /* len must exceed seqlen */
    CQ_CHECK_EQ_INT(cq_calib_from_text_tok(tok, 2048, &p, 1, &o, &c, &err), CQ_E_FORMAT);
    CQ_CHECK(strstr(err.msg, p) && strstr(err.msg, "too little text"));
    free(ids);
    cq_tokenizer_free(tok);
}

CQ_TEST(default_seqlen)
{
    cq_calib_text_opts o = cq_calib_text_defaults();
    CQ_CHECK_EQ_INT(o.n, 128);
    CQ_CHECK_EQ_INT(cq_calib_default_seqlen(&o, 4096), 2048);
    CQ_CHECK_EQ_INT(cq_calib_default_seqlen(&o, 1024), 1024);
    CQ_CHECK_EQ_INT(cq_calib_default_seqlen(&o, 0), 2048);
    o.mode = CQ_CALIB_CONCAT;
    CQ_CHECK_EQ_INT(cq_calib_default_seqlen(&o, 4096), 512);
    o.seqlen = 100;
    CQ_CHECK_EQ_INT(cq_calib_default_seqlen(&o, 4096), 100);
}

CQ_TEST(tokenizer_hash_check)
{
    char dir[4096];
    cq_tokenizer *tok = tiny_tokenizer(dir, sizeof dir);
    if (!tok)
        return;
    cq_log_set_level(CQ_LOG_QUIET);
    cq_calib c;
    memset(&c, 0, sizeof c);
    CQ_CHECK_EQ_INT(cq_calib_check_tokenizer(&c, "c.bin", dir), CQ_CALIB_TOK_MISSING);
    snprintf(c.tokenizer_hash, sizeof c.tokenizer_hash, "%s", cq_tokenizer_hash(tok));
    CQ_CHECK_EQ_INT(cq_calib_check_tokenizer(&c, "c.bin", dir), CQ_CALIB_TOK_MATCH);
    c.tokenizer_hash[0] ^= 1;
    CQ_CHECK_EQ_INT(cq_calib_check_tokenizer(&c, "c.bin", dir), CQ_CALIB_TOK_MISMATCH);
    CQ_CHECK_EQ_INT(cq_calib_check_tokenizer(&c, "c.bin", cq_test_tmpdir()),
                    CQ_CALIB_TOK_NO_MODEL_TOKENIZER);
    cq_tokenizer_free(tok);
}

/* cq_calib_load: a calib.bin with an id beyond the model's vocab is an input error naming it;
 * text is tokenized on the fly with the defaults. */
CQ_TEST(calib_load_checks_vocab)
{
    char dir[4096];
    cq_tokenizer *tok = tiny_tokenizer(dir, sizeof dir);
    if (!tok)
        return;
    cq_log_set_level(CQ_LOG_QUIET);
    int32_t ids[4] = {5, 6, 8192, 7}; /* the tiny vocab is 8192 */
    cq_calib c = {.ids = ids, .n = 1, .seqlen = 4, .mode = "random", .bos = -1};
    cq_error err = CQ_ERROR_INIT;
    const char *p = tmp_path("oov.bin");
    CQ_CHECK_OK(cq_calib_write(p, &c, &err), &err);
    cq_calib back;
    CQ_CHECK_EQ_INT(cq_calib_load(dir, &p, 1, NULL, &back, &err), CQ_E_FORMAT);
    CQ_CHECK(strstr(err.msg, p) && strstr(err.msg, "outside the vocabulary"));
    ids[2] = 8191;
    cq_error_clear(&err);
    CQ_CHECK_OK(cq_calib_write(p, &c, &err), &err);
    CQ_CHECK_OK(cq_calib_load(dir, &p, 1, NULL, &back, &err), &err);
    CQ_CHECK(back.n == 1 && back.seqlen == 4 && back.ids && back.ids[2] == 8191);
    CQ_CHECK_EQ_INT(back.bos, -1);
    cq_calib_release(&back);
    cq_tokenizer_free(tok);
}
