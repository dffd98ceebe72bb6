/* Hostile safetensors files, crafted byte by byte: every rule of notes §A.4 and the sharded
 * index rules. Each case checks the status and that the one-line message names the file and,
 * where there is one, the tensor. */
#include "cq_test.h"
#include "st_craft.h"

#include "cquant/json.h"
#include "cquant/safetensors.h"
#include "cquant/tokenizer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static int n_cases;

/* Open PATH, expect CODE and a message holding each of the NULL-terminated WANT strings. */
static void expect(const char *path, int code, const char *const *want)
{
    cq_error err = CQ_ERROR_INIT;
    cq_st_model *m = NULL;
    int rc = cq_st_open(&m, path, &err);
    n_cases++;
    if (rc != code)
        CQ_FAIL("'%s': got %d (%s), want %d", path, rc, err.msg, code);
    if (rc != CQ_OK && strchr(err.msg, '\n'))
        CQ_FAIL("multi-line message: %s", err.msg);
    for (int i = 0; want && want[i]; i++)
        if (!strstr(err.msg, want[i]))
            CQ_FAIL("message '%s' lacks '%s'", err.msg, want[i]);
    if (rc == CQ_OK && !m)
        CQ_FAIL("no model");
    cq_st_close(m);
}

#define W(...) ((const char *const[]){__VA_ARGS__, NULL})

static const char *dir(void) { return cq_test_tmpdir(); }

/* One case: a header string and a data size. */
typedef struct hcase {
    const char *hdr;
    size_t data;
    int code;
    const char *tensor; /* must appear in the message (NULL: none) */
    const char *what;   /* a phrase of the message */
} hcase;

#define T(d, s, o) "{\"" #d "\":{\"dtype\":\"" s "\",\"shape\":" o "}}"
static const hcase cases[] = {
    /* not JSON / wrong JSON */
    {"hello", 0, CQ_E_FORMAT, NULL, "not valid JSON"},
    {"[]", 0, CQ_E_FORMAT, NULL, "not a JSON object"},
    {"\"str\"", 0, CQ_E_FORMAT, NULL, "not a JSON object"},
    {"{\"a\xff\":1}", 0, CQ_E_FORMAT, NULL, "invalid UTF-8"},
    {"{\"a\xc0\xaf\":1}", 0, CQ_E_FORMAT, NULL, "invalid UTF-8"},
    {"{\"a\xed\xa0\x80\":1}", 0, CQ_E_FORMAT, NULL, "invalid UTF-8"},
    {"{} x", 0, CQ_E_FORMAT, NULL, "after the JSON value"},
    {"{\"a\\u0000b\":{}}", 0, CQ_E_FORMAT, NULL, "u0000"},
    {"{\"a\tb\":{}}", 0, CQ_E_FORMAT, NULL, "control byte"},
    /* an escaped newline in a name: the message must stay one line (found by the fuzzer) */
    {"{\"a\\u000ab\":1}", 0, CQ_E_FORMAT, "'a?b'", "expected an object"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}", 4, CQ_E_FORMAT, NULL,
     "not valid JSON"},
    /* tensor entries with wrong types */
    {"{\"w\":5}", 0, CQ_E_FORMAT, "'w'", "expected an object"},
    {"{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, CQ_E_FORMAT, "'w'", "missing 'dtype'"},
    {"{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, CQ_E_FORMAT, "'w'",
     "missing 'shape'"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, CQ_E_FORMAT, "'w'", "missing 'data_offsets'"},
    {"{\"w\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, CQ_E_FORMAT, "'w'",
     "must be a string"},
    {"{\"w\":{\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, CQ_E_FORMAT, "'w'",
     "unknown dtype 'Q4'"},
    {"{\"w\":{\"dtype\":\"F8_E4M3\",\"shape\":[4],\"data_offsets\":[0,4]}}", 4, CQ_E_UNSUPPORTED,
     "'w'", "F8_E4M3"},
    {"{\"w\":{\"dtype\":\"U16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, CQ_E_UNSUPPORTED,
     "'w'", "U16"},
    {"{\"w\":{\"dtype\":\"U32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, CQ_E_UNSUPPORTED,
     "'w'", "U32"},
    {"{\"w\":{\"dtype\":\"C64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8, CQ_E_UNSUPPORTED,
     "'w'", "C64"},
    /* an unsupported dtype in a malformed file is still a format error */
    {"{\"w\":{\"dtype\":\"U64\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, CQ_E_FORMAT, "'w'",
     "need 8"},
    {"{\"w\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,1]}}", 1, CQ_E_FORMAT, "'w'",
     "whole bytes"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
     CQ_E_UNSUPPORTED, "'w'", "rank 9"},
    /* shapes */
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":4,\"data_offsets\":[0,16]}}", 16, CQ_E_FORMAT, "'w'",
     "'shape' must be an array"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, CQ_E_FORMAT, "'w'",
     "shape dimension 0"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,10]}}", 10, CQ_E_FORMAT,
     "'w'", "shape dimension 0"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1e300],\"data_offsets\":[0,4]}}", 4, CQ_E_FORMAT,
     "'w'", "shape dimension 1"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[18014398509481984],\"data_offsets\":[0,4]}}", 4,
     CQ_E_FORMAT, "'w'", "shape dimension 0"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8, CQ_E_FORMAT,
     "'w'", "shape dimension 0"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,4]}}",
     4, CQ_E_FORMAT, "'w'", "element count overflows"},
    {"{\"w\":{\"dtype\":\"F64\",\"shape\":[4503599627370496,1024],\"data_offsets\":[0,8]}}", 8,
     CQ_E_FORMAT, "'w'", "byte size overflows"},
    /* offsets */
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8, CQ_E_FORMAT, "'w'",
     "array of 2"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4]}}", 4, CQ_E_FORMAT, "'w'",
     "array of 2"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":\"0,4\"}}", 4, CQ_E_FORMAT, "'w'",
     "array of 2"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4, CQ_E_FORMAT, "'w'",
     "array of 2"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8, CQ_E_FORMAT, "'w'",
     "end before they begin"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, CQ_E_FORMAT, "'w'",
     "gap of 4 bytes"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12, CQ_E_FORMAT, "'b'",
     "gap of 4 bytes"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, CQ_E_FORMAT, "'b'",
     "overlap the previous tensor, which ends at 8"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, CQ_E_FORMAT, "'b'",
     "overlap"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
     "\"w\":{\"dtype\":\"F32\",\"shape\":[1020],\"data_offsets\":[16,4096]}}", 2048, CQ_E_FORMAT,
     "'w'", "data_offsets [16, 4096) exceed the data size 2048"},
    {"{\"w\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[0,10]}}", 10, CQ_E_FORMAT,
     "'w'", "hold 10 bytes but 6 elements of BF16 need 12"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 5, CQ_E_FORMAT, NULL,
     "1 bytes of data after the last tensor"},
    {"{}", 3, CQ_E_FORMAT, NULL, "3 bytes of data after the last tensor"},
    /* duplicate keys (cJSON keeps both) */
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
     "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, CQ_E_FORMAT, "'w'",
     "duplicate key"},
    {"{\"w\":{\"dtype\":\"F32\",\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
     CQ_E_FORMAT, "'w'", "duplicate key 'dtype'"},
    /* __metadata__ */
    {"{\"__metadata__\":{\"format\":\"pt\",\"n\":3}}", 0, CQ_E_FORMAT, "'n'", "must be a string"},
    {"{\"__metadata__\":\"pt\"}", 0, CQ_E_FORMAT, "__metadata__", "must be an object"},
    {"{\"__metadata__\":{\"a\":{\"b\":\"c\"}}}", 0, CQ_E_FORMAT, "'a'", "must be a string"},
    {"{\"__metadata__\":{\"format\":\"pt\"},\"__metadata__\":{}}", 0, CQ_E_FORMAT,
     "__metadata__", "duplicate key"},
    {"{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}", 0, CQ_E_FORMAT, "'k'", "duplicate key"},
};

CQ_TEST(header_cases)
{
    char name[64];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const hcase *c = &cases[i];
        snprintf(name, sizeof name, "case%02zu.safetensors", i);
        const char *p = craft(dir(), name, c->hdr, c->data);
        if (c->tensor)
            expect(p, c->code, W(name, c->tensor, c->what));
        else
            expect(p, c->code, W(name, c->what));
    }
}

CQ_TEST(length_field)
{
    const char *hdr = "{}";
    const char *e = craft_raw(dir(), "empty.safetensors", 0, "", 0, 0);
    truncate(e, 0);
    expect(e, CQ_E_FORMAT, W("empty.safetensors", "0 bytes, shorter than"));
    const char *p = craft_raw(dir(), "seven.safetensors", 0, "", 0, 0);
    truncate(p, 7);
    expect(p, CQ_E_FORMAT, W("seven.safetensors", "7 bytes"));
    expect(craft_raw(dir(), "n0.safetensors", 0, "", 0, 0), CQ_E_FORMAT,
           W("n0.safetensors", "not valid JSON"));
    expect(craft_raw(dir(), "past.safetensors", 100, hdr, 2, 10), CQ_E_FORMAT,
           W("past.safetensors", "header length 100 runs past the end of the file (20 bytes)"));
    expect(craft_raw(dir(), "big.safetensors", 100000001, hdr, 2, 0), CQ_E_FORMAT,
           W("big.safetensors", "header length 100000001 exceeds the limit"));
    expect(craft_raw(dir(), "huge.safetensors", UINT64_MAX, hdr, 2, 0), CQ_E_FORMAT,
           W("huge.safetensors", "exceeds the limit"));
    /* a 100,000,000-byte length is allowed by the limit but must still fit the file */
    expect(craft_raw(dir(), "limit.safetensors", 100000000, hdr, 2, 0), CQ_E_FORMAT,
           W("limit.safetensors", "runs past the end"));
    /* header exactly up to the end with trailing spaces, and a byte cut off the data */
    const char *t = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}  ";
    expect(craft(dir(), "cut.safetensors", t, 7), CQ_E_FORMAT,
           W("cut.safetensors", "'w'", "exceed the data size 7"));
}

CQ_TEST(valid_edge_cases)
{
    /* empty tensors (0 bytes, may share an offset), a rank-0 scalar, metadata, padding */
    const char *h = "{\"__metadata__\":{\"format\":\"pt\"},"
                    "\"e\":{\"dtype\":\"F16\",\"shape\":[0,5],\"data_offsets\":[0,0]},"
                    "\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
                    "\"z\":{\"dtype\":\"I8\",\"shape\":[3,0],\"data_offsets\":[4,4]},"
                    "\"b\":{\"dtype\":\"BOOL\",\"shape\":[3],\"data_offsets\":[4,7]}}      ";
    cq_error err = CQ_ERROR_INIT;
    cq_st_model *m = NULL;
    const char *p = craft(dir(), "edge.safetensors", h, 7);
    CQ_CHECK_OK(cq_st_open(&m, p, &err), &err);
    if (!m)
        return;
    CQ_CHECK_EQ_INT(cq_st_count(m), 4);
    const cq_st_tensor *s = cq_st_find(m, "s"), *e = cq_st_find(m, "e");
    CQ_CHECK(s && s->ndim == 0 && s->numel == 1 && s->nbytes == 4);
    CQ_CHECK(e && e->ndim == 2 && e->numel == 0 && e->nbytes == 0 && e->shape[1] == 5);
    CQ_CHECK(cq_st_metadata(m, "format") && strcmp(cq_st_metadata(m, "format"), "pt") == 0);
    const cq_st_tensor *b = cq_st_find(m, "b");
    /* data bytes are i*7 from the data start: b begins at data offset 4 */
    CQ_CHECK(b && ((const unsigned char *)b->data)[1] == 35);
    cq_st_close(m);
    n_cases++;
    /* no tensors at all */
    expect(craft(dir(), "none.safetensors", "{}", 0), CQ_OK, NULL);
}

/* ---- sharded folders ---- */

static const char *shard_hdr_a = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
static const char *shard_hdr_b = "{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";

/* A fresh folder SUB with shards s1 (tensor a) and s2 (tensor b) and the given index. */
static const char *make_folder(const char *sub, const char *index)
{
    static char d[4096];
    snprintf(d, sizeof d, "%s/%s", dir(), sub);
    mkdir(d, 0755);
    craft(d, "s1.safetensors", shard_hdr_a, 4);
    craft(d, "s2.safetensors", shard_hdr_b, 4);
    char p[4200];
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", d);
    FILE *f = fopen(p, "w");
    if (f) {
        fputs(index, f);
        fclose(f);
    }
    return d;
}

#define IDX(m) "{\"metadata\":{\"total_size\":8},\"weight_map\":{" m "}}"

CQ_TEST(index_cases)
{
    const char *ok = IDX("\"a\":\"s1.safetensors\",\"b\":\"s2.safetensors\"");
    cq_error err = CQ_ERROR_INIT;
    cq_st_model *m = NULL;
    CQ_CHECK_OK(cq_st_open(&m, make_folder("ok", ok), &err), &err);
    if (m) {
        CQ_CHECK_EQ_INT(cq_st_count(m), 2);
        CQ_CHECK_EQ_INT(cq_st_shard_count(m), 2);
        CQ_CHECK(strstr(cq_st_find(m, "b")->file, "s2.safetensors") != NULL);
    }
    cq_st_close(m);
    expect(make_folder("missing", IDX("\"a\":\"s1.safetensors\",\"b\":\"s3.safetensors\"")),
           CQ_E_IO, W("model.safetensors.index.json", "shard 's3.safetensors'", "missing"));
    expect(make_folder("dotdot", IDX("\"a\":\"s1.safetensors\",\"b\":\"../x.safetensors\"")),
           CQ_E_FORMAT, W("'../x.safetensors' is not a plain file name"));
    expect(make_folder("abs", IDX("\"a\":\"s1.safetensors\",\"b\":\"/etc/passwd\"")),
           CQ_E_FORMAT, W("'/etc/passwd' is not a plain file name"));
    expect(make_folder("dot", IDX("\"a\":\"s1.safetensors\",\"b\":\"..\"")), CQ_E_FORMAT,
           W("not a plain file name"));
    const char *two = "{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                      "\"c\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}";
    const char *d = make_folder("unlisted", ok);
    craft(d, "s2.safetensors", two, 8);
    expect(d, CQ_E_FORMAT, W("s2.safetensors", "tensor 'c' is not listed"));
    expect(make_folder("absent", IDX("\"a\":\"s1.safetensors\",\"b\":\"s2.safetensors\","
                                     "\"q\":\"s2.safetensors\"")),
           CQ_E_FORMAT, W("index.json", "tensor 'q' is listed in shard 's2.safetensors' but is "
                                        "not in it"));
    d = make_folder("wrong", IDX("\"a\":\"s2.safetensors\",\"b\":\"s2.safetensors\","
                                 "\"c\":\"s1.safetensors\""));
    const char *ac = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                     "\"c\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}";
    craft(d, "s1.safetensors", ac, 8);
    expect(d, CQ_E_FORMAT, W("tensor 'a' is listed in shard 's2.safetensors' but is in "
                          "'s1.safetensors'"));
    expect(make_folder("num", IDX("\"a\":1,\"b\":\"s2.safetensors\"")), CQ_E_FORMAT,
           W("index.json", "'a' must be a string"));
    expect(make_folder("dupkey", IDX("\"a\":\"s1.safetensors\",\"a\":\"s1.safetensors\","
                                     "\"b\":\"s2.safetensors\"")),
           CQ_E_FORMAT, W("duplicate key 'a'"));
    expect(make_folder("nomap", "{\"metadata\":{}}"), CQ_E_FORMAT,
           W("index.json", "missing key 'weight_map'"));
    expect(make_folder("notjson", "{\"weight_map\":"), CQ_E_FORMAT,
           W("index.json", "not valid JSON"));
    expect(make_folder("mdnum", "{\"metadata\":3,\"weight_map\":{}}"), CQ_E_FORMAT,
           W("'metadata' must be an object"));
    expect(make_folder("emptymap", "{\"weight_map\":{}}"), CQ_E_FORMAT,
           W("index.json", "weight_map lists no tensors"));
    /* the same tensor in two shards */
    d = make_folder("twice", IDX("\"a\":\"s1.safetensors\",\"b\":\"s2.safetensors\""));
    craft(d, "s2.safetensors", shard_hdr_a, 4);
    expect(d, CQ_E_FORMAT, W("tensor 'a' is in both", "s1.safetensors", "s2.safetensors"));
    /* a bad shard is reported with its own path */
    d = make_folder("badshard", ok);
    craft(d, "s2.safetensors", shard_hdr_b, 5);
    expect(d, CQ_E_FORMAT, W("s2.safetensors", "after the last tensor"));
}

/* Replace shard s2.safetensors of folder D by a symlink to TARGET. */
static void link_s2(const char *d, const char *target)
{
    char link[4200];
    snprintf(link, sizeof link, "%s/s2.safetensors", d);
    unlink(link);
    CQ_CHECK(symlink(target, link) == 0);
}

CQ_TEST(index_symlinks)
{
    char path[4200];
    /* The HuggingFace cache layout: snapshots/<rev>/<shard> -> ../../blobs/<sha>. A shard may
     * be a symlink to a regular file anywhere (the index still names plain files only). */
    const char *sub[] = {"hf", "hf/blobs", "hf/snapshots"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir(), sub[i]);
        CQ_CHECK(mkdir(path, 0755) == 0);
    }
    craft(path, "../blobs/5f3a9c", shard_hdr_b, 4); /* path: hf/snapshots */
    const char *d = make_folder("hf/snapshots/rev1",
                                IDX("\"a\":\"s1.safetensors\",\"b\":\"s2.safetensors\""));
    link_s2(d, "../../blobs/5f3a9c");
    expect(d, CQ_OK, NULL);
    /* a symlink to a folder, a FIFO and a device are no regular files */
    link_s2(d, "../../blobs");
    expect(d, CQ_E_IO, W("index.json", "shard 's2.safetensors' is not a regular file"));
    snprintf(path, sizeof path, "%s/hf/blobs/fifo", dir());
    CQ_CHECK(mkfifo(path, 0600) == 0);
    link_s2(d, "../../blobs/fifo");
    expect(d, CQ_E_IO, W("index.json", "shard 's2.safetensors' is not a regular file"));
    link_s2(d, "/dev/zero");
    expect(d, CQ_E_IO, W("index.json", "shard 's2.safetensors' is not a regular file"));
    /* dangling and looping symlinks */
    link_s2(d, "../../blobs/missing");
    expect(d, CQ_E_IO, W("index.json", "'s2.safetensors' is a symlink that cannot be followed"));
    link_s2(d, "s2.safetensors");
    expect(d, CQ_E_IO, W("index.json", "'s2.safetensors' is a symlink that cannot be followed"));
    /* a symlink inside the folder is fine too */
    d = make_folder("symin", IDX("\"a\":\"s1.safetensors\",\"b\":\"s2.safetensors\""));
    char real[4200];
    snprintf(real, sizeof real, "%s/real.bin", d);
    snprintf(path, sizeof path, "%s/s2.safetensors", d);
    CQ_CHECK(rename(path, real) == 0);
    CQ_CHECK(symlink("real.bin", path) == 0);
    expect(d, CQ_OK, NULL);
}

CQ_TEST(folder_without_index)
{
    char d[4096];
    snprintf(d, sizeof d, "%s/noindex", dir());
    mkdir(d, 0755);
    expect(d, CQ_E_IO, W("no .safetensors file"));
    craft(d, "x.safetensors", shard_hdr_a, 4);
    expect(d, CQ_OK, NULL);
    craft(d, "y.safetensors", shard_hdr_b, 4);
    expect(d, CQ_E_FORMAT, W("2 .safetensors files and no model.safetensors.index.json"));
    craft(d, "model.safetensors", shard_hdr_b, 4); /* preferred over the others */
    expect(d, CQ_OK, NULL);
    expect("/nonexistent/cq/x.safetensors", CQ_E_IO, W("/nonexistent/cq/x.safetensors"));
}

CQ_TEST(count_cases)
{
    /* the brief asks for at least 30 hostile cases; make the count visible */
    fprintf(stderr, "hostile/edge cases run so far: %d\n", n_cases);
    CQ_CHECK(n_cases >= 30);
}

/* A FIFO must be refused at once, not block in open() waiting for a writer (found by
 * tests/cli/hostile.sh: inspect hung on one). A hang shows up as the ctest timeout. */
CQ_TEST(fifo_inputs)
{
    char d[4096], p[4200];
    snprintf(d, sizeof d, "%s/fifo", dir());
    mkdir(d, 0755);
    snprintf(p, sizeof p, "%s/model.safetensors", d);
    CQ_CHECK(mkfifo(p, 0644) == 0);
    expect(p, CQ_E_IO, W("model.safetensors", "not a regular file"));
    snprintf(p, sizeof p, "%s/config.json", d);
    CQ_CHECK(mkfifo(p, 0644) == 0);
    cJSON *j = NULL;
    cq_error err = CQ_ERROR_INIT;
    CQ_CHECK_EQ_INT(cq_json_load(&j, p, &err), CQ_E_IO);
    CQ_CHECK(strstr(err.msg, "not a regular file") != NULL);
    CQ_CHECK(j == NULL);
    snprintf(p, sizeof p, "%s/tokenizer.json", d);
    CQ_CHECK(mkfifo(p, 0644) == 0);
    cq_tokenizer *tok = NULL;
    err = (cq_error)CQ_ERROR_INIT;
    CQ_CHECK_EQ_INT(cq_tokenizer_load(&tok, d, &err), CQ_E_IO);
    CQ_CHECK(strstr(err.msg, "not a regular file") != NULL);
    CQ_CHECK(tok == NULL);
}
