/* LD_PRELOAD shim for scripts/fault_inject.sh: injected write failures where no small tmpfs can
 * be mounted (CI without root). Built by the script with `cc -shared -fPIC`; not linked into
 * anything. Environment:
 *   CQ_FAULT_WRITE_LIMIT=N  once N bytes have gone to regular files through write, pwrite,
 *                           pwrite64 or writev, every later such call fails with ENOSPC
 *                           (a disk that fills up mid-run);
 *   CQ_FAULT_FSYNC_EIO=1    every fsync/fdatasync of a regular file fails with EIO (a disk that
 *                           loses writes at sync time).
 * Writes to non-regular files (stdout, stderr, pipes) pass through untouched. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static long long limit = -2, used;

static int regular(int fd)
{
    struct stat st;
    return fd > 2 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
}

/* 1 when a write of n bytes to fd must fail (errno set), else 0 (and the bytes are counted). */
static int refuse(int fd, size_t n)
{
    if (limit == -2) {
        const char *s = getenv("CQ_FAULT_WRITE_LIMIT");
        limit = s && *s ? atoll(s) : -1;
    }
    if (limit < 0 || !regular(fd))
        return 0;
    if (used + (long long)n > limit) {
        errno = ENOSPC;
        return 1;
    }
    used += (long long)n;
    return 0;
}

static int sync_fails(int fd)
{
    const char *s = getenv("CQ_FAULT_FSYNC_EIO");
    if (s && *s == '1' && regular(fd)) {
        errno = EIO;
        return 1;
    }
    return 0;
}

#define REAL(ret, name, ...)                                                                    \
    static ret (*real)(__VA_ARGS__);                                                            \
    if (!real)                                                                                  \
        real = (ret(*)(__VA_ARGS__))dlsym(RTLD_NEXT, name)

ssize_t write(int fd, const void *p, size_t n)
{
    REAL(ssize_t, "write", int, const void *, size_t);
    return refuse(fd, n) ? -1 : real(fd, p, n);
}

ssize_t pwrite(int fd, const void *p, size_t n, off_t off)
{
    REAL(ssize_t, "pwrite", int, const void *, size_t, off_t);
    return refuse(fd, n) ? -1 : real(fd, p, n, off);
}

ssize_t pwrite64(int fd, const void *p, size_t n, off_t off)
{
    REAL(ssize_t, "pwrite64", int, const void *, size_t, off_t);
    return refuse(fd, n) ? -1 : real(fd, p, n, off);
}

ssize_t writev(int fd, const struct iovec *v, int c)
{
    REAL(ssize_t, "writev", int, const struct iovec *, int);
    size_t n = 0;
    for (int i = 0; i < c; i++)
        n += v[i].iov_len;
    return refuse(fd, n) ? -1 : real(fd, v, c);
}

int fsync(int fd)
{
    REAL(int, "fsync", int);
    return sync_fails(fd) ? -1 : real(fd);
}

int fdatasync(int fd)
{
    REAL(int, "fdatasync", int);
    return sync_fails(fd) ? -1 : real(fd);
}
