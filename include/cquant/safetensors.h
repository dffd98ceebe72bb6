/* safetensors reading (mmap; a single file or a sharded folder with model.safetensors.index.json)
 * and streaming writing (planned tensors, sharded, header padded to 8 bytes). Every rule of the
 * format (notes §A.4) is enforced at open; each violation is one CQ_E_FORMAT error naming the
 * file and, where there is one, the tensor. A well-formed file with a dtype cquant does not
 * handle (F8_*, U16, C64, ...) or rank > CQ_ST_MAX_DIMS is CQ_E_UNSUPPORTED; a missing file or
 * shard is CQ_E_IO. The full list is docs/formats.md "safetensors: what we validate".
 * An open model is read-only and may be shared by threads. */
#ifndef CQUANT_SAFETENSORS_H
#define CQUANT_SAFETENSORS_H

#include "cquant/dtype.h"
#include "cquant/error.h"

#include <stddef.h>
#include <stdint.h>

#define CQ_ST_MAX_DIMS 8
#define CQ_ST_MAX_HEADER 100000000u

typedef struct cq_st_tensor {
    const char *name;  /* borrowed, valid until the model is closed */
    const char *file;  /* path of the shard that holds it */
    cq_dtype dtype;
    int ndim;
    int64_t shape[CQ_ST_MAX_DIMS];
    int64_t numel;
    size_t nbytes;
    const void *data;  /* mmap'd, read-only, little-endian; any alignment */
    int mapped;        /* 1 when data lies in a file mapping (cq_st_release acts) */
} cq_st_tensor;

typedef struct cq_st_model cq_st_model;

/* Open PATH: a .safetensors file, or a folder holding model.safetensors.index.json or exactly
 * one *.safetensors file. Maps the files; reads only headers. Caller owns *out. */
int cq_st_open(cq_st_model **out, const char *path, cq_error *err);
/* Validate and open a safetensors image held in memory (DATA must outlive the model; NAME is
 * used in messages). For tests and fuzzing; cq_st_release does nothing on it. */
int cq_st_open_buffer(cq_st_model **out, const void *data, size_t len, const char *name,
                      cq_error *err);
void cq_st_close(cq_st_model *m);

/* The folder that holds the checkpoint (config.json, tokenizer...): borrowed. */
const char *cq_st_dir(const cq_st_model *m);
size_t cq_st_count(const cq_st_model *m);
/* Tensors in a stable order: by shard, then by data offset. Borrowed. */
const cq_st_tensor *cq_st_at(const cq_st_model *m, size_t i);
const cq_st_tensor *cq_st_find(const cq_st_model *m, const char *name);
/* __metadata__ value of the first shard, or NULL. */
const char *cq_st_metadata(const cq_st_model *m, const char *key);
size_t cq_st_metadata_count(const cq_st_model *m);
int cq_st_metadata_at(const cq_st_model *m, size_t i, const char **key, const char **value);
/* Number of shard files and their paths. */
size_t cq_st_shard_count(const cq_st_model *m);
const char *cq_st_shard_path(const cq_st_model *m, size_t i);

/* Convert a float tensor (F64/F32/F16/BF16) into out[numel]. Errors name the tensor. */
int cq_st_read_f32(const cq_st_tensor *t, float *out, cq_error *err);
/* Drop the tensor's pages from the page cache mapping so RSS stays near one layer. */
void cq_st_release(const cq_st_tensor *t);

/* ---- writer ---- */
typedef struct cq_st_writer cq_st_writer;

/* Create a writer that will produce DIR/model.safetensors (or DIR/model-0000i-of-0000N.safetensors
 * plus DIR/model.safetensors.index.json when the planned size exceeds max_shard_bytes; 0 = no
 * limit). DIR must exist (it is normally the temporary output folder). */
int cq_st_writer_create(cq_st_writer **out, const char *dir, size_t max_shard_bytes,
                        cq_error *err);
/* Plan one tensor (before cq_st_writer_start). Names must be unique. */
int cq_st_writer_add(cq_st_writer *w, const char *name, cq_dtype dtype, int ndim,
                     const int64_t *shape, cq_error *err);
/* Extra __metadata__ entries (besides "format": "pt"), before start. */
int cq_st_writer_meta(cq_st_writer *w, const char *key, const char *value, cq_error *err);
/* Assign shards and offsets, create the files and write their headers. */
int cq_st_writer_start(cq_st_writer *w, cq_error *err);
/* Resume instead of start: the planned files must already exist in DIR with exactly the
 * headers and sizes this plan gives (CQ_E_FORMAT otherwise); nothing is truncated. Every
 * tensor counts as unwritten until written again or marked with cq_st_writer_mark_written. */
int cq_st_writer_reopen(cq_st_writer *w, cq_error *err);
/* Count a tensor as written (its bytes are already in the reopened file). */
int cq_st_writer_mark_written(cq_st_writer *w, const char *name, cq_error *err);
/* The output will not be synced (the caller commits without fsync): leave writeback to the
 * kernel instead of starting it early. */
void cq_st_writer_no_writeback(cq_st_writer *w);
/* fdatasync every open shard (a checkpoint for resuming must not claim unsynced data). */
int cq_st_writer_sync(cq_st_writer *w, cq_error *err);
/* Write a planned tensor's bytes (any order; nbytes must match the plan). Threads may write
 * different tensors concurrently (pwrite at fixed offsets). */
int cq_st_writer_write(cq_st_writer *w, const char *name, const void *data, size_t nbytes,
                       cq_error *err);
/* Check every planned tensor was written, start writeback, close, write the index when
 * sharded. Not an fsync: the files are made durable by the output folder's commit
 * (cq_outdir_commit fsyncs every file); a caller writing elsewhere fsyncs them itself. */
int cq_st_writer_finish(cq_st_writer *w, cq_error *err);
void cq_st_writer_free(cq_st_writer *w);

#endif
