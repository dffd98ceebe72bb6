/* Sharded checkpoints: model.safetensors.index.json (notes §A.6). The index and the shards must
 * agree exactly: every indexed tensor is in the shard the index names, and every tensor of a
 * shard is in the index. Shard names are plain file names inside the folder. */
#include "st_internal.h"

#include "cquant/json.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct pair {
    const char *tensor, *shard; /* borrowed from the index JSON */
} pair;

static int cmp_pair(const void *a, const void *b)
{
    return strcmp(((const pair *)a)->tensor, ((const pair *)b)->tensor);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int read_weight_map(const cJSON *root, const char *index, pair **out, size_t *n,
                           cq_error *err)
{
    const cJSON *wm;
    int rc = cq_json_get_object(root, "weight_map", &wm, index, err);
    if (rc == CQ_OK && cq_json_has(root, "metadata") &&
        !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(root, "metadata")))
        rc = cq_errorf(err, CQ_E_FORMAT, "'%s': 'metadata' must be an object", index);
    if (rc == CQ_OK)
        rc = cq_json_check_unique(root, index, err);
    if (rc == CQ_OK)
        rc = cq_json_check_unique(wm, index, err);
    if (rc != CQ_OK)
        return rc;
    *n = 0;
    for (const cJSON *c = wm->child; c; c = c->next, (*n)++)
        if (!cJSON_IsString(c) || !c->valuestring)
            return cq_errorf(err, CQ_E_FORMAT, "'%s': weight_map entry '%s' must be a string",
                             index, c->string);
    /* No tensors would silently ignore every shard in the folder (found by fuzz_index). */
    if (*n == 0)
        return cq_errorf(err, CQ_E_FORMAT, "'%s': weight_map lists no tensors", index);
    *out = malloc(*n * sizeof **out);
    if (!*out)
        return cq_errorf(err, CQ_E_NOMEM, "out of memory");
    size_t i = 0;
    for (const cJSON *c = wm->child; c; c = c->next, i++) {
        (*out)[i].tensor = c->string;
        (*out)[i].shard = c->valuestring;
    }
    qsort(*out, *n, sizeof **out, cmp_pair);
    return CQ_OK;
}

/* A shard must be a plain file name (no '/', not "." or "..") inside the folder. The file
 * itself may be a symlink to a regular file anywhere: the HuggingFace cache keeps
 * snapshots/<rev>/<shard> -> ../../blobs/<sha>. The index cannot name a path outside the
 * folder; whoever wrote the folder's symlinks chose their targets. Dangling links, loops and
 * non-regular targets (FIFO, device, folder) are refused here with one line. */
static int check_shard(const char *dir, const char *index, const char *shard, char **path,
                       cq_error *err)
{
    if (!shard[0] || strchr(shard, '/') || strcmp(shard, ".") == 0 || strcmp(shard, "..") == 0)
        return cq_errorf(err, CQ_E_FORMAT, "'%s': shard '%s' is not a plain file name", index,
                         shard);
    size_t a = strlen(dir), b = strlen(shard);
    *path = malloc(a + b + 2);
    if (!*path)
        return cq_errorf(err, CQ_E_NOMEM, "out of memory");
    memcpy(*path, dir, a);
    (*path)[a] = '/';
    memcpy(*path + a + 1, shard, b + 1);
    struct stat lst, st;
    if (lstat(*path, &lst) != 0)
        return cq_errorf_errno(err, CQ_E_IO, "'%s': shard '%s' listed in the index is missing",
                               index, shard);
    if (stat(*path, &st) != 0)
        return cq_errorf_errno(err, CQ_E_IO, "'%s': shard '%s' is a symlink that cannot be "
                               "followed", index, shard);
    if (!S_ISREG(st.st_mode))
        return cq_errorf(err, CQ_E_IO, "'%s': shard '%s' is not a regular file%s", index, shard,
                         S_ISLNK(lst.st_mode) ? " (symlink target)" : "");
    return CQ_OK;
}

/* The distinct shard names, sorted (model-00001-of-... order). */
static int shard_names(const pair *p, size_t n, const char ***out, size_t *count, cq_error *err)
{
    const char **s = malloc((n ? n : 1) * sizeof *s);
    if (!s)
        return cq_errorf(err, CQ_E_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        s[i] = p[i].shard;
    qsort(s, n, sizeof *s, cmp_str);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (k == 0 || strcmp(s[k - 1], s[i]) != 0)
            s[k++] = s[i];
    *out = s;
    *count = k;
    return CQ_OK;
}

static int open_shards(cq_st_model *m, const char *dir, const char *index, const pair *p,
                       size_t n, cq_error *err)
{
    const char **names = NULL;
    size_t count = 0;
    int rc = shard_names(p, n, &names, &count, err);
    for (size_t i = 0; i < count && rc == CQ_OK; i++) {
        char *path = NULL;
        rc = check_shard(dir, index, names[i], &path, err);
        if (rc == CQ_OK)
            rc = st_add_path(m, path, err);
        free(path);
    }
    free(names);
    return rc;
}

/* Index and shards agree tensor for tensor. */
static int cross_check(const cq_st_model *m, const char *index, const pair *p, size_t n,
                       cq_error *err)
{
    for (size_t i = 0; i < n; i++) {
        const cq_st_tensor *t = cq_st_find(m, p[i].tensor);
        const char *base = t ? strrchr(t->file, '/') : NULL;
        base = base ? base + 1 : t ? t->file : NULL;
        if (!t)
            return cq_errorf(err, CQ_E_FORMAT, "'%s': tensor '%s' is listed in shard '%s' but "
                             "is not in it", index, p[i].tensor, p[i].shard);
        if (strcmp(base, p[i].shard) != 0)
            return cq_errorf(err, CQ_E_FORMAT, "'%s': tensor '%s' is listed in shard '%s' but "
                             "is in '%s'", index, p[i].tensor, p[i].shard, base);
    }
    for (size_t i = 0; i < m->ntensors; i++) {
        pair key = {m->tensors[i].name, NULL};
        if (!bsearch(&key, p, n, sizeof *p, cmp_pair))
            return cq_errorf(err, CQ_E_FORMAT, "'%s': tensor '%s' is not listed in '%s'",
                             m->tensors[i].file, m->tensors[i].name, index);
    }
    return CQ_OK;
}

int st_open_index(cq_st_model *m, const char *dir, const char *index, cq_error *err)
{
    cJSON *root = NULL;
    pair *p = NULL;
    size_t n = 0;
    int rc = cq_json_load(&root, index, err);
    if (rc == CQ_OK && !cJSON_IsObject(root))
        rc = cq_errorf(err, CQ_E_FORMAT, "'%s': expected a JSON object", index);
    if (rc == CQ_OK)
        rc = read_weight_map(root, index, &p, &n, err);
    if (rc == CQ_OK)
        rc = open_shards(m, dir, index, p, n, err);
    if (rc == CQ_OK)
        rc = st_index_names(m, err);
    if (rc == CQ_OK)
        rc = cross_check(m, index, p, n, err);
    free(p);
    cJSON_Delete(root);
    return rc;
}
