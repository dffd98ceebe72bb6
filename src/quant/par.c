/* Fork-join over rows (see par.h). Threads are created per call: GPTQ calls this once per
 * block of 128 columns, i.e. tens of times per layer, where thread creation (~20 us) is noise
 * next to the block's work, and a persistent pool would need shutdown handling in every caller. */
#include "quant/par.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

typedef struct job {
    cq_rows_fn fn;
    void *ctx;
    int64_t r0, r1;
    int worker;
} job;

static void *trampoline(void *arg)
{
    job *j = arg;
    j->fn(j->ctx, j->r0, j->r1, j->worker);
    return NULL;
}

int cq_par_workers(int threads, int64_t rows)
{
    long n = threads > 0 ? threads : sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        n = 1;
    if (n > 256)
        n = 256;
    if (n > rows)
        n = rows > 0 ? (long)rows : 1;
    return (int)n;
}

void cq_par_rows(int workers, int64_t rows, cq_rows_fn fn, void *ctx)
{
    if (workers <= 1 || rows <= 1) {
        fn(ctx, 0, rows, 0);
        return;
    }
    job *jobs = calloc((size_t)workers, sizeof *jobs);
    pthread_t *tid = calloc((size_t)workers, sizeof *tid);
    char *started = calloc((size_t)workers, 1);
    if (!jobs || !tid || !started) {
        free(jobs);
        free(tid);
        free(started);
        fn(ctx, 0, rows, 0); /* same bytes, just slower */
        return;
    }
    for (int w = 0; w < workers; w++) {
        jobs[w] = (job){fn, ctx, rows * w / workers, rows * (w + 1) / workers, w};
        if (w > 0)
            started[w] = pthread_create(&tid[w], NULL, trampoline, &jobs[w]) == 0;
    }
    trampoline(&jobs[0]);
    for (int w = 1; w < workers; w++) {
        if (started[w])
            pthread_join(tid[w], NULL);
        else
            trampoline(&jobs[w]);
    }
    free(jobs);
    free(tid);
    free(started);
}

double cq_par_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
