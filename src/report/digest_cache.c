/* A cache of input digests, so that quantizing the same checkpoint again does not hash every
 * shard again (sha256 of the shards is a full pass over the model: about a third of an RTN
 * run's CPU time). Like git's index, an entry is trusted while the file's identity and stat
 * data are unchanged: device, inode, size, and mtime and ctime in nanoseconds. ctime cannot be
 * set from user space, so rewriting a file and restoring its mtime still misses.
 *
 * "Racily clean" files (git's term) are not stored: a file whose mtime or ctime is within
 * CQ_DIGEST_SETTLE seconds of the moment it was hashed could change again within the same
 * timestamp tick (ext4 stamps with a coarse clock) and keep its stat data. Such a file is just
 * hashed again next time.
 *
 * The cache is one text file, replaced atomically (temp file + rename) after each run that
 * hashed something; concurrent runs may lose each other's new entries, never corrupt them.
 * Every failure here is silent: the cache only ever saves work. */
#include "report/digest_cache.h"

#include "cquant/sha256.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { MAX_ENTRIES = 4096, MAX_FILE = 4 << 20, SETTLE_DEFAULT = 2 };

typedef struct entry {
    unsigned long long dev, ino;
    long long size, mtime_s, mtime_ns, ctime_s, ctime_ns;
    uint8_t digest[32];
    char *path;
} entry;

struct cq_digest_cache {
    char *file; /* NULL: disabled */
    entry *e;
    size_t n, cap;
    int dirty;
    long settle;
};

/* Where the cache lives: $CQ_DIGEST_CACHE (a file; "off" or "" disables it), else
 * $XDG_CACHE_HOME/cquant/digests, else $HOME/.cache/cquant/digests. */
static char *cache_file(void)
{
    const char *v = getenv("CQ_DIGEST_CACHE");
    if (v)
        return *v && strcmp(v, "off") != 0 && strcmp(v, "0") != 0 ? strdup(v) : NULL;
    const char *base = getenv("XDG_CACHE_HOME"), *suffix = "/cquant/digests";
    if (!base || base[0] != '/') {
        base = getenv("HOME");
        suffix = "/.cache/cquant/digests";
    }
    if (!base || base[0] != '/')
        return NULL;
    size_t n = strlen(base) + strlen(suffix) + 1;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s%s", base, suffix);
    return p;
}

static int hexval(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int parse_hex(const char *s, uint8_t d[32])
{
    for (int i = 0; i < 32; i++) {
        int a = hexval(s[2 * i]), b = a < 0 ? -1 : hexval(s[2 * i + 1]);
        if (b < 0)
            return -1;
        d[i] = (uint8_t)(a << 4 | b);
    }
    return s[64] == ' ' ? 0 : -1;
}

static int add(cq_digest_cache *c, const entry *x)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 16;
        entry *p = realloc(c->e, cap * sizeof *p);
        if (!p)
            return -1;
        c->e = p;
        c->cap = cap;
    }
    c->e[c->n] = *x;
    if (!(c->e[c->n].path = strdup(x->path)))
        return -1;
    c->n++;
    return 0;
}

/* One line: "dev ino size mtime_s mtime_ns ctime_s ctime_ns sha256hex path". Malformed lines
 * are dropped. */
static void parse_line(cq_digest_cache *c, char *line)
{
    entry x;
    int used = 0;
    if (sscanf(line, "%llu %llu %lld %lld %lld %lld %lld %n", &x.dev, &x.ino, &x.size,
               &x.mtime_s, &x.mtime_ns, &x.ctime_s, &x.ctime_ns, &used) != 7 || used == 0 ||
        strlen(line + used) < 66 || parse_hex(line + used, x.digest) != 0)
        return;
    x.path = line + used + 65;
    if (x.path[0] == '/' && c->n < MAX_ENTRIES)
        add(c, &x);
}

cq_digest_cache *cq_digest_cache_open(void)
{
    cq_digest_cache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    const char *st = getenv("CQ_DIGEST_SETTLE");
    c->settle = st ? strtol(st, NULL, 10) : SETTLE_DEFAULT;
    if (!(c->file = cache_file()))
        return c;
    FILE *f = fopen(c->file, "re");
    if (!f)
        return c;
    char *line = NULL;
    size_t cap = 0, total = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) > 0 && (total += (size_t)len) <= MAX_FILE) {
        if (line[len - 1] == '\n')
            line[len - 1] = 0;
        parse_line(c, line);
    }
    free(line);
    fclose(f);
    return c;
}

static int same(const entry *e, const struct stat *st)
{
    return e->dev == (unsigned long long)st->st_dev && e->ino == (unsigned long long)st->st_ino &&
           e->size == (long long)st->st_size && e->mtime_s == (long long)st->st_mtim.tv_sec &&
           e->mtime_ns == (long long)st->st_mtim.tv_nsec &&
           e->ctime_s == (long long)st->st_ctim.tv_sec &&
           e->ctime_ns == (long long)st->st_ctim.tv_nsec;
}

/* The entry for the absolute path ABS, or NULL. */
static entry *find(cq_digest_cache *c, const char *abs)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->e[i].path, abs) == 0)
            return &c->e[i];
    return NULL;
}

int cq_digest_cache_get(cq_digest_cache *c, const char *path, uint8_t digest[32],
                        int64_t *bytes, struct stat *st)
{
    char abs[PATH_MAX];
    if (!c || !c->file || !realpath(path, abs) || stat(abs, st) != 0 || !S_ISREG(st->st_mode)) {
        memset(st, 0, sizeof *st);
        return 0;
    }
    entry *e = find(c, abs);
    if (!e || !same(e, st))
        return 0;
    memcpy(digest, e->digest, 32);
    *bytes = (int64_t)st->st_size;
    return 1;
}

void cq_digest_cache_put(cq_digest_cache *c, const char *path, const struct stat *before,
                         const uint8_t digest[32])
{
    char abs[PATH_MAX];
    struct stat st;
    if (!c || !c->file || !realpath(path, abs) || stat(abs, &st) != 0 || !S_ISREG(st.st_mode))
        return;
    /* changed while it was hashed, or too recently to trust the stamps: not stored */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    if (!before || before->st_ino == 0 || before->st_ino != st.st_ino || before->st_dev != st.st_dev ||
        before->st_size != st.st_size ||
        before->st_mtim.tv_sec != st.st_mtim.tv_sec ||
        before->st_mtim.tv_nsec != st.st_mtim.tv_nsec ||
        before->st_ctim.tv_sec != st.st_ctim.tv_sec ||
        before->st_ctim.tv_nsec != st.st_ctim.tv_nsec ||
        now.tv_sec - st.st_mtim.tv_sec <= c->settle || now.tv_sec - st.st_ctim.tv_sec <= c->settle)
        return;
    entry x = {.dev = (unsigned long long)st.st_dev, .ino = (unsigned long long)st.st_ino,
               .size = (long long)st.st_size, .mtime_s = (long long)st.st_mtim.tv_sec,
               .mtime_ns = (long long)st.st_mtim.tv_nsec, .ctime_s = (long long)st.st_ctim.tv_sec,
               .ctime_ns = (long long)st.st_ctim.tv_nsec, .path = abs};
    memcpy(x.digest, digest, 32);
    entry *e = find(c, abs);
    if (e) {
        char *keep = e->path;
        *e = x;
        e->path = keep;
    } else {
        if (c->n >= MAX_ENTRIES) { /* drop the oldest (the first) */
            free(c->e[0].path);
            memmove(c->e, c->e + 1, (c->n - 1) * sizeof *c->e);
            c->n--;
        }
        if (add(c, &x) != 0)
            return;
    }
    c->dirty = 1;
}

/* mkdir -p of the folder holding FILE. */
static void make_parent(const char *file)
{
    char *d = strdup(file);
    if (!d)
        return;
    for (char *p = d + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(d, 0700);
            *p = '/';
        }
    free(d);
}

static void save(const cq_digest_cache *c)
{
    size_t n = strlen(c->file) + 16;
    char *tmp = malloc(n);
    if (!tmp)
        return;
    snprintf(tmp, n, "%s.XXXXXX", c->file);
    make_parent(c->file);
    int fd = mkostemp(tmp, O_CLOEXEC);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        if (fd >= 0) {
            close(fd);
            unlink(tmp);
        }
        free(tmp);
        return;
    }
    int bad = 0;
    for (size_t i = 0; i < c->n && !bad; i++) {
        const entry *e = &c->e[i];
        char hex[65];
        cq_sha256_to_hex(e->digest, hex);
        if (strchr(e->path, '\n'))
            continue;
        bad = fprintf(f, "%llu %llu %lld %lld %lld %lld %lld %s %s\n", e->dev, e->ino, e->size,
                      e->mtime_s, e->mtime_ns, e->ctime_s, e->ctime_ns, hex, e->path) < 0;
    }
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, c->file) != 0)
        unlink(tmp);
    free(tmp);
}

void cq_digest_cache_close(cq_digest_cache *c)
{
    if (!c)
        return;
    if (c->dirty && c->file)
        save(c);
    for (size_t i = 0; i < c->n; i++)
        free(c->e[i].path);
    free(c->e);
    free(c->file);
    free(c);
}
