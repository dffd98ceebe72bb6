/* Atomic output folders and files, and SIGINT/SIGTERM handling (see cquant/outdir.h).
 * The temp folder is created under a private mkdtemp name with its lock already held and then
 * renamed to the fixed name, so no other run can ever see it unlocked while we are alive. */
#include "cquant/outdir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ---- signal-time cleanup registry ---- */

#define SLOTS 16
#define SLOT_PATH 4096
static char slot_path[SLOTS][SLOT_PATH];
static volatile sig_atomic_t slot_kind[SLOTS]; /* 0 free, 1 folder, 2 file */
static volatile sig_atomic_t sig_count;

static int slot_add(const char *path, int kind)
{
    size_t n = strlen(path);
    if (n >= SLOT_PATH)
        return -1;
    for (int i = 0; i < SLOTS; i++)
        if (slot_kind[i] == 0) {
            memcpy(slot_path[i], path, n + 1);
            slot_kind[i] = kind; /* published after the path is complete */
            return i;
        }
    return -1; /* no slot: the temp is still removed by abort or by the next run */
}

static void slot_del(int *slot)
{
    if (*slot >= 0)
        slot_kind[*slot] = 0;
    *slot = -1;
}

struct dirent64_raw {
    unsigned long long ino;
    long long off;
    unsigned short reclen;
    unsigned char type;
    char name[];
};

/* Remove DIRFD's entry NAME and, for folders, its contents, using only async-signal-safe calls
 * (openat, getdents64, unlinkat, close). Depth is bounded: our temp folders are shallow. */
static void sigsafe_rm(int dirfd, const char *name, int depth)
{
    if (unlinkat(dirfd, name, 0) == 0 || errno != EISDIR || depth > 8)
        return;
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return;
    char buf[2048];
    for (int pass = 0; pass < 64; pass++) {
        long n, removed = 0;
        while ((n = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0) {
            for (long off = 0; off < n;) {
                struct dirent64_raw *d = (struct dirent64_raw *)(buf + off);
                off += d->reclen;
                if (strcmp(d->name, ".") == 0 || strcmp(d->name, "..") == 0)
                    continue;
                sigsafe_rm(fd, d->name, depth + 1);
                removed++;
            }
        }
        if (removed == 0)
            break;
        lseek(fd, 0, SEEK_SET);
    }
    close(fd);
    unlinkat(dirfd, name, AT_REMOVEDIR);
}

static void on_signal(int sig)
{
    (void)sig;
    if (sig_count++ == 0)
        return; /* first signal: loops see cq_interrupted() and clean up normally */
    for (int i = 0; i < SLOTS; i++)
        if (slot_kind[i])
            sigsafe_rm(AT_FDCWD, slot_path[i], 0);
    _exit(130);
}

void cq_signals_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int cq_interrupted(void) { return sig_count > 0; }
void cq_interrupted_reset(void) { sig_count = 0; }

/* ---- helpers ---- */

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)ftw;
    return (flag == FTW_DP ? rmdir(p) : unlink(p)) == 0 || errno == ENOENT ? 0 : -1;
}

int cq_remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode))
        return unlink(path);
    return nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

int cq_fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

static char *str_cat(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    char *s = malloc(na + nb + 1);
    if (s) {
        memcpy(s, a, na);
        memcpy(s + na, b, nb + 1);
    }
    return s;
}

/* fsync the folder holding PATH, so a rename of PATH is durable. */
static int fsync_parent(const char *path)
{
    char *dir = strdup(path);
    if (!dir)
        return -1;
    char *slash = strrchr(dir, '/');
    if (!slash)
        strcpy(dir, ".");
    else if (slash == dir)
        dir[1] = 0;
    else
        *slash = 0;
    int rc = cq_fsync_path(dir);
    free(dir);
    return rc;
}

/* rename without replacing an existing NEWP (renameat2 RENAME_NOREPLACE; link+unlink for
 * files where the file system lacks it). */
static int rename_noreplace(const char *oldp, const char *newp, int is_dir)
{
    if (renameat2(AT_FDCWD, oldp, AT_FDCWD, newp, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -1;
    if (is_dir) {
        struct stat st;
        if (lstat(newp, &st) == 0) {
            errno = EEXIST;
            return -1;
        }
        return rename(oldp, newp);
    }
    if (link(oldp, newp) != 0)
        return -1;
    return unlink(oldp);
}

/* Apply FN to every regular file and folder below DIRFD (depth-first, folders after their
 * contents), then to DIRFD itself. */
static int walk_tree(int dirfd, int depth, int (*fn)(int fd))
{
    int dup_fd = dup(dirfd);
    DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
    if (!d) {
        if (dup_fd >= 0)
            close(dup_fd);
        return -1;
    }
    rewinddir(d); /* the dup shares DIRFD's position, which an earlier walk left at the end */
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        int fd = openat(dirfd, e->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) {
            if (errno == ELOOP)
                continue; /* a symlink: nothing to sync */
            rc = -1;
            break;
        }
        struct stat st;
        if (fstat(fd, &st) != 0)
            rc = -1;
        else if (S_ISDIR(st.st_mode) && depth < 16)
            rc = walk_tree(fd, depth + 1, fn);
        else
            rc = fn(fd);
        close(fd);
    }
    closedir(d);
    return rc == 0 ? fn(dirfd) : rc;
}

/* Start writeback without waiting (Linux); advice only, so errors are left to fsync. */
static int start_writeback(int fd)
{
#if defined(__linux__)
    (void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
#else
    (void)fd;
#endif
    return 0;
}

/* ---- syncing a folder tree ---- */

typedef struct fd_list {
    int *fd;
    size_t n, cap;
    int err;          /* first errno of a failed fsync, 0 when none */
    size_t next;      /* work cursor for the sync threads */
    pthread_mutex_t lock;
} fd_list;

static fd_list *collect_into; /* walk_tree's callbacks take only an fd: see collect_tree */

static int collect_fd(int fd)
{
    fd_list *l = collect_into;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        int *p = realloc(l->fd, cap * sizeof *p);
        if (!p)
            return -1;
        l->fd = p;
        l->cap = cap;
    }
    int d = dup(fd);
    if (d < 0)
        return -1;
    l->fd[l->n++] = d;
    return 0;
}

/* Open fds of every regular file and folder below DIRFD and of DIRFD itself. Called with the
 * output folder under construction only, from one thread at a time (the commit). */
static int collect_tree(int dirfd, fd_list *l)
{
    static pthread_mutex_t walk_lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&walk_lock);
    collect_into = l;
    int rc = walk_tree(dirfd, 0, collect_fd);
    collect_into = NULL;
    pthread_mutex_unlock(&walk_lock);
    return rc;
}

static void *sync_worker(void *arg)
{
    fd_list *l = arg;
    for (;;) {
        pthread_mutex_lock(&l->lock);
        size_t i = l->next++;
        pthread_mutex_unlock(&l->lock);
        if (i >= l->n)
            return NULL;
        if (fsync(l->fd[i]) != 0) {
            int e = errno;
            pthread_mutex_lock(&l->lock);
            if (!l->err)
                l->err = e;
            pthread_mutex_unlock(&l->lock);
        }
    }
}

/* fsync every regular file and folder below DIRFD (the lock file included: harmless).
 * Writeback of all files is started first, so the disk gets one batch. The fsyncs then run
 * on several threads at once: each fsync of a file whose journal transaction is already
 * committed still sends the disk its own cache flush (ext4), 3-7 ms each on a virtual disk,
 * one after another; issued together, the block layer merges the flushes. */
enum { SYNC_THREADS = 8 };

static int fsync_tree(int dirfd, int depth)
{
    walk_tree(dirfd, depth, start_writeback);
    fd_list l = {.err = 0};
    pthread_t tid[SYNC_THREADS];
    int started = 0, rc = collect_tree(dirfd, &l);
    if (rc == 0) {
        pthread_mutex_init(&l.lock, NULL);
        for (; started < SYNC_THREADS && (size_t)started + 1 < l.n; started++)
            if (pthread_create(&tid[started], NULL, sync_worker, &l) != 0)
                break;
        sync_worker(&l);
        for (int k = 0; k < started; k++)
            pthread_join(tid[k], NULL);
        pthread_mutex_destroy(&l.lock);
        if (l.err) {
            errno = l.err;
            rc = -1;
        }
    }
    for (size_t i = 0; i < l.n; i++)
        close(l.fd[i]);
    free(l.fd);
    return rc;
}

/* ---- output folder ---- */

static int lock_path(const char *dir, char **out)
{
    *out = str_cat(dir, "/" CQ_OUTDIR_LOCK);
    return *out ? 0 : -1;
}

/* During commit the lock file waits beside the folder, as "<tmp>.lock", so that it is not part of
 * the output and a run killed between moving it and renaming the folder leaves a lock a later
 * run can test (before, a lockless folder was left that no run would ever clean). */
static char *side_lock_path(const cq_outdir *o) { return str_cat(o->tmp_path, ".lock"); }

/* A side lock whose owner died: move it back into the folder (when there is one) so the usual
 * stale-folder path takes over, or delete it. Returns 0, or CQ_E_EXISTS when a live run holds
 * it (that run is committing this output). */
static int recover_side_lock(const cq_outdir *o, int has_folder, cq_error *err)
{
    char *sp = side_lock_path(o), *lp = NULL;
    if (!sp)
        return cq_errorf(err, CQ_E_NOMEM, "out of memory");
    int rc = CQ_OK, fd = open(sp, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) != 0)
        rc = cq_errorf(err, CQ_E_EXISTS, "'%s' is being committed by another cquant run",
                       o->tmp_path);
    else if (fd >= 0 && has_folder && lock_path(o->tmp_path, &lp) == 0)
        rename(sp, lp);
    else if (fd >= 0)
        unlink(sp);
    if (fd >= 0)
        close(fd);
    free(lp);
    free(sp);
    return rc;
}

/* Take over an existing temp folder. Returns 1 when claimed (kept, lock held), 0 when there is
 * none any more (absent, or stale and removed), or a negative status. */
static int claim_existing(cq_outdir *o, int keep, cq_error *err)
{
    struct stat st;
    if (lstat(o->tmp_path, &st) != 0) {
        if (errno != ENOENT)
            return cq_errorf_errno(err, CQ_E_IO, "'%s': cannot stat", o->tmp_path);
        return recover_side_lock(o, 0, err); /* CQ_OK: no folder, nothing to claim */
    }
    if (!S_ISDIR(st.st_mode))
        return cq_errorf(err, CQ_E_EXISTS, "'%s' exists and is not a folder: remove it",
                         o->tmp_path);
    char *lp;
    if (lock_path(o->tmp_path, &lp) != 0)
        return cq_errorf(err, CQ_E_NOMEM, "out of memory");
    int fd = open(lp, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) { /* maybe killed while committing: see side_lock_path */
        int rc = recover_side_lock(o, 1, err);
        if (rc != CQ_OK) {
            free(lp);
            return rc;
        }
        fd = open(lp, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    }
    if (fd < 0) {
        int e = errno;
        free(lp);
        if (e == ENOENT)
            return cq_errorf(err, CQ_E_EXISTS,
                             "'%s' has no lock file (a run may be committing it): remove it by "
                             "hand if no cquant run is active", o->tmp_path);
        errno = e;
        return cq_errorf_errno(err, CQ_E_IO, "'%s': cannot open the lock file", o->tmp_path);
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        free(lp);
        if (e == EWOULDBLOCK)
            return cq_errorf(err, CQ_E_EXISTS, "'%s' is in use by another cquant run",
                             o->tmp_path);
        errno = e;
        return cq_errorf_errno(err, CQ_E_IO, "'%s': cannot lock", o->tmp_path);
    }
    /* The owner may have unlinked the lock (commit) between our open and flock. */
    struct stat a, b;
    int same = fstat(fd, &a) == 0 && stat(lp, &b) == 0 && a.st_dev == b.st_dev &&
               a.st_ino == b.st_ino;
    free(lp);
    if (!same) {
        close(fd);
        return 0;
    }
    if (keep) {
        o->lock_fd = fd;
        return 1;
    }
    char trash[64];
    snprintf(trash, sizeof trash, ".stale.%ld", (long)getpid());
    char *tp = str_cat(o->tmp_path, trash);
    int rc = CQ_OK;
    if (!tp)
        rc = cq_errorf(err, CQ_E_NOMEM, "out of memory");
    else if (rename(o->tmp_path, tp) != 0 || cq_remove_tree(tp) != 0)
        rc = cq_errorf_errno(err, CQ_E_IO, "'%s': cannot remove the stale temp folder",
                             o->tmp_path);
    free(tp);
    close(fd);
    return rc;
}

/* ---- leftovers of killed runs beside the temp folder ---- */

/* 1 when NAME is "<base>." followed by exactly six mkdtemp characters. */
static int is_private_name(const char *name, const char *base, size_t nb)
{
    if (strncmp(name, base, nb) != 0 || name[nb] != '.' || strlen(name + nb + 1) != 6)
        return 0;
    for (const char *c = name + nb + 1; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9')))
            return 0;
    return 1;
}

/* The pid of "<base>.stale.<pid>", or 0 when NAME is not one. */
static long stale_pid(const char *name, const char *base, size_t nb)
{
    static const char tag[] = ".stale.";
    if (strncmp(name, base, nb) != 0 || strncmp(name + nb, tag, sizeof tag - 1) != 0)
        return 0;
    char *end;
    long pid = strtol(name + nb + sizeof tag - 1, &end, 10);
    return *end == 0 && pid > 0 ? pid : 0;
}

/* Remove the private folder PATH when no live run holds its lock. A run killed between mkdtemp
 * and creating the lock left none: we create it ourselves, so a creator still between those two
 * steps finds the lock taken and retries under a new name (see create_fresh). */
static void sweep_private(const char *path)
{
    char *lp;
    if (lock_path(path, &lp) != 0)
        return;
    int fd = open(lp, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0) {
        struct stat a, b;
        if (fstat(fd, &a) == 0 && stat(lp, &b) == 0 && a.st_dev == b.st_dev &&
            a.st_ino == b.st_ino)
            cq_remove_tree(path);
    }
    if (fd >= 0)
        close(fd);
    free(lp);
}

/* Best effort: remove what runs for this output killed with SIGKILL left beside its temp
 * folder: a private "<tmp>.XXXXXX" not yet renamed (unlocked), and a "<tmp>.stale.<pid>" whose
 * remover is dead. Anything in use by a live run is left alone. */
static void sweep_leftovers(const cq_outdir *o)
{
    char *dir = strdup(o->tmp_path);
    if (!dir)
        return;
    char *slash = strrchr(dir, '/');
    const char *base = slash ? slash + 1 : dir;
    const char *parent = !slash ? "." : slash == dir ? "/" : dir;
    if (slash)
        *slash = 0;
    size_t nb = strlen(base);
    DIR *d = opendir(parent);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        long pid = stale_pid(e->d_name, base, nb);
        int priv = is_private_name(e->d_name, base, nb);
        if (!priv && !(pid > 0 && pid != (long)getpid() && kill((pid_t)pid, 0) != 0 &&
                       errno == ESRCH))
            continue;
        size_t np = strlen(parent) + strlen(e->d_name) + 2;
        char *p = malloc(np);
        struct stat st;
        if (p) {
            snprintf(p, np, "%s/%s", parent, e->d_name);
            if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
                if (priv)
                    sweep_private(p);
                else
                    cq_remove_tree(p);
            }
        }
        free(p);
    }
    if (d)
        closedir(d);
    free(dir);
}

/* Create the temp folder with its lock held. Returns 0, 1 when another run created it first
 * (or a sweep took our private folder), or a negative status. */
static int create_fresh(cq_outdir *o, cq_error *err)
{
    char *priv = str_cat(o->tmp_path, ".XXXXXX"), *lp = NULL;
    if (!priv)
        return cq_errorf(err, CQ_E_NOMEM, "out of memory");
    int rc = CQ_OK, fd = -1;
    if (!mkdtemp(priv)) {
        rc = cq_errorf_errno(err, CQ_E_IO, "'%s': cannot create a temp folder", priv);
        free(priv);
        return rc;
    }
    chmod(priv, 0755);
    if (lock_path(priv, &lp) != 0) {
        rc = cq_errorf(err, CQ_E_NOMEM, "out of memory");
        goto fail;
    }
    fd = open(lp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 && (errno == EEXIST || errno == ENOENT)) {
        free(lp); /* another run's sweep claimed our fresh folder: it removes it, we retry */
        free(priv);
        return 1;
    }
    if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (fd >= 0 && errno == EWOULDBLOCK) {
            close(fd); /* the same race, the sweep locked first */
            free(lp);
            free(priv);
            return 1;
        }
        rc = cq_errorf_errno(err, CQ_E_IO, "'%s': cannot create the lock file", priv);
        goto fail;
    }
    if (rename_noreplace(priv, o->tmp_path, 1) != 0) {
        if (errno == EEXIST || errno == ENOTEMPTY)
            rc = 1;
        else
            rc = cq_errorf_errno(err, CQ_E_IO, "'%s': cannot rename the temp folder", priv);
        goto fail;
    }
    o->lock_fd = fd;
    free(lp);
    free(priv);
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    cq_remove_tree(priv);
    free(lp);
    free(priv);
    return rc;
}

static int outdir_start(cq_outdir *o, const char *final_path, int force, int keep,
                        int *resumed, cq_error *err)
{
    memset(o, 0, sizeof *o);
    o->lock_fd = -1;
    o->slot = -1;
    o->force = force;
    o->final_path = strdup(final_path);
    o->tmp_path = str_cat(final_path, ".cquant-tmp");
    if (!o->final_path || !o->tmp_path)
        return cq_errorf(err, CQ_E_NOMEM, "out of memory");
    struct stat st;
    if (!force && lstat(final_path, &st) == 0)
        return cq_errorf(err, CQ_E_EXISTS, "'%s' exists (use --force to replace it)",
                         final_path);
    sweep_leftovers(o);
    for (int attempt = 0; attempt < 4; attempt++) {
        int rc = claim_existing(o, keep, err);
        if (rc < 0)
            return rc;
        if (rc == 1) {
            if (resumed)
                *resumed = 1;
            break;
        }
        rc = create_fresh(o, err);
        if (rc < 0)
            return rc;
        if (rc == 0)
            break;
    }
    if (o->lock_fd < 0)
        return cq_errorf(err, CQ_E_EXISTS, "'%s': another run keeps recreating it", o->tmp_path);
    o->slot = slot_add(o->tmp_path, 1);
    return CQ_OK;
}

int cq_outdir_begin(cq_outdir *o, const char *final_path, int force, cq_error *err)
{
    return outdir_start(o, final_path, force, 0, NULL, err);
}

int cq_outdir_resume(cq_outdir *o, const char *final_path, int force, int *resumed,
                     cq_error *err)
{
    *resumed = 0;
    return outdir_start(o, final_path, force, 1, resumed, err);
}

const char *cq_outdir_path(const cq_outdir *o) { return o->tmp_path; }

static void outdir_free(cq_outdir *o)
{
    slot_del(&o->slot);
    if (o->lock_fd >= 0)
        close(o->lock_fd);
    o->lock_fd = -1;
    free(o->final_path);
    free(o->tmp_path);
    o->final_path = o->tmp_path = NULL;
}

void cq_outdir_keep(cq_outdir *o)
{
    if (o)
        outdir_free(o);
}

void cq_outdir_abort(cq_outdir *o)
{
    if (!o)
        return;
    if (o->lock_fd >= 0 && o->tmp_path) {
        cq_remove_tree(o->tmp_path);
        /* a failed commit may have moved our lock beside the folder: delete it if it is ours */
        char *sp = side_lock_path(o);
        struct stat a, b;
        if (sp && fstat(o->lock_fd, &a) == 0 && stat(sp, &b) == 0 && a.st_dev == b.st_dev &&
            a.st_ino == b.st_ino)
            unlink(sp);
        free(sp);
    }
    outdir_free(o);
}

/* Move an existing destination aside (force); *aside is the path to delete after success. */
static int move_aside(cq_outdir *o, char **aside, cq_error *err)
{
    struct stat st;
    *aside = NULL;
    if (lstat(o->final_path, &st) != 0)
        return CQ_OK;
    if (!o->force)
        return cq_errorf(err, CQ_E_EXISTS, "'%s' exists (use --force to replace it)",
                         o->final_path);
    *aside = str_cat(o->final_path, ".cquant-old");
    if (!*aside)
        return cq_errorf(err, CQ_E_NOMEM, "out of memory");
    if (cq_remove_tree(*aside) != 0 || rename(o->final_path, *aside) != 0) {
        free(*aside);
        *aside = NULL;
        return cq_errorf_errno(err, CQ_E_IO, "'%s': cannot move the old output aside",
                               o->final_path);
    }
    return CQ_OK;
}

int cq_outdir_commit(cq_outdir *o, cq_error *err)
{
    if (!o || o->lock_fd < 0)
        return cq_errorf(err, CQ_E_INTERNAL, "commit of an output folder that is not open");
    int dfd = open(o->tmp_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return cq_errorf_errno(err, CQ_E_IO, "'%s': cannot open", o->tmp_path);
    /* The lock file must not end up in the output: it moves beside the folder (we keep holding
     * it; see side_lock_path) and is deleted once the folder is in place. Moved before the
     * sync, so that the folder's fsync covers the move too. */
    char *lp = NULL, *sp = side_lock_path(o);
    if (!sp || lock_path(o->tmp_path, &lp) != 0 || rename(lp, sp) != 0) {
        int rc = cq_errorf_errno(err, CQ_E_IO, "'%s': cannot move the lock file", o->tmp_path);
        free(lp);
        free(sp);
        close(dfd);
        return rc;
    }
    free(lp);
    if (!o->no_sync && fsync_tree(dfd, 0) != 0) {
        int rc = cq_errorf_errno(err, CQ_E_IO, "'%s': cannot sync", o->tmp_path);
        free(sp);
        close(dfd);
        return rc;
    }
    close(dfd);
    char *aside;
    int rc = move_aside(o, &aside, err);
    if (rc == CQ_OK && rename_noreplace(o->tmp_path, o->final_path, 1) != 0) {
        rc = cq_errorf_errno(err, CQ_E_IO, "'%s': cannot rename into place", o->final_path);
        if (aside)
            rename(aside, o->final_path);
        free(aside);
        aside = NULL;
    }
    if (rc != CQ_OK) {
        free(sp);
        return rc; /* the temp folder stays; abort removes it and the side lock */
    }
    if (!o->no_sync)
        fsync_parent(o->final_path);
    unlink(sp);
    free(sp);
    if (aside)
        cq_remove_tree(aside);
    free(aside);
    outdir_free(o);
    return CQ_OK;
}

/* ---- output file ---- */

int cq_atomic_file_begin(cq_atomic_file *f, const char *final_path, int force, cq_error *err)
{
    memset(f, 0, sizeof *f);
    f->fd = -1;
    f->slot = -1;
    f->force = force;
    struct stat st;
    if (!force && lstat(final_path, &st) == 0)
        return cq_errorf(err, CQ_E_EXISTS, "'%s' exists (use --force to replace it)",
                         final_path);
    f->final_path = strdup(final_path);
    f->tmp_path = str_cat(final_path, ".cquant-tmp.XXXXXX");
    if (!f->final_path || !f->tmp_path)
        return cq_errorf(err, CQ_E_NOMEM, "out of memory");
    f->fd = mkostemp(f->tmp_path, O_CLOEXEC);
    if (f->fd < 0)
        return cq_errorf_errno(err, CQ_E_IO, "'%s': cannot create a temp file", final_path);
    fchmod(f->fd, 0644);
    f->slot = slot_add(f->tmp_path, 2);
    return CQ_OK;
}

int cq_atomic_file_write(cq_atomic_file *f, const void *data, size_t n, cq_error *err)
{
    const char *p = data;
    while (n > 0) {
        ssize_t w = write(f->fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return cq_errorf_errno(err, CQ_E_IO, "'%s': write failed", f->final_path);
        p += w;
        n -= (size_t)w;
    }
    return CQ_OK;
}

static void atomic_free(cq_atomic_file *f)
{
    slot_del(&f->slot);
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
    free(f->final_path);
    free(f->tmp_path);
    f->final_path = f->tmp_path = NULL;
}

void cq_atomic_file_abort(cq_atomic_file *f)
{
    if (!f)
        return;
    if (f->fd >= 0 && f->tmp_path)
        unlink(f->tmp_path);
    atomic_free(f);
}

/* 1 when PATH lies inside an output folder this process is building (a registered temp
 * folder): cq_outdir_commit fsyncs every file there before the folder becomes visible, so a
 * file created there needs no sync of its own (each one forces a journal commit: ~1-7 ms). */
static int inside_live_outdir(const char *path)
{
    for (int i = 0; i < SLOTS; i++) {
        if (slot_kind[i] != 1)
            continue;
        size_t n = strlen(slot_path[i]);
        if (strncmp(path, slot_path[i], n) == 0 && path[n] == '/')
            return 1;
    }
    return 0;
}

int cq_atomic_file_commit(cq_atomic_file *f, cq_error *err)
{
    int rc = CQ_OK;
    if (f->fd < 0)
        return cq_errorf(err, CQ_E_INTERNAL, "commit of a file that is not open");
    /* A replaced file inside the folder (resume state) keeps its sync: resuming after a power
     * loss relies on it being either the old or the new state. */
    int sync = f->force || !inside_live_outdir(f->final_path);
    if (sync && fsync(f->fd) != 0)
        rc = cq_errorf_errno(err, CQ_E_IO, "'%s': fsync failed", f->final_path);
    else if (f->force ? rename(f->tmp_path, f->final_path) != 0
                      : rename_noreplace(f->tmp_path, f->final_path, 0) != 0)
        rc = errno == EEXIST
                 ? cq_errorf(err, CQ_E_EXISTS, "'%s' exists (use --force to replace it)",
                             f->final_path)
                 : cq_errorf_errno(err, CQ_E_IO, "'%s': cannot rename into place",
                                   f->final_path);
    if (rc != CQ_OK) {
        cq_atomic_file_abort(f);
        return rc;
    }
    if (sync)
        fsync_parent(f->final_path);
    atomic_free(f);
    return CQ_OK;
}

int cq_atomic_write(const char *path, const void *data, size_t n, int force, cq_error *err)
{
    cq_atomic_file f;
    int rc = cq_atomic_file_begin(&f, path, force, err);
    if (rc == CQ_OK)
        rc = cq_atomic_file_write(&f, data, n, err);
    if (rc == CQ_OK)
        return cq_atomic_file_commit(&f, err);
    cq_atomic_file_abort(&f);
    return rc;
}
