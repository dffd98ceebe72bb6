/* safetensors reader: map the files, validate every header rule of notes §A.4, and hand out
 * borrowed tensor views. Weights are never touched at open: only the header pages are read. */
#include "st_internal.h"

#include "cquant/checked.h"
#include "cquant/json.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Every dtype the format defines ([ST] tensor.rs `Dtype`), with its bit size; `dt` is -1 for
 * the ones cquant does not handle. Layout validation uses the bit size for all of them, so a
 * malformed file is CQ_E_FORMAT even when its dtype is unsupported. */
static const struct {
    const char *name;
    int bits;
    int dt;
} st_dtypes[] = {
    {"BOOL", 8, CQ_DT_BOOL},     {"U8", 8, CQ_DT_U8},         {"I8", 8, CQ_DT_I8},
    {"I16", 16, CQ_DT_I16},      {"F16", 16, CQ_DT_F16},      {"BF16", 16, CQ_DT_BF16},
    {"I32", 32, CQ_DT_I32},      {"F32", 32, CQ_DT_F32},      {"F64", 64, CQ_DT_F64},
    {"I64", 64, CQ_DT_I64},      {"F4", 4, -1},               {"F6_E2M3", 6, -1},
    {"F6_E3M2", 6, -1},          {"F8_E5M2", 8, -1},          {"F8_E4M3", 8, -1},
    {"F8_E8M0", 8, -1},          {"F8_E4M3FNUZ", 8, -1},      {"F8_E5M2FNUZ", 8, -1},
    {"U16", 16, -1},             {"U32", 32, -1},             {"C64", 64, -1},
    {"U64", 64, -1},
};

#define MAX_EXACT 9007199254740992.0 /* 2^53: larger JSON numbers are not exact in a double */

typedef struct entry {
    const char *name;
    int kind;       /* index into st_dtypes */
    int ndim;       /* may exceed CQ_ST_MAX_DIMS (then unsupported) */
    int64_t shape[CQ_ST_MAX_DIMS];
    uint64_t numel, nbytes, begin, end;
} entry;

#define FMT(f, ...) cq_errorf(err, CQ_E_FORMAT, "'%s': " f, (f_)->path, __VA_ARGS__)

/* The single member KEY of tensor object O (a repeated key is an error). */
static int member(const st_file *f_, const char *name, const cJSON *o, const char *key,
                  const cJSON **out, cq_error *err)
{
    *out = NULL;
    for (const cJSON *c = o->child; c; c = c->next)
        if (c->string && strcmp(c->string, key) == 0) {
            if (*out)
                return FMT("tensor '%s': duplicate key '%s'", name, key);
            *out = c;
        }
    if (!*out)
        return FMT("tensor '%s': missing '%s'", name, key);
    return CQ_OK;
}

/* A JSON number that is a non-negative integer <= 2^53. */
static int get_uint(const cJSON *v, uint64_t *out)
{
    if (!cJSON_IsNumber(v))
        return -1;
    double d = v->valuedouble;
    if (!(d >= 0 && d <= MAX_EXACT) || d != floor(d))
        return -1;
    *out = (uint64_t)d;
    return 0;
}

static int parse_dtype(const st_file *f_, const char *name, const cJSON *v, entry *e,
                       cq_error *err)
{
    if (!cJSON_IsString(v) || !v->valuestring)
        return FMT("tensor '%s': 'dtype' must be a string", name);
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (strcmp(v->valuestring, st_dtypes[i].name) == 0) {
            e->kind = (int)i;
            return CQ_OK;
        }
    return FMT("tensor '%s': unknown dtype '%.40s'", name, v->valuestring);
}

static int parse_shape(const st_file *f_, const char *name, const cJSON *v, entry *e,
                       cq_error *err)
{
    if (!cJSON_IsArray(v))
        return FMT("tensor '%s': 'shape' must be an array", name);
    uint64_t numel = 1;
    int ndim = 0;
    for (const cJSON *d = v->child; d; d = d->next, ndim++) {
        uint64_t x;
        if (get_uint(d, &x) != 0)
            return FMT("tensor '%s': shape dimension %d is not an integer in [0, 2^53]", name,
                       ndim);
        if (ndim < CQ_ST_MAX_DIMS)
            e->shape[ndim] = (int64_t)x;
        if (__builtin_mul_overflow(numel, x, &numel) || ndim >= 1000000)
            return FMT("tensor '%s': shape element count overflows", name);
    }
    e->ndim = ndim;
    e->numel = numel;
    return CQ_OK;
}

static int parse_offsets(const st_file *f_, const char *name, const cJSON *v, entry *e,
                         cq_error *err)
{
    const cJSON *b = cJSON_IsArray(v) ? v->child : NULL, *x = b ? b->next : NULL;
    if (!b || !x || x->next || get_uint(b, &e->begin) != 0 || get_uint(x, &e->end) != 0)
        return FMT("tensor '%s': 'data_offsets' must be an array of 2 integers in [0, 2^53]",
                   name);
    uint64_t bits;
    if (__builtin_mul_overflow(e->numel, (uint64_t)st_dtypes[e->kind].bits, &bits))
        return FMT("tensor '%s': byte size overflows", name);
    if (bits % 8 != 0)
        return FMT("tensor '%s': %llu elements of %s do not fill whole bytes", name,
                   (unsigned long long)e->numel, st_dtypes[e->kind].name);
    e->nbytes = bits / 8;
    return CQ_OK;
}

static int parse_entry(const st_file *f_, const cJSON *o, entry *e, cq_error *err)
{
    const char *name = o->string;
    const cJSON *dt, *sh, *off;
    memset(e, 0, sizeof *e);
    e->name = name;
    if (!cJSON_IsObject(o))
        return FMT("tensor '%s': expected an object with dtype, shape and data_offsets", name);
    int rc = member(f_, name, o, "dtype", &dt, err);
    if (rc == CQ_OK)
        rc = member(f_, name, o, "shape", &sh, err);
    if (rc == CQ_OK)
        rc = member(f_, name, o, "data_offsets", &off, err);
    if (rc == CQ_OK)
        rc = parse_dtype(f_, name, dt, e, err);
    if (rc == CQ_OK)
        rc = parse_shape(f_, name, sh, e, err);
    if (rc == CQ_OK)
        rc = parse_offsets(f_, name, off, e, err);
    return rc;
}

static int cmp_entry(const void *pa, const void *pb)
{
    const entry *a = pa, *b = pb;
    if (a->begin != b->begin)
        return a->begin < b->begin ? -1 : 1;
    if (a->end != b->end)
        return a->end < b->end ? -1 : 1;
    return strcmp(a->name, b->name);
}

/* Walk the entries in offset order: contiguous from 0, in range, sized by shape x dtype, and
 * covering the data section exactly (no gaps, overlaps or trailing bytes). */
static int check_layout(const st_file *f_, entry *ents, size_t n, uint64_t data_size,
                        cq_error *err)
{
    uint64_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        const entry *e = &ents[i];
        unsigned long long b = e->begin, x = e->end;
        if (x < b)
            return FMT("tensor '%s': data_offsets [%llu, %llu) end before they begin", e->name,
                       b, x);
        if (b < pos)
            return FMT("tensor '%s': data_offsets [%llu, %llu) overlap the previous tensor, "
                       "which ends at %llu", e->name, b, x, (unsigned long long)pos);
        if (b > pos)
            return FMT("tensor '%s': data_offsets [%llu, %llu) leave a gap of %llu bytes "
                       "before them", e->name, b, x, b - (unsigned long long)pos);
        if (x > data_size)
            return FMT("tensor '%s': data_offsets [%llu, %llu) exceed the data size %llu",
                       e->name, b, x, (unsigned long long)data_size);
        if (x - b != e->nbytes)
            return FMT("tensor '%s': data_offsets [%llu, %llu) hold %llu bytes but %llu "
                       "elements of %s need %llu", e->name, b, x, x - b,
                       (unsigned long long)e->numel, st_dtypes[e->kind].name,
                       (unsigned long long)e->nbytes);
        pos = x;
    }
    if (pos != data_size)
        return FMT("%llu bytes of data after the last tensor (data size %llu, tensors end at "
                   "%llu)", (unsigned long long)(data_size - pos),
                   (unsigned long long)data_size, (unsigned long long)pos);
    return CQ_OK;
}

static int save_metadata(cq_st_model *m, const st_file *f_, const cJSON *md, cq_error *err)
{
    if (!cJSON_IsObject(md))
        return FMT("'__metadata__' must be an object%s", "");
    size_t n = 0;
    for (const cJSON *c = md->child; c; c = c->next, n++)
        if (!cJSON_IsString(c) || !c->valuestring)
            return FMT("'__metadata__' value of '%s' must be a string", c->string);
    int rc = cq_json_check_unique(md, f_->path, err);
    if (rc != CQ_OK || m->nfiles > 1 || n == 0)
        return rc; /* only the first file's metadata is kept */
    m->meta = calloc(2 * n, sizeof *m->meta);
    if (!m->meta)
        return cq_errorf(err, CQ_E_NOMEM, "out of memory");
    for (const cJSON *c = md->child; c; c = c->next, m->nmeta++) {
        m->meta[2 * m->nmeta] = strdup(c->string);
        m->meta[2 * m->nmeta + 1] = strdup(c->valuestring);
        if (!m->meta[2 * m->nmeta] || !m->meta[2 * m->nmeta + 1]) {
            m->nmeta++;
            return cq_errorf(err, CQ_E_NOMEM, "out of memory");
        }
    }
    return CQ_OK;
}

/* Parse the header JSON: size, UTF-8, JSON, top-level object with unique keys. */
static int parse_header(const st_file *f_, cJSON **root, uint64_t *data_off, cq_error *err)
{
    *root = NULL;
    if (f_->size < 8)
        return FMT("file is %zu bytes, shorter than the 8-byte header length", f_->size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | f_->bytes[i];
    if (n > CQ_ST_MAX_HEADER)
        return FMT("header length %llu exceeds the limit of %u bytes", (unsigned long long)n,
                   CQ_ST_MAX_HEADER);
    if (n > f_->size - 8)
        return FMT("header length %llu runs past the end of the file (%zu bytes)",
                   (unsigned long long)n, f_->size);
    int rc = cq_json_parse(root, (const char *)f_->bytes + 8, (size_t)n, f_->path, err);
    if (rc != CQ_OK)
        return rc;
    if (!cJSON_IsObject(*root))
        return FMT("header is not a JSON object%s", "");
    *data_off = 8 + n;
    return cq_json_check_unique(*root, f_->path, err);
}

static int append_tensors(cq_st_model *m, const st_file *f_, const entry *ents, size_t n,
                          uint64_t data_off, cq_error *err)
{
    if (m->ntensors + n > m->cap) {
        size_t cap = m->cap * 2 > m->ntensors + n ? m->cap * 2 : m->ntensors + n;
        cq_st_tensor *t = realloc(m->tensors, cap * sizeof *t);
        if (!t)
            return cq_errorf(err, CQ_E_NOMEM, "out of memory");
        m->tensors = t;
        m->cap = cap;
    }
    for (size_t i = 0; i < n; i++) {
        cq_st_tensor *t = &m->tensors[m->ntensors];
        memset(t, 0, sizeof *t);
        t->name = strdup(ents[i].name);
        if (!t->name)
            return cq_errorf(err, CQ_E_NOMEM, "out of memory");
        m->ntensors++;
        t->file = f_->path;
        t->dtype = (cq_dtype)st_dtypes[ents[i].kind].dt;
        t->ndim = ents[i].ndim;
        memcpy(t->shape, ents[i].shape, sizeof t->shape);
        t->numel = (int64_t)ents[i].numel;
        t->nbytes = (size_t)ents[i].nbytes;
        t->data = f_->bytes + data_off + ents[i].begin;
        t->mapped = f_->mapped;
    }
    return CQ_OK;
}

/* Unsupported only once the file is known to be well-formed. */
static int check_supported(const st_file *f_, const entry *ents, size_t n, cq_error *err)
{
    for (size_t i = 0; i < n; i++) {
        if (st_dtypes[ents[i].kind].dt < 0)
            return cq_errorf(err, CQ_E_UNSUPPORTED, "'%s': tensor '%s': dtype %s is not "
                             "supported", f_->path, ents[i].name, st_dtypes[ents[i].kind].name);
        if (ents[i].ndim > CQ_ST_MAX_DIMS)
            return cq_errorf(err, CQ_E_UNSUPPORTED, "'%s': tensor '%s': rank %d is over %d",
                             f_->path, ents[i].name, ents[i].ndim, CQ_ST_MAX_DIMS);
    }
    return CQ_OK;
}

int st_parse_file(cq_st_model *m, st_file *f_, cq_error *err)
{
    cJSON *root;
    uint64_t data_off = 0;
    int rc = parse_header(f_, &root, &data_off, err);
    size_t n = 0, k = 0;
    entry *ents = NULL;
    if (rc != CQ_OK)
        goto done;
    for (const cJSON *c = root->child; c; c = c->next)
        n += strcmp(c->string, "__metadata__") != 0;
    ents = calloc(n ? n : 1, sizeof *ents);
    if (!ents) {
        rc = cq_errorf(err, CQ_E_NOMEM, "out of memory");
        goto done;
    }
    for (const cJSON *c = root->child; c && rc == CQ_OK; c = c->next)
        rc = strcmp(c->string, "__metadata__") == 0 ? save_metadata(m, f_, c, err)
                                                    : parse_entry(f_, c, &ents[k++], err);
    if (rc != CQ_OK)
        goto done;
    qsort(ents, n, sizeof *ents, cmp_entry);
    rc = check_layout(f_, ents, n, f_->size - data_off, err);
    if (rc == CQ_OK)
        rc = check_supported(f_, ents, n, err);
    if (rc == CQ_OK)
        rc = append_tensors(m, f_, ents, n, data_off, err);
done:
    free(ents);
    cJSON_Delete(root);
    return rc;
}

static int add_file(cq_st_model *m, st_file **out, const char *path, cq_error *err)
{
    st_file *f = realloc(m->files, (m->nfiles + 1) * sizeof *f);
    if (!f)
        return cq_errorf(err, CQ_E_NOMEM, "out of memory");
    m->files = f;
    f = &m->files[m->nfiles];
    memset(f, 0, sizeof *f);
    f->path = strdup(path);
    if (!f->path)
        return cq_errorf(err, CQ_E_NOMEM, "out of memory");
    m->nfiles++;
    const char *slash = strrchr(f->path, '/');
    f->base = slash ? slash + 1 : f->path;
    *out = f;
    return CQ_OK;
}

/* Map a whole file read-only. MAP_PRIVATE: nothing we do can reach the file. */
static int map_file(st_file *f, cq_error *err)
{
    /* O_NONBLOCK: opening a FIFO must not wait for a writer (the S_ISREG check below
     * rejects it); it changes nothing for regular files. */
    int fd = open(f->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return cq_errorf_errno(err, CQ_E_IO, "'%s': cannot open", f->path);
    struct stat st;
    int rc = CQ_OK;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = cq_errorf(err, CQ_E_IO, "'%s': not a regular file", f->path);
    } else if (st.st_size > 0) {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED)
            rc = cq_errorf_errno(err, CQ_E_IO, "'%s': cannot map", f->path);
        else {
            f->bytes = p;
            f->size = (size_t)st.st_size;
            f->mapped = 1;
        }
    }
    close(fd);
    return rc;
}

int st_add_path(cq_st_model *m, const char *path, cq_error *err)
{
    st_file *f = NULL;
    int rc = add_file(m, &f, path, err);
    if (rc == CQ_OK)
        rc = map_file(f, err);
    if (rc == CQ_OK)
        rc = st_parse_file(m, f, err);
    return rc;
}

/* Sort names with a merge sort (no global context: opening is thread-safe). */
static void sort_names(const cq_st_model *m, size_t *idx, size_t *tmp, size_t n)
{
    if (n < 2)
        return;
    size_t h = n / 2;
    sort_names(m, idx, tmp, h);
    sort_names(m, idx + h, tmp, n - h);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n)
        tmp[k++] = strcmp(m->tensors[idx[j]].name, m->tensors[idx[i]].name) < 0 ? idx[j++]
                                                                                : idx[i++];
    while (i < h)
        tmp[k++] = idx[i++];
    while (j < n)
        tmp[k++] = idx[j++];
    memcpy(idx, tmp, n * sizeof *idx);
}

int st_index_names(cq_st_model *m, cq_error *err)
{
    size_t n = m->ntensors;
    m->by_name = malloc((n ? n : 1) * sizeof *m->by_name);
    size_t *tmp = malloc((n ? n : 1) * sizeof *tmp);
    if (!m->by_name || !tmp) {
        free(tmp);
        return cq_errorf(err, CQ_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++)
        m->by_name[i] = i;
    sort_names(m, m->by_name, tmp, n);
    free(tmp);
    for (size_t i = 1; i < n; i++) {
        const cq_st_tensor *a = &m->tensors[m->by_name[i - 1]], *b = &m->tensors[m->by_name[i]];
        if (strcmp(a->name, b->name) == 0)
            return cq_errorf(err, CQ_E_FORMAT, "tensor '%s' is in both '%s' and '%s'", a->name,
                             a->file, b->file);
    }
    return CQ_OK;
}

static int has_suffix(const char *s, const char *suf)
{
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && strcmp(s + n - k, suf) == 0;
}

static char *join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (p) {
        memcpy(p, dir, a);
        p[a] = '/';
        memcpy(p + a + 1, name, b + 1);
    }
    return p;
}

/* A folder without an index: model.safetensors, else its only *.safetensors file. */
static int open_folder_file(cq_st_model *m, const char *dir, cq_error *err)
{
    char *p = join(dir, "model.safetensors"), *only = NULL;
    if (!p)
        return cq_errorf(err, CQ_E_NOMEM, "out of memory");
    int rc;
    if (access(p, F_OK) == 0) {
        rc = st_add_path(m, p, err);
        free(p);
        return rc;
    }
    free(p);
    DIR *d = opendir(dir);
    if (!d)
        return cq_errorf_errno(err, CQ_E_IO, "'%s': cannot list", dir);
    size_t count = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (has_suffix(e->d_name, ".safetensors") && count++ == 0)
            only = strdup(e->d_name);
    closedir(d);
    if (count == 0)
        rc = cq_errorf(err, CQ_E_IO, "'%s': no .safetensors file in the folder", dir);
    else if (count > 1)
        rc = cq_errorf(err, CQ_E_FORMAT, "'%s': %zu .safetensors files and no "
                       "model.safetensors.index.json", dir, count);
    else if (!only || !(p = join(dir, only)))
        rc = cq_errorf(err, CQ_E_NOMEM, "out of memory");
    else {
        rc = st_add_path(m, p, err);
        free(p);
    }
    free(only);
    return rc;
}

static int open_path(cq_st_model *m, const char *path, cq_error *err)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return cq_errorf_errno(err, CQ_E_IO, "'%s': cannot open", path);
    if (!S_ISDIR(st.st_mode)) {
        const char *slash = strrchr(path, '/');
        m->dir = slash ? strndup(path, (size_t)(slash - path) + (slash == path)) : strdup(".");
        if (!m->dir)
            return cq_errorf(err, CQ_E_NOMEM, "out of memory");
        return st_add_path(m, path, err);
    }
    m->dir = strdup(path);
    char *index = join(path, "model.safetensors.index.json");
    if (!m->dir || !index) {
        free(index);
        return cq_errorf(err, CQ_E_NOMEM, "out of memory");
    }
    int rc = access(index, F_OK) == 0 ? st_open_index(m, path, index, err)
                                      : open_folder_file(m, path, err);
    free(index);
    return rc;
}

int cq_st_open(cq_st_model **out, const char *path, cq_error *err)
{
    *out = NULL;
    cq_st_model *m = calloc(1, sizeof *m);
    if (!m)
        return cq_errorf(err, CQ_E_NOMEM, "out of memory");
    int rc = open_path(m, path, err);
    if (rc == CQ_OK && !m->by_name)
        rc = st_index_names(m, err);
    if (rc != CQ_OK) {
        cq_error_printable(err);
        cq_st_close(m);
        return rc;
    }
    *out = m;
    return CQ_OK;
}

int cq_st_open_buffer(cq_st_model **out, const void *data, size_t len, const char *name,
                      cq_error *err)
{
    *out = NULL;
    cq_st_model *m = calloc(1, sizeof *m);
    st_file *f = NULL;
    if (!m)
        return cq_errorf(err, CQ_E_NOMEM, "out of memory");
    int rc = add_file(m, &f, name, err);
    if (rc == CQ_OK) {
        f->bytes = data;
        f->size = len;
        m->dir = strdup(".");
        rc = m->dir ? st_parse_file(m, f, err) : cq_errorf(err, CQ_E_NOMEM, "out of memory");
    }
    if (rc == CQ_OK)
        rc = st_index_names(m, err);
    if (rc != CQ_OK) {
        cq_error_printable(err);
        cq_st_close(m);
        return rc;
    }
    *out = m;
    return CQ_OK;
}

/* Releases are batched: each madvise(MADV_DONTNEED) of a range that several threads touched
 * ends in a TLB shootdown (an interrupt to every CPU running us), so one call per tensor cost
 * more than the page faults it saved; ranges wait here until RELEASE_BATCH bytes are pending,
 * which keeps RSS within that much of one layer. cq_st_close flushes before it unmaps, so a
 * pending range is always still mapped by its model. */
enum { RELEASE_BATCH = 16 << 20, RELEASE_RANGES = 64 };
static pthread_mutex_t rel_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    uintptr_t a, b;
} rel[RELEASE_RANGES];
static size_t rel_n, rel_bytes;

static void release_flush_locked(void)
{
    for (size_t i = 0; i < rel_n; i++)
        madvise((void *)rel[i].a, rel[i].b - rel[i].a, MADV_DONTNEED);
    rel_n = rel_bytes = 0;
}

void cq_st_close(cq_st_model *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&rel_lock);
    release_flush_locked(); /* before the unmap: a pending range must never outlive its map */
    pthread_mutex_unlock(&rel_lock);
    for (size_t i = 0; i < m->nfiles; i++) {
        if (m->files[i].mapped)
            munmap((void *)m->files[i].bytes, m->files[i].size);
        free(m->files[i].path);
    }
    for (size_t i = 0; i < m->ntensors; i++)
        free((char *)m->tensors[i].name);
    for (size_t i = 0; i < 2 * m->nmeta; i++)
        free(m->meta[i]);
    free(m->meta);
    free(m->files);
    free(m->tensors);
    free(m->by_name);
    free(m->dir);
    free(m);
}

const char *cq_st_dir(const cq_st_model *m) { return m->dir; }
size_t cq_st_count(const cq_st_model *m) { return m->ntensors; }

const cq_st_tensor *cq_st_at(const cq_st_model *m, size_t i)
{
    return i < m->ntensors ? &m->tensors[i] : NULL;
}

const cq_st_tensor *cq_st_find(const cq_st_model *m, const char *name)
{
    size_t lo = 0, hi = m->ntensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(m->tensors[m->by_name[mid]].name, name);
        if (c == 0)
            return &m->tensors[m->by_name[mid]];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const char *cq_st_metadata(const cq_st_model *m, const char *key)
{
    for (size_t i = 0; i < m->nmeta; i++)
        if (strcmp(m->meta[2 * i], key) == 0)
            return m->meta[2 * i + 1];
    return NULL;
}

size_t cq_st_metadata_count(const cq_st_model *m) { return m->nmeta; }

int cq_st_metadata_at(const cq_st_model *m, size_t i, const char **key, const char **value)
{
    if (i >= m->nmeta)
        return -1;
    *key = m->meta[2 * i];
    *value = m->meta[2 * i + 1];
    return 0;
}

size_t cq_st_shard_count(const cq_st_model *m) { return m->nfiles; }

const char *cq_st_shard_path(const cq_st_model *m, size_t i)
{
    return i < m->nfiles ? m->files[i].path : NULL;
}

int cq_st_read_f32(const cq_st_tensor *t, float *out, cq_error *err)
{
    const cq_dtype_traits *tr = cq_dtype_info(t->dtype);
    if (!tr || !tr->is_float)
        return cq_errorf(err, CQ_E_UNSUPPORTED, "'%s': tensor '%s': dtype %s is not a float "
                         "type", t->file, t->name, tr ? tr->name : "?");
    cq_convert_to_f32(t->dtype, t->data, out, (size_t)t->numel);
    return CQ_OK;
}

void cq_st_release(const cq_st_tensor *t)
{
    if (!t || t->nbytes == 0 || !t->mapped)
        return; /* never madvise memory we do not own (cq_st_open_buffer) */
    /* Pages shared with a neighbouring tensor may go too: they are clean file pages of a
     * private read-only map, so a later access just faults them back in from the file. */
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = (uintptr_t)t->data & ~(page - 1);
    uintptr_t b = ((uintptr_t)t->data + t->nbytes + page - 1) & ~(page - 1);
    pthread_mutex_lock(&rel_lock);
    rel[rel_n].a = a;
    rel[rel_n].b = b;
    rel_n++;
    rel_bytes += b - a;
    if (rel_n == RELEASE_RANGES || rel_bytes >= RELEASE_BATCH)
        release_flush_locked();
    pthread_mutex_unlock(&rel_lock);
}
