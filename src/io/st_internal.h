/* Internal layout of an opened safetensors checkpoint, shared by safetensors_read.c and
 * shards.c. */
#ifndef CQ_IO_ST_INTERNAL_H
#define CQ_IO_ST_INTERNAL_H

#include "cquant/safetensors.h"

typedef struct st_file {
    char *path;                 /* as opened: used in every message */
    const char *base;           /* file name part of path */
    const unsigned char *bytes; /* the whole file (mmap'd or a borrowed buffer) */
    size_t size;
    int mapped;                 /* 1: munmap at close */
} st_file;

struct cq_st_model {
    char *dir;
    st_file *files;
    size_t nfiles;
    cq_st_tensor *tensors;
    size_t ntensors, cap;
    size_t *by_name;            /* tensor indices sorted by name */
    char **meta;                /* key, value, key, value... of the first file */
    size_t nmeta;
};

/* Validate the file already in F (bytes/size set, path set) and append its tensors. */
int st_parse_file(cq_st_model *m, st_file *f, cq_error *err);
/* Map PATH and parse it (appends a file to m->files). */
int st_add_path(cq_st_model *m, const char *path, cq_error *err);
/* Build the name index; a name in two files is an error. */
int st_index_names(cq_st_model *m, cq_error *err);
/* Open DIR via its INDEX file (model.safetensors.index.json). */
int st_open_index(cq_st_model *m, const char *dir, const char *index, cq_error *err);

#endif
