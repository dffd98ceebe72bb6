/* calib.bin: a safetensors file with input_ids I32 [n, seqlen] and the selection's
 * __metadata__ (mode, seed, n, seqlen, tokenizer_hash, sources, bos). Reading accepts any safetensors
 * file with integer input_ids [n, seqlen] (I32 or I64). */
#include "cquant/calib.h"

#include "cquant/safetensors.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int64_t id_at(const cq_st_tensor *t, int64_t i)
{
    if (t->dtype == CQ_DT_I32) {
        int32_t v;
        memcpy(&v, (const char *)t->data + i * 4, 4); /* any alignment */
        return v;
    }
    int64_t v;
    memcpy(&v, (const char *)t->data + i * 8, 8);
    return v;
}

static void copy_meta(const cq_st_model *m, const char *key, char *dst, size_t cap)
{
    const char *v = cq_st_metadata(m, key);
    if (v)
        snprintf(dst, cap, "%s", v);
}

static int read_ids(const char *path, const cq_st_tensor *t, int64_t vocab, cq_calib *out,
                    cq_error *err)
{
    if (t->dtype != CQ_DT_I32 && t->dtype != CQ_DT_I64)
        return cq_errorf(err, CQ_E_FORMAT, "%s: input_ids must be I32 or I64, not %s", path,
                         cq_dtype_info(t->dtype)->name);
    if (t->ndim != 2 || t->shape[0] < 1 || t->shape[1] < 1)
        return cq_errorf(err, CQ_E_SHAPE, "%s: input_ids must be a non-empty [n, seqlen] tensor",
                         path);
    int64_t n = t->shape[0], S = t->shape[1];
    size_t bytes = (size_t)t->numel * sizeof(int32_t); /* numel checked by the reader */
    memset(out, 0, sizeof *out);
    out->ids = malloc(bytes);
    if (!out->ids)
        return cq_errorf(err, CQ_E_NOMEM, "%s: out of memory for input_ids", path);
    out->n = n;
    out->seqlen = S;
    for (int64_t i = 0; i < t->numel; i++) {
        int64_t v = id_at(t, i);
        if (v < 0 || v > INT32_MAX || (vocab > 0 && v >= vocab)) {
            cq_calib_release(out);
            return cq_errorf(err, CQ_E_FORMAT, "%s: input_ids[%lld][%lld] = %lld is outside the "
                             "vocabulary of %lld", path, (long long)(i / S), (long long)(i % S),
                             (long long)v, (long long)vocab);
        }
        out->ids[i] = (int32_t)v;
    }
    return CQ_OK;
}

int cq_calib_read(const char *path, int64_t vocab, cq_calib *out, cq_error *err)
{
    memset(out, 0, sizeof *out);
    cq_st_model *m = NULL;
    int rc = cq_st_open(&m, path, err);
    if (rc != CQ_OK)
        return rc;
    const cq_st_tensor *t = cq_st_find(m, "input_ids");
    rc = t ? read_ids(path, t, vocab, out, err)
           : cq_errorf(err, CQ_E_FORMAT, "%s: no input_ids tensor", path);
    if (rc == CQ_OK) {
        copy_meta(m, "mode", out->mode, sizeof out->mode);
        copy_meta(m, "tokenizer_hash", out->tokenizer_hash, sizeof out->tokenizer_hash);
        copy_meta(m, "sources", out->sources, sizeof out->sources);
        const char *s = cq_st_metadata(m, "seed");
        out->seed = s ? strtoull(s, NULL, 10) : 0;
        const char *b = cq_st_metadata(m, "bos");
        out->bos = !b ? -1 : !strcmp(b, "true") ? 1 : !strcmp(b, "false") ? 0 : -1;
    }
    cq_st_close(m);
    return rc;
}

static int write_dir(const char *dir, const cq_calib *c, cq_error *err)
{
    cq_st_writer *w = NULL;
    int64_t shape[2] = {c->n, c->seqlen};
    char seed[32], n[32], seqlen[32];
    snprintf(seed, sizeof seed, "%" PRIu64, c->seed);
    snprintf(n, sizeof n, "%lld", (long long)c->n);
    snprintf(seqlen, sizeof seqlen, "%lld", (long long)c->seqlen);
    const char *meta[7][2] = {{"mode", c->mode}, {"seed", seed}, {"n", n}, {"seqlen", seqlen},
                              {"tokenizer_hash", c->tokenizer_hash}, {"sources", c->sources},
                              {"bos", c->bos < 0 ? NULL : c->bos ? "true" : "false"}};
    int rc = cq_st_writer_create(&w, dir, 0, err);
    if (rc == CQ_OK)
        rc = cq_st_writer_add(w, "input_ids", CQ_DT_I32, 2, shape, err);
    for (int i = 0; i < 7 && rc == CQ_OK; i++)
        if (meta[i][1]) /* bos is left out when unknown */
            rc = cq_st_writer_meta(w, meta[i][0], meta[i][1], err);
    if (rc == CQ_OK)
        rc = cq_st_writer_start(w, err);
    if (rc == CQ_OK)
        rc = cq_st_writer_write(w, "input_ids", c->ids,
                                (size_t)c->n * (size_t)c->seqlen * sizeof(int32_t), err);
    if (rc == CQ_OK)
        rc = cq_st_writer_finish(w, err);
    cq_st_writer_free(w);
    return rc;
}

/* The writer makes DIR/model.safetensors; we write into a temporary folder beside PATH and
 * rename the file, so PATH is either complete or untouched. */
int cq_calib_write(const char *path, const cq_calib *c, cq_error *err)
{
    char dir[PATH_MAX], file[PATH_MAX + 32];
    if (snprintf(dir, sizeof dir, "%s.tmp.XXXXXX", path) >= (int)sizeof dir)
        return cq_errorf(err, CQ_E_USAGE, "%s: path too long", path);
    if (!mkdtemp(dir))
        return cq_errorf_errno(err, CQ_E_IO, "%s: cannot create a temporary folder", dir);
    snprintf(file, sizeof file, "%s/model.safetensors", dir);
    int rc = write_dir(dir, c, err);
    if (rc == CQ_OK && rename(file, path) != 0)
        rc = cq_errorf_errno(err, CQ_E_IO, "%s: cannot rename into place", path);
    if (rc != CQ_OK)
        cq_error_prefix(err, "writing %s", path);
    unlink(file);
    rmdir(dir);
    return rc;
}
