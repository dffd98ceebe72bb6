/* cquant inspect: what a checkpoint holds (tensors, totals, architecture) and, for quantized
 * checkpoints, how it was quantized (quantization_config and the packed Linears found). */
#include "cli.h"
#include "qshape.h"

#include "cquant/json.h"
#include "cquant/model.h"
#include "cquant/safetensors.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef struct inspect_totals {
    int64_t params, quantized_linears;
    size_t bytes;
} inspect_totals;

static void shape_str(const cq_st_tensor *t, char *buf, size_t n)
{
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < t->ndim && k < n; d++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
    if (k < n)
        snprintf(buf + k, n - k, "]");
}

static cJSON *tensor_json(const cq_st_tensor *t)
{
    cJSON *o = cJSON_CreateObject(), *shape = cJSON_AddArrayToObject(o, "shape");
    cJSON_AddStringToObject(o, "name", t->name);
    cJSON_AddStringToObject(o, "dtype", cq_dtype_info(t->dtype)->name);
    for (int d = 0; d < t->ndim; d++)
        cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[d]));
    cJSON_AddNumberToObject(o, "bytes", (double)t->nbytes);
    return o;
}

/* Architecture fields worth a glance; absent keys are skipped. */
static void arch_summary(const cJSON *cfg, cJSON *out, bool print)
{
    static const char *const keys[] = {"model_type",          "hidden_size",
                                       "intermediate_size",   "ffn_dim",
                                       "word_embed_proj_dim", "num_hidden_layers",
                                       "num_attention_heads", "num_key_value_heads",
                                       "head_dim",            "sliding_window",
                                       "vocab_size",          "torch_dtype"};
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(cfg, "architectures");
    const cJSON *a0 = cJSON_IsArray(archs) ? cJSON_GetArrayItem(archs, 0) : NULL;
    const char *arch = cJSON_IsString(a0) ? a0->valuestring : "unknown";
    cJSON_AddStringToObject(out, "architecture", arch);
    /* Whether calibration (gptq/awq) and eval can run the model natively, or need a statistics
     * file made elsewhere. */
    const cq_arch_desc *d = cJSON_IsString(a0) ? cq_arch_lookup(arch) : NULL;
    cJSON_AddBoolToObject(out, "native_forward", d != NULL);
    if (print)
        printf("architecture: %s\n  native forward: %s\n", arch,
               d ? "yes (rtn, gptq, awq, eval)" : "no (rtn only; gptq from a statistics file: "
                                                  "docs/stats.md)");
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, keys[i]);
        if (!v || (!cJSON_IsNumber(v) && !cJSON_IsString(v)))
            continue;
        cJSON_AddItemToObject(out, keys[i], cJSON_Duplicate(v, 0));
        if (print && cJSON_IsNumber(v))
            printf("  %s: %lld\n", keys[i], (long long)v->valuedouble);
        else if (print)
            printf("  %s: %s\n", keys[i], v->valuestring);
    }
}

/* quantization_config: method, bits, group size, format, sym (whichever are present). */
static void quant_summary(const cJSON *qcfg, int64_t n_linear, cJSON *out, bool print)
{
    static const char *const keys[] = {"quant_method", "bits", "group_size", "sym",
                                       "desc_act", "checkpoint_format", "format", "version",
                                       "zero_point", "w_bit", "q_group_size"};
    cJSON *q = cJSON_AddObjectToObject(out, "quantization");
    if (print)
        printf("quantization:\n");
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(qcfg, keys[i]);
        if (!v)
            continue;
        cJSON_AddItemToObject(q, keys[i], cJSON_Duplicate(v, 0));
        char *s = print ? cJSON_PrintUnformatted(v) : NULL;
        if (s)
            printf("  %s: %s\n", keys[i], s);
        cJSON_free(s);
    }
    cJSON_AddNumberToObject(q, "quantized_linears", (double)n_linear);
    if (print)
        printf("  quantized linears: %lld\n", (long long)n_linear);
}

static int load_config(const cq_st_model *m, cJSON **cfg, cq_error *err)
{
    char path[4096];
    *cfg = NULL;
    snprintf(path, sizeof path, "%s/config.json", cq_st_dir(m));
    if (access(path, F_OK) != 0)
        return CQ_OK;
    int rc = cq_json_load(cfg, path, err);
    if (rc == CQ_OK && !cJSON_IsObject(*cfg))
        rc = cq_errorf(err, CQ_E_FORMAT, "'%s': expected a JSON object", path);
    return rc;
}

static void list_tensors(const cq_st_model *m, cJSON *arr, bool print, inspect_totals *tot)
{
    for (size_t i = 0; i < cq_st_count(m); i++) {
        const cq_st_tensor *t = cq_st_at(m, i);
        char shape[160];
        tot->params += t->numel;
        tot->bytes += t->nbytes;
        if (cq_qshape_is_primary(t->name))
            tot->quantized_linears++;
        cJSON_AddItemToArray(arr, tensor_json(t));
        if (print) {
            shape_str(t, shape, sizeof shape);
            printf("%-56s %-5s %-16s %12zu\n", t->name, cq_dtype_info(t->dtype)->name, shape,
                   t->nbytes);
        }
    }
}

int cmd_inspect(cq_cli *cli, int argc, char **argv, cq_error *err)
{
    const cq_option opts[] = {CQ_OPT_COMMON(&cli->common), OPT_END()};
    cq_st_model *m = NULL;
    cJSON *cfg = NULL;
    int n = cli_parse(cli, opts, "cquant inspect [--json] PATH",
                      "PATH is a .safetensors file or a checkpoint folder (sharded or not).",
                      argc, argv, err);
    if (n < 0 || cli->help_shown)
        return n < 0 ? n : CQ_OK;
    int rc = cli_expect_args(n, 1, "PATH", err);
    if (rc == CQ_OK)
        rc = cq_st_open(&m, argv[0], err);
    if (rc == CQ_OK)
        rc = load_config(m, &cfg, err);
    if (rc != CQ_OK)
        goto done;
    bool print = !cli->common.json;
    inspect_totals tot = {0};
    cli->json = cJSON_CreateObject();
    cJSON_AddStringToObject(cli->json, "path", argv[0]);
    list_tensors(m, cJSON_AddArrayToObject(cli->json, "tensors"), print, &tot);
    cJSON_AddNumberToObject(cli->json, "shards", (double)cq_st_shard_count(m));
    cJSON_AddNumberToObject(cli->json, "tensor_count", (double)cq_st_count(m));
    cJSON_AddNumberToObject(cli->json, "parameters", (double)tot.params);
    cJSON_AddNumberToObject(cli->json, "total_bytes", (double)tot.bytes);
    if (print)
        printf("tensors: %zu in %zu shard(s), %lld parameters (stored elements), %zu bytes\n",
               cq_st_count(m), cq_st_shard_count(m), (long long)tot.params, tot.bytes);
    if (cfg)
        arch_summary(cfg, cli->json, print);
    const cJSON *qcfg = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "quantization_config") : NULL;
    if (cJSON_IsObject(qcfg))
        quant_summary(qcfg, tot.quantized_linears, cli->json, print);
done:
    cJSON_Delete(cfg);
    cq_st_close(m);
    return rc;
}
