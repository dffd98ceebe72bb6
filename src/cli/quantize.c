/* Quantization driver (see quantize.h). One tensor is in flight at a time: its pages are
 * dropped (cq_st_release) as soon as it is written, so RSS stays near one layer, not the model. */
#include "quantize.h"

#include "cquant/checked.h"
#include "cquant/dtype.h"
#include "cquant/json.h"
#include "cquant/log.h"
#include "cquant/outdir.h"
#include "cquant/plan.h"
#include "cquant/report.h"
#include "cquant/safetensors.h"
#include "cquant/select.h"
#include "cquant/sha256.h"
#include "quant/par.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { ACT_COPY, ACT_QUANT, ACT_SKIP };
enum { CQ_QUANT_MAX_WORKERS = 8 };
/* Phases of a run, timed for -v: open, plan and start the writer; the tensors; the index and
 * small files; waiting for the input hashes (and the report); then the commit. */
enum { PH_START, PH_TENSORS, PH_FILES, PH_HASHES, PH_COUNT };

typedef struct plan_item {
    const cq_st_tensor *t;
    int action;
    char reason[sizeof(((cq_error *)0)->msg)];
} plan_item;

/* Input hashes for the report are computed on a second thread while the main one quantizes:
 * sha256 of the shards is otherwise the largest single cost of an RTN run (a full extra pass
 * over the input). */
typedef struct hasher {
    pthread_t thread;
    bool started;
    const cq_st_model *m;
    uint8_t (*digest)[32];
    int64_t *bytes;
    cq_error err;
    int rc;
    /* done is set when the hashes are in: one quantization worker waits for it (see
     * stream_tensors). lock and cond are initialized with the run state (cq_quant_run). */
    bool done;
    pthread_mutex_t lock;
    pthread_cond_t cond;
} hasher;

typedef struct cq_quant_sink run_state;

struct cq_quant_sink {
    const cq_quant_job *job;
    cq_st_model *m;
    cJSON *config;         /* the input's config.json, or NULL */
    cJSON *config_out;     /* the same, numbers kept as written: what the output copies */
    plan_item *items;
    size_t n_items;
    cq_outdir od;
    cq_st_writer *w;
    cq_report *report;
    cq_quant_summary *sum;
    double t0;
    hasher hash;
    int workers;           /* tensors in flight at once (plan_workers) */
    double phase[PH_COUNT]; /* when each phase ended (cq_par_now), for -v */
    bool resumed;          /* the temporary folder of a killed run was kept (--resume) */
    bool keep;             /* on failure, leave the temporary folder for --resume */
    int64_t *quant_idx;    /* items planned for quantization (producer view) */
    int64_t n_quant;
};

static void *hash_main(void *arg)
{
    hasher *h = arg;
    size_t n = cq_st_shard_count(h->m);
    const char **paths = malloc((n ? n : 1) * sizeof *paths);
    if (!paths) {
        h->rc = cq_errorf(&h->err, CQ_E_NOMEM, "out of memory hashing the inputs");
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        paths[i] = cq_st_shard_path(h->m, i);
    h->rc = cq_report_hash_files(paths, n, h->digest, h->bytes, &h->err);
    free(paths);
    pthread_mutex_lock(&h->lock);
    h->done = true;
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

/* Block until the hashes are in (at once when no hasher thread runs). */
static void hasher_wait(hasher *h)
{
    if (!h->started)
        return;
    pthread_mutex_lock(&h->lock);
    while (!h->done)
        pthread_cond_wait(&h->cond, &h->lock);
    pthread_mutex_unlock(&h->lock);
}

static int hasher_start(hasher *h, const cq_st_model *m, cq_error *err)
{
    size_t n = cq_st_shard_count(m);
    h->m = m;
    h->err = (cq_error)CQ_ERROR_INIT;
    h->digest = calloc(n ? n : 1, sizeof *h->digest);
    h->bytes = calloc(n ? n : 1, sizeof *h->bytes);
    if (!h->digest || !h->bytes)
        return cq_errorf(err, CQ_E_NOMEM, "out of memory");
    if (pthread_create(&h->thread, NULL, hash_main, h) != 0) {
        hash_main(h); /* no thread: hash inline */
        return CQ_OK;
    }
    h->started = true;
    return CQ_OK;
}

/* Wait for the hashes (NULL-safe on a never-started hasher) and free them. */
static int hasher_finish(hasher *h, cq_report *r, cq_error *err)
{
    int rc = CQ_OK;
    if (h->started)
        pthread_join(h->thread, NULL);
    h->started = false;
    if (r && h->digest && h->rc != CQ_OK)
        rc = cq_errorf(err, h->rc, "%s", h->err.msg);
    for (size_t i = 0; r && h->digest && rc == CQ_OK && i < cq_st_shard_count(h->m); i++)
        rc = cq_report_add_input_digest(r, cq_st_shard_path(h->m, i), h->bytes[i],
                                        h->digest[i], err);
    free(h->digest);
    free(h->bytes);
    h->digest = NULL;
    h->bytes = NULL;
    return rc;
}


/* One -v line of where the time went (the commit is the fsyncs and the rename). */
static void log_phases(const run_state *s)
{
    const double *p = s->phase;
    cq_debug("time: plan %.1f ms, tensors %.1f ms (%d at once), files %.1f ms, hashes %.1f ms "
             "more, commit %.1f ms, total %.1f ms%s", 1e3 * (p[PH_START] - s->t0),
             1e3 * (p[PH_TENSORS] - p[PH_START]), s->workers,
             1e3 * (p[PH_FILES] - p[PH_TENSORS]), 1e3 * (p[PH_HASHES] - p[PH_FILES]),
             1e3 * (cq_par_now() - p[PH_HASHES]), 1e3 * (cq_par_now() - s->t0),
             s->job->no_sync ? " (--no-sync)" : "");
}

/* "<dir>/<name>" with a length check: paths come from the user. */
static int join(char *buf, size_t n, const char *dir, const char *name, cq_error *err)
{
    if ((size_t)snprintf(buf, n, "%s/%s", dir, name) >= n)
        return cq_errorf(err, CQ_E_USAGE, "'%s/%s': path too long", dir, name);
    return CQ_OK;
}

void cq_quant_default_out(const cq_quant_job *job, char *buf, size_t n)
{
    char base[4096];
    struct stat st;
    snprintf(base, sizeof base, "%s", job->model);
    size_t len = strlen(base);
    while (len > 1 && base[len - 1] == '/')
        base[--len] = 0;
    /* A single file names its folder's checkpoint: put the output beside that folder. */
    if (stat(base, &st) == 0 && S_ISREG(st.st_mode)) {
        char *slash = strrchr(base, '/');
        if (slash && slash != base)
            *slash = 0;
        else
            snprintf(base, sizeof base, "model");
    }
    char grp[32] = "";
    if (job->q.group_size > 0)
        snprintf(grp, sizeof grp, "g%d", job->q.group_size);
    snprintf(buf, n, "%s-%s-w%d%s%s%s%s", base, job->quantizer->name, job->q.bits, grp,
             job->q.sym ? "" : "-asym", strcmp(job->layout->name, "gptq") ? "-" : "",
             strcmp(job->layout->name, "gptq") ? job->layout->name : "");
}

/* What selection reads must have the right type: a malformed config.json silently falling back
 * to the generic rule would quantize a different set of Linears. */
static int check_config(const cJSON *cfg, const char *path, cq_error *err)
{
    if (!cJSON_IsObject(cfg))
        return cq_errorf(err, CQ_E_FORMAT, "'%s': expected a JSON object", path);
    int rc = cq_json_check_unique(cfg, path, err);
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(cfg, "architectures");
    if (rc != CQ_OK || !a)
        return rc;
    if (!cJSON_IsArray(a) || !cJSON_IsString(cJSON_GetArrayItem(a, 0)))
        return cq_errorf(err, CQ_E_FORMAT,
                         "'%s': key 'architectures': expected an array of strings", path);
    return CQ_OK;
}

static int load_config(run_state *s, cq_error *err)
{
    char path[4096];
    int rc = join(path, sizeof path, cq_st_dir(s->m), "config.json", err);
    if (rc != CQ_OK)
        return rc;
    if (access(path, F_OK) != 0) {
        cq_warn("'%s': no config.json; using the generic Linear rule", cq_st_dir(s->m));
        return CQ_OK;
    }
    if ((rc = cq_json_load(&s->config, path, err)) != CQ_OK ||
        (rc = cq_json_load_verbatim(&s->config_out, path, err)) != CQ_OK)
        return rc;
    if ((rc = check_config(s->config, path, err)) != CQ_OK)
        return rc;
    if (cJSON_GetObjectItemCaseSensitive(s->config, "quantization_config"))
        return cq_errorf(err, CQ_E_UNSUPPORTED,
                         "'%s': already quantized (config.json has quantization_config)", path);
    return CQ_OK;
}

/* Does the tensor name end with ".<module>.weight"? */
static bool is_module(const char *name, const char *module)
{
    size_t n = strlen(name), m = module ? strlen(module) : 0;
    return m && n > m + 8 && name[n - m - 8] == '.' && !strncmp(name + n - m - 7, module, m) &&
           !strcmp(name + n - 7, ".weight");
}

/* A Linear of a known architecture must agree with config.json's widths: in features
 * hidden_size for the Linears reading the residual stream (intermediate_size, OPT's ffn_dim,
 * for down_proj / fc2), out features hidden_size for o_proj and down_proj (o_proj's in features
 * are heads x head_dim, which Qwen3 sets apart from hidden_size). A checkpoint that disagrees
 * with its config would quantize fine and never load. */
static int check_llama_shape(const run_state *s, const cq_select *sel, const cq_st_tensor *t,
                             cq_error *err)
{
    const char *what = "config.json";
    const cq_arch_desc *d = sel->desc;
    int64_t hidden, inter, want_in = -1, want_out = -1;
    bool down = is_module(t->name, d->lin[CQ_LIN_DOWN]), o = is_module(t->name, d->lin[CQ_LIN_O]);
    int rc = cq_json_get_int(s->config, "hidden_size", 1, INT64_MAX, &hidden, what, err);
    if (rc == CQ_OK && down)
        rc = cq_json_get_int(s->config, d->arch == CQ_ARCH_OPT ? "ffn_dim" : "intermediate_size",
                             1, INT64_MAX, &inter, what, err);
    if (rc != CQ_OK)
        return rc;
    if (!o)
        want_in = down ? inter : hidden;
    if (down || o)
        want_out = hidden;
    /* MoE experts: hidden in (w1/w3, gate/up) or out (w2, down); their width is the model
     * check's (cq_config_check) */
    if (strstr(t->name, ".experts.") || strstr(t->name, ".shared_expert.")) {
        bool edown = strstr(t->name, ".down_proj.") || strstr(t->name, ".w2.");
        want_in = edown ? t->shape[1] : hidden;
        want_out = edown ? hidden : -1;
    }
    if ((want_in >= 0 && t->shape[1] != want_in) || (want_out >= 0 && t->shape[0] != want_out))
        return cq_errorf(err, CQ_E_SHAPE,
                         "tensor '%s' in '%s': shape [%lld, %lld] disagrees with config.json "
                         "(hidden_size %lld)", t->name, t->file, (long long)t->shape[0],
                         (long long)t->shape[1], (long long)hidden);
    return CQ_OK;
}

/* Decide each tensor's fate: copy, quantize, or (shape the layout cannot hold) skip. */
static int make_plan(run_state *s, cq_error *err)
{
    const cq_quant_job *job = s->job;
    cq_select sel;
    int rc = cq_select_init(&sel, s->config, job->include.items, job->include.n,
                            job->exclude.items, job->exclude.n, err);
    if (rc != CQ_OK)
        return rc;
    s->n_items = cq_st_count(s->m);
    s->items = calloc(s->n_items ? s->n_items : 1, sizeof *s->items);
    if (!s->items)
        return cq_errorf(err, CQ_E_NOMEM, "out of memory planning %zu tensors", s->n_items);
    for (size_t i = 0; i < s->n_items; i++) {
        plan_item *it = &s->items[i];
        it->t = cq_st_at(s->m, i);
        it->action = ACT_COPY;
        if (!cq_select_tensor(&sel, it->t->name, it->t->dtype, it->t->ndim))
            continue;
        if (sel.desc && (rc = check_llama_shape(s, &sel, it->t, err)) != CQ_OK)
            return rc;
        cq_error why = CQ_ERROR_INIT;
        if (job->layout->check(&job->q, it->t->shape[0], it->t->shape[1], &why) == CQ_OK) {
            it->action = ACT_QUANT;
            continue;
        }
        if (job->strict)
            return cq_errorf(err, why.code, "tensor '%s': %s (--strict)", it->t->name, why.msg);
        it->action = ACT_SKIP;
        snprintf(it->reason, sizeof it->reason, "%s", why.msg);
        cq_warn("tensor '%s' %lldx%lld: %s; kept in %s", it->t->name,
                (long long)it->t->shape[0], (long long)it->t->shape[1], why.msg,
                cq_dtype_info(it->t->dtype)->name);
    }
    return CQ_OK;
}

/* Files copied as-is beside the tensors when the input has them. */
static const char *const aux_files[] = {
    "tokenizer.json",   "tokenizer_config.json", "special_tokens_map.json",
    "generation_config.json", "tokenizer.model", "vocab.json", "merges.txt",
    "added_tokens.json", "chat_template.jinja", "chat_template.json",
};

/* Peak memory and output size from the plan (cquant/plan.h): one tensor is in flight at a
 * time, so the peak is the worst single tensor; the output is every tensor plus a header entry,
 * the copied small files and the configs/report. */
static int plan_resources(const run_state *s, cq_plan *p, cq_error *err)
{
    const cq_quant_job *job = s->job;
    memset(p, 0, sizeof *p);
    for (size_t i = 0; i < s->n_items; i++) {
        const cq_st_tensor *t = s->items[i].t;
        size_t heap = 0, out = t->nbytes;
        if (s->items[i].action == ACT_QUANT) {
            cq_packed pk[CQ_PACK_MAX_TENSORS];
            int np = 0;
            int rc = job->layout->plan(&job->q, t->shape[0], t->shape[1], pk, &np, err);
            if (rc != CQ_OK)
                return rc;
            heap = cq_plan_linear_bytes(t->shape[0], t->shape[1], job->q.bits,
                                        job->q.group_size, 0);
            out = 0;
            for (int k = 0; k < np; k++)
                cq_plan_output(p, pk[k].nbytes + 256);
        }
        cq_plan_tensor(p, t->name, heap, t->nbytes);
        cq_plan_output(p, out + 256);
    }
    for (size_t i = 0; i < sizeof aux_files / sizeof *aux_files; i++) {
        char path[4096];
        struct stat st;
        cq_error scratch = CQ_ERROR_INIT; /* a path too long is the copy's error to report */
        if (join(path, sizeof path, cq_st_dir(s->m), aux_files[i], &scratch) == CQ_OK &&
            stat(path, &st) == 0)
            cq_plan_output(p, (size_t)st.st_size);
    }
    cq_plan_output(p, (size_t)1 << 20); /* config.json, quantize_config.json, report */
    return CQ_OK;
}

/* The folder the temporary output is created in (the parent of OUT). */
static void parent_dir(const char *out, char *buf, size_t n)
{
    snprintf(buf, n, "%s", out);
    char *slash = strrchr(buf, '/');
    if (!slash)
        snprintf(buf, n, ".");
    else if (slash == buf)
        buf[1] = 0;
    else
        *slash = 0;
}

/* How many tensors to work on at once: one per CPU (or per --threads), but extra workers may
 * add at most EXTRA_WORKER_BYTES to the planned peak (so a model whose Linears are large keeps
 * one tensor in flight and the peak stays that of one tensor), never beyond --max-memory.
 * Producers (gptq) and replaced tensors (awq) keep one: their callbacks are not shared. */
enum { EXTRA_WORKER_BYTES = 32 << 20 };

static int plan_workers(const run_state *s, const cq_plan *p)
{
    const cq_quant_job *job = s->job;
    long cpus = job->q.threads > 0 ? job->q.threads : sysconf(_SC_NPROCESSORS_ONLN);
    if (job->produce || job->source || cpus <= 1 || s->n_items <= 1)
        return 1;
    size_t one = p->peak_bytes - CQ_PLAN_FIXED_OVERHEAD; /* the worst tensor in flight */
    int w = 1;
    while (w < cpus && w < CQ_QUANT_MAX_WORKERS && (size_t)w < s->n_items &&
           one <= EXTRA_WORKER_BYTES / (size_t)w &&
           (!job->max_memory || p->peak_bytes + one * (size_t)w <= job->max_memory))
        w++;
    return w;
}

static int check_resources(run_state *s, cq_error *err)
{
    cq_plan p;
    char dir[4096];
    int rc = plan_resources(s, &p, err);
    if (rc == CQ_OK)
        s->workers = plan_workers(s, &p);
    p.peak_bytes = p.peak_bytes > SIZE_MAX - s->job->producer_peak
                       ? SIZE_MAX
                       : p.peak_bytes + s->job->producer_peak;
    if (rc == CQ_OK)
        rc = cq_plan_check_memory(&p, s->job->max_memory, err);
    parent_dir(s->sum->out, dir, sizeof dir);
    if (rc == CQ_OK)
        rc = cq_plan_check_disk(&p, dir, err);
    char a[32], b[32];
    size_t one = p.peak_bytes - CQ_PLAN_FIXED_OVERHEAD - s->job->producer_peak;
    cq_format_bytes(p.peak_bytes + one * (size_t)(s->workers - 1), a, sizeof a);
    cq_format_bytes(p.output_bytes, b, sizeof b);
    cq_debug("plan: peak memory %s (%d tensors at once), output %s", a, s->workers, b);
    return rc;
}

/* "<module>.weight" -> "<module>.<suffix>" */
static void packed_name(char *buf, size_t n, const char *weight_name, const char *suffix)
{
    size_t len = strlen(weight_name);
    snprintf(buf, n, "%.*s.%s", (int)(len - 7), weight_name, suffix);
}

/* The job's replacement values for a tensor, or NULL. */
static const float *replaced(const run_state *s, const cq_st_tensor *t)
{
    return s->job->source ? s->job->source(s->job->source_ctx, t->name) : NULL;
}

static int read_f32(const run_state *s, const cq_st_tensor *t, float *w, size_t nb,
                    cq_error *err)
{
    const float *src = replaced(s, t);
    if (!src)
        return cq_st_read_f32(t, w, err);
    memcpy(w, src, nb);
    return CQ_OK;
}

static int plan_writer(run_state *s, cq_error *err)
{
    const cq_quant_job *job = s->job;
    int rc = CQ_OK;
    for (size_t i = 0; i < s->n_items && rc == CQ_OK; i++) {
        const cq_st_tensor *t = s->items[i].t;
        if (s->items[i].action != ACT_QUANT) {
            cq_dtype dt = replaced(s, t) ? CQ_DT_F32 : t->dtype;
            rc = cq_st_writer_add(s->w, t->name, dt, t->ndim, t->shape, err);
            continue;
        }
        cq_packed p[CQ_PACK_MAX_TENSORS];
        int np = 0;
        rc = job->layout->plan(&job->q, t->shape[0], t->shape[1], p, &np, err);
        for (int k = 0; k < np && rc == CQ_OK; k++) {
            char name[1024];
            packed_name(name, sizeof name, t->name, p[k].suffix);
            rc = cq_st_writer_add(s->w, name, p[k].dtype, p[k].ndim, p[k].shape, err);
        }
    }
    return rc;
}

static int write_packed(run_state *s, const char *weight_name, cq_packed *p, int np,
                        cq_error *err)
{
    int rc = CQ_OK;
    for (int k = 0; k < np && rc == CQ_OK; k++) {
        char name[1024];
        packed_name(name, sizeof name, weight_name, p[k].suffix);
        rc = cq_st_writer_write(s->w, name, p[k].data, p[k].nbytes, err);
    }
    return rc;
}

/* What one worker owns: the f32 buffer for a tensor, kept across tensors so its pages stay
 * mapped instead of being faulted in and zeroed again for every Linear (sized by the largest). */
typedef struct worker {
    float *wbuf;
    size_t wbuf_bytes;
} worker;

static float *weight_buffer(worker *wk, size_t nb)
{
    if (nb > wk->wbuf_bytes) {
        free(wk->wbuf);
        wk->wbuf_bytes = 0;
        if (!(wk->wbuf = malloc(nb)))
            return NULL;
        wk->wbuf_bytes = nb;
    }
    return wk->wbuf;
}

/* The error of a result measured while it was made (cq_rtn_quantize_stored). */
typedef struct premeasured {
    cq_werr err;
    int64_t zero_range;
} premeasured;

/* measure error (unless PRE already holds it) -> pack -> write; *lr_out gets the layer's report
 * entry for the caller to add, its `extra` an owned copy the caller frees (lr_extra_free) (t0:
 * when work on the tensor began). Safe on several threads at once. */

static int emit_packed(run_state *s, const char *name, const char *method, const float *w,
                       cq_qresult *qr, double t0, const cJSON *extra, const premeasured *pre,
                       cq_layer_report *lr_out, cq_error *err)
{
    const cq_quant_job *job = s->job;
    cq_packed p[CQ_PACK_MAX_TENSORS];
    int np = 0, rc;
    /* Every layout stores F16 scales: measure the error of the checkpoint as written (a
     * premeasured result was measured, and holds its scales, that way already). */
    for (int64_t i = 0; !pre && i < qr->n_groups * qr->rows; i++)
        qr->scale[i] = cq_f16_to_f32(cq_f32_to_f16(qr->scale[i]));
    cJSON *ex = extra ? cJSON_Duplicate(extra, 1) : cJSON_CreateObject();
    if (!ex)
        return cq_errorf(err, CQ_E_NOMEM, "report: out of memory");
    if (!cJSON_HasObjectItem(ex, "zero_range_groups")) /* gptq adds it for its resume state */
        cJSON_AddNumberToObject(ex, "zero_range_groups",
                                pre ? (double)pre->zero_range
                                    : (double)cq_zero_range_groups(w, qr->rows, qr->cols,
                                                                   job->q.group_size));
    cq_layer_report lr = {.name = name, .rows = qr->rows, .cols = qr->cols, .method = method,
                          .bits = job->q.bits, .group_size = job->q.group_size,
                          .sym = job->q.sym, .extra = ex};
    if (pre)
        lr.err = pre->err;
    if ((!pre && (rc = cq_weight_error_q(w, qr, job->q.threads, &lr.err, err)) != CQ_OK) ||
        (rc = job->layout->pack(&job->q, qr, p, &np, err)) != CQ_OK ||
        (rc = write_packed(s, name, p, np, err)) != CQ_OK)
        goto done;
    lr.seconds = cq_par_now() - t0;
    cq_debug("%s: rel err %.4g, max abs %.4g", name, lr.err.rel_fro, lr.err.max_abs);
    *lr_out = lr;
    ex = NULL; /* now the caller's */
done:
    cJSON_Delete(ex);
    cq_packed_release(p, np);
    return rc;
}

/* RTN of a stored F32/F16/BF16 tensor in one pass (cq_rtn_quantize_stored): returns CQ_OK with
 * *lr filled, 1 when this tensor needs the general path (another dtype or quantizer, replaced
 * values, or a non-finite row, which that path names), or a negative status. */
static int quantize_fused(run_state *s, const cq_st_tensor *t, cq_layer_report *lr,
                          cq_error *err)
{
    const cq_quant_job *job = s->job;
    if (job->quantizer != &cq_quantizer_rtn || replaced(s, t) || !t->data)
        return 1; /* (a dtype it does not take: CQ_E_UNSUPPORTED below) */
    int64_t rows = t->shape[0], cols = t->shape[1];
    double t0 = cq_par_now();
    double *sums = malloc((size_t)rows * 3 * sizeof *sums);
    unsigned char *nan = malloc((size_t)rows);
    cq_qresult qr = {0};
    premeasured pre = {.zero_range = 0};
    int rc;
    if (!sums || !nan) {
        rc = cq_errorf(err, CQ_E_NOMEM, "out of memory");
    } else {
        cq_row_err re = {sums, sums + rows, sums + 2 * rows, nan};
        rc = cq_rtn_quantize_stored(&job->q, t->dtype, t->data, rows, cols, &qr, &re,
                                    &pre.zero_range, err);
        if (rc == CQ_E_NUMERIC || rc == CQ_E_UNSUPPORTED) {
            *err = (cq_error)CQ_ERROR_INIT;
            rc = 1;
        } else if (rc == CQ_OK) {
            cq_werr_from_rows(&re, rows, cols, &pre.err);
            rc = emit_packed(s, t->name, job->quantizer->name, NULL, &qr, t0, NULL, &pre, lr,
                             err);
        }
    }
    free(sums);
    free(nan);
    cq_qresult_release(&qr);
    return rc;
}

/* read f32 -> quantize -> measure error -> pack -> write. */
static int quantize_one(run_state *s, worker *wk, const cq_st_tensor *t, cq_layer_report *lr,
                        cq_error *err)
{
    const cq_quant_job *job = s->job;
    int64_t rows = t->shape[0], cols = t->shape[1];
    size_t nb;
    float *w;
    cq_qresult qr = {0};
    int rc;
    double t0 = cq_par_now();
    if (cq_mul_size((size_t)rows, (size_t)cols, &nb) || cq_mul_size(nb, sizeof(float), &nb))
        return cq_errorf(err, CQ_E_FORMAT, "tensor '%s': size overflows", t->name);
    if ((rc = quantize_fused(s, t, lr, err)) <= 0) {
        if (rc != CQ_OK)
            cq_error_prefix(err, "tensor '%s'", t->name);
        return rc;
    }
    if (!(w = weight_buffer(wk, nb))) {
        rc = cq_errorf(err, CQ_E_NOMEM, "tensor '%s': out of memory (%zu bytes)", t->name, nb);
        goto done;
    }
    if ((rc = read_f32(s, t, w, nb, err)) != CQ_OK ||
        (rc = job->quantizer->run(&job->q, w, rows, cols, NULL, &qr, err)) != CQ_OK)
        goto done;
    /* A quantizer that uses w as scratch: measure against a fresh read of the original. */
    if (!job->quantizer->keeps_w && (rc = read_f32(s, t, w, nb, err)) != CQ_OK)
        goto done;
    rc = emit_packed(s, t->name, job->quantizer->name, w, &qr, t0, NULL, NULL, lr, err);
done:
    if (rc != CQ_OK)
        cq_error_prefix(err, "tensor '%s'", t->name);
    cq_qresult_release(&qr);
    return rc;
}

/* One tensor: quantize, or copy as stored. *lr gets the report entry of a quantized or
 * skipped Linear (lr->name stays NULL for a plain copy). Safe on several threads at once. */
static int process_item(run_state *s, worker *wk, const plan_item *it, cq_layer_report *lr,
                        cq_error *err)
{
    const cq_quant_job *job = s->job;
    int rc;
    if (it->action == ACT_QUANT) {
        rc = quantize_one(s, wk, it->t, lr, err);
    } else if (replaced(s, it->t)) {
        size_t nb = it->t->nbytes / cq_dtype_info(it->t->dtype)->size * sizeof(float);
        rc = cq_st_writer_write(s->w, it->t->name, replaced(s, it->t), nb, err);
    } else {
        rc = cq_st_writer_write(s->w, it->t->name, it->t->data, it->t->nbytes, err);
    }
    if (rc == CQ_OK && it->action == ACT_SKIP)
        *lr = (cq_layer_report){.name = it->t->name, .rows = it->t->shape[0],
                                .cols = it->t->shape[1], .method = job->quantizer->name,
                                .bits = job->q.bits, .group_size = job->q.group_size,
                                .sym = job->q.sym, .skipped = true, .reason = it->reason};
    cq_st_release(it->t);
    return rc;
}

/* Tensors are independent (each has its own place in the output), so `workers` threads take
 * them in order from a shared cursor. What must stay ordered is done around them: progress
 * lines are printed as items are taken, report entries are added in item order after the
 * join, and of several failures the first item's is reported, whatever the timing (every
 * item before a failed one was taken, so it has finished by the join). */
typedef struct stream {
    run_state *s;
    pthread_mutex_t lock;
    size_t next;
    size_t fail_at;          /* lowest failed item, n_items when none */
    cq_error err;
    int rc;
    cq_layer_report *lr;     /* per item */
} stream;

static bool stream_take(stream *st, size_t *i)
{
    run_state *s = st->s;
    bool produced = s->job->produce != NULL;
    pthread_mutex_lock(&st->lock);
    while (st->next < s->n_items && produced && s->items[st->next].action == ACT_QUANT)
        st->next++; /* the producer's */
    bool ok = st->next < s->n_items && st->fail_at == s->n_items;
    if (ok) {
        *i = st->next++;
        if (!produced)
            cq_progress(s->job->quantizer->name, (int64_t)*i + 1, (int64_t)s->n_items,
                        s->items[*i].t->name);
    }
    pthread_mutex_unlock(&st->lock);
    return ok;
}

static void stream_fail(stream *st, size_t i, int rc, const cq_error *err)
{
    pthread_mutex_lock(&st->lock);
    if (i < st->fail_at) {
        st->fail_at = i;
        st->rc = rc;
        st->err = *err;
    }
    pthread_mutex_unlock(&st->lock);
}

/* A worker's view: the last of several first waits for the input hashes, so the hasher thread
 * (a third of a cold RTN run's CPU time, on one core) gets a core of its own instead of being
 * time-sliced with every worker and finishing last, alone. */
typedef struct stream_arg {
    stream *st;
    bool after_hashes;
} stream_arg;

static void *stream_worker(void *arg)
{
    stream_arg *a = arg;
    stream *st = a->st;
    worker wk = {0};
    size_t i;
    if (a->after_hashes)
        hasher_wait(&st->s->hash);
    while (stream_take(st, &i)) {
        cq_error e = CQ_ERROR_INIT;
        int rc = cq_interrupted() ? cq_errorf(&e, CQ_E_INTERRUPTED, "interrupted")
                                  : process_item(st->s, &wk, &st->s->items[i], &st->lr[i], &e);
        if (rc != CQ_OK)
            stream_fail(st, i, rc, &e);
    }
    free(wk.wbuf);
    return NULL;
}

static void lr_extra_free(cq_layer_report *lr)
{
    cJSON_Delete((cJSON *)lr->extra);
    lr->extra = NULL;
}

/* Report entries and counts, in item order. */
static int stream_report(run_state *s, const stream *st, cq_error *err)
{
    int rc = CQ_OK;
    for (size_t i = 0; i < s->n_items && rc == CQ_OK; i++) {
        if (!st->lr[i].name)
            continue;
        rc = cq_report_add_layer(s->report, &st->lr[i], err);
        if (st->lr[i].skipped)
            s->sum->skipped++;
        else
            s->sum->quantized++;
    }
    return rc;
}

static int stream_tensors(run_state *s, cq_error *err)
{
    stream st = {.s = s, .fail_at = s->n_items, .err = CQ_ERROR_INIT, .rc = CQ_OK};
    bool produced = s->job->produce != NULL;
    int rc = CQ_OK, started = 0;
    pthread_t tid[CQ_QUANT_MAX_WORKERS];
    stream_arg args[CQ_QUANT_MAX_WORKERS];
    if (!(st.lr = calloc(s->n_items ? s->n_items : 1, sizeof *st.lr)))
        return cq_errorf(err, CQ_E_NOMEM, "out of memory");
    pthread_mutex_init(&st.lock, NULL);
    for (int k = 0; k < s->workers && k < CQ_QUANT_MAX_WORKERS; k++)
        args[k] = (stream_arg){&st, k > 0 && k == s->workers - 1};
    for (int k = 1; k < s->workers; k++, started++)
        if (pthread_create(&tid[k - 1], NULL, stream_worker, &args[k]) != 0)
            break; /* fewer workers: same bytes */
    stream_worker(&args[0]);
    for (int k = 0; k < started; k++)
        pthread_join(tid[k], NULL);
    pthread_mutex_destroy(&st.lock);
    if (!produced)
        cq_progress_end();
    if (st.fail_at < s->n_items) {
        *err = st.err;
        rc = st.rc;
    }
    if (rc == CQ_OK)
        rc = stream_report(s, &st, err);
    for (size_t i = 0; i < s->n_items; i++)
        lr_extra_free(&st.lr[i]);
    free(st.lr);
    s->sum->tensors = (int64_t)s->n_items;
    if (rc == CQ_OK && produced)
        rc = s->job->produce(s->job->produce_ctx, s, err);
    return rc;
}

/* ---- producer side ---- */

static int index_quant(run_state *s, cq_error *err)
{
    s->quant_idx = calloc(s->n_items + 1, sizeof *s->quant_idx);
    if (!s->quant_idx)
        return cq_errorf(err, CQ_E_NOMEM, "out of memory");
    for (size_t i = 0; i < s->n_items; i++)
        if (s->items[i].action == ACT_QUANT)
            s->quant_idx[s->n_quant++] = (int64_t)i;
    return CQ_OK;
}

int64_t cq_quant_sink_count(const cq_quant_sink *s) { return s->n_quant; }

const cq_st_tensor *cq_quant_sink_tensor(const cq_quant_sink *s, int64_t i)
{
    return i >= 0 && i < s->n_quant ? s->items[s->quant_idx[i]].t : NULL;
}

bool cq_quant_sink_wants(const cq_quant_sink *s, const char *name)
{
    for (int64_t i = 0; i < s->n_quant; i++)
        if (!strcmp(s->items[s->quant_idx[i]].t->name, name))
            return true;
    return false;
}

const char *cq_quant_sink_dir(const cq_quant_sink *s) { return cq_outdir_path(&s->od); }

bool cq_quant_sink_resumed(const cq_quant_sink *s) { return s->resumed; }

void cq_quant_sink_keep_on_failure(cq_quant_sink *s) { s->keep = true; }

int cq_quant_sink_sync(cq_quant_sink *s, cq_error *err) { return cq_st_writer_sync(s->w, err); }

int cq_quant_sink_input_digest(cq_quant_sink *s, char hex[65], cq_error *err)
{
    hasher *h = &s->hash;
    if (h->started)
        pthread_join(h->thread, NULL);
    h->started = false;
    if (h->rc != CQ_OK)
        return cq_errorf(err, h->rc, "%s", h->err.msg);
    cq_sha256 ctx;
    uint8_t d[32];
    cq_sha256_init(&ctx);
    for (size_t i = 0; h->digest && i < cq_st_shard_count(s->m); i++)
        cq_sha256_update(&ctx, h->digest[i], 32);
    cq_sha256_final(&ctx, d);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    return CQ_OK;
}

int cq_quant_emit(cq_quant_sink *s, const char *name, const char *method, const float *w,
                  cq_qresult *qr, double seconds, const cJSON *extra, cq_layer_report *lr_out,
                  cq_error *err)
{
    cq_layer_report lr = {0};
    int rc = emit_packed(s, name, method, w, qr, cq_par_now() - seconds, extra, NULL, &lr, err);
    if (rc == CQ_OK)
        rc = cq_report_add_layer(s->report, &lr, err);
    lr_extra_free(&lr);
    lr.extra = extra; /* the caller's, which outlives the entry it gets */
    if (rc == CQ_OK && lr_out)
        *lr_out = lr;
    if (rc != CQ_OK)
        cq_error_prefix(err, "tensor '%s'", name);
    s->sum->quantized++;
    return rc;
}

int cq_quant_mark_done(cq_quant_sink *s, const char *name, const cq_layer_report *lr,
                       cq_error *err)
{
    cq_packed p[CQ_PACK_MAX_TENSORS];
    int np = 0;
    int rc = s->job->layout->plan(&s->job->q, lr->rows, lr->cols, p, &np, err);
    for (int k = 0; k < np && rc == CQ_OK; k++) {
        char pn[1024];
        packed_name(pn, sizeof pn, name, p[k].suffix);
        rc = cq_st_writer_mark_written(s->w, pn, err);
    }
    if (rc == CQ_OK)
        rc = cq_report_add_layer(s->report, lr, err);
    s->sum->quantized++;
    return rc;
}

/* "a.b.c" -> "^a\.b\.c$" for GPTQModel/vLLM "dynamic" keys. */
static void anchored_regex(char *buf, size_t n, const char *module)
{
    size_t k = 0;
    buf[k++] = '^';
    for (const char *p = module; *p && k + 4 < n; p++) {
        if (strchr(".^$*+?()[]{}|\\", *p))
            buf[k++] = '\\';
        buf[k++] = *p;
    }
    buf[k++] = '$';
    buf[k] = 0;
}

/* Tell loaders which Linears stayed float, in each layout's own vocabulary: GPTQModel/vLLM
 * "dynamic" negative rules ("-:regex"), AutoAWQ "modules_to_not_convert", compressed-tensors
 * "ignore". Without it a loader would look for qweight tensors that are not there. */
static void note_skipped(const run_state *s, cJSON *qcfg)
{
    const char *lay = s->job->layout->name;
    cJSON *list = NULL, *dyn = NULL;
    for (size_t i = 0; i < s->n_items; i++) {
        bool router = s->items[i].t->ndim == 2 && cq_select_is_router(s->items[i].t->name);
        if (s->items[i].action != ACT_SKIP && !router) /* MoE routers always stay float */
            continue;
        char module[1024], rx[2100];
        size_t len = strlen(s->items[i].t->name);
        snprintf(module, sizeof module, "%.*s", (int)(len - 7), s->items[i].t->name);
        if (!strcmp(lay, "gptq")) {
            if (!dyn && !(dyn = cJSON_GetObjectItemCaseSensitive(qcfg, "dynamic")))
                dyn = cJSON_AddObjectToObject(qcfg, "dynamic");
            snprintf(rx, sizeof rx, "-:");
            anchored_regex(rx + 2, sizeof rx - 2, module);
            cJSON_AddItemToObject(dyn, rx, cJSON_CreateObject());
            continue;
        }
        const char *key = !strcmp(lay, "awq") ? "modules_to_not_convert" : "ignore";
        if (!list) {
            list = cJSON_GetObjectItemCaseSensitive(qcfg, key);
            if (!cJSON_IsArray(list)) {
                cJSON_DeleteItemFromObjectCaseSensitive(qcfg, key);
                list = cJSON_AddArrayToObject(qcfg, key);
            }
        }
        cJSON_AddItemToArray(list, cJSON_CreateString(module));
    }
}

/* config.json = the input's, plus quantization_config; GPTQ/AWQ kernels run in fp16, so those
 * layouts declare float16 (non-quantized tensors keep their stored dtype; loaders cast). */
static int write_configs(run_state *s, const char *dir, cq_error *err)
{
    const cq_quant_job *job = s->job;
    cJSON *cfg = s->config_out ? cJSON_Duplicate(s->config_out, 1) : cJSON_CreateObject();
    cJSON *qcfg = cJSON_CreateObject();
    char path[4096];
    int rc;
    if (!cfg || !qcfg) {
        rc = cq_errorf(err, CQ_E_NOMEM, "out of memory writing config.json");
        goto done;
    }
    if ((rc = job->layout->qconfig(&job->q, job->quantizer->name, qcfg, err)) != CQ_OK)
        goto done;
    note_skipped(s, qcfg);
    if (strcmp(job->layout->name, "ct")) {
        cJSON_DeleteItemFromObjectCaseSensitive(cfg, "torch_dtype");
        cJSON_AddStringToObject(cfg, "torch_dtype", "float16");
        if (cJSON_GetObjectItemCaseSensitive(cfg, "dtype")) {
            cJSON_DeleteItemFromObjectCaseSensitive(cfg, "dtype");
            cJSON_AddStringToObject(cfg, "dtype", "float16");
        }
    }
    cJSON_AddItemToObject(cfg, "quantization_config", cJSON_Duplicate(qcfg, 1));
    if ((rc = join(path, sizeof path, dir, "config.json", err)) != CQ_OK ||
        (rc = cq_json_write_file(cfg, path, 0, err)) != CQ_OK)
        goto done;
    if (!strcmp(job->layout->name, "gptq") &&
        ((rc = join(path, sizeof path, dir, "quantize_config.json", err)) != CQ_OK ||
         (rc = cq_json_write_file(qcfg, path, 0, err)) != CQ_OK))
        goto done;
done:
    cJSON_Delete(cfg);
    cJSON_Delete(qcfg);
    return rc;
}


static int copy_file(const char *src, const char *dst, cq_error *err)
{
    FILE *in = NULL, *out = NULL;
    char buf[1 << 14];
    size_t n;
    int rc = CQ_OK;
    /* O_NONBLOCK + S_ISREG: a FIFO or device in the input folder must not block or stream. */
    int fd = open(src, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return cq_errorf_errno(err, CQ_E_IO, "'%s': cannot open", src);
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || !(in = fdopen(fd, "rb"))) {
        close(fd);
        return cq_errorf(err, CQ_E_IO, "'%s': not a regular file", src);
    }
    if (!(out = fopen(dst, "wb"))) {
        rc = cq_errorf_errno(err, CQ_E_IO, "'%s': cannot create", dst);
        goto done;
    }
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) {
            rc = cq_errorf_errno(err, CQ_E_IO, "'%s': write failed", dst);
            goto done;
        }
    if (ferror(in))
        rc = cq_errorf(err, CQ_E_IO, "'%s': read failed", src);
done:
    if (out && fclose(out) != 0 && rc == CQ_OK)
        rc = cq_errorf_errno(err, CQ_E_IO, "'%s': write failed", dst);
    fclose(in);
    return rc;
}

int cq_copy_aux_files(const char *src_dir, const char *dst_dir, cq_error *err)
{
    for (size_t i = 0; i < sizeof aux_files / sizeof *aux_files; i++) {
        char src[4096], dst[4096];
        int rc = join(src, sizeof src, src_dir, aux_files[i], err);
        if (rc == CQ_OK)
            rc = join(dst, sizeof dst, dst_dir, aux_files[i], err);
        if (rc == CQ_OK && access(src, F_OK) == 0)
            rc = copy_file(src, dst, err);
        if (rc != CQ_OK)
            return rc;
    }
    return CQ_OK;
}

static void report_config(run_state *s)
{
    const cq_quant_job *job = s->job;
    cJSON *c = cq_report_config(s->report);
    cJSON_AddStringToObject(c, "method", job->quantizer->name);
    cJSON_AddNumberToObject(c, "bits", job->q.bits);
    cJSON_AddNumberToObject(c, "group_size", job->q.group_size);
    cJSON_AddBoolToObject(c, "sym", job->q.sym);
    cJSON_AddBoolToObject(c, "mse", job->q.mse);
    cJSON_AddStringToObject(c, "format", job->layout->name);
    cJSON_AddStringToObject(c, "model", job->model);
    cJSON_AddStringToObject(c, "output", s->sum->out);
    cJSON_AddBoolToObject(c, "strict", job->strict);
}

static int start_report(run_state *s, cq_error *err)
{
    int rc = cq_report_create(&s->report, s->job->quantizer->name, s->job->argc, s->job->argv,
                              err);
    if (rc == CQ_OK)
        report_config(s);
    if (rc == CQ_OK && s->job->report_extra)
        rc = s->job->report_extra(s->job->report_ctx, cq_report_config(s->report), err);
    if (rc == CQ_OK)
        rc = hasher_start(&s->hash, s->m, err);
    return rc;
}

/* Everything between "output folder exists" and "ready to commit". */
static int build_output(run_state *s, cq_error *err)
{
    const char *dir = cq_outdir_path(&s->od);
    char path[4096];
    int rc;
    if ((rc = cq_st_writer_create(&s->w, dir, s->job->max_shard_bytes, err)) != CQ_OK)
        return rc;
    if (s->job->no_sync)
        cq_st_writer_no_writeback(s->w);
    if ((rc = plan_writer(s, err)) != CQ_OK ||
        (rc = cq_st_writer_meta(s->w, "quantized_by", "cquant " CQ_VERSION, err)) != CQ_OK ||
        (rc = s->resumed ? cq_st_writer_reopen(s->w, err) : cq_st_writer_start(s->w, err)) ||
        (rc = index_quant(s, err)) != CQ_OK)
        return rc;
    s->phase[PH_START] = cq_par_now();
    if ((rc = stream_tensors(s, err)) != CQ_OK)
        return rc;
    s->phase[PH_TENSORS] = cq_par_now();
    if ((rc = cq_st_writer_finish(s->w, err)) != CQ_OK ||
        (rc = cq_copy_aux_files(cq_st_dir(s->m), dir, err)) != CQ_OK ||
        (rc = write_configs(s, dir, err)) != CQ_OK)
        return rc;
    s->phase[PH_FILES] = cq_par_now();
    if ((rc = hasher_finish(&s->hash, s->report, err)) != CQ_OK ||
        (rc = cq_report_finish(s->report, cq_par_now() - s->t0, err)) != CQ_OK)
        return rc;
    s->phase[PH_HASHES] = cq_par_now();
    /* The report sits inside the folder unless --report names another place; that one is
     * written only after the folder is committed, so a failed run leaves neither. */
    if (s->job->report_path)
        return CQ_OK;
    if ((rc = join(path, sizeof path, dir, CQ_REPORT_FILE, err)) != CQ_OK)
        return rc;
    return cq_report_write(s->report, path, false, err);
}

int cq_make_parents(const char *path, cq_error *err)
{
    char buf[4096];
    if ((size_t)snprintf(buf, sizeof buf, "%s", path) >= sizeof buf)
        return cq_errorf(err, CQ_E_USAGE, "'%s': path too long", path);
    char *slash = strrchr(buf, '/');
    if (!slash || slash == buf)
        return CQ_OK;
    *slash = 0;
    /* mkdir -p, one component at a time; existing folders are fine */
    for (char *p = buf + 1;; p++) {
        char c = *p;
        if (c == '/' || c == 0) {
            *p = 0;
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return cq_errorf_errno(err, CQ_E_IO, "'%s': cannot create folder", buf);
            *p = c;
        }
        if (!c)
            return CQ_OK;
    }
}

/* Options the layout can never hold (awq with 3 bits, ...) are a usage error, not 56 skipped
 * layers: probe check() with a shape every layout accepts. */
static int check_layout_options(const cq_quant_job *job, cq_error *err)
{
    int64_t n = job->q.group_size > 0 ? (int64_t)job->q.group_size * 32 : 4096;
    cq_error why = CQ_ERROR_INIT;
    if (job->layout->check(&job->q, n, n, &why) == CQ_OK)
        return CQ_OK;
    return cq_errorf(err, CQ_E_USAGE, "--format %s: %s", job->layout->name, why.msg);
}

/* A resumed folder keeps the killed run's shards (reopened) and its hidden entries (the lock,
 * gptq's state folder). Every other file (configs, copied tokenizer files, the shard index, the
 * report, an atomic write's half-done temporary) is written again by this run: a stale one
 * would block that write ("exists") or end up in the output, so it goes. Found by
 * scripts/fault_inject.sh (kill -9 after the last layer, then --resume). */
static int scrub_resumed(const char *dir, cq_error *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return cq_errorf_errno(err, CQ_E_IO, "'%s': cannot list", dir);
    int rc = CQ_OK;
    struct dirent *e;
    char path[4200];
    while (rc == CQ_OK && (e = readdir(d))) {
        size_t k = strlen(e->d_name);
        struct stat st;
        if (e->d_name[0] == '.' || (k > 12 && !strcmp(e->d_name + k - 12, ".safetensors")))
            continue;
        if ((rc = join(path, sizeof path, dir, e->d_name, err)) == CQ_OK &&
            lstat(path, &st) == 0 && !S_ISDIR(st.st_mode) && unlink(path) != 0)
            rc = cq_errorf_errno(err, CQ_E_IO, "'%s': cannot remove", path);
    }
    closedir(d);
    return rc;
}

/* A fresh temporary folder, or with --resume the one a killed run left (its files reopened). */
static int begin_output(run_state *s, cq_error *err)
{
    int resumed = 0;
    if (!s->job->resume)
        return cq_outdir_begin(&s->od, s->sum->out, s->job->force, err);
    int rc = cq_outdir_resume(&s->od, s->sum->out, s->job->force, &resumed, err);
    s->resumed = resumed != 0;
    if (rc == CQ_OK && s->resumed)
        rc = scrub_resumed(cq_outdir_path(&s->od), err);
    return rc;
}

int cq_quant_run(const cq_quant_job *job, cq_quant_summary *sum, cq_error *err)
{
    run_state s = {.job = job, .sum = sum, .od = {.lock_fd = -1, .slot = -1}, .t0 = cq_par_now(),
                   .workers = 1,
                   .hash = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER}};
    int rc;
    memset(sum, 0, sizeof *sum);
    if (job->out)
        snprintf(sum->out, sizeof sum->out, "%s", job->out);
    else
        cq_quant_default_out(job, sum->out, sizeof sum->out);
    if (job->report_path)
        snprintf(sum->report, sizeof sum->report, "%s", job->report_path);
    else if ((rc = join(sum->report, sizeof sum->report, sum->out, CQ_REPORT_FILE, err)))
        return rc;
    if ((rc = cq_qconfig_check(&job->q, err)) != CQ_OK ||
        (rc = check_layout_options(job, err)) != CQ_OK ||
        (rc = cq_st_open(&s.m, job->model, err)) != CQ_OK || (rc = load_config(&s, err)) != CQ_OK ||
        (rc = make_plan(&s, err)) != CQ_OK || (rc = cq_make_parents(sum->out, err)) != CQ_OK ||
        (rc = check_resources(&s, err)) != CQ_OK || job->check_only ||
        (rc = begin_output(&s, err)) != CQ_OK ||
        (rc = start_report(&s, err)) != CQ_OK)
        goto done;
    if ((rc = build_output(&s, err)) != CQ_OK)
        goto done;
    s.od.no_sync = job->no_sync;
    rc = cq_outdir_commit(&s.od, err);
    sum->seconds = cq_par_now() - s.t0;
    if (rc == CQ_OK)
        log_phases(&s);
    if (rc == CQ_OK && job->report_path)
        rc = cq_report_write(s.report, job->report_path, job->force, err);
done:
    hasher_finish(&s.hash, NULL, NULL); /* joins before the model (its paths) is closed */
    if (rc != CQ_OK && s.keep)
        cq_outdir_keep(&s.od);
    else if (rc != CQ_OK)
        cq_outdir_abort(&s.od);
    cq_st_writer_free(s.w);
    cq_report_free(s.report);
    free(s.items);
    free(s.quant_idx);
    cJSON_Delete(s.config);
    cJSON_Delete(s.config_out);
    cq_st_close(s.m);
    return rc;
}
