/* Atomic outputs and interruption.
 *
 * Output folder: cq_outdir_begin creates "<final>.cquant-tmp" beside the destination (a fixed
 * name, so a later run can find it) holding a lock file ".cquant.lock" with an flock held for
 * the life of the cq_outdir. Everything is written inside cq_outdir_path(); cq_outdir_commit
 * fsyncs every file and the folder, then renames it into place, so the destination is either
 * absent (or the old one) or complete. With force, an existing destination is first renamed to
 * "<final>.cquant-old" and deleted only after the new folder has been renamed into place.
 * A temp folder whose lock is held belongs to a live run: begin fails with CQ_E_EXISTS. A temp
 * folder whose lock is free was left by a run that died (SIGKILL, power loss): begin deletes it,
 * cq_outdir_resume keeps its contents.
 *
 * Output file: cq_atomic_file_* write "<final>.cquant-tmp.XXXXXX" and rename it into place.
 *
 * Signals: cq_signals_install() catches SIGINT and SIGTERM. The first only sets a flag that
 * long loops read through cq_interrupted(); they return CQ_E_INTERRUPTED and clean up normally
 * (cq_outdir_abort). A second signal means "stop now": the handler deletes the registered
 * temporary folders and files with async-signal-safe calls only and _exits with 130. */
#ifndef CQUANT_OUTDIR_H
#define CQUANT_OUTDIR_H

#include "cquant/error.h"

#include <stddef.h>

typedef struct cq_outdir {
    char *final_path;
    char *tmp_path;
    int lock_fd;  /* -1 when not active */
    int force;
    int slot;     /* signal-cleanup registry slot, -1 when none */
    int no_sync;  /* set before commit: rename without fsyncs (survives a crash of the
                   * process, not a power loss: the folder may then be incomplete) */
} cq_outdir;

#define CQ_OUTDIR_LOCK ".cquant.lock"

/* Start writing FINAL_PATH (a folder). CQ_E_EXISTS when it exists and !force, or when another
 * run holds its temp folder. A zeroed or failed cq_outdir is safe to abort. */
int cq_outdir_begin(cq_outdir *o, const char *final_path, int force, cq_error *err);
/* As begin, but keep the files of a stale temp folder (for --resume); *resumed is set to 1
 * when one was found. */
int cq_outdir_resume(cq_outdir *o, const char *final_path, int force, int *resumed,
                     cq_error *err);
const char *cq_outdir_path(const cq_outdir *o);
int cq_outdir_commit(cq_outdir *o, cq_error *err);
/* Remove the temp folder and release the lock. NULL-safe, idempotent. */
void cq_outdir_abort(cq_outdir *o);
/* Stop without committing but leave the temp folder for a later cq_outdir_resume (a run that
 * saved resume state and stops on purpose: interrupted, or refusing to resume). NULL-safe. */
void cq_outdir_keep(cq_outdir *o);

typedef struct cq_atomic_file {
    char *final_path;
    char *tmp_path;
    int fd;    /* -1 when not active */
    int force;
    int slot;
} cq_atomic_file;

int cq_atomic_file_begin(cq_atomic_file *f, const char *final_path, int force, cq_error *err);
int cq_atomic_file_write(cq_atomic_file *f, const void *data, size_t n, cq_error *err);
/* fsync, rename into place (refusing to replace an existing file unless force), fsync the
 * folder. On failure the temp file is removed. A new file (!force) inside an output folder
 * this process is building (cq_outdir_begin/resume, not yet committed) skips both fsyncs:
 * cq_outdir_commit syncs every file of the folder before renaming it into place. */
int cq_atomic_file_commit(cq_atomic_file *f, cq_error *err);
void cq_atomic_file_abort(cq_atomic_file *f);
/* Write N bytes to PATH atomically in one call. */
int cq_atomic_write(const char *path, const void *data, size_t n, int force, cq_error *err);

/* Remove PATH and everything under it (does not follow symlinks). 0 or -1 with errno. */
int cq_remove_tree(const char *path);
/* fsync PATH (a file or folder). 0 or -1 with errno. */
int cq_fsync_path(const char *path);

void cq_signals_install(void);
/* 1 after SIGINT/SIGTERM was received. */
int cq_interrupted(void);
/* For tests: clear the flag. */
void cq_interrupted_reset(void);

#endif
