/* cquant batch MANIFEST: run quantization jobs, each as its own `cquant <method>` process (the
 * binary re-executes itself through /proc/self/exe), up to --jobs at a time. A job whose output
 * is already there and matches is skipped; the summary (text, or --json) lists every job and the
 * exit code is 0 only when none failed (docs/batch.md). */
#include "batch.h"
#include "cli.h"

#include "cquant/json.h"
#include "cquant/log.h"
#include "cquant/outdir.h"
#include "quant/par.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CQ_EXIT_BATCH_FAILED 8 /* docs/cli.md: some batch job failed or did not run */
enum { CAPTURE_MAX = 1 << 20 };

typedef struct job_result {
    const char *status; /* ok | failed | skipped | not_run */
    int exit_code;      /* -1: never ran */
    double seconds;
    char error[700];
    char note[600];
    cJSON *summary;     /* the job's --json summary, when it printed one */
    double perplexity;  /* NaN: not asked or not available */
    const char *ppl_note;
} job_result;

typedef struct running {
    pid_t pid;
    int job, out_fd, err_fd;
    double t0;
} running;

/* An unlinked temporary file for a child's stdout or stderr. */
static int capture_fd(void)
{
    const char *dir = getenv("TMPDIR");
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/cquant-batch.XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkostemp(path, O_CLOEXEC);
    if (fd >= 0)
        unlink(path);
    return fd;
}

static int spawn(char *const *argv, running *r, cq_error *err)
{
    r->out_fd = capture_fd();
    r->err_fd = capture_fd();
    if (r->out_fd < 0 || r->err_fd < 0)
        return cq_errorf_errno(err, CQ_E_IO, "batch: cannot create a temporary file");
    fflush(NULL);
    r->t0 = cq_par_now();
    r->pid = fork();
    if (r->pid < 0)
        return cq_errorf_errno(err, CQ_E_IO, "batch: cannot start a job");
    if (r->pid == 0) {
        if (dup2(r->out_fd, 1) < 0 || dup2(r->err_fd, 2) < 0)
            _exit(127);
        execv(argv[0], argv);
        _exit(127);
    }
    return CQ_OK;
}

/* Up to CAPTURE_MAX bytes of a capture file, NUL-terminated (caller frees). */
static char *slurp(int fd, size_t *len)
{
    char *buf = malloc(CAPTURE_MAX + 1);
    *len = 0;
    if (!buf || lseek(fd, 0, SEEK_SET) < 0) {
        free(buf);
        return NULL;
    }
    ssize_t n;
    while (*len < CAPTURE_MAX && (n = read(fd, buf + *len, CAPTURE_MAX - *len)) > 0)
        *len += (size_t)n;
    buf[*len] = 0;
    return buf;
}

/* The last "cquant: error: ..." line of a child's stderr. */
static void last_error_line(const char *text, char *out, size_t n)
{
    const char *p = text, *hit = NULL;
    while ((p = strstr(p, "cquant: error: "))) {
        if (p == text || p[-1] == '\n')
            hit = p;
        p++;
    }
    if (hit)
        snprintf(out, n, "%.*s", (int)strcspn(hit + 15, "\n"), hit + 15);
}

static void finish(running *r, int status, job_result *res)
{
    size_t olen = 0, elen = 0;
    char *out = slurp(r->out_fd, &olen), *errtext = slurp(r->err_fd, &elen);
    cq_error perr = CQ_ERROR_INIT;
    res->seconds = cq_par_now() - r->t0;
    res->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    res->status = res->exit_code == 0 ? "ok" : "failed";
    if (out && olen && cq_json_parse(&res->summary, out, olen, "job output", &perr) != CQ_OK)
        res->summary = NULL;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(res->summary, "error");
    if (res->exit_code == 0)
        res->error[0] = 0;
    else if (cJSON_IsString(e))
        snprintf(res->error, sizeof res->error, "%s", e->valuestring);
    else if (errtext)
        last_error_line(errtext, res->error, sizeof res->error);
    if (res->exit_code != 0 && !res->error[0])
        snprintf(res->error, sizeof res->error, WIFEXITED(status) ? "exited with code %d"
                 : "killed by signal %d", WIFEXITED(status) ? res->exit_code : WTERMSIG(status));
    free(out);
    free(errtext);
    close(r->out_fd);
    close(r->err_fd);
    r->pid = 0;
}

/* Run ARGV to completion (for eval). */
static int run_sync(char *const *argv, job_result *tmp, cq_error *err)
{
    running r = {0};
    int st;
    int rc = spawn(argv, &r, err);
    if (rc != CQ_OK)
        return rc;
    while (waitpid(r.pid, &st, 0) < 0)
        if (errno != EINTR)
            return cq_errorf_errno(err, CQ_E_IO, "batch: waitpid");
    finish(&r, st, tmp);
    return CQ_OK;
}

/* Perplexity of the job's output on its "eval" text, through `cquant eval` when this build has
 * it (see docs/batch.md); otherwise it stays null with a note. */
static void eval_job(const cq_batch_job *j, const char *exe, const char *mem_opt,
                     job_result *res)
{
    if (!j->eval || strcmp(res->status, "failed") == 0)
        return;
    if (!cli_has_command("eval")) {
        res->ppl_note = "cquant eval is not in this build";
        return;
    }
    char *argv[] = {(char *)exe, "-q", "eval", "--json", j->output, j->eval, NULL, NULL};
    if (mem_opt[0]) { /* the job's share of --max-memory, before the positionals */
        memmove(argv + 5, argv + 4, 3 * sizeof *argv);
        argv[4] = (char *)mem_opt;
    }
    job_result ev = {.perplexity = NAN};
    cq_error err = CQ_ERROR_INIT;
    const cJSON *p;
    if (run_sync(argv, &ev, &err) != CQ_OK || ev.exit_code != 0)
        res->ppl_note = "cquant eval failed";
    else if (!cJSON_IsNumber(p = cJSON_GetObjectItemCaseSensitive(ev.summary, "perplexity")))
        res->ppl_note = "cquant eval printed no perplexity";
    else
        res->perplexity = p->valuedouble;
    cJSON_Delete(ev.summary);
}

typedef struct sched {
    const cq_batch *b;
    job_result *res;
    running *slots;
    int n_slots, active, next;
    bool keep_going, stop, force;
    const char *exe;
    char mem_opt[48]; /* "--max-memory=<bytes>": each job's share of batch --max-memory, or "" */
} sched;

static void progress(const sched *s, int i)
{
    const job_result *r = &s->res[i];
    if (r->exit_code > 0)
        cq_warn("batch: job '%s' failed (exit %d): %s", s->b->jobs[i].name, r->exit_code,
                r->error);
    else
        cq_info("batch: job '%s' %s (%.2f s)", s->b->jobs[i].name, r->status, r->seconds);
}

/* Start job i, or settle it without a process (already done). */
static int launch(sched *s, int i, cq_error *err)
{
    const cq_batch_job *j = &s->b->jobs[i];
    job_result *r = &s->res[i];
    double t0 = cq_par_now();
    if (cq_batch_is_done(j, r->note, sizeof r->note)) {
        r->status = "skipped";
        r->exit_code = 0;
        r->seconds = cq_par_now() - t0;
        eval_job(j, s->exe, s->mem_opt, r);
        progress(s, i);
        return CQ_OK;
    }
    char **argv = j->argv;
    bool force = r->note[0] && s->force; /* stale output: replace it, as asked */
    if (force || s->mem_opt[0]) {
        argv = calloc((size_t)j->argc + 3, sizeof *argv);
        if (!argv)
            return cq_errorf(err, CQ_E_NOMEM, "out of memory");
        /* after "<exe> -q <method>", before the job's own options (a job's own --max-memory
         * comes later and wins) and the "--" that ends options; the recorded command line
         * then holds them, which cq_batch_is_done ignores */
        int k = 3;
        memcpy(argv, j->argv, 3 * sizeof *argv);
        if (force)
            argv[k++] = "--force";
        if (s->mem_opt[0])
            argv[k++] = s->mem_opt;
        memcpy(argv + k, j->argv + 3, (size_t)(j->argc - 3) * sizeof *argv);
    }
    if (r->note[0] && !s->force)
        cq_warn("batch: job '%s': %s; use --force to replace it", j->name, r->note);
    running *slot = s->slots;
    while (slot->pid)
        slot++;
    slot->job = i;
    int rc = spawn(argv, slot, err);
    if (argv != j->argv)
        free(argv);
    if (rc == CQ_OK) {
        s->active++;
        r->status = "running";
    }
    return rc;
}

static void reap(sched *s, pid_t pid, int st)
{
    for (int k = 0; k < s->n_slots; k++) {
        if (s->slots[k].pid != pid)
            continue;
        int i = s->slots[k].job;
        finish(&s->slots[k], st, &s->res[i]);
        s->active--;
        eval_job(&s->b->jobs[i], s->exe, s->mem_opt, &s->res[i]);
        progress(s, i);
        if (s->res[i].exit_code != 0 && !s->keep_going)
            s->stop = true;
        return;
    }
}

static int run_all(sched *s, cq_error *err)
{
    bool signalled = false;
    int rc = CQ_OK;
    while (s->active > 0 || (s->next < s->b->n && !s->stop)) {
        while (rc == CQ_OK && s->active < s->n_slots && s->next < s->b->n && !s->stop)
            rc = launch(s, s->next++, err);
        if (rc != CQ_OK)
            s->stop = true;
        if (cq_interrupted() && !signalled) { /* pass the stop on; children clean up */
            s->stop = signalled = true;
            for (int k = 0; k < s->n_slots; k++)
                if (s->slots[k].pid)
                    kill(s->slots[k].pid, SIGTERM);
        }
        if (!s->active)
            continue;
        int st;
        pid_t pid = waitpid(-1, &st, WNOHANG);
        if (pid > 0)
            reap(s, pid, st);
        else
            nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
    }
    return rc;
}

static cJSON *job_json(const cq_batch_job *j, const job_result *r)
{
    cJSON *o = cJSON_CreateObject();
    const cJSON *rep = cJSON_GetObjectItemCaseSensitive(r->summary, "report");
    cJSON_AddStringToObject(o, "name", j->name);
    cJSON_AddStringToObject(o, "method", j->method);
    cJSON_AddStringToObject(o, "status", r->status);
    if (r->exit_code >= 0)
        cJSON_AddNumberToObject(o, "exit_code", r->exit_code);
    else
        cJSON_AddNullToObject(o, "exit_code");
    cJSON_AddStringToObject(o, "output", j->output);
    cJSON_AddNumberToObject(o, "seconds", r->seconds);
    if (cJSON_IsString(rep))
        cJSON_AddStringToObject(o, "report", rep->valuestring);
    else if (!strcmp(r->status, "skipped"))
        cJSON_AddStringToObject(o, "report", j->report);
    else
        cJSON_AddNullToObject(o, "report");
    if (r->error[0])
        cJSON_AddStringToObject(o, "error", r->error);
    else
        cJSON_AddNullToObject(o, "error");
    if (r->note[0])
        cJSON_AddStringToObject(o, "note", r->note);
    if (j->eval && !isnan(r->perplexity))
        cJSON_AddNumberToObject(o, "perplexity", r->perplexity);
    else
        cJSON_AddNullToObject(o, "perplexity");
    if (r->ppl_note)
        cJSON_AddStringToObject(o, "perplexity_note", r->ppl_note);
    cJSON *argv = cJSON_AddArrayToObject(o, "argv");
    for (int k = 1; argv && k < j->argc; k++) /* argv[0], the binary, is left out */
        cJSON_AddItemToArray(argv, cJSON_CreateString(j->argv[k]));
    return o;
}

static int count(const sched *s, const char *status)
{
    int n = 0;
    for (int i = 0; i < s->b->n; i++)
        n += !strcmp(s->res[i].status, status);
    return n;
}

static cJSON *summary(const sched *s, const char *manifest)
{
    cJSON *o = cJSON_CreateObject(), *jobs;
    cJSON_AddStringToObject(o, "manifest", manifest);
    cJSON_AddNumberToObject(o, "jobs_total", s->b->n);
    cJSON_AddNumberToObject(o, "succeeded", count(s, "ok"));
    cJSON_AddNumberToObject(o, "failed", count(s, "failed"));
    cJSON_AddNumberToObject(o, "skipped", count(s, "skipped"));
    cJSON_AddNumberToObject(o, "not_run", count(s, "not_run"));
    if ((jobs = cJSON_AddArrayToObject(o, "jobs")))
        for (int i = 0; i < s->b->n; i++)
            cJSON_AddItemToArray(jobs, job_json(&s->b->jobs[i], &s->res[i]));
    cJSON_AddBoolToObject(o, "ok", count(s, "failed") + count(s, "not_run") == 0);
    return o;
}

static void print_table(const sched *s)
{
    printf("%-20s %-8s %4s %8s  %s\n", "job", "status", "exit", "seconds", "output");
    for (int i = 0; i < s->b->n; i++) {
        const job_result *r = &s->res[i];
        char code[16] = "-";
        if (r->exit_code >= 0)
            snprintf(code, sizeof code, "%d", r->exit_code);
        printf("%-20s %-8s %4s %8.2f  %s\n", s->b->jobs[i].name, r->status, code, r->seconds,
               s->b->jobs[i].output);
        if (r->error[0])
            printf("%20s error: %s\n", "", r->error);
    }
    printf("%d jobs: %d ok, %d failed, %d skipped, %d not run\n", s->b->n, count(s, "ok"),
           count(s, "failed"), count(s, "skipped"), count(s, "not_run"));
}

int cmd_batch(cq_cli *cli, int argc, char **argv, cq_error *err)
{
    int jobs = 1;
    size_t max_memory = 0;
    sched s = {0};
    const cq_option opts[] = {
        OPT_BOOL('k', "keep-going", &s.keep_going, "run the other jobs after one fails"),
        OPT_INT('j', "jobs", &jobs, "N", "jobs run at the same time", 1, 64, NULL),
        OPT_SIZE(0, "max-memory", &max_memory, "SIZE",
                 "planned peak memory of the jobs running at once: each job (and its eval) gets "
                 "--max-memory SIZE/jobs; 0 = no limit"),
        OPT_BOOL(0, "force", &s.force,
                 "replace outputs made with other options or inputs (default: such a job fails)"),
        CQ_OPT_COMMON(&cli->common),
        OPT_END(),
    };
    int n = cli_parse(cli, opts, "cquant batch [--keep-going] [--jobs N] [--json] MANIFEST",
                      "Run the quantization jobs of MANIFEST (docs/batch.md); jobs whose output "
                      "exists and\nmatches are skipped.",
                      argc, argv, err),
        rc;
    if (n < 0 || cli->help_shown)
        return n < 0 ? n : CQ_OK;
    if ((rc = cli_expect_args(n, 1, "MANIFEST (a JSON file)", err)))
        return rc;
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0)
        return cq_errorf_errno(err, CQ_E_IO, "batch: cannot find the cquant binary");
    exe[len] = 0;
    cq_batch b;
    if ((rc = cq_batch_load(&b, argv[0], exe, err)) != CQ_OK)
        goto done;
    s = (sched){.b = &b, .keep_going = s.keep_going, .force = s.force, .exe = exe,
                .n_slots = jobs};
    if (max_memory)
        snprintf(s.mem_opt, sizeof s.mem_opt, "--max-memory=%zu", max_memory / (size_t)jobs);
    s.res = calloc((size_t)b.n, sizeof *s.res);
    s.slots = calloc((size_t)jobs, sizeof *s.slots);
    if (!s.res || !s.slots) {
        rc = cq_errorf(err, CQ_E_NOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < b.n; i++)
        s.res[i] = (job_result){.status = "not_run", .exit_code = -1, .perplexity = NAN};
    rc = run_all(&s, err);
    if (rc == CQ_OK) {
        cli->json = summary(&s, argv[0]);
        if (!cli->common.json)
            print_table(&s);
        if (cq_interrupted())
            cli->exit_code = CQ_EXIT_INTERRUPTED;
        else if (count(&s, "failed") + count(&s, "not_run")) {
            cli->exit_code = CQ_EXIT_BATCH_FAILED;
            fprintf(stderr, "cquant: error: batch: %d of %d jobs failed, %d not run\n",
                    count(&s, "failed"), b.n, count(&s, "not_run"));
        }
    }
done:
    for (int i = 0; s.res && i < b.n; i++)
        cJSON_Delete(s.res[i].summary);
    free(s.res);
    free(s.slots);
    cq_batch_free(&b);
    return rc;
}
