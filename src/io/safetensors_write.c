/* Streaming safetensors writer: tensors are planned first, then shards and offsets are fixed,
 * headers written, and each tensor's bytes go straight to its final place with pwrite, so a
 * model is never held in memory and the same plan always gives the same bytes.
 * Sharding follows huggingface_hub's greedy split (notes §A.6); the in-file order follows the
 * reference writer (notes §A.3): larger-alignment dtypes first, then by name. */
#include "cquant/safetensors.h"

#include "cquant/checked.h"
#include "cquant/json.h"
#include "cquant/outdir.h"

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { EARLY_WRITEBACK = 4 << 20 };

typedef struct wtensor {
    char *name;
    cq_dtype dtype;
    int ndim;
    int64_t shape[CQ_ST_MAX_DIMS];
    size_t nbytes;
    size_t shard;
    uint64_t begin;
    int written;
} wtensor;

typedef struct wshard {
    char *name;
    int fd;
    uint64_t data_off, data_size;
    size_t *members; /* tensor indices in file order */
    size_t count;
    size_t unsynced; /* bytes written since writeback was last started (early_writeback) */
    /* Writers of one file take turns in user space: ext4 serializes buffered writes to a file
     * on its inode lock anyway, and a writer waiting there spins on the CPU (optimistic rwsem
     * spinning) that the other quantization workers need; a mutex sleeps instead. */
    pthread_mutex_t lock;
} wshard;

struct cq_st_writer {
    char *dir;
    size_t max;
    wtensor *t;
    size_t n, cap;
    char **meta; /* key, value pairs */
    size_t nmeta;
    int started;
    wshard *shards;
    size_t nshards;
    size_t *by_name;
    int no_writeback; /* cq_st_writer_no_writeback */
};

/* Rank of a dtype in the reference's `Dtype` enum (declared in increasing alignment). */
static int dtype_rank(cq_dtype d)
{
    static const int rank[CQ_DT_COUNT] = {
        [CQ_DT_BOOL] = 0, [CQ_DT_U8] = 1,  [CQ_DT_I8] = 2,  [CQ_DT_I16] = 3, [CQ_DT_F16] = 4,
        [CQ_DT_BF16] = 5, [CQ_DT_I32] = 6, [CQ_DT_F32] = 7, [CQ_DT_F64] = 8, [CQ_DT_I64] = 9,
    };
    return rank[d];
}

/* ---- a growable string ---- */
typedef struct sbuf {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t k)
{
    if (b->oom)
        return;
    if (b->n + k + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + k + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, k);
    b->n += k;
    b->p[b->n] = 0;
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_fmt(sbuf *b, const char *fmt, unsigned long long v)
{
    char tmp[48];
    int k = snprintf(tmp, sizeof tmp, fmt, v);
    if (k > 0 && (size_t)k < sizeof tmp)
        sb_put(b, tmp, (size_t)k);
    else
        b->oom = 1;
}

/* JSON string; ascii=1 escapes everything outside ' '..'~' as Python's json.dumps does. */
static void sb_json(sbuf *b, const char *s, int ascii)
{
    sb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        unsigned c = *p;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            sb_put(b, e, 2);
            p++;
        } else if (c >= 0x20 && (c < 0x7f || (!ascii && c >= 0x80))) {
            sb_put(b, (const char *)p++, 1);
        } else if (c < 0x80) {
            const char *sh = c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t"
                           : c == '\b' ? "\\b" : c == '\f' ? "\\f" : NULL;
            if (sh)
                sb_str(b, sh);
            else
                sb_fmt(b, "\\u%04llx", c);
            p++;
        } else { /* ascii: decode valid UTF-8 (checked at add) into \uXXXX, surrogates above */
            int k = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
            unsigned long cp = c & (0x7f >> k);
            for (int i = 1; i < k; i++)
                cp = cp << 6 | (p[i] & 0x3f);
            p += k;
            if (cp >= 0x10000) {
                cp -= 0x10000;
                sb_fmt(b, "\\u%04llx", 0xd800 + (cp >> 10));
                sb_fmt(b, "\\u%04llx", 0xdc00 + (cp & 0x3ff));
            } else {
                sb_fmt(b, "\\u%04llx", cp);
            }
        }
    }
    sb_put(b, "\"", 1);
}

/* ---- planning ---- */

int cq_st_writer_create(cq_st_writer **out, const char *dir, size_t max_shard_bytes,
                        cq_error *err)
{
    *out = NULL;
    cq_st_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->dir = strdup(dir))) {
        free(w);
        return cq_errorf(err, CQ_E_NOMEM, "out of memory");
    }
    w->max = max_shard_bytes;
    *out = w;
    return CQ_OK;
}

static int check_name(const char *name, cq_error *err)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)name[i] < 0x20)
            /* names come from input checkpoints: unsupported input, not a usage error */
            return cq_errorf(err, CQ_E_UNSUPPORTED,
                             "tensor '%s': a name with a control byte cannot be written", name);
    if (n == 0 || !cq_utf8_valid(name, n) || strcmp(name, "__metadata__") == 0)
        return cq_errorf(err, CQ_E_USAGE, "tensor name '%s' is not allowed", name);
    return CQ_OK;
}

static int plan_size(const char *name, cq_dtype dt, int ndim, const int64_t *shape,
                     size_t *nbytes, cq_error *err)
{
    const cq_dtype_traits *tr = cq_dtype_info(dt);
    if (!tr || ndim < 0 || ndim > CQ_ST_MAX_DIMS)
        return cq_errorf(err, CQ_E_USAGE, "tensor '%s': bad dtype or rank %d", name, ndim);
    size_t numel = 1;
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0 || cq_mul_size(numel, (size_t)shape[i], &numel) != 0)
            return cq_errorf(err, CQ_E_USAGE, "tensor '%s': bad shape", name);
    if (cq_mul_size(numel, (size_t)tr->size, nbytes) != 0 || *nbytes > (1ull << 53))
        return cq_errorf(err, CQ_E_USAGE, "tensor '%s': too large", name);
    return CQ_OK;
}

int cq_st_writer_add(cq_st_writer *w, const char *name, cq_dtype dtype, int ndim,
                     const int64_t *shape, cq_error *err)
{
    if (w->started)
        return cq_errorf(err, CQ_E_INTERNAL, "tensor '%s' planned after start", name);
    size_t nbytes = 0;
    int rc = check_name(name, err);
    if (rc == CQ_OK)
        rc = plan_size(name, dtype, ndim, shape, &nbytes, err);
    if (rc != CQ_OK)
        return rc;
    if (w->n == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 64;
        wtensor *t = realloc(w->t, cap * sizeof *t);
        if (!t)
            return cq_errorf(err, CQ_E_NOMEM, "out of memory");
        w->t = t;
        w->cap = cap;
    }
    wtensor *t = &w->t[w->n];
    memset(t, 0, sizeof *t);
    if (!(t->name = strdup(name)))
        return cq_errorf(err, CQ_E_NOMEM, "out of memory");
    t->dtype = dtype;
    t->ndim = ndim;
    if (ndim > 0)
        memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    t->nbytes = nbytes;
    w->n++;
    return CQ_OK;
}

int cq_st_writer_meta(cq_st_writer *w, const char *key, const char *value, cq_error *err)
{
    if (w->started)
        return cq_errorf(err, CQ_E_INTERNAL, "metadata '%s' set after start", key);
    if (strcmp(key, "format") == 0 || !cq_utf8_valid(key, strlen(key)) ||
        !cq_utf8_valid(value, strlen(value)))
        return cq_errorf(err, CQ_E_USAGE, "metadata key '%s' is not allowed", key);
    for (size_t i = 0; i < w->nmeta; i++)
        if (strcmp(w->meta[2 * i], key) == 0)
            return cq_errorf(err, CQ_E_USAGE, "metadata key '%s' set twice", key);
    char **m = realloc(w->meta, (w->nmeta + 1) * 2 * sizeof *m);
    if (!m)
        return cq_errorf(err, CQ_E_NOMEM, "out of memory");
    w->meta = m;
    m[2 * w->nmeta] = strdup(key);
    m[2 * w->nmeta + 1] = strdup(value);
    w->nmeta++;
    if (!m[2 * w->nmeta - 2] || !m[2 * w->nmeta - 1])
        return cq_errorf(err, CQ_E_NOMEM, "out of memory");
    return CQ_OK;
}

/* ---- start: shards, order, headers ---- */

typedef int (*idx_cmp)(const cq_st_writer *w, size_t a, size_t b);

static int cmp_name(const cq_st_writer *w, size_t a, size_t b)
{
    return strcmp(w->t[a].name, w->t[b].name);
}

static int cmp_layout(const cq_st_writer *w, size_t a, size_t b)
{
    int ra = dtype_rank(w->t[a].dtype), rb = dtype_rank(w->t[b].dtype);
    if (ra != rb)
        return ra > rb ? -1 : 1;
    return strcmp(w->t[a].name, w->t[b].name);
}

/* Merge sort of tensor indices (qsort has no context pointer; no globals here). */
static void sort_idx(const cq_st_writer *w, size_t *idx, size_t *tmp, size_t n, idx_cmp cmp)
{
    if (n < 2)
        return;
    size_t h = n / 2, i = 0, j = h, k = 0;
    sort_idx(w, idx, tmp, h, cmp);
    sort_idx(w, idx + h, tmp, n - h, cmp);
    while (i < h && j < n)
        tmp[k++] = cmp(w, idx[j], idx[i]) < 0 ? idx[j++] : idx[i++];
    while (i < h)
        tmp[k++] = idx[i++];
    while (j < n)
        tmp[k++] = idx[j++];
    memcpy(idx, tmp, n * sizeof *idx);
}

static int sort_all(const cq_st_writer *w, size_t *idx, size_t n, idx_cmp cmp, cq_error *err)
{
    size_t *tmp = malloc((n + 1) * sizeof *tmp);
    if (!tmp)
        return cq_errorf(err, CQ_E_NOMEM, "out of memory");
    sort_idx(w, idx, tmp, n, cmp);
    free(tmp);
    return CQ_OK;
}

/* huggingface_hub's split: a tensor over the max is a shard of its own, listed when met; the
 * open shard closes (and is listed) when the next tensor would push it over the max. */
static size_t assign_shards(cq_st_writer *w, size_t *order)
{
    size_t made = 0, listed = 0, cur = (size_t)-1;
    uint64_t cur_size = 0;
    for (size_t i = 0; i < w->n; i++) {
        size_t sz = w->t[i].nbytes;
        if (w->max && sz > w->max) {
            w->t[i].shard = made;
            order[made] = listed++;
            made++;
            continue;
        }
        if (w->max && cur != (size_t)-1 && cur_size + sz > w->max) {
            order[cur] = listed++;
            cur = (size_t)-1;
        }
        if (cur == (size_t)-1) {
            cur = made++;
            cur_size = 0;
        }
        w->t[i].shard = cur;
        cur_size += sz;
    }
    if (cur != (size_t)-1)
        order[cur] = listed++;
    if (made == 0)
        order[made++] = listed++; /* nothing planned: still one (empty) file */
    for (size_t i = 0; i < w->n; i++)
        w->t[i].shard = order[w->t[i].shard];
    return made;
}

static int make_shards(cq_st_writer *w, cq_error *err)
{
    size_t *order = malloc((w->n + 1) * sizeof *order);
    if (!order)
        return cq_errorf(err, CQ_E_NOMEM, "out of memory");
    w->nshards = assign_shards(w, order);
    free(order);
    w->shards = calloc(w->nshards, sizeof *w->shards);
    if (!w->shards)
        return cq_errorf(err, CQ_E_NOMEM, "out of memory");
    for (size_t s = 0; s < w->nshards; s++) {
        w->shards[s].fd = -1; /* before anything can fail: free closes fds >= 0 */
        pthread_mutex_init(&w->shards[s].lock, NULL);
    }
    for (size_t s = 0; s < w->nshards; s++) {
        wshard *sh = &w->shards[s];
        sh->members = malloc((w->n + 1) * sizeof *sh->members);
        sh->name = malloc(64);
        if (!sh->members || !sh->name)
            return cq_errorf(err, CQ_E_NOMEM, "out of memory");
        if (w->nshards == 1)
            snprintf(sh->name, 64, "model.safetensors");
        else
            snprintf(sh->name, 64, "model-%05zu-of-%05zu.safetensors", s + 1, w->nshards);
    }
    for (size_t i = 0; i < w->n; i++) {
        wshard *sh = &w->shards[w->t[i].shard];
        sh->members[sh->count++] = i;
    }
    return CQ_OK;
}

static void header_json(const cq_st_writer *w, const wshard *sh, sbuf *b)
{
    sb_str(b, "{\"__metadata__\":{\"format\":\"pt\"");
    for (size_t i = 0; i < w->nmeta; i++) {
        sb_put(b, ",", 1);
        sb_json(b, w->meta[2 * i], 0);
        sb_put(b, ":", 1);
        sb_json(b, w->meta[2 * i + 1], 0);
    }
    sb_put(b, "}", 1);
    for (size_t k = 0; k < sh->count; k++) {
        const wtensor *t = &w->t[sh->members[k]];
        sb_put(b, ",", 1);
        sb_json(b, t->name, 0);
        sb_str(b, ":{\"dtype\":\"");
        sb_str(b, cq_dtype_info(t->dtype)->name);
        sb_str(b, "\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++)
            sb_fmt(b, d ? ",%llu" : "%llu", (unsigned long long)t->shape[d]);
        sb_fmt(b, "],\"data_offsets\":[%llu,", t->begin);
        sb_fmt(b, "%llu]}", t->begin + t->nbytes);
    }
    sb_put(b, "}", 1);
    while (b->n % 8) /* the reference pads to 8 so the data section starts 8-aligned */
        sb_put(b, " ", 1);
}

/* At most WRITE_CHUNK per call: a write holds the file's inode lock for its whole length,
 * and the other workers writing the same shard spin on that lock meanwhile (a 6 MB embedding
 * kept another worker spinning for ms). */
enum { WRITE_CHUNK = 1 << 20 };

static int pwrite_all(int fd, const void *data, size_t n, uint64_t off)
{
    const char *p = data;
    while (n > 0) {
        ssize_t k = pwrite(fd, p, n > WRITE_CHUNK ? WRITE_CHUNK : n, (off_t)off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
        off += (uint64_t)k;
    }
    return 0;
}

/* Reopen an existing shard for resuming: its header must be byte-identical to the plan's and
 * its size the planned size, so the offsets written earlier are the ones planned now. */
static int reopen_check(wshard *sh, const char *path, const unsigned char len[8], const sbuf *b,
                        cq_error *err)
{
    struct stat stt;
    char *have = malloc(b->n + 8);
    int rc = CQ_OK;
    sh->fd = open(path, O_RDWR | O_CLOEXEC);
    if (!have)
        rc = cq_errorf(err, CQ_E_NOMEM, "out of memory");
    else if (sh->fd < 0 || fstat(sh->fd, &stt) != 0)
        rc = cq_errorf_errno(err, CQ_E_IO, "'%s': cannot reopen", path);
    else if ((uint64_t)stt.st_size != sh->data_off + sh->data_size ||
             pread(sh->fd, have, b->n + 8, 0) != (ssize_t)(b->n + 8) ||
             memcmp(have, len, 8) != 0 || memcmp(have + 8, b->p, b->n) != 0)
        rc = cq_errorf(err, CQ_E_FORMAT, "'%s': does not match the planned output", path);
    free(have);
    return rc;
}

static int open_shard(cq_st_writer *w, wshard *sh, int reopen, cq_error *err)
{
    int rc = sort_all(w, sh->members, sh->count, cmp_layout, err);
    if (rc != CQ_OK)
        return rc;
    for (size_t k = 0; k < sh->count; k++) {
        w->t[sh->members[k]].begin = sh->data_size;
        sh->data_size += w->t[sh->members[k]].nbytes;
    }
    sbuf b = {0};
    header_json(w, sh, &b);
    if (b.oom) {
        free(b.p);
        return cq_errorf(err, CQ_E_NOMEM, "out of memory");
    }
    if (b.n > CQ_ST_MAX_HEADER) {
        free(b.p);
        return cq_errorf(err, CQ_E_USAGE, "'%s': header of %zu bytes is over the limit",
                         sh->name, b.n);
    }
    unsigned char len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (unsigned char)((uint64_t)b.n >> (8 * i));
    sh->data_off = 8 + b.n;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", w->dir, sh->name);
    if (reopen) {
        rc = reopen_check(sh, path, len, &b, err);
    } else {
        sh->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (sh->fd < 0 || pwrite_all(sh->fd, len, 8, 0) != 0 ||
            pwrite_all(sh->fd, b.p, b.n, 8) != 0 ||
            ftruncate(sh->fd, (off_t)(sh->data_off + sh->data_size)) != 0)
            rc = cq_errorf_errno(err, CQ_E_IO, "'%s': cannot write", path);
    }
    free(b.p);
    return rc;
}

static int start(cq_st_writer *w, int reopen, cq_error *err)
{
    if (w->started)
        return cq_errorf(err, CQ_E_INTERNAL, "writer started twice");
    w->started = 1;
    w->by_name = malloc((w->n + 1) * sizeof *w->by_name);
    if (!w->by_name)
        return cq_errorf(err, CQ_E_NOMEM, "out of memory");
    for (size_t i = 0; i < w->n; i++)
        w->by_name[i] = i;
    int rc = sort_all(w, w->by_name, w->n, cmp_name, err);
    for (size_t i = 1; i < w->n && rc == CQ_OK; i++)
        if (strcmp(w->t[w->by_name[i - 1]].name, w->t[w->by_name[i]].name) == 0)
            return cq_errorf(err, CQ_E_USAGE, "tensor '%s' planned twice",
                             w->t[w->by_name[i]].name);
    if (rc == CQ_OK)
        rc = make_shards(w, err);
    for (size_t s = 0; s < w->nshards && rc == CQ_OK; s++)
        rc = open_shard(w, &w->shards[s], reopen, err);
    return rc;
}

int cq_st_writer_start(cq_st_writer *w, cq_error *err) { return start(w, 0, err); }

int cq_st_writer_reopen(cq_st_writer *w, cq_error *err) { return start(w, 1, err); }

static wtensor *find(cq_st_writer *w, const char *name)
{
    size_t lo = 0, hi = w->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(w->t[w->by_name[mid]].name, name);
        if (c == 0)
            return &w->t[w->by_name[mid]];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Start the disk writing what was written so far (Linux; advice only, errors are fsync's to
 * report), once every EARLY_WRITEBACK bytes per shard: the commit's fsync then waits for the
 * last few MB only, not the whole output, and one call per few MB lets the file system
 * allocate large extents (a call per tensor costs more CPU for no gain). The counter is only
 * a trigger: a lost update under concurrent writers just moves a call. */
static void early_writeback(const cq_st_writer *w, wshard *sh, size_t n)
{
#if defined(__linux__)
    if (w->no_writeback)
        return;
    size_t since = __atomic_add_fetch(&sh->unsynced, n, __ATOMIC_RELAXED);
    if (since >= EARLY_WRITEBACK) {
        __atomic_store_n(&sh->unsynced, 0, __ATOMIC_RELAXED);
        (void)sync_file_range(sh->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
    }
#else
    (void)w, (void)sh, (void)n;
#endif
}

int cq_st_writer_write(cq_st_writer *w, const char *name, const void *data, size_t nbytes,
                       cq_error *err)
{
    if (!w->started || !w->shards)
        return cq_errorf(err, CQ_E_INTERNAL, "tensor '%s' written before start", name);
    wtensor *t = find(w, name);
    if (!t)
        return cq_errorf(err, CQ_E_INTERNAL, "tensor '%s' was not planned", name);
    if (t->written)
        return cq_errorf(err, CQ_E_INTERNAL, "tensor '%s' written twice", name);
    if (nbytes != t->nbytes)
        return cq_errorf(err, CQ_E_INTERNAL, "tensor '%s': %zu bytes written, %zu planned", name,
                         nbytes, t->nbytes);
    wshard *sh = &w->shards[t->shard];
    pthread_mutex_lock(&sh->lock);
    int bad = pwrite_all(sh->fd, data, nbytes, sh->data_off + t->begin) != 0, e = errno;
    pthread_mutex_unlock(&sh->lock);
    errno = e;
    if (bad)
        return cq_errorf_errno(err, CQ_E_IO, "'%s/%s': tensor '%s': write failed", w->dir,
                               sh->name, name);
    t->written = 1;
    early_writeback(w, sh, nbytes);
    return CQ_OK;
}

int cq_st_writer_mark_written(cq_st_writer *w, const char *name, cq_error *err)
{
    wtensor *t = w->started && w->shards ? find(w, name) : NULL;
    if (!t)
        return cq_errorf(err, CQ_E_INTERNAL, "tensor '%s' was not planned", name);
    t->written = 1;
    return CQ_OK;
}

void cq_st_writer_no_writeback(cq_st_writer *w) { w->no_writeback = 1; }

int cq_st_writer_sync(cq_st_writer *w, cq_error *err)
{
    for (size_t s = 0; w->shards && s < w->nshards; s++)
        if (w->shards[s].fd >= 0 && fdatasync(w->shards[s].fd) != 0)
            return cq_errorf_errno(err, CQ_E_IO, "'%s/%s': cannot sync", w->dir,
                                   w->shards[s].name);
    return CQ_OK;
}

/* model.safetensors.index.json as transformers writes it: json.dumps(indent=2,
 * sort_keys=True) plus a newline. */
static int write_index(const cq_st_writer *w, cq_error *err)
{
    uint64_t total = 0;
    for (size_t i = 0; i < w->n; i++)
        total += w->t[i].nbytes;
    sbuf b = {0};
    sb_str(&b, "{\n  \"metadata\": {\n    \"total_size\": ");
    sb_fmt(&b, "%llu", total);
    sb_str(&b, "\n  },\n  \"weight_map\": {");
    for (size_t k = 0; k < w->n; k++) {
        const wtensor *t = &w->t[w->by_name[k]];
        sb_str(&b, k ? ",\n    " : "\n    ");
        sb_json(&b, t->name, 1);
        sb_str(&b, ": ");
        sb_json(&b, w->shards[t->shard].name, 1);
    }
    sb_str(&b, w->n ? "\n  }\n}\n" : "}\n}\n");
    if (b.oom) {
        free(b.p);
        return cq_errorf(err, CQ_E_NOMEM, "out of memory");
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", w->dir);
    /* A new file, not a replacement (a resumed run's index is removed first): inside an output
     * folder under construction it is then left to the folder's commit to sync (outdir.h). */
    int rc = CQ_OK;
    if (unlink(path) != 0 && errno != ENOENT)
        rc = cq_errorf_errno(err, CQ_E_IO, "'%s': cannot replace", path);
    if (rc == CQ_OK)
        rc = cq_atomic_write(path, b.p, b.n, 0, err);
    free(b.p);
    return rc;
}

int cq_st_writer_finish(cq_st_writer *w, cq_error *err)
{
    if (!w->started || !w->shards)
        return cq_errorf(err, CQ_E_INTERNAL, "writer finished before start");
    for (size_t i = 0; i < w->n; i++)
        if (!w->t[i].written)
            return cq_errorf(err, CQ_E_INTERNAL, "tensor '%s' was planned but not written",
                             w->t[i].name);
    /* Durability is the output folder's commit (cq_outdir_commit fsyncs every file in one
     * batch): here writeback is only started, so the disk works while the rest is written. */
    for (size_t s = 0; s < w->nshards; s++) {
        wshard *sh = &w->shards[s];
        int bad = 0;
#if defined(__linux__)
        if (!w->no_writeback)
            (void)sync_file_range(sh->fd, 0, 0, SYNC_FILE_RANGE_WRITE); /* advice only */
#endif
        bad |= close(sh->fd) != 0;
        sh->fd = -1;
        if (bad)
            return cq_errorf_errno(err, CQ_E_IO, "'%s/%s': cannot close", w->dir, sh->name);
    }
    return w->nshards > 1 ? write_index(w, err) : CQ_OK;
}

void cq_st_writer_free(cq_st_writer *w)
{
    if (!w)
        return;
    for (size_t s = 0; s < w->nshards; s++) {
        if (w->shards[s].fd >= 0)
            close(w->shards[s].fd);
        free(w->shards[s].members);
        free(w->shards[s].name);
        pthread_mutex_destroy(&w->shards[s].lock);
    }
    for (size_t i = 0; i < w->n; i++)
        free(w->t[i].name);
    for (size_t i = 0; i < 2 * w->nmeta; i++)
        free(w->meta[i]);
    free(w->meta);
    free(w->shards);
    free(w->t);
    free(w->by_name);
    free(w->dir);
    free(w);
}
