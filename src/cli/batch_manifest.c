/* Batch manifest parsing, job command lines and the "already done" check (see batch.h). */
#include "batch.h"

#include "cquant/json.h"
#include "cquant/report.h"
#include "cquant/safetensors.h"
#include "cquant/sha256.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const job_keys[] = {"name",   "model", "method", "options",
                                       "args",   "output", "calib", "eval"};
static const char *const methods[] = {"rtn", "gptq", "awq"};
/* Options the batch itself sets on every job. */
static const char *const reserved[] = {"output", "o", "json", "help", "h", "quiet", "verbose"};

static int in(const char *const *list, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(list[i], s))
            return 1;
    return 0;
}
#define IN(list, s) in((list), sizeof(list) / sizeof *(list), (s))

/* PATH as given when absolute, else BASE/PATH (BASE: the manifest's folder, absolute). */
static char *resolve(const char *base, const char *path)
{
    if (path[0] == '/')
        return strdup(path);
    size_t n = strlen(base) + strlen(path) + 2;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s/%s", base, path);
    return s;
}

static int push(cq_batch_job *j, const char *s, cq_error *err)
{
    char **argv = realloc(j->argv, (size_t)(j->argc + 2) * sizeof *argv);
    if (argv)
        j->argv = argv;
    char *copy = strdup(s);
    if (!argv || !copy) {
        free(copy);
        return cq_errorf(err, CQ_E_NOMEM, "out of memory");
    }
    j->argv[j->argc++] = copy;
    j->argv[j->argc] = NULL;
    return CQ_OK;
}

/* "--key=value": the = form keeps a value such as -1 from reading as an option. */
static int push_kv(cq_batch_job *j, const char *key, const cJSON *v, const char *what,
                   cq_error *err)
{
    char buf[4200];
    if (cJSON_IsString(v))
        snprintf(buf, sizeof buf, "--%s=%s", key, v->valuestring);
    else if (cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble) &&
             fabs(v->valuedouble) < 9e15)
        snprintf(buf, sizeof buf, "--%s=%lld", key, (long long)v->valuedouble);
    else if (cJSON_IsNumber(v))
        snprintf(buf, sizeof buf, "--%s=%.17g", key, v->valuedouble);
    else
        return cq_errorf(err, CQ_E_FORMAT, "%s: option '%s': expected a string, number, "
                         "boolean or array", what, key);
    return push(j, buf, err);
}

/* options {"bits": 4, "group": 128, "sym": false, "mse": true, "exclude": ["*.down_proj"]}:
 * key -> --key (underscores become dashes; group_size is --group), true -> --key,
 * false -> --no-key (sym: false -> --asym), arrays repeat the option. */
static int push_option(cq_batch_job *j, const cJSON *o, const char *what, cq_error *err)
{
    char key[64];
    if (strlen(o->string) >= sizeof key || !o->string[0])
        return cq_errorf(err, CQ_E_FORMAT, "%s: bad option name", what);
    snprintf(key, sizeof key, "%s", !strcmp(o->string, "group_size") ? "group" : o->string);
    for (char *p = key; *p; p++)
        *p = *p == '_' ? '-' : *p;
    if (IN(reserved, key))
        return cq_errorf(err, CQ_E_FORMAT, "%s: option '%s' is set by batch (use \"output\")",
                         what, key);
    char flag[80];
    if (cJSON_IsBool(o)) {
        if (!strcmp(key, "sym"))
            snprintf(flag, sizeof flag, "--%s", cJSON_IsTrue(o) ? "sym" : "asym");
        else
            snprintf(flag, sizeof flag, "--%s%s", cJSON_IsTrue(o) ? "" : "no-", key);
        return push(j, flag, err);
    }
    if (!cJSON_IsArray(o))
        return push_kv(j, key, o, what, err);
    int rc = CQ_OK;
    for (const cJSON *v = o->child; v && rc == CQ_OK; v = v->next)
        rc = push_kv(j, key, v, what, err);
    return rc;
}

static int get_str(const cJSON *o, const char *key, int required, const char **out,
                   const char *what, cq_error *err)
{
    *out = NULL;
    if (!required && !cq_json_has(o, key))
        return CQ_OK;
    int rc = cq_json_get_string(o, key, out, what, err);
    if (rc == CQ_OK && !(*out)[0])
        return cq_errorf(err, CQ_E_FORMAT, "'%s': key '%s' is empty", what, key);
    return rc;
}

static int build_argv(cq_batch_job *j, const cJSON *job, const char *exe, const char *what,
                      cq_error *err)
{
    const cJSON *opts = cJSON_GetObjectItemCaseSensitive(job, "options");
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(job, "args");
    int rc;
    if ((opts && !cJSON_IsObject(opts)) || (args && !cJSON_IsArray(args)))
        return cq_errorf(err, CQ_E_FORMAT, "%s: \"options\" must be an object and \"args\" an "
                         "array of strings", what);
    if ((rc = push(j, exe, err)) || (rc = push(j, "-q", err)) || (rc = push(j, j->method, err)))
        return rc;
    if (opts && (rc = cq_json_check_unique(opts, what, err)))
        return rc;
    for (const cJSON *o = opts ? opts->child : NULL; o && rc == CQ_OK; o = o->next)
        rc = push_option(j, o, what, err);
    for (const cJSON *a = args ? args->child : NULL; a && rc == CQ_OK; a = a->next)
        rc = cJSON_IsString(a) ? push(j, a->valuestring, err)
                               : cq_errorf(err, CQ_E_FORMAT, "%s: \"args\" holds a non-string",
                                           what);
    if (rc == CQ_OK && opts && cJSON_IsString(cJSON_GetObjectItemCaseSensitive(opts, "report")))
        j->report = strdup(cJSON_GetObjectItemCaseSensitive(opts, "report")->valuestring);
    if (rc || (rc = push(j, "--json", err)) || (rc = push(j, "-o", err)) ||
        (rc = push(j, j->output, err)) || (rc = push(j, "--", err)) ||
        (rc = push(j, j->model, err)))
        return rc;
    return j->calib ? push(j, j->calib, err) : CQ_OK;
}

static int load_job(cq_batch_job *j, const cJSON *job, int i, const char *base, const char *exe,
                    const char *manifest, cq_error *err)
{
    char what[600];
    const char *model, *output, *calib, *eval;
    snprintf(what, sizeof what, "'%s': jobs[%d]", manifest, i);
    if (!cJSON_IsObject(job))
        return cq_errorf(err, CQ_E_FORMAT, "%s is not an object", what);
    for (const cJSON *k = job->child; k; k = k->next)
        if (!IN(job_keys, k->string))
            return cq_errorf(err, CQ_E_FORMAT, "%s: unknown key '%s'", what, k->string);
    int rc = cq_json_check_unique(job, what, err);
    if (rc || (rc = get_str(job, "name", 1, &j->name, what, err)))
        return rc;
    snprintf(what, sizeof what, "'%s': job '%s'", manifest, j->name);
    if ((rc = get_str(job, "method", 1, &j->method, what, err)) ||
        (rc = get_str(job, "model", 1, &model, what, err)) ||
        (rc = get_str(job, "output", 1, &output, what, err)) ||
        (rc = get_str(job, "calib", 0, &calib, what, err)) ||
        (rc = get_str(job, "eval", 0, &eval, what, err)))
        return rc;
    if (!IN(methods, j->method))
        return cq_errorf(err, CQ_E_FORMAT, "%s: method '%s' is not rtn, gptq or awq", what,
                         j->method);
    j->model = resolve(base, model);
    j->output = resolve(base, output);
    j->calib = calib ? resolve(base, calib) : NULL;
    j->eval = eval ? resolve(base, eval) : NULL;
    if (!j->model || !j->output || (calib && !j->calib) || (eval && !j->eval))
        return cq_errorf(err, CQ_E_NOMEM, "out of memory");
    if ((rc = build_argv(j, job, exe, what, err)))
        return rc;
    if (!j->report) {
        size_t n = strlen(j->output) + sizeof CQ_REPORT_FILE + 1;
        if ((j->report = malloc(n)))
            snprintf(j->report, n, "%s/%s", j->output, CQ_REPORT_FILE);
    } else if (j->report[0] != '/') {
        char *abs = resolve(".", j->report); /* --report is relative to the working folder */
        free(j->report);
        j->report = abs;
    }
    return j->report ? CQ_OK : cq_errorf(err, CQ_E_NOMEM, "out of memory");
}

/* Two jobs with one name or one output folder would overwrite each other (in parallel: race). */
static int check_distinct(const cq_batch *b, const char *manifest, cq_error *err)
{
    for (int i = 0; i < b->n; i++)
        for (int k = 0; k < i; k++) {
            if (!strcmp(b->jobs[i].name, b->jobs[k].name))
                return cq_errorf(err, CQ_E_FORMAT, "'%s': two jobs are named '%s'", manifest,
                                 b->jobs[i].name);
            if (!strcmp(b->jobs[i].output, b->jobs[k].output))
                return cq_errorf(err, CQ_E_FORMAT, "'%s': jobs '%s' and '%s' write the same "
                                 "output '%s'", manifest, b->jobs[k].name, b->jobs[i].name,
                                 b->jobs[i].output);
        }
    return CQ_OK;
}

static int manifest_base(const char *manifest, char *base, size_t n, cq_error *err)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", manifest);
    char *slash = strrchr(dir, '/');
    if (slash)
        *(slash == dir ? slash + 1 : slash) = 0;
    else
        snprintf(dir, sizeof dir, ".");
    char *abs = realpath(dir, NULL);
    if (!abs)
        return cq_errorf_errno(err, CQ_E_IO, "'%s': cannot resolve its folder", manifest);
    snprintf(base, n, "%s", abs);
    free(abs);
    return CQ_OK;
}

int cq_batch_load(cq_batch *b, const char *manifest, const char *exe, cq_error *err)
{
    char base[PATH_MAX];
    memset(b, 0, sizeof *b);
    int rc = cq_json_load(&b->root, manifest, err);
    if (rc || (rc = manifest_base(manifest, base, sizeof base, err)))
        return rc;
    const cJSON *jobs = b->root;
    if (cJSON_IsObject(b->root)) {
        for (const cJSON *k = b->root->child; k; k = k->next)
            if (strcmp(k->string, "jobs") && strcmp(k->string, "comment"))
                return cq_errorf(err, CQ_E_FORMAT, "'%s': unknown key '%s'", manifest,
                                 k->string);
        if ((rc = cq_json_get_array(b->root, "jobs", &jobs, manifest, err)))
            return rc;
    }
    if (!cJSON_IsArray(jobs))
        return cq_errorf(err, CQ_E_FORMAT, "'%s': expected {\"jobs\": [...]} or an array of jobs",
                         manifest);
    int n = cJSON_GetArraySize(jobs), i = 0;
    if (n == 0)
        return cq_errorf(err, CQ_E_FORMAT, "'%s': no jobs", manifest);
    if (!(b->jobs = calloc((size_t)n, sizeof *b->jobs)))
        return cq_errorf(err, CQ_E_NOMEM, "out of memory");
    for (const cJSON *j = jobs->child; j && rc == CQ_OK; j = j->next, i++) {
        b->n = i + 1;
        rc = load_job(&b->jobs[i], j, i, base, exe, manifest, err);
    }
    if (rc == CQ_OK)
        rc = check_distinct(b, manifest, err);
    cq_error_printable(err);
    return rc;
}

void cq_batch_free(cq_batch *b)
{
    for (int i = 0; b && i < b->n; i++) {
        cq_batch_job *j = &b->jobs[i];
        for (int k = 0; k < j->argc; k++)
            free(j->argv[k]);
        free(j->argv);
        free(j->model);
        free(j->output);
        free(j->calib);
        free(j->eval);
        free(j->report);
    }
    if (b) {
        free(b->jobs);
        cJSON_Delete(b->root);
        memset(b, 0, sizeof *b);
    }
}

/* ---- already done? ---- */

/* Arguments that do not change the output: --force, and a memory limit (batch adds its
 * share of its own --max-memory). */
static int ignored_arg(const char *s)
{
    return !strcmp(s, "--force") || !strncmp(s, "--max-memory=", 13);
}

/* The recorded command line equals ours from argv[1] on (argv[0] is the binary's path, which
 * may move), ignoring --force (a rerun that replaced a stale output records it) and
 * --max-memory. */

static int same_command(const cJSON *rec, char *const *argv, int argc)
{
    const cJSON *a = rec && cJSON_IsArray(rec) ? rec->child : NULL;
    int i = 1;
    if (a)
        a = a->next;
    for (;;) {
        while (a && cJSON_IsString(a) && ignored_arg(a->valuestring))
            a = a->next;
        while (i < argc && ignored_arg(argv[i]))
            i++;
        if (!a || i >= argc)
            return !a && i >= argc;
        if (!cJSON_IsString(a) || strcmp(a->valuestring, argv[i]))
            return 0;
        a = a->next;
        i++;
    }
}

static const char *cq_str_or(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* Every recorded input still hashes the same, and every shard of the model was recorded. */
static int same_inputs(const cJSON *inputs, const char *model, char *why, size_t n)
{
    cq_error err = CQ_ERROR_INIT;
    cq_st_model *m = NULL;
    if (cq_st_open(&m, model, &err) != CQ_OK) {
        snprintf(why, n, "cannot open the model: %s", err.msg);
        return 0;
    }
    int same = cJSON_IsArray(inputs);
    for (size_t s = 0; same && s < cq_st_shard_count(m); s++) {
        int found = 0;
        for (const cJSON *in = inputs->child; in && !found; in = in->next)
            found = !strcmp(cq_str_or(in, "path"), cq_st_shard_path(m, s));
        if (!found)
            snprintf(why, n, "input '%s' is not in the report", cq_st_shard_path(m, s));
        same = found;
    }
    cq_st_close(m);
    for (const cJSON *in = same ? inputs->child : NULL; in && same; in = in->next) {
        uint8_t d[32];
        int64_t bytes;
        char hex[65];
        const char *path = cq_str_or(in, "path");
        if (cq_report_hash_file(path, d, &bytes, &err) != CQ_OK) {
            snprintf(why, n, "cannot hash input '%s'", path);
            return 0;
        }
        cq_sha256_to_hex(d, hex);
        if (strcmp(hex, cq_str_or(in, "sha256"))) {
            snprintf(why, n, "input '%s' changed since the output was written", path);
            return 0;
        }
    }
    return same;
}

int cq_batch_is_done(const cq_batch_job *j, char *why, size_t n)
{
    struct stat st;
    cJSON *rep = NULL;
    cq_error err = CQ_ERROR_INIT;
    why[0] = 0;
    if (stat(j->output, &st) != 0)
        return 0;
    if (cq_json_load(&rep, j->report, &err) != CQ_OK) {
        snprintf(why, n, "output exists but its report '%s' is unreadable", j->report);
        return 0;
    }
    int done = 0;
    if (!same_command(cJSON_GetObjectItemCaseSensitive(rep, "command_line"), j->argv, j->argc))
        snprintf(why, n, "output exists but was made with other options or inputs "
                 "(its report's command_line differs)");
    else
        done = same_inputs(cJSON_GetObjectItemCaseSensitive(rep, "inputs"), j->model, why, n);
    cJSON_Delete(rep);
    return done;
}
