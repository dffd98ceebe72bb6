/* Atomic output folders/files: commit, abort, exists/force, a live run's lock, stale temp
 * folders from killed runs, resume, and the two-signal exit path. */
#include "cq_test.h"

#include "cquant/outdir.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char *path_of(const char *name)
{
    static char buf[4][4096];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", cq_test_tmpdir(), name);
    return buf[k];
}

static int exists(const char *p)
{
    struct stat st;
    return lstat(p, &st) == 0;
}

static void put(const char *dir, const char *name, const char *text)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static int has(const char *dir, const char *name, const char *text)
{
    char p[4200], buf[256] = {0};
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    return n == strlen(text) && memcmp(buf, text, n) == 0;
}

/* Number of entries of the test folder whose name contains S. */
static int count_named(const char *s)
{
    DIR *d = opendir(cq_test_tmpdir());
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += strstr(e->d_name, s) != NULL;
    if (d)
        closedir(d);
    return n;
}

CQ_TEST(commit_and_abort)
{
    cq_error err = CQ_ERROR_INIT;
    cq_outdir o;
    const char *fin = path_of("out1");
    CQ_CHECK_OK(cq_outdir_begin(&o, fin, 0, &err), &err);
    CQ_CHECK(strcmp(cq_outdir_path(&o), path_of("out1.cquant-tmp")) == 0);
    put(cq_outdir_path(&o), "a.txt", "hello");
    CQ_CHECK(!exists(fin));
    CQ_CHECK_OK(cq_outdir_commit(&o, &err), &err);
    CQ_CHECK(has(fin, "a.txt", "hello"));
    CQ_CHECK(!exists(path_of("out1/" CQ_OUTDIR_LOCK)));
    CQ_CHECK(!exists(path_of("out1.cquant-tmp")));
    /* exists without force: refused, nothing touched */
    CQ_CHECK(cq_outdir_begin(&o, fin, 0, &err) == CQ_E_EXISTS);
    CQ_CHECK(strstr(err.msg, "out1") && strstr(err.msg, "--force"));
    cq_outdir_abort(&o);
    CQ_CHECK(has(fin, "a.txt", "hello"));
    /* force: replaced after the new one is complete; the old copy is gone */
    cq_error_clear(&err);
    CQ_CHECK_OK(cq_outdir_begin(&o, fin, 1, &err), &err);
    put(cq_outdir_path(&o), "b.txt", "new");
    CQ_CHECK(has(fin, "a.txt", "hello")); /* old output intact until commit */
    CQ_CHECK_OK(cq_outdir_commit(&o, &err), &err);
    CQ_CHECK(has(fin, "b.txt", "new") && !has(fin, "a.txt", "hello"));
    CQ_CHECK(!exists(path_of("out1.cquant-old")));
    /* abort leaves nothing */
    CQ_CHECK_OK(cq_outdir_begin(&o, path_of("out2"), 0, &err), &err);
    put(cq_outdir_path(&o), "x", "y");
    cq_outdir_abort(&o);
    cq_outdir_abort(&o); /* idempotent */
    cq_outdir_abort(NULL);
    CQ_CHECK(!exists(path_of("out2")) && !exists(path_of("out2.cquant-tmp")));
    CQ_CHECK_EQ_INT(count_named("out2"), 0);
}

CQ_TEST(live_lock)
{
    cq_error err = CQ_ERROR_INIT;
    cq_outdir a, b;
    CQ_CHECK_OK(cq_outdir_begin(&a, path_of("out3"), 0, &err), &err);
    put(cq_outdir_path(&a), "f", "1");
    /* a second run (flock conflicts across open file descriptions, even in one process) */
    CQ_CHECK(cq_outdir_begin(&b, path_of("out3"), 0, &err) == CQ_E_EXISTS);
    CQ_CHECK(strstr(err.msg, "in use by another cquant run") != NULL);
    cq_outdir_abort(&b); /* must not delete a's folder */
    CQ_CHECK(has(path_of("out3.cquant-tmp"), "f", "1"));
    CQ_CHECK_OK(cq_outdir_commit(&a, &err), &err);
    CQ_CHECK(has(path_of("out3"), "f", "1"));
}

/* A child that starts an output, writes part of a file, tells us, and waits to be killed. */
static pid_t start_child(const char *final, int folder)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        cq_error err = CQ_ERROR_INIT;
        if (folder) {
            cq_outdir o;
            if (cq_outdir_begin(&o, final, 0, &err) != CQ_OK)
                _exit(3);
            put(cq_outdir_path(&o), "partial.safetensors", "half of it");
        } else {
            cq_atomic_file f;
            if (cq_atomic_file_begin(&f, final, 0, &err) != CQ_OK ||
                cq_atomic_file_write(&f, "half", 4, &err) != CQ_OK)
                _exit(3);
        }
        if (write(fds[1], "r", 1) != 1)
            _exit(4);
        for (;;)
            pause();
    }
    close(fds[1]);
    char c;
    if (read(fds[0], &c, 1) != 1)
        pid = -1;
    close(fds[0]);
    return pid;
}

CQ_TEST(killed_child)
{
    const char *fin = path_of("out4");
    pid_t pid = start_child(fin, 1);
    CQ_CHECK(pid > 0);
    if (pid <= 0)
        return;
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    CQ_CHECK(!exists(fin));                        /* nothing at the destination */
    CQ_CHECK(exists(path_of("out4.cquant-tmp"))); /* the stale temp is left... */
    cq_error err = CQ_ERROR_INIT;
    cq_outdir o;
    int resumed = 0;
    /* ...and a --resume run keeps its files, */
    CQ_CHECK_OK(cq_outdir_resume(&o, fin, 0, &resumed, &err), &err);
    CQ_CHECK_EQ_INT(resumed, 1);
    CQ_CHECK(has(cq_outdir_path(&o), "partial.safetensors", "half of it"));
    cq_outdir_abort(&o);
    /* while a fresh run deletes them */
    pid = start_child(fin, 1);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    CQ_CHECK_OK(cq_outdir_begin(&o, fin, 0, &err), &err);
    CQ_CHECK(!has(cq_outdir_path(&o), "partial.safetensors", "half of it"));
    CQ_CHECK_OK(cq_outdir_commit(&o, &err), &err);
    CQ_CHECK(exists(fin) && !has(fin, "partial.safetensors", "half of it"));
    CQ_CHECK_EQ_INT(count_named("stale"), 0);
    /* single file: killed mid-write leaves no destination */
    const char *ff = path_of("calib.bin");
    pid = start_child(ff, 0);
    CQ_CHECK(pid > 0);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    CQ_CHECK(!exists(ff));
}

/* A run killed inside commit, after its lock left the folder and before the rename (found by
 * scripts/fault_inject.sh: every later run then refused the lockless folder). The state is
 * crafted: OUT.cquant-tmp without a lock, and the lock beside it as OUT.cquant-tmp.lock. */
CQ_TEST(killed_in_commit)
{
    char fin[4096], tmp[4096], side[4096]; /* path_of's buffers rotate: keep copies */
    snprintf(fin, sizeof fin, "%s", path_of("out9"));
    snprintf(tmp, sizeof tmp, "%s", path_of("out9.cquant-tmp"));
    snprintf(side, sizeof side, "%s", path_of("out9.cquant-tmp.lock"));
    cq_error err = CQ_ERROR_INIT;
    cq_outdir o;
    CQ_CHECK(mkdir(tmp, 0755) == 0);
    put(tmp, "model.safetensors", "complete");
    put(cq_test_tmpdir(), "out9.cquant-tmp.lock", "");
    /* while a live run holds the side lock, it is committing: refuse, touch nothing */
    int fd = open(side, O_RDWR);
    CQ_CHECK(fd >= 0 && flock(fd, LOCK_EX) == 0);
    CQ_CHECK_EQ_INT(cq_outdir_begin(&o, fin, 0, &err), CQ_E_EXISTS);
    CQ_CHECK(strstr(err.msg, "being committed") != NULL);
    cq_outdir_abort(&o); /* a failed begin is released by abort (it holds no lock) */
    CQ_CHECK(has(tmp, "model.safetensors", "complete") && exists(side));
    close(fd);
    /* its owner died: a resume run takes the folder over with the lock moved back in */
    int resumed = 0;
    err = (cq_error)CQ_ERROR_INIT;
    CQ_CHECK_OK(cq_outdir_resume(&o, fin, 0, &resumed, &err), &err);
    CQ_CHECK_EQ_INT(resumed, 1);
    CQ_CHECK(has(cq_outdir_path(&o), "model.safetensors", "complete") && !exists(side));
    /* a commit leaves neither the side lock nor a lock inside the output */
    CQ_CHECK_OK(cq_outdir_commit(&o, &err), &err);
    CQ_CHECK(!exists(side) && !exists(path_of("out9/" CQ_OUTDIR_LOCK)) && !exists(tmp));
    /* a fresh run removes the stale folder; a stale side lock with no folder is deleted */
    CQ_CHECK(mkdir(tmp, 0755) == 0);
    put(cq_test_tmpdir(), "out9.cquant-tmp.lock", "");
    CQ_CHECK_OK(cq_outdir_begin(&o, path_of("out9"), 1, &err), &err);
    CQ_CHECK(!exists(side) && !has(cq_outdir_path(&o), "model.safetensors", "complete"));
    cq_outdir_abort(&o);
    put(cq_test_tmpdir(), "out9.cquant-tmp.lock", "");
    CQ_CHECK_OK(cq_outdir_begin(&o, path_of("out9"), 1, &err), &err);
    CQ_CHECK(!exists(side));
    cq_outdir_abort(&o);
    CQ_CHECK(!exists(tmp) && !exists(side));
}

CQ_TEST(resume_fresh)
{
    cq_error err = CQ_ERROR_INIT;
    cq_outdir o;
    int resumed = 7;
    CQ_CHECK_OK(cq_outdir_resume(&o, path_of("out5"), 0, &resumed, &err), &err);
    CQ_CHECK_EQ_INT(resumed, 0);
    CQ_CHECK(exists(path_of("out5.cquant-tmp/" CQ_OUTDIR_LOCK)));
    cq_outdir_abort(&o);
    CQ_CHECK(!exists(path_of("out5.cquant-tmp")));
}

CQ_TEST(atomic_file)
{
    cq_error err = CQ_ERROR_INIT;
    const char *p = path_of("report.json");
    CQ_CHECK_OK(cq_atomic_write(p, "one", 3, 0, &err), &err);
    CQ_CHECK(has(cq_test_tmpdir(), "report.json", "one"));
    CQ_CHECK(cq_atomic_write(p, "two", 3, 0, &err) == CQ_E_EXISTS);
    CQ_CHECK(has(cq_test_tmpdir(), "report.json", "one"));
    cq_error_clear(&err);
    CQ_CHECK_OK(cq_atomic_write(p, "three", 5, 1, &err), &err);
    CQ_CHECK(has(cq_test_tmpdir(), "report.json", "three"));
    cq_atomic_file f;
    CQ_CHECK_OK(cq_atomic_file_begin(&f, path_of("aborted.bin"), 0, &err), &err);
    CQ_CHECK_OK(cq_atomic_file_write(&f, "x", 1, &err), &err);
    cq_atomic_file_abort(&f);
    CQ_CHECK(!exists(path_of("aborted.bin")));
    CQ_CHECK_EQ_INT(count_named("aborted.bin"), 0);
    CQ_CHECK_EQ_INT(count_named("report.json.cquant-tmp"), 0);
    /* the destination appearing between begin and commit is not overwritten without force */
    CQ_CHECK_OK(cq_atomic_file_begin(&f, path_of("race.bin"), 0, &err), &err);
    CQ_CHECK_OK(cq_atomic_file_write(&f, "mine", 4, &err), &err);
    put(cq_test_tmpdir(), "race.bin", "theirs");
    CQ_CHECK(cq_atomic_file_commit(&f, &err) == CQ_E_EXISTS);
    CQ_CHECK(has(cq_test_tmpdir(), "race.bin", "theirs"));
    CQ_CHECK_EQ_INT(count_named("race.bin.cquant-tmp"), 0);
}

CQ_TEST(signals)
{
    cq_signals_install();
    CQ_CHECK(!cq_interrupted());
    raise(SIGINT);
    CQ_CHECK(cq_interrupted());
    cq_interrupted_reset();
    CQ_CHECK(!cq_interrupted());
    /* a second signal removes the registered temp folder and exits with 130 */
    const char *fin = path_of("out6");
    pid_t pid = fork();
    if (pid == 0) {
        cq_error err = CQ_ERROR_INIT;
        cq_outdir o;
        cq_signals_install();
        if (cq_outdir_begin(&o, fin, 0, &err) != CQ_OK)
            _exit(3);
        mkdir(path_of("out6.cquant-tmp/sub"), 0755);
        put(path_of("out6.cquant-tmp/sub"), "deep", "x");
        put(cq_outdir_path(&o), "a", "x");
        raise(SIGTERM);
        if (!cq_interrupted())
            _exit(4);
        raise(SIGINT);
        _exit(5);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    CQ_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 130);
    CQ_CHECK(!exists(fin) && !exists(path_of("out6.cquant-tmp")));
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
}

/* A run killed with SIGKILL between mkdtemp and the rename leaves its private folder
 * ("<tmp>.XXXXXX", with or without its lock file), and one killed while removing a stale
 * folder leaves "<tmp>.stale.<pid>": the next run removes those whose owner is gone and
 * leaves alone a private folder whose lock a live run holds. */
CQ_TEST(killed_before_rename)
{
    char fin[4096], nolock[4096], unlocked[4096], held[4096], stale[4096];
    snprintf(fin, sizeof fin, "%s", path_of("out10"));
    snprintf(nolock, sizeof nolock, "%s", path_of("out10.cquant-tmp.AbC123"));
    snprintf(unlocked, sizeof unlocked, "%s", path_of("out10.cquant-tmp.xYz789"));
    snprintf(held, sizeof held, "%s", path_of("out10.cquant-tmp.HeLd00"));
    /* pid 0x7ffffffe is above any pid_max Linux allows (4194304), so it is never alive */
    snprintf(stale, sizeof stale, "%s", path_of("out10.cquant-tmp.stale.2147483646"));
    CQ_CHECK(mkdir(nolock, 0700) == 0 && mkdir(unlocked, 0700) == 0);
    CQ_CHECK(mkdir(held, 0700) == 0 && mkdir(stale, 0700) == 0);
    put(nolock, "model.safetensors", "half");
    put(unlocked, CQ_OUTDIR_LOCK, "");
    put(held, CQ_OUTDIR_LOCK, "");
    put(stale, "model.safetensors", "half");
    char lp[4200];
    snprintf(lp, sizeof lp, "%s/%s", held, CQ_OUTDIR_LOCK);
    int fd = open(lp, O_RDWR);
    CQ_CHECK(fd >= 0 && flock(fd, LOCK_EX) == 0);
    /* a name that only looks alike (seven characters) is not ours to touch */
    char other[4096];
    snprintf(other, sizeof other, "%s", path_of("out10.cquant-tmp.AbC1234"));
    CQ_CHECK(mkdir(other, 0700) == 0);
    cq_error err = CQ_ERROR_INIT;
    cq_outdir o;
    CQ_CHECK_OK(cq_outdir_begin(&o, fin, 0, &err), &err);
    CQ_CHECK(!exists(nolock) && !exists(unlocked) && !exists(stale));
    CQ_CHECK(exists(held) && exists(lp) && exists(other));
    CQ_CHECK_OK(cq_outdir_commit(&o, &err), &err);
    CQ_CHECK(exists(fin) && exists(held));
    close(fd);
    /* once its owner is gone, the next run for the same output removes it too */
    CQ_CHECK_OK(cq_outdir_begin(&o, fin, 1, &err), &err);
    CQ_CHECK(!exists(held) && exists(other));
    cq_outdir_abort(&o);
}
