/* cquant dequant: unpack a quantized checkpoint (layout detected from config.json's
 * quantization_config) back to a float checkpoint. Non-quantized tensors are copied byte-exact;
 * each packed Linear becomes "<module>.weight" in the chosen dtype. */
#include "cli.h"
#include "qshape.h"
#include "quantize.h"

#include "cquant/json.h"
#include "cquant/log.h"
#include "cquant/outdir.h"
#include "cquant/plan.h"
#include "cquant/safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct dq_linear {
    char prefix[1024];
    int64_t rows, cols;
    size_t first;   /* index of its primary tensor */
} dq_linear;

typedef struct dq_state {
    cq_st_model *m;
    cJSON *config;
    cJSON *config_out; /* numbers kept as written, for the output's copy */
    const cJSON *qcfg;
    const cq_layout *layout;
    dq_linear *lin;
    size_t n_lin;
    unsigned char *member; /* [tensor count]: 1 when the tensor belongs to a packed Linear */
    cq_dtype out_dtype;
    cq_st_writer *w;
    cq_outdir od;
} dq_state;

static const struct {
    const char *flag, *torch;
    cq_dtype dt;
} out_dtypes[] = {{"f32", "float32", CQ_DT_F32}, {"f16", "float16", CQ_DT_F16},
                  {"bf16", "bfloat16", CQ_DT_BF16}};

static int open_input(dq_state *s, const char *path, cq_error *err)
{
    char cfg[4096];
    int rc = cq_st_open(&s->m, path, err);
    if (rc != CQ_OK)
        return rc;
    snprintf(cfg, sizeof cfg, "%s/config.json", cq_st_dir(s->m));
    if ((rc = cq_json_load(&s->config, cfg, err)) != CQ_OK ||
        (rc = cq_json_load_verbatim(&s->config_out, cfg, err)) != CQ_OK)
        return rc;
    s->qcfg = cJSON_GetObjectItemCaseSensitive(s->config, "quantization_config");
    if (!cJSON_IsObject(s->qcfg))
        return cq_errorf(err, CQ_E_UNSUPPORTED, "'%s': no quantization_config: not quantized",
                         cfg);
    if (!(s->layout = cq_layout_detect(s->qcfg)))
        return cq_errorf(err, CQ_E_UNSUPPORTED, "'%s': quantization_config names no layout "
                                                "cquant reads (gptq, awq gemm, compressed-tensors)",
                         cfg);
    return CQ_OK;
}

/* Does tensor NAME sit directly under PREFIX ("<prefix>.<suffix>", suffix without dots)? */
static bool under(const char *name, const char *prefix)
{
    size_t n = strlen(prefix);
    return !strncmp(name, prefix, n) && name[n] == '.' && !strchr(name + n + 1, '.') &&
           strcmp(name + n + 1, "bias");
}

static int find_linears(dq_state *s, cq_error *err)
{
    size_t nt = cq_st_count(s->m);
    s->lin = calloc(nt ? nt : 1, sizeof *s->lin);
    s->member = calloc(nt ? nt : 1, 1);
    if (!s->lin || !s->member)
        return cq_errorf(err, CQ_E_NOMEM, "out of memory listing %zu tensors", nt);
    for (size_t i = 0; i < nt; i++) {
        dq_linear *l = &s->lin[s->n_lin];
        if (!cq_qshape_is_primary_ex(cq_st_at(s->m, i)->name, l->prefix, sizeof l->prefix))
            continue;
        int rc = cq_qshape_infer(s->m, s->layout, l->prefix, &l->rows, &l->cols, err);
        if (rc != CQ_OK)
            return rc;
        l->first = i;
        s->n_lin++;
    }
    for (size_t i = 0; i < nt; i++)
        for (size_t k = 0; k < s->n_lin && !s->member[i]; k++)
            s->member[i] = under(cq_st_at(s->m, i)->name, s->lin[k].prefix);
    return CQ_OK;
}

static const dq_linear *linear_at(const dq_state *s, size_t i)
{
    for (size_t k = 0; k < s->n_lin; k++)
        if (s->lin[k].first == i)
            return &s->lin[k];
    return NULL;
}

/* Declare every output tensor, and check the free space of DIR against their bytes (plus a
 * header entry each, the copied small files and the config: 4 MiB). */
static int plan(dq_state *s, const char *dir, cq_error *err)
{
    int rc = CQ_OK;
    cq_plan p = {.output_bytes = (size_t)4 << 20};
    for (size_t i = 0; i < cq_st_count(s->m) && rc == CQ_OK; i++) {
        const cq_st_tensor *t = cq_st_at(s->m, i);
        const dq_linear *l = linear_at(s, i);
        char name[1100];
        if (l) {
            int64_t shape[2] = {l->rows, l->cols};
            snprintf(name, sizeof name, "%s.weight", l->prefix);
            rc = cq_st_writer_add(s->w, name, s->out_dtype, 2, shape, err);
            cq_plan_output(&p, (size_t)(l->rows * l->cols) *
                                   (size_t)cq_dtype_info(s->out_dtype)->size + 256);
        } else if (!s->member[i]) {
            rc = cq_st_writer_add(s->w, t->name, t->dtype, t->ndim, t->shape, err);
            cq_plan_output(&p, t->nbytes + 256);
        }
    }
    return rc == CQ_OK ? cq_plan_check_disk(&p, dir, err) : rc;
}

/* Gather "<prefix>.*" as borrowed cq_packed, unpack, dequantize, convert, write. */
static int dequant_one(dq_state *s, const dq_linear *l, cq_error *err)
{
    cq_packed in[CQ_PACK_MAX_TENSORS];
    int n = 0, rc;
    cq_qresult qr = {0};
    float *w = NULL;
    void *out = NULL;
    size_t numel = (size_t)l->rows * (size_t)l->cols;
    size_t osz = (size_t)cq_dtype_info(s->out_dtype)->size;
    for (size_t i = 0; i < cq_st_count(s->m) && n < CQ_PACK_MAX_TENSORS; i++) {
        const cq_st_tensor *t = cq_st_at(s->m, i);
        if (!s->member[i] || !under(t->name, l->prefix))
            continue;
        cq_packed *p = &in[n++];
        memset(p, 0, sizeof *p);
        snprintf(p->suffix, sizeof p->suffix, "%s", t->name + strlen(l->prefix) + 1);
        p->dtype = t->dtype;
        p->ndim = t->ndim;
        for (int d = 0; d < t->ndim && d < 2; d++)
            p->shape[d] = t->shape[d];
        p->nbytes = t->nbytes;
        p->data = (void *)t->data; /* borrowed: unpack only reads */
    }
    if ((rc = s->layout->unpack(s->qcfg, in, n, l->rows, l->cols, &qr, err)) != CQ_OK)
        goto done;
    w = malloc(numel * sizeof *w);
    out = s->out_dtype == CQ_DT_F32 ? (void *)w : malloc(numel * osz);
    if (!w || !out) {
        rc = cq_errorf(err, CQ_E_NOMEM, "'%s': out of memory", l->prefix);
        goto done;
    }
    cq_qresult_dequant(&qr, w);
    if (out != (void *)w)
        cq_convert_from_f32(s->out_dtype, w, out, numel);
    char name[1100];
    snprintf(name, sizeof name, "%s.weight", l->prefix);
    rc = cq_st_writer_write(s->w, name, out, numel * osz, err);
done:
    if (rc != CQ_OK)
        cq_error_prefix(err, "module '%s'", l->prefix);
    if (out != (void *)w)
        free(out);
    free(w);
    cq_qresult_release(&qr);
    return rc;
}

static int stream(dq_state *s, cq_error *err)
{
    size_t nt = cq_st_count(s->m);
    int64_t n_out = 0, done = 0;
    int rc = CQ_OK;
    for (size_t i = 0; i < nt; i++)
        n_out += !s->member[i] || linear_at(s, i);
    for (size_t i = 0; i < nt && rc == CQ_OK; i++) {
        const cq_st_tensor *t = cq_st_at(s->m, i);
        const dq_linear *l = linear_at(s, i);
        if (cq_interrupted())
            return cq_errorf(err, CQ_E_INTERRUPTED, "interrupted");
        if (!s->member[i] || l)
            cq_progress("dequant", ++done, n_out, l ? l->prefix : t->name);
        if (l)
            rc = dequant_one(s, l, err);
        else if (!s->member[i])
            rc = cq_st_writer_write(s->w, t->name, t->data, t->nbytes, err);
    }
    cq_progress_end();
    for (size_t i = 0; i < nt; i++)
        cq_st_release(cq_st_at(s->m, i));
    return rc;
}

static int write_config(dq_state *s, const char *dir, const char *torch_dtype, cq_error *err)
{
    char path[4096];
    cJSON *cfg = cJSON_Duplicate(s->config_out, 1);
    if (!cfg)
        return cq_errorf(err, CQ_E_NOMEM, "out of memory writing config.json");
    cJSON_DeleteItemFromObjectCaseSensitive(cfg, "quantization_config");
    cJSON_DeleteItemFromObjectCaseSensitive(cfg, "torch_dtype");
    cJSON_AddStringToObject(cfg, "torch_dtype", torch_dtype);
    if (cJSON_GetObjectItemCaseSensitive(cfg, "dtype")) {
        cJSON_DeleteItemFromObjectCaseSensitive(cfg, "dtype");
        cJSON_AddStringToObject(cfg, "dtype", torch_dtype);
    }
    snprintf(path, sizeof path, "%s/config.json", dir);
    int rc = cq_json_write_file(cfg, path, 0, err);
    cJSON_Delete(cfg);
    return rc;
}

static int run(dq_state *s, const char *in, const char *out, bool force, const char *torch,
               cq_error *err)
{
    int rc;
    if ((rc = open_input(s, in, err)) != CQ_OK || (rc = find_linears(s, err)) != CQ_OK ||
        (rc = cq_make_parents(out, err)) != CQ_OK ||
        (rc = cq_outdir_begin(&s->od, out, force, err)) != CQ_OK)
        return rc;
    const char *dir = cq_outdir_path(&s->od);
    if ((rc = cq_st_writer_create(&s->w, dir, 0, err)) != CQ_OK || (rc = plan(s, dir, err)) != CQ_OK ||
        (rc = cq_st_writer_start(s->w, err)) != CQ_OK || (rc = stream(s, err)) != CQ_OK ||
        (rc = cq_st_writer_finish(s->w, err)) != CQ_OK ||
        (rc = cq_copy_aux_files(cq_st_dir(s->m), dir, err)) != CQ_OK ||
        (rc = write_config(s, dir, torch, err)) != CQ_OK)
        return rc;
    return cq_outdir_commit(&s->od, err);
}

int cmd_dequant(cq_cli *cli, int argc, char **argv, cq_error *err)
{
    const char *out = NULL, *dtype = "f32";
    bool force = false;
    const cq_option opts[] = {
        OPT_STRING('o', "output", &out, "OUT", "output folder (default <QDIR>-dequant)", NULL),
        OPT_STRING(0, "dtype", &dtype, "T", "dtype of the unpacked weights", "f32|f16|bf16"),
        OPT_BOOL(0, "force", &force, "replace an existing output folder"),
        CQ_OPT_COMMON(&cli->common),
        OPT_END(),
    };
    int n = cli_parse(cli, opts, "cquant dequant [--dtype T] [-o OUT] QDIR",
                      "Unpack a GPTQ, AWQ or compressed-tensors checkpoint to float.", argc,
                      argv, err);
    if (n < 0 || cli->help_shown)
        return n < 0 ? n : CQ_OK;
    int rc = cli_expect_args(n, 1, "QDIR (a quantized checkpoint)", err);
    if (rc != CQ_OK)
        return rc;
    dq_state s = {.od = {.lock_fd = -1, .slot = -1}};
    size_t k = 0;
    while (strcmp(out_dtypes[k].flag, dtype))
        k++; /* the parser already checked dtype is one of the choices */
    s.out_dtype = out_dtypes[k].dt;
    char defout[4096];
    if (!out) {
        snprintf(defout, sizeof defout, "%s", argv[0]);
        size_t len = strlen(defout);
        while (len > 1 && defout[len - 1] == '/')
            defout[--len] = 0;
        snprintf(defout + len, sizeof defout - len, "-dequant");
        out = defout;
    }
    rc = run(&s, argv[0], out, force, out_dtypes[k].torch, err);
    if (rc != CQ_OK)
        cq_outdir_abort(&s.od);
    else {
        cli->json = cJSON_CreateObject();
        cJSON_AddStringToObject(cli->json, "output", out);
        cJSON_AddStringToObject(cli->json, "format", s.layout->name);
        cJSON_AddNumberToObject(cli->json, "linears", (double)s.n_lin);
        cJSON_AddStringToObject(cli->json, "dtype", dtype);
        if (!cli->common.json)
            printf("%s\n", out);
    }
    cq_st_writer_free(s.w);
    free(s.lin);
    free(s.member);
    cJSON_Delete(s.config);
    cJSON_Delete(s.config_out);
    cq_st_close(s.m);
    return rc;
}
