/* See cquant/file.h. */
#include "cquant/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static int too_large(const char *path, uint64_t n, size_t max, cq_error *err)
{
    return cq_errorf(err, CQ_E_FORMAT, "'%s': %llu bytes is over the %zu-byte limit", path,
                     (unsigned long long)n, max);
}

/* Read to EOF into *buf (capacity *cap, grown as needed), at most max + 1 bytes. */
static int read_all(int fd, const char *path, size_t max, char **buf, size_t *cap, size_t *len,
                    cq_error *err)
{
    for (;;) {
        if (*len == *cap) {
            size_t nc = *cap < max / 2 ? *cap * 2 + 4096 : max + 1;
            if (nc <= *cap)
                return too_large(path, *len, max, err);
            char *nb = realloc(*buf, nc + 1);
            if (!nb)
                return cq_errorf(err, CQ_E_NOMEM, "'%s': out of memory", path);
            *buf = nb;
            *cap = nc;
        }
        ssize_t r = read(fd, *buf + *len, *cap - *len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return cq_errorf_errno(err, CQ_E_IO, "'%s': read failed", path);
        if (r == 0)
            return *len > max ? too_large(path, *len, max, err) : CQ_OK;
        *len += (size_t)r;
    }
}

int cq_read_file(const char *path, size_t max_bytes, unsigned flags, char **data, size_t *len,
                 cq_error *err)
{
    *data = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        if ((flags & CQ_READ_MISSING_OK) && errno == ENOENT)
            return CQ_OK;
        return cq_errorf_errno(err, CQ_E_IO, "'%s': cannot open", path);
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return cq_errorf(err, CQ_E_IO, "'%s': not a regular file", path);
    }
    if ((uint64_t)st.st_size > max_bytes) {
        close(fd);
        return too_large(path, (uint64_t)st.st_size, max_bytes, err);
    }
    /* st_size is a hint (the file may change while read): one extra byte sees growth at once */
    size_t cap = (size_t)st.st_size + 1, n = 0;
    char *buf = malloc(cap + 1);
    int rc = buf ? read_all(fd, path, max_bytes, &buf, &cap, &n, err)
                 : cq_errorf(err, CQ_E_NOMEM, "'%s': out of memory", path);
    close(fd);
    if (rc != CQ_OK) {
        free(buf);
        return rc;
    }
    buf[n] = 0;
    *data = buf;
    *len = n;
    return CQ_OK;
}
