/* The gptq producer inside the shared driver (quantize.c): every tensor planned for
 * quantization is emitted from here.
 *
 * Calibration path: embed the windows, cq_gptq_model_run layer by layer; each Linear is packed
 * and written as soon as it is quantized. After each layer the state needed to resume is saved
 * in OUT.cquant-tmp/.cquant-gptq/: hidden.<L>.f32 (the next layer's input, f32, exactly as in
 * memory) and state.json (the options and input digests it belongs to, the finished layer
 * count, and every finished Linear's report entry), written in that order after the output
 * files are synced, so a state never names data that is not on disk. --resume reopens the
 * planned files, marks the finished Linears written and continues with the saved activations:
 * the arithmetic of the remaining layers is the same, so the bytes are the same.
 *
 * Under mpirun each rank holds its share of the sequences (cq_gptq_model_share); rank 0 runs
 * the driver and writes, the other ranks run gptq_worker. hidden.<L>.f32 is always the whole
 * activation set in sequence order (rank 0 gathers the shares), so --resume works with any
 * number of ranks.
 *
 * Statistics path: GPTQ per Linear from <module>.hessian; a planned Linear without one is
 * quantized with RTN and a warning (--strict: an error). */
#include "gptq_cli.h"

#include "cquant/dist.h"
#include "cquant/dtype.h"
#include "cquant/json.h"
#include "cquant/log.h"
#include "cquant/outdir.h"
#include "cquant/stats.h"
#include "quant/par.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define STATE_DIR ".cquant-gptq"
#define STATE_VERSION 2 /* 2: hidden.<layer>.f32 */

typedef struct prod {
    gptq_args *a;
    cq_quant_sink *sink;
    cq_st_model *st;           /* the model, opened again for layer loading */
    cq_model_config cfg;
    unsigned char *emitted;    /* [sink count] */
    cJSON *state;              /* state.json being built */
    cJSON *linears;            /* its "linears" array (borrowed from state) */
    char dir[4096];            /* the state folder */
    char options[1024];        /* canonical options string */
    char inputs[65];           /* input shard digest */
    float *hidden;             /* this rank's share of the activations */
    size_t hidden_bytes;
    int64_t seq0, seq1;        /* the share: sequences [seq0, seq1) */
    int64_t sent_before;       /* cq_dist_bytes_sent at the start of the layer */
    bool mapped;
    int64_t first_layer;
    double t0;
    /* the current layer, for its progress line */
    int n_lin;
    double loss, rtn_loss, damp_max;
    char moe_line[2048];       /* the layer's experts: routed tokens, '*' = fallback */
    size_t moe_len;
} prod;

static int64_t sink_index(const prod *p, const char *name)
{
    for (int64_t i = 0; i < cq_quant_sink_count(p->sink); i++)
        if (!strcmp(cq_quant_sink_tensor(p->sink, i)->name, name))
            return i;
    return -1;
}

static void lin_name(const prod *p, char *buf, size_t n, int64_t layer, int lin)
{
    char mod[160];
    cq_layer_tensor_name(&p->cfg, layer, cq_linear_module(&p->cfg, lin, mod, sizeof mod),
                         ".weight", buf, n);
}

/* ---- report entries ---- */

/* The MoE fields of an expert's entry (docs/report.md). */
static void moe_json(cJSON *o, const cq_gptq_lin_stats *st, int64_t min_tokens)
{
    cJSON *m = cJSON_AddObjectToObject(o, "moe");
    cJSON_AddNumberToObject(m, "expert", st->expert);
    cJSON_AddNumberToObject(m, "routed_tokens", (double)st->routed_tokens);
    cJSON_AddNumberToObject(m, "hessian_tokens", (double)st->hessian_tokens);
    cJSON_AddNumberToObject(m, "min_tokens", (double)min_tokens);
    cJSON_AddStringToObject(m, "fallback", st->moe_fallback ? "all_tokens_hessian" : "none");
}

static cJSON *stats_json(const cq_gptq_lin_stats *st)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "gptq_loss", st->gptq_loss);
    cJSON_AddNumberToObject(o, "gptq_loss_reference", st->gptq_loss_ref);
    cJSON_AddNumberToObject(o, "rtn_loss", st->rtn_loss);
    cJSON_AddNumberToObject(o, "output_energy", st->out_energy);
    cJSON_AddNumberToObject(o, "rel_weight_error", st->rel_weight_error);
    cJSON_AddNumberToObject(o, "rel_output_error", st->rel_output_error);
    cJSON_AddNumberToObject(o, "rtn_rel_output_error", st->rtn_rel_output_error);
    cJSON_AddNumberToObject(o, "damp_used", st->damp_used);
    cJSON_AddNumberToObject(o, "damp_tries", st->damp_tries);
    cJSON_AddNumberToObject(o, "dead_columns", (double)st->dead_cols);
    return o;
}

/* The numbers of a report entry, as state.json keeps them for a resumed run. */
static cJSON *entry_json(const cq_layer_report *lr, const cJSON *extra)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", lr->name);
    cJSON_AddStringToObject(o, "method", lr->method);
    cJSON_AddNumberToObject(o, "rows", (double)lr->rows);
    cJSON_AddNumberToObject(o, "cols", (double)lr->cols);
    cJSON_AddNumberToObject(o, "mse", lr->err.mse);
    cJSON_AddNumberToObject(o, "max_abs", lr->err.max_abs);
    cJSON_AddNumberToObject(o, "rel_fro", lr->err.rel_fro);
    cJSON_AddNumberToObject(o, "sum_sq_err", lr->err.sum_sq_err);
    cJSON_AddNumberToObject(o, "sum_sq_w", lr->err.sum_sq_w);
    cJSON_AddNumberToObject(o, "n", (double)lr->err.n);
    cJSON_AddNumberToObject(o, "seconds", lr->seconds);
    cJSON_AddItemToObject(o, "extra", extra ? cJSON_Duplicate(extra, 1) : cJSON_CreateObject());
    return o;
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static const char *str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int emit(prod *p, const char *name, const char *method, const float *w, cq_qresult *qr,
                double seconds, cJSON *extra, cq_error *err)
{
    cq_layer_report lr;
    int64_t i = sink_index(p, name);
    if (extra) /* here, so that the resume state's copy of extra has it too */
        cJSON_AddNumberToObject(extra, "zero_range_groups",
                                (double)cq_zero_range_groups(w, qr->rows, qr->cols,
                                                             p->a->job.q.group_size));
    int rc = cq_quant_emit(p->sink, name, method, w, qr, seconds, extra, &lr, err);
    if (rc == CQ_OK && i >= 0)
        p->emitted[i] = 1;
    if (rc == CQ_OK && p->linears)
        cJSON_AddItemToArray(p->linears, entry_json(&lr, extra));
    return rc;
}

/* RTN for a planned Linear no Hessian reaches (statistics without it, or outside the decoder
 * layers); --strict makes it an error. */
static int fallback_rtn(prod *p, const cq_st_tensor *t, const char *why, cq_error *err)
{
    const cq_quant_job *job = &p->a->job;
    if (job->strict)
        return cq_errorf(err, CQ_E_USAGE, "tensor '%s': %s (--strict)", t->name, why);
    cq_warn("tensor '%s': %s; quantized with rtn", t->name, why);
    double t0 = cq_par_now();
    int64_t rows = t->shape[0], cols = t->shape[1];
    float *w = malloc((size_t)(rows * cols) * sizeof *w);
    cq_qresult qr = {0};
    if (!w)
        return cq_errorf(err, CQ_E_NOMEM, "tensor '%s': out of memory", t->name);
    const float *src = job->source ? job->source(job->source_ctx, t->name) : NULL;
    int rc = CQ_OK;
    if (src)
        memcpy(w, src, (size_t)(rows * cols) * sizeof *w);
    else
        rc = cq_st_read_f32(t, w, err);
    if (rc == CQ_OK)
        rc = cq_rtn_quantize(&job->q, w, rows, cols, &qr, err);
    cJSON *extra = cJSON_CreateObject();
    cJSON_AddStringToObject(extra, "fallback", why);
    if (rc == CQ_OK)
        rc = emit(p, t->name, "rtn", w, &qr, cq_par_now() - t0, extra, err);
    cJSON_Delete(extra);
    cq_qresult_release(&qr);
    free(w);
    if (rc != CQ_OK && !strstr(err->msg, t->name))
        cq_error_prefix(err, "tensor '%s'", t->name);
    return rc;
}

static int finish_leftovers(prod *p, const char *why, cq_error *err)
{
    int rc = CQ_OK;
    for (int64_t i = 0; i < cq_quant_sink_count(p->sink) && rc == CQ_OK; i++)
        if (!p->emitted[i])
            rc = fallback_rtn(p, cq_quant_sink_tensor(p->sink, i), why, err);
    return rc;
}

/* ---- statistics path ---- */

static int stats_one(prod *p, const cq_st_tensor *t, const cq_st_tensor *ht, cq_error *err)
{
    int64_t rows = t->shape[0], cols = t->shape[1];
    size_t nw = (size_t)(rows * cols), nh = (size_t)(cols * cols);
    float *w = malloc(nw * sizeof *w), *q = malloc(nw * sizeof *q);
    double *h = malloc(nh * sizeof *h);
    cq_qresult qr = {0};
    cq_gptq_lin_stats st;
    int rc = !w || !q || !h ? cq_errorf(err, CQ_E_NOMEM, "out of memory") : CQ_OK;
    if (rc == CQ_OK)
        rc = cq_stats_read(ht, cols, h, err);
    if (rc == CQ_OK)
        rc = cq_st_read_f32(t, w, err);
    if (rc == CQ_OK)
        rc = cq_gptq_linear(&p->a->job.q, w, rows, cols, h, q, &qr, &st, err);
    if (rc == CQ_OK) {
        cJSON *extra = stats_json(&st);
        cq_info("gptq: %s: loss %.4g (rtn %.4g), rel output error %.4g, damp %g", t->name,
                st.gptq_loss, st.rtn_loss, st.rel_output_error, st.damp_used);
        rc = emit(p, t->name, "gptq", w, &qr, st.seconds, extra, err);
        cJSON_Delete(extra);
    }
    cq_qresult_release(&qr);
    free(w);
    free(q);
    free(h);
    if (rc != CQ_OK && !strstr(err->msg, t->name))
        cq_error_prefix(err, "tensor '%s'", t->name);
    return rc;
}

static int run_stats(prod *p, cq_error *err)
{
    int rc = CQ_OK;
    int64_t n = cq_quant_sink_count(p->sink), missing = 0;
    for (int64_t i = 0; i < n && rc == CQ_OK; i++) {
        const cq_st_tensor *t = cq_quant_sink_tensor(p->sink, i);
        const cq_st_tensor *ht = cq_stats_find(p->a->stats, t->name);
        if (!ht) {
            missing++;
            continue;
        }
        rc = stats_one(p, t, ht, err);
    }
    if (rc == CQ_OK && missing)
        cq_warn("gptq: %lld of %lld Linears have no Hessian in '%s'", (long long)missing,
                (long long)n, p->a->calib_path);
    if (rc == CQ_OK)
        rc = finish_leftovers(p, "no hessian in the statistics file", err);
    return rc;
}

/* ---- resume state ---- */

static void make_options(prod *p)
{
    const gptq_args *a = p->a;
    const cq_qconfig *q = &a->job.q;
    int k = snprintf(p->options, sizeof p->options,
                     "bits=%d group=%d sym=%d mse=%d act=%d static=%d damp=%.17g block=%d "
                     "tries=%d ts=%d chunk=%lld format=%s shard=%zu strict=%d",
                     q->bits, q->group_size, q->sym, q->mse, q->act_order, q->static_groups,
                     q->damp, q->block_size, q->max_damp_tries, a->mo.true_sequential,
                     (long long)a->mo.chunk_tokens, a->job.layout->name, a->job.max_shard_bytes,
                     a->job.strict);
    if (a->mo.moe_min_tokens && k > 0 && (size_t)k < sizeof p->options)
        k += snprintf(p->options + k, sizeof p->options - (size_t)k, " moe_min=%lld",
                      (long long)a->mo.moe_min_tokens);
    for (int i = 0; i < a->job.include.n && k > 0 && (size_t)k < sizeof p->options; i++)
        k += snprintf(p->options + k, sizeof p->options - (size_t)k, " +%s",
                      a->job.include.items[i]);
    for (int i = 0; i < a->job.exclude.n && k > 0 && (size_t)k < sizeof p->options; i++)
        k += snprintf(p->options + k, sizeof p->options - (size_t)k, " -%s",
                      a->job.exclude.items[i]);
}

static int state_path(const prod *p, char *buf, size_t n, const char *file, cq_error *err)
{
    if ((size_t)snprintf(buf, n, "%s/%s", p->dir, file) >= n)
        return cq_errorf(err, CQ_E_USAGE, "'%s': path too long", p->dir);
    return CQ_OK;
}

static int write_fully(int fd, const void *data, size_t n)
{
    const char *c = data;
    while (n > 0) {
        ssize_t k = write(fd, c, n > (1u << 30) ? (1u << 30) : n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        c += k;
        n -= (size_t)k;
    }
    return 0;
}

/* hidden.<L>.f32: the input of layer L (L = finished layers), via a synced temporary file and a
 * rename. The name carries L because state.json is written after it: a kill between the two
 * must leave the file the old state.json names intact (with one hidden.f32 for both, a resume
 * fed layer L the input of layer L+1: found by scripts/fault_inject.sh). */
static int hidden_path(const prod *p, int64_t layer, char *buf, size_t n, cq_error *err)
{
    char file[64];
    snprintf(file, sizeof file, "hidden.%lld.f32", (long long)layer);
    return state_path(p, buf, n, file, err);
}

/* Activations move between ranks in pieces of at most this many bytes (bounded buffers). */
#define PIECE_BYTES ((size_t)64 << 20)

/* A non-root rank's share to rank 0: its size, then the bytes in pieces. */
static int send_share(const prod *p, cq_error *err)
{
    int64_t n = (int64_t)p->hidden_bytes;
    int rc = cq_dist_send(&n, sizeof n, 0, err);
    for (size_t off = 0; rc == CQ_OK && off < p->hidden_bytes; off += PIECE_BYTES) {
        size_t k = p->hidden_bytes - off < PIECE_BYTES ? p->hidden_bytes - off : PIECE_BYTES;
        rc = cq_dist_send((const char *)p->hidden + off, k, 0, err);
    }
    return rc;
}

/* Rank 0: write its share, then every other rank's in rank order (the sequence order). A
 * write error stops the writing but not the receiving, so no rank is left waiting. */
static int gather_write(prod *p, int fd, const char *path, cq_error *err)
{
    int rc = write_fully(fd, p->hidden, p->hidden_bytes) == 0
                 ? CQ_OK
                 : cq_errorf_errno(err, CQ_E_IO, "'%s': write failed", path);
    char *buf = cq_dist_active() ? malloc(PIECE_BYTES) : NULL;
    if (cq_dist_active() && !buf)
        return cq_errorf(err, CQ_E_NOMEM, "out of memory gathering activations");
    int mrc = CQ_OK;
    cq_error merr = CQ_ERROR_INIT;
    for (int r = 1; r < cq_dist_size() && mrc == CQ_OK; r++) {
        int64_t n = 0;
        mrc = cq_dist_recv(&n, sizeof n, r, &merr);
        for (int64_t off = 0; mrc == CQ_OK && off < n; off += (int64_t)PIECE_BYTES) {
            size_t k = (size_t)(n - off) < PIECE_BYTES ? (size_t)(n - off) : PIECE_BYTES;
            mrc = cq_dist_recv(buf, k, r, &merr);
            if (mrc == CQ_OK && rc == CQ_OK && write_fully(fd, buf, k) != 0)
                rc = cq_errorf_errno(err, CQ_E_IO, "'%s': write failed", path);
        }
    }
    free(buf);
    if (mrc != CQ_OK) {
        *err = merr;
        return mrc;
    }
    return rc;
}

/* hidden.<layer>.f32 via a synced temporary file and a rename (every rank's share,
 * gathered). */
static int save_hidden(prod *p, int64_t layer, cq_error *err)
{
    char tmp[4200], fin[4200];
    int rc = state_path(p, tmp, sizeof tmp, "hidden.tmp", err);
    if (rc == CQ_OK)
        rc = hidden_path(p, layer, fin, sizeof fin, err);
    int fd = rc == CQ_OK ? open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : -1;
    if (rc == CQ_OK && fd < 0)
        rc = cq_errorf_errno(err, CQ_E_IO, "'%s': cannot create", tmp);
    if (rc != CQ_OK) { /* still drain the other ranks' shares */
        cq_error ignore = CQ_ERROR_INIT;
        int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
        gather_write(p, devnull, "/dev/null", &ignore);
        if (devnull >= 0)
            close(devnull);
        return rc;
    }
    rc = gather_write(p, fd, tmp, err);
    if (rc == CQ_OK && fdatasync(fd) != 0)
        rc = cq_errorf_errno(err, CQ_E_IO, "'%s': write failed", tmp);
    if (close(fd) != 0 && rc == CQ_OK)
        rc = cq_errorf_errno(err, CQ_E_IO, "'%s': write failed", tmp);
    if (rc == CQ_OK && rename(tmp, fin) != 0)
        return cq_errorf_errno(err, CQ_E_IO, "'%s': cannot save", fin);
    return rc;
}

/* After state.json moved on to `layer`, the previous layer's input is garbage. */
static void drop_hidden(prod *p, int64_t layer)
{
    char path[4200];
    cq_error ignore = CQ_ERROR_INIT;
    if (layer >= 1 && hidden_path(p, layer, path, sizeof path, &ignore) == CQ_OK)
        unlink(path);
}

static int save_state(prod *p, int64_t done_layers, cq_error *err)
{
    char path[4200];
    cJSON *d = cJSON_GetObjectItemCaseSensitive(p->state, "done_layers");
    cJSON_SetNumberValue(d, (double)done_layers);
    int rc = state_path(p, path, sizeof path, "state.json", err);
    if (rc == CQ_OK)
        rc = cq_json_write_file(p->state, path, 1, err);
    return rc;
}

static int new_state(prod *p, cq_error *err)
{
    p->state = cJSON_CreateObject();
    if (!p->state)
        return cq_errorf(err, CQ_E_NOMEM, "out of memory");
    cJSON_AddNumberToObject(p->state, "version", STATE_VERSION);
    cJSON_AddStringToObject(p->state, "options", p->options);
    cJSON_AddStringToObject(p->state, "inputs_sha256", p->inputs);
    cJSON_AddStringToObject(p->state, "calib_sha256", p->a->calib_digest);
    cJSON_AddNumberToObject(p->state, "done_layers", 0);
    p->linears = cJSON_AddArrayToObject(p->state, "linears");
    return CQ_OK;
}

static int read_fully(int fd, void *data, size_t n, const char *path, cq_error *err)
{
    size_t got = 0;
    while (got < n) {
        ssize_t k = read(fd, (char *)data + got, n - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return cq_errorf_errno(err, CQ_E_IO, "'%s': read failed", path);
        got += (size_t)k;
    }
    return CQ_OK;
}

/* Rank 0 reads hidden.<layer>.f32 (checked whole) into its share... */
static int load_hidden(prod *p, int64_t layer, int *fd_out, cq_error *err)
{
    char path[4200];
    int64_t total = (int64_t)p->cfg.hidden * p->a->calib.seqlen * p->a->calib.n * 4;
    *fd_out = -1;
    int rc = hidden_path(p, layer, path, sizeof path, err);
    if (rc != CQ_OK)
        return rc;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        rc = cq_errorf_errno(err, CQ_E_IO, "'%s': cannot open", path);
        if (fd >= 0)
            close(fd);
        return rc;
    }
    if ((int64_t)sb.st_size != total)
        rc = cq_errorf(err, CQ_E_FORMAT, "'%s': %lld bytes, expected %lld", path,
                       (long long)sb.st_size, (long long)total);
    if (rc == CQ_OK)
        rc = read_fully(fd, p->hidden, p->hidden_bytes, path, err);
    if (rc == CQ_OK)
        *fd_out = fd; /* ...and the rest goes to the other ranks (scatter_hidden) */
    else
        close(fd);
    return rc;
}

/* After the start agreement: rank 0 sends each rank its share of hidden.<L>.f32 (fd positioned
 * after rank 0's share); the others receive theirs. */
static int scatter_hidden(prod *p, int fd, cq_error *err)
{
    int rc = CQ_OK;
    if (cq_dist_rank() > 0) {
        int64_t n = (int64_t)p->hidden_bytes;
        rc = cq_dist_send(&n, sizeof n, 0, err);
        for (size_t off = 0; rc == CQ_OK && off < p->hidden_bytes; off += PIECE_BYTES) {
            size_t k = p->hidden_bytes - off < PIECE_BYTES ? p->hidden_bytes - off : PIECE_BYTES;
            rc = cq_dist_recv((char *)p->hidden + off, k, 0, err);
        }
        return rc;
    }
    char *buf = cq_dist_active() ? malloc(PIECE_BYTES) : NULL;
    if (cq_dist_active() && !buf)
        rc = cq_errorf(err, CQ_E_NOMEM, "out of memory sending activations");
    for (int r = 1; r < cq_dist_size() && rc == CQ_OK; r++) {
        int64_t n = 0;
        rc = cq_dist_recv(&n, sizeof n, r, err);
        for (int64_t off = 0; rc == CQ_OK && off < n; off += (int64_t)PIECE_BYTES) {
            size_t k = (size_t)(n - off) < PIECE_BYTES ? (size_t)(n - off) : PIECE_BYTES;
            rc = read_fully(fd, buf, k, "hidden.<L>.f32", err);
            if (rc == CQ_OK)
                rc = cq_dist_send(buf, k, r, err);
        }
    }
    free(buf);
    return rc;
}

/* Restore a killed run's finished Linears. Returns the layer to start from and, when the
 * activations are to be read, the open hidden.<L>.f32 in *fd. */
static int restore(prod *p, const cJSON *old, int64_t *first, int *fd, cq_error *err)
{
    const char *why = NULL;
    double v = num(old, "version"), done = num(old, "done_layers");
    if (v != STATE_VERSION)
        why = "another state version";
    else if (!str(old, "options") || strcmp(str(old, "options"), p->options))
        why = "other options";
    else if (!str(old, "inputs_sha256") || strcmp(str(old, "inputs_sha256"), p->inputs))
        why = "another model";
    else if (!str(old, "calib_sha256") || strcmp(str(old, "calib_sha256"), p->a->calib_digest))
        why = "other calibration data";
    else if (!(done >= 0 && done <= (double)p->cfg.n_layers))
        why = "a bad layer count";
    if (why) {
        cq_quant_sink_keep_on_failure(p->sink); /* the killed run stays resumable */
        return cq_errorf(err, CQ_E_USAGE,
                         "cannot resume '%s': the killed run used %s (run without --resume to "
                         "start over)", cq_quant_sink_dir(p->sink), why);
    }
    const cJSON *lins = cJSON_GetObjectItemCaseSensitive(old, "linears"), *e;
    int rc = CQ_OK;
    cJSON_ArrayForEach(e, lins)
    {
        const char *name = str(e, "name"), *method = str(e, "method");
        int64_t i = name ? sink_index(p, name) : -1;
        if (i < 0 || !method || p->emitted[i]) {
            rc = cq_errorf(err, CQ_E_FORMAT, "'%s': bad resume state", p->dir);
            break;
        }
        cq_layer_report lr = {.name = name, .rows = (int64_t)num(e, "rows"),
                              .cols = (int64_t)num(e, "cols"), .method = method,
                              .bits = p->a->job.q.bits, .group_size = p->a->job.q.group_size,
                              .sym = p->a->job.q.sym, .seconds = num(e, "seconds"),
                              .extra = cJSON_GetObjectItemCaseSensitive(e, "extra")};
        lr.err = (cq_werr){.mse = num(e, "mse"), .max_abs = num(e, "max_abs"),
                           .rel_fro = num(e, "rel_fro"), .sum_sq_err = num(e, "sum_sq_err"),
                           .sum_sq_w = num(e, "sum_sq_w"), .n = (int64_t)num(e, "n")};
        if ((rc = cq_quant_mark_done(p->sink, name, &lr, err)) != CQ_OK)
            break;
        p->emitted[i] = 1;
        cJSON_AddItemToArray(p->linears, cJSON_Duplicate(e, 1));
    }
    *first = (int64_t)done;
    if (rc == CQ_OK && *first > 0 && *first < p->cfg.n_layers)
        rc = load_hidden(p, *first, fd, err);
    if (rc == CQ_OK)
        cq_info("gptq: resuming after layer %lld of %lld", (long long)*first,
                (long long)p->cfg.n_layers);
    return rc;
}

static int open_state(prod *p, int64_t *first, int *fd, cq_error *err)
{
    char path[4200];
    *first = 0;
    make_options(p);
    int rc = cq_quant_sink_input_digest(p->sink, p->inputs, err);
    if (rc == CQ_OK && (size_t)snprintf(p->dir, sizeof p->dir, "%s/%s",
                                        cq_quant_sink_dir(p->sink), STATE_DIR) >= sizeof p->dir)
        rc = cq_errorf(err, CQ_E_USAGE, "'%s': path too long", cq_quant_sink_dir(p->sink));
    if (rc == CQ_OK && mkdir(p->dir, 0777) != 0 && errno != EEXIST)
        rc = cq_errorf_errno(err, CQ_E_IO, "'%s': cannot create", p->dir);
    if (rc == CQ_OK)
        rc = new_state(p, err);
    if (rc == CQ_OK)
        rc = state_path(p, path, sizeof path, "state.json", err);
    if (rc != CQ_OK || !cq_quant_sink_resumed(p->sink) || access(path, F_OK) != 0)
        return rc;
    cJSON *old = NULL;
    if ((rc = cq_json_load(&old, path, err)) == CQ_OK)
        rc = restore(p, old, first, fd, err);
    cJSON_Delete(old);
    return rc;
}

/* ---- calibration path ---- */

static bool hk_wants(void *ctx, int64_t layer, int lin)
{
    prod *p = ctx;
    char name[256];
    lin_name(p, name, sizeof name, layer, lin);
    return cq_quant_sink_wants(p->sink, name);
}

static int hk_linear(void *ctx, int64_t layer, int lin, const float *w, const cq_qresult *qr,
                     const cq_gptq_lin_stats *st, cq_error *err)
{
    prod *p = ctx;
    char name[256];
    lin_name(p, name, sizeof name, layer, lin);
    if (cq_interrupted()) {
        cq_quant_sink_keep_on_failure(p->sink); /* the last finished layer's state stays */
        return cq_errorf(err, CQ_E_INTERRUPTED, "interrupted in layer %lld (state kept: add "
                         "--resume to continue)", (long long)layer);
    }
    /* emit rounds scales in place (already F16 here: no change); it needs a mutable result */
    cq_qresult copy = *qr;
    cJSON *extra = stats_json(st);
    if (st->expert >= 0) {
        int64_t min_tokens = cq_gptq_moe_min_tokens(&p->cfg, &p->a->mo);
        moe_json(extra, st, min_tokens);
        if ((lin - CQ_LIN_MOE_BASE) % 3 == CQ_MOE_GATE && p->moe_len < sizeof p->moe_line) {
            int k = st->expert == p->cfg.n_experts
                        ? snprintf(p->moe_line + p->moe_len, sizeof p->moe_line - p->moe_len,
                                   " shared:%lld", (long long)st->routed_tokens)
                        : snprintf(p->moe_line + p->moe_len, sizeof p->moe_line - p->moe_len,
                                   " %d:%lld%s", st->expert, (long long)st->routed_tokens,
                                   st->moe_fallback ? "*" : "");
            p->moe_len += k > 0 ? (size_t)k : 0;
        }
    }
    cq_debug("gptq: %s: loss %.4g (rtn %.4g) damp %g %.2fs", name, st->gptq_loss, st->rtn_loss,
             st->damp_used, st->seconds);
    int rc = emit(p, name, p->a->method ? p->a->method : "gptq", w, &copy, st->seconds, extra,
                  err);
    cJSON_Delete(extra);
    p->n_lin++;
    p->loss += st->gptq_loss;
    p->rtn_loss += st->rtn_loss;
    p->damp_max = st->damp_used > p->damp_max ? st->damp_used : p->damp_max;
    return rc;
}

/* One tensor of the loaded layer replaced by the job's source (AWQ's scaled weights and the
 * norms and biases the scales were folded into); tensors the source lacks stay as loaded. */
static int replace_tensor(void *ctx, const cq_layer_tensor *t, cq_error *err)
{
    const cq_quant_job *job = ctx;
    const float *src = job->source(job->source_ctx, t->name);
    int64_t n = t->ndim == 2 ? t->shape[0] * t->shape[1] : t->shape[0];
    (void)err;
    if (src && t->data)
        memcpy(t->data, src, (size_t)n * sizeof *src);
    return CQ_OK;
}

/* Replace the loaded layer with the job's source tensors (cquant awq --then-gptq). Every Linear
 * must have its replacement: a missing one would be rounded unscaled. */
static int hk_loaded(void *ctx, int64_t layer, cq_layer_weights *w, cq_error *err)
{
    prod *p = ctx;
    const cq_quant_job *job = &p->a->job;
    for (int l = 0; l < CQ_LIN_COUNT; l++) {
        char name[256];
        if (!w->lin[l] || !cq_linear_present(&p->cfg, l))
            continue;
        lin_name(p, name, sizeof name, layer, l);
        if (!job->source(job->source_ctx, name))
            return cq_errorf(err, CQ_E_INTERNAL, "layer %lld: no replacement for '%s'",
                             (long long)layer, name);
    }
    return cq_layer_foreach(&p->cfg, w, layer, replace_tensor, (void *)job, err);
}

/* Test hooks (tests/cli/gptq.sh, tests/cli/faults.sh, tests/mpi/same_bytes.sh): exit as a
 * kill -9 would after layer i's state is saved (CQ_TEST_DIE_AFTER_LAYER=i; under mpirun on rank
 * CQ_TEST_DIE_RANK, default 0), or on rank 0 between its hidden file and its state.json
 * (CQ_TEST_DIE_BEFORE_STATE=i). */
static int die_at(const char *var)
{
    const char *e = getenv(var);
    return e && *e ? atoi(e) : -1;
}

static void maybe_die(int64_t layer)
{
    const char *r = getenv("CQ_TEST_DIE_RANK");
    int rank = r && *r ? atoi(r) : 0;
    if (die_at("CQ_TEST_DIE_AFTER_LAYER") == layer && rank == cq_dist_rank()) {
        fprintf(stderr, "cquant: CQ_TEST_DIE_AFTER_LAYER=%lld: rank %d exiting\n",
                (long long)layer, cq_dist_rank());
        _exit(137);
    }
}

/* A non-root rank's end of a layer: its share of the resume state. */
static int hk_layer_worker(void *ctx, int64_t layer, const float *hidden, double secs,
                           cq_error *err)
{
    prod *p = ctx;
    (void)hidden;
    (void)secs;
    int rc = layer + 1 < p->cfg.n_layers ? send_share(p, err) : CQ_OK;
    int64_t sent = (int64_t)cq_dist_bytes_sent() - p->sent_before;
    if (rc == CQ_OK)
        rc = cq_dist_sum_i64(&sent, 1, err);
    p->sent_before = (int64_t)cq_dist_bytes_sent();
    if (rc == CQ_OK)
        maybe_die(layer);
    return rc;
}

static int hk_layer(void *ctx, int64_t layer, const float *hidden, double secs, cq_error *err)
{
    prod *p = ctx;
    (void)hidden;
    int64_t n = p->cfg.n_layers, done = layer + 1 - p->first_layer;
    double eta = (cq_par_now() - p->t0) / (double)done * (double)(n - layer - 1);
    cq_info("gptq: layer %lld/%lld: %d linears, loss %.4g (rtn %.4g), damp %g, %.1fs, ETA %.0fs",
            (long long)layer + 1, (long long)n, p->n_lin, p->loss, p->rtn_loss, p->damp_max,
            secs, eta);
    if (p->moe_len)
        cq_info("gptq: layer %lld/%lld experts, routed calibration tokens:%s (* = fewer than "
                "%lld: Hessian from all %lld tokens)", (long long)layer + 1, (long long)n,
                p->moe_line, (long long)cq_gptq_moe_min_tokens(&p->cfg, &p->a->mo),
                (long long)(p->a->calib.n * p->a->calib.seqlen));
    p->moe_len = 0;
    p->moe_line[0] = 0;
    p->n_lin = 0;
    p->loss = p->rtn_loss = p->damp_max = 0;
    int rc = cq_quant_sink_sync(p->sink, err);
    if (layer + 1 < n) { /* a collective: the other ranks send their shares whatever happens */
        cq_error serr = CQ_ERROR_INIT;
        int src = save_hidden(p, layer + 1, rc == CQ_OK ? err : &serr);
        rc = rc == CQ_OK ? src : rc;
    }
    /* bytes all ranks sent for this layer (Hessians, weights, the resume state's activations) */
    int64_t sent = (int64_t)cq_dist_bytes_sent() - p->sent_before;
    cq_error cerr = CQ_ERROR_INIT;
    int crc = cq_dist_sum_i64(&sent, 1, &cerr);
    p->sent_before = (int64_t)cq_dist_bytes_sent();
    if (crc != CQ_OK && rc == CQ_OK) {
        *err = cerr;
        rc = crc;
    }
    if (rc == CQ_OK && cq_dist_active())
        cq_info("gptq: layer %lld/%lld: %d ranks sent %.3f MiB", (long long)layer + 1,
                (long long)n, cq_dist_size(), (double)sent / 1048576.0);
    if (rc == CQ_OK && die_at("CQ_TEST_DIE_BEFORE_STATE") == layer)
        _exit(137);
    if (rc == CQ_OK)
        rc = save_state(p, layer + 1, err);
    if (rc == CQ_OK)
        drop_hidden(p, layer);
    if (rc == CQ_OK)
        maybe_die(layer);
    if (rc == CQ_OK && cq_interrupted()) {
        cq_quant_sink_keep_on_failure(p->sink);
        rc = cq_errorf(err, CQ_E_INTERRUPTED, "interrupted after layer %lld of %lld (state kept: "
                       "add --resume to continue)", (long long)layer + 1, (long long)n);
    }
    return rc;
}

static int alloc_hidden(prod *p, cq_error *err)
{
    const gptq_args *a = p->a;
    cq_gptq_model_share(&a->mo, a->calib.n, a->calib.seqlen, &p->seq0, &p->seq1);
    size_t n = (size_t)((p->seq1 - p->seq0) * a->calib.seqlen * p->cfg.hidden);
    p->hidden_bytes = n * sizeof(float);
    if (!a->offload_dir) {
        p->hidden = malloc(p->hidden_bytes ? p->hidden_bytes : 1);
        return p->hidden ? CQ_OK
                         : cq_errorf(err, CQ_E_NOMEM, "out of memory for %zu bytes of "
                                     "activations (try --offload-dir)", p->hidden_bytes);
    }
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/cquant-gptq-act.XXXXXX", a->offload_dir) >=
        sizeof path)
        return cq_errorf(err, CQ_E_USAGE, "--offload-dir: path too long");
    int fd = mkstemp(path);
    if (fd < 0)
        return cq_errorf_errno(err, CQ_E_IO, "'%s': cannot create", path);
    unlink(path); /* nothing to clean up, whatever happens */
    int rc = CQ_OK;
    if (ftruncate(fd, (off_t)p->hidden_bytes) != 0)
        rc = cq_errorf_errno(err, CQ_E_IO, "'%s': cannot size %zu bytes", a->offload_dir,
                             p->hidden_bytes);
    void *m = rc == CQ_OK ? mmap(NULL, p->hidden_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                                 0)
                          : MAP_FAILED;
    close(fd);
    if (rc == CQ_OK && m == MAP_FAILED)
        rc = cq_errorf_errno(err, CQ_E_IO, "'%s': cannot map activations", a->offload_dir);
    if (rc == CQ_OK) {
        p->hidden = m;
        p->mapped = true;
    }
    return rc;
}

static void log_plan(const prod *p)
{
    const gptq_args *a = p->a;
    cq_gptq_plan pl;
    cq_gptq_model_plan(&p->cfg, a->calib.n, a->calib.seqlen, &a->mo, &pl);
    const double M = 1024.0 * 1024.0;
    cq_info("gptq: %lld windows x %lld tokens; planned peak %.0f MiB = activations %.0f%s + "
            "layer %.0f + hessians %.0f + gptq %.0f + forward %.0f",
            (long long)a->calib.n, (long long)a->calib.seqlen, (double)pl.total / M,
            (double)pl.activations / M, a->offload_dir ? " (mapped file)" : "",
            (double)pl.layer_weights / M, (double)pl.hessians / M, (double)pl.gptq_work / M,
            (double)pl.forward / M);
}

/* report "gptq"."moe": per layer, the routed tokens of every expert (from the entries, which
 * a resumed run restores) and the experts that used the fallback. */
static void moe_summary(const prod *p, cJSON *section)
{
    cJSON *m = cJSON_AddObjectToObject(section, "moe");
    cJSON_AddNumberToObject(m, "experts", (double)p->cfg.n_experts);
    cJSON_AddNumberToObject(m, "top_k", (double)p->cfg.top_k);
    cJSON_AddNumberToObject(m, "min_tokens", (double)cq_gptq_moe_min_tokens(&p->cfg, &p->a->mo));
    cJSON_AddStringToObject(m, "fallback", "all_tokens_hessian");
    cJSON *layers = cJSON_AddArrayToObject(m, "layers");
    for (int64_t l = 0; l < p->cfg.n_layers; l++) {
        if (!cq_layer_is_moe(&p->cfg, l))
            continue;
        cJSON *o = cJSON_CreateObject(), *tok = cJSON_CreateArray(), *fb = cJSON_CreateArray();
        cJSON_AddNumberToObject(o, "layer", (double)l);
        bool seen = false;
        for (int64_t e = 0; e < p->cfg.n_experts; e++) {
            char name[256];
            double t = -1;
            const cJSON *ent, *ex;
            lin_name(p, name, sizeof name, l, (int)CQ_LIN_EXPERT(e, CQ_MOE_GATE));
            cJSON_ArrayForEach(ent, p->linears)
            {
                ex = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(ent,
                                                      "extra"), "moe");
                if (ex && !strcmp(str(ent, "name"), name)) {
                    t = num(ex, "routed_tokens");
                    if (str(ex, "fallback") && strcmp(str(ex, "fallback"), "none"))
                        cJSON_AddItemToArray(fb, cJSON_CreateNumber((double)e));
                }
            }
            seen = seen || t >= 0;
            cJSON_AddItemToArray(tok, t >= 0 ? cJSON_CreateNumber(t) : cJSON_CreateNull());
        }
        cJSON_AddItemToObject(o, "routed_tokens", tok);
        cJSON_AddItemToObject(o, "fallback_experts", fb);
        if (seen)
            cJSON_AddItemToArray(layers, o);
        else
            cJSON_Delete(o);
    }
}

/* The calibration input of this rank's share: hidden.<L>.f32 of a resumed run (rank 0 holds it
 * open in fd), or the embedded calibration ids. Every rank calls this after the start. */
static int first_input(prod *p, int64_t *first, int fd, cq_error *err)
{
    const gptq_args *a = p->a;
    int rc = cq_dist_bcast(first, sizeof *first, 0, err);
    if (rc == CQ_OK && *first > 0 && *first < p->cfg.n_layers)
        rc = scatter_hidden(p, fd, err);
    else if (rc == CQ_OK && *first == 0)
        rc = cq_embed_seqs(&p->cfg, p->st, a->calib.ids + p->seq0 * a->calib.seqlen,
                           p->seq1 - p->seq0, a->calib.seqlen, p->hidden, err);
    return cq_dist_agree(rc, err);
}

static int open_model(prod *p, cq_error *err)
{
    int rc = cq_st_open(&p->st, p->a->job.model, err);
    if (rc == CQ_OK)
        rc = cq_config_load(cq_st_dir(p->st), &p->cfg, err);
    if (rc == CQ_OK)
        rc = cq_config_check(&p->cfg, p->st, err);
    /* the data-parallel path splits the tokens over the ranks, but an expert's Hessian needs
     * the tokens routed to it from every rank (docs/moe.md, docs/scale-out.md) */
    if (rc == CQ_OK && p->cfg.n_experts > 0 && cq_dist_active())
        rc = cq_errorf(err, CQ_E_UNSUPPORTED, "'%s': gptq of a mixture-of-experts model under "
                       "mpirun is not supported (run one process)", p->a->job.model);
    return rc;
}

static int run_pipeline(prod *p, cq_error *err)
{
    gptq_args *a = p->a;
    int64_t first = 0;
    int fd = -1;
    int rc = open_model(p, err);
    if (rc == CQ_OK) {
        log_plan(p);
        rc = alloc_hidden(p, err);
    }
    if (rc == CQ_OK)
        rc = open_state(p, &first, &fd, err);
    a->dist_started = true; /* the other ranks wait for this agreement (gptq_worker) */
    rc = cq_dist_agree(rc, err);
    if (rc == CQ_OK)
        rc = first_input(p, &first, fd, err);
    if (fd >= 0)
        close(fd);
    cq_gptq_hooks hk = {.ctx = p, .wants = hk_wants, .linear_done = hk_linear,
                        .layer_done = hk_layer, .layer_loaded = a->job.source ? hk_loaded : NULL};
    p->first_layer = first;
    p->t0 = cq_par_now();
    p->sent_before = (int64_t)cq_dist_bytes_sent();
    if (rc == CQ_OK && first < p->cfg.n_layers)
        rc = cq_gptq_model_run(&p->cfg, p->st, p->hidden, a->calib.n, a->calib.seqlen, first,
                               &a->job.q, &a->mo, &hk, err);
    if (rc == CQ_OK)
        rc = finish_leftovers(p, "not inside a decoder layer the calibration reaches", err);
    if (rc == CQ_OK && p->cfg.n_experts > 0 && a->report_section)
        moe_summary(p, a->report_section);
    /* The state is only for resuming: the committed folder does not carry it. */
    if (rc == CQ_OK && cq_remove_tree(p->dir) != 0)
        rc = cq_errorf_errno(err, CQ_E_IO, "'%s': cannot remove", p->dir);
    return rc;
}

static void prod_release(prod *p)
{
    if (p->mapped)
        munmap(p->hidden, p->hidden_bytes);
    else
        free(p->hidden);
    cJSON_Delete(p->state);
    cq_st_close(p->st);
    free(p->emitted);
}

int gptq_worker(gptq_args *a, cq_error *err)
{
    prod p;
    memset(&p, 0, sizeof p);
    p.a = a;
    int64_t first = 0;
    int rc = open_model(&p, err);
    if (rc == CQ_OK)
        rc = alloc_hidden(&p, err);
    rc = cq_dist_agree(rc, err); /* rank 0: in run_pipeline, or after a failed driver */
    if (rc == CQ_OK)
        rc = first_input(&p, &first, -1, err);
    cq_gptq_hooks hk = {.ctx = &p, .layer_done = hk_layer_worker};
    p.sent_before = (int64_t)cq_dist_bytes_sent();
    if (rc == CQ_OK && first < p.cfg.n_layers)
        rc = cq_gptq_model_run(&p.cfg, p.st, p.hidden, a->calib.n, a->calib.seqlen, first,
                               &a->job.q, &a->mo, &hk, err);
    prod_release(&p);
    return rc;
}

int gptq_produce(void *ctx, cq_quant_sink *sink, cq_error *err)
{
    prod p;
    memset(&p, 0, sizeof p);
    p.a = ctx;
    p.sink = sink;
    p.emitted = calloc((size_t)cq_quant_sink_count(sink) + 1, 1);
    if (!p.emitted)
        return cq_errorf(err, CQ_E_NOMEM, "out of memory");
    int rc = p.a->stats ? run_stats(&p, err) : run_pipeline(&p, err);
    prod_release(&p);
    return rc;
}
