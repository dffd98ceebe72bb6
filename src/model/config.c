/* config.json -> cq_model_config for the Llama family, and its check against tensor shapes. */
#include "cquant/model.h"

#include "cquant/checked.h"
#include "cquant/file.h"
#include "cquant/json.h"
#include "model/moe.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Integer field: absent -> def (or an error when def < 0). */
static int get_int(const cJSON *o, const char *key, int64_t def, int64_t *out, const char *path,
                   cq_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) {
        if (def < 0)
            return cq_errorf(err, CQ_E_FORMAT, "%s: missing \"%s\"", path, key);
        *out = def;
        return CQ_OK;
    }
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!(d >= 0 && d <= 1e15) || d != floor(d))
        return cq_errorf(err, CQ_E_FORMAT, "%s: \"%s\" is not a non-negative integer", path, key);
    *out = (int64_t)d;
    return CQ_OK;
}

static int get_num(const cJSON *o, const char *key, double def, double *out, const char *path,
                   cq_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return CQ_OK;
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return cq_errorf(err, CQ_E_FORMAT, "%s: \"%s\" is not a number", path, key);
    *out = v->valuedouble;
    return CQ_OK;
}

static bool get_bool(const cJSON *o, const char *key, bool def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : def;
}

static int parse_arch(const cJSON *root, const char *path, cq_model_config *cfg, cq_error *err)
{
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    const cJSON *first = cJSON_IsArray(archs) ? cJSON_GetArrayItem(archs, 0) : NULL;
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    const char *name = cJSON_IsString(first) ? first->valuestring
                       : cJSON_IsString(mt)  ? mt->valuestring
                                             : NULL;
    if (!name)
        return cq_errorf(err, CQ_E_FORMAT, "%s: no \"architectures\" or \"model_type\"", path);
    snprintf(cfg->arch_name, sizeof cfg->arch_name, "%s", name);
    cfg->desc = cq_arch_lookup(name);
    if (cfg->desc) {
        cfg->arch = cfg->desc->arch;
        return CQ_OK;
    }
    return cq_errorf(err, CQ_E_UNSUPPORTED,
                     "%s: architecture %s is not supported by the native forward pass "
                     "(supported: %s); use a statistics file: see docs/stats.md",
                     path, name, cq_arch_supported_list());
}

/* rope_scaling (older configs) or rope_parameters (transformers >= 5). */
static int parse_rope(const cJSON *root, const char *path, cq_model_config *cfg, cq_error *err)
{
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(root, "rope_parameters");
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    int rc = get_num(root, "rope_theta", 10000.0, &cfg->rope_theta, path, err);
    if (rc == CQ_OK && cJSON_IsObject(rp) && cJSON_GetObjectItemCaseSensitive(rp, "rope_theta"))
        rc = get_num(rp, "rope_theta", 10000.0, &cfg->rope_theta, path, err);
    if (rc != CQ_OK)
        return rc;
    const cJSON *sc = cJSON_IsObject(rs) ? rs : cJSON_IsObject(rp) ? rp : NULL;
    cfg->rope_type = CQ_ROPE_DEFAULT;
    if (!sc)
        return CQ_OK;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(sc, "rope_type");
    if (!cJSON_IsString(t))
        t = cJSON_GetObjectItemCaseSensitive(sc, "type");
    const char *type = cJSON_IsString(t) ? t->valuestring : "default";
    if (strcmp(type, "default") == 0)
        return CQ_OK;
    if (strcmp(type, "linear") == 0)
        cfg->rope_type = CQ_ROPE_LINEAR;
    else if (strcmp(type, "llama3") == 0)
        cfg->rope_type = CQ_ROPE_LLAMA3;
    else
        return cq_errorf(err, CQ_E_UNSUPPORTED, "%s: rope type \"%s\" is not supported", path,
                         type);
    rc = get_num(sc, "factor", 1.0, &cfg->rope_factor, path, err);
    if (rc == CQ_OK && cfg->rope_type == CQ_ROPE_LLAMA3) {
        rc = get_num(sc, "low_freq_factor", 1.0, &cfg->rope_low_freq_factor, path, err);
        if (rc == CQ_OK)
            rc = get_num(sc, "high_freq_factor", 4.0, &cfg->rope_high_freq_factor, path, err);
        if (rc == CQ_OK)
            rc = get_int(sc, "original_max_position_embeddings", 8192, &cfg->rope_orig_max_pos,
                         path, err);
        if (rc == CQ_OK && !(cfg->rope_high_freq_factor > cfg->rope_low_freq_factor))
            rc = cq_errorf(err, CQ_E_FORMAT, "%s: llama3 rope needs high_freq_factor > "
                           "low_freq_factor", path);
    }
    if (rc == CQ_OK && !(cfg->rope_factor > 0))
        rc = cq_errorf(err, CQ_E_FORMAT, "%s: rope factor must be positive", path);
    return rc;
}

static int parse_dims(const cJSON *root, const char *path, cq_model_config *cfg, cq_error *err)
{
    bool opt = cfg->arch == CQ_ARCH_OPT;
    int rc = get_int(root, "hidden_size", -1, &cfg->hidden, path, err);
    if (rc == CQ_OK)
        rc = get_int(root, opt ? "ffn_dim" : "intermediate_size", -1, &cfg->intermediate, path,
                     err);
    if (rc == CQ_OK) rc = get_int(root, "num_hidden_layers", -1, &cfg->n_layers, path, err);
    if (rc == CQ_OK) rc = get_int(root, "num_attention_heads", -1, &cfg->n_heads, path, err);
    if (rc == CQ_OK) rc = get_int(root, "vocab_size", -1, &cfg->vocab, path, err);
    if (rc == CQ_OK) rc = get_int(root, "max_position_embeddings", 0, &cfg->max_pos, path, err);
    if (rc != CQ_OK)
        return rc;
    if (cfg->hidden <= 0 || cfg->n_heads <= 0 || cfg->intermediate <= 0 || cfg->vocab <= 0 ||
        cfg->n_layers <= 0 || cfg->hidden > (1 << 20) || cfg->intermediate > (1 << 22) ||
        cfg->n_heads > 4096 || cfg->vocab > (1 << 24) || cfg->n_layers > 4096)
        return cq_errorf(err, CQ_E_FORMAT, "%s: model dimensions out of range", path);
    rc = get_int(root, "num_key_value_heads", cfg->n_heads, &cfg->n_kv_heads, path, err);
    /* Qwen3Config's head_dim defaults to 128, not hidden / heads; OPT has no such key. */
    int64_t hd = cfg->arch == CQ_ARCH_QWEN3 ? 128 : cfg->hidden / cfg->n_heads;
    if (rc == CQ_OK && !opt)
        rc = get_int(root, "head_dim", hd, &cfg->head_dim, path, err);
    if (opt) {
        cfg->n_kv_heads = cfg->n_heads;
        cfg->head_dim = hd;
        if (cfg->head_dim * cfg->n_heads != cfg->hidden)
            return cq_errorf(err, CQ_E_FORMAT, "%s: hidden_size %lld is not a multiple of "
                             "num_attention_heads", path, (long long)cfg->hidden);
    }
    if (rc != CQ_OK)
        return rc;
    if (cfg->n_kv_heads <= 0 || cfg->n_heads % cfg->n_kv_heads != 0)
        return cq_errorf(err, CQ_E_FORMAT, "%s: num_attention_heads %lld is not a multiple of "
                         "num_key_value_heads %lld", path, (long long)cfg->n_heads,
                         (long long)cfg->n_kv_heads);
    if (cfg->head_dim <= 0 || cfg->head_dim % 2 != 0 || cfg->head_dim > 4096)
        return cq_errorf(err, CQ_E_FORMAT, "%s: head_dim %lld must be even and positive", path,
                         (long long)cfg->head_dim);
    return CQ_OK;
}

/* Mistral always slides (MistralConfig's default window is 4096, null means none); Qwen2 and
 * Qwen3 only with use_sliding_window. */
static int parse_window(const cJSON *root, const char *path, cq_model_config *cfg, cq_error *err)
{
    cfg->sliding_window = 0;
    bool qwen = cfg->arch == CQ_ARCH_QWEN2 || cfg->arch == CQ_ARCH_QWEN3 ||
                cfg->arch == CQ_ARCH_QWEN2_MOE || cfg->arch == CQ_ARCH_QWEN3_MOE;
    if (cfg->arch == CQ_ARCH_MISTRAL || cfg->arch == CQ_ARCH_MIXTRAL) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "sliding_window");
        if (cJSON_IsNull(v))
            return CQ_OK;
        /* MistralConfig defaults to 4096, MixtralConfig to None */
        return get_int(root, "sliding_window", cfg->arch == CQ_ARCH_MISTRAL ? 4096 : 0,
                       &cfg->sliding_window, path, err);
    }
    if (!qwen || !get_bool(root, "use_sliding_window", false))
        return CQ_OK;
    int rc = get_int(root, "sliding_window", 0, &cfg->sliding_window, path, err);
    int64_t first = 0; /* transformers: layers >= max_window_layers slide, or layer_types */
    if (rc == CQ_OK)
        rc = get_int(root, "max_window_layers", 28, &first, path, err);
    const cJSON *types = cJSON_GetObjectItemCaseSensitive(root, "layer_types");
    int64_t sliding = 0, n = cJSON_IsArray(types) ? cJSON_GetArraySize(types) : 0;
    for (int64_t i = 0; i < n; i++) {
        const cJSON *t = cJSON_GetArrayItem(types, (int)i);
        sliding += cJSON_IsString(t) && !strcmp(t->valuestring, "sliding_attention");
    }
    if (!cJSON_IsArray(types))
        sliding = first < cfg->n_layers ? cfg->n_layers - first : 0;
    if (rc != CQ_OK || cfg->sliding_window == 0 || sliding == 0) {
        cfg->sliding_window = 0;
        return rc;
    }
    if (sliding != cfg->n_layers) /* one window for every layer is what the forward has */
        return cq_errorf(err, CQ_E_UNSUPPORTED, "%s: sliding window on %lld of %lld layers is "
                         "not supported", path, (long long)sliding, (long long)cfg->n_layers);
    return CQ_OK;
}

/* OPT's switches (configuration_opt.py defaults); the Linear biases follow enable_bias. */
static int parse_opt(const cJSON *root, const char *path, cq_model_config *cfg, cq_error *err)
{
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "activation_function");
    if (act && !(cJSON_IsString(act) && !strcmp(act->valuestring, "relu")))
        return cq_errorf(err, CQ_E_UNSUPPORTED, "%s: OPT activation_function other than relu "
                         "is not supported", path);
    if (!get_bool(root, "layer_norm_elementwise_affine", true))
        return cq_errorf(err, CQ_E_UNSUPPORTED, "%s: OPT without layer_norm_elementwise_affine "
                         "is not supported", path);
    bool before = get_bool(root, "do_layer_norm_before", true);
    cfg->post_ln = !before;
    cfg->no_final_norm = !before || get_bool(root, "_remove_final_layer_norm", false);
    cfg->norm_bias = true;
    cfg->pos_offset = 2;
    cfg->rms_eps = 1e-5; /* nn.LayerNorm's default; OPT's config has no eps */
    bool b = get_bool(root, "enable_bias", true);
    cfg->qkv_bias = cfg->o_bias = cfg->mlp_bias = b;
    int64_t wd;
    int rc = get_int(root, "word_embed_proj_dim", cfg->hidden, &wd, path, err);
    if (rc == CQ_OK && (wd < 1 || wd > (1 << 20)))
        rc = cq_errorf(err, CQ_E_FORMAT, "%s: word_embed_proj_dim out of range", path);
    if (rc == CQ_OK && cfg->max_pos < 1)
        rc = cq_errorf(err, CQ_E_FORMAT, "%s: OPT needs max_position_embeddings", path);
    cfg->word_dim = wd != cfg->hidden ? wd : 0;
    return rc;
}

int cq_config_parse(const char *json, const char *path, cq_model_config *cfg, cq_error *err)
{
    memset(cfg, 0, sizeof *cfg);
    /* The strict parser: raw control bytes in strings (cJSON takes them) would otherwise reach
     * one-line messages such as "unsupported architecture" (found by fuzz_config). */
    cJSON *root = NULL;
    if (cq_json_parse(&root, json, strlen(json), path, err) != CQ_OK)
        return err->code;
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return cq_errorf(err, CQ_E_FORMAT, "%s: not a JSON object", path);
    }
    int rc = parse_arch(root, path, cfg, err);
    if (rc == CQ_OK) rc = parse_dims(root, path, cfg, err);
    if (rc == CQ_OK) rc = get_num(root, "rms_norm_eps", 1e-6, &cfg->rms_eps, path, err);
    if (rc == CQ_OK) rc = parse_rope(root, path, cfg, err);
    if (rc == CQ_OK) rc = parse_window(root, path, cfg, err);
    if (rc == CQ_OK) rc = cq_moe_parse_config(root, path, cfg, err);
    if (rc == CQ_OK) {
        /* Qwen2's q/k/v always carry a bias and o_proj never does; Qwen3 follows
         * attention_bias like Llama. */
        bool ab = get_bool(root, "attention_bias", false);
        cfg->qkv_bias = cfg->arch == CQ_ARCH_QWEN2 ? true : ab;
        cfg->o_bias = cfg->arch == CQ_ARCH_QWEN2 ? false : ab;
        cfg->mlp_bias = cfg->arch == CQ_ARCH_LLAMA && get_bool(root, "mlp_bias", false);
        if (cfg->arch == CQ_ARCH_QWEN2_MOE) /* Qwen2MoeConfig.qkv_bias, default true */
            cfg->qkv_bias = get_bool(root, "qkv_bias", true);
        /* transformers' PretrainedConfig default is true; cq_config_check verifies it. */
        cfg->tie_embeddings = get_bool(root, "tie_word_embeddings", true);
    }
    if (rc == CQ_OK && cfg->arch == CQ_ARCH_OPT)
        rc = parse_opt(root, path, cfg, err);
    if (rc == CQ_OK && !(cfg->rms_eps > 0))
        rc = cq_errorf(err, CQ_E_FORMAT, "%s: rms_norm_eps must be positive", path);
    cJSON_Delete(root);
    cq_error_printable(err); /* names may hold escaped control characters ("\u000a") */
    return rc;
}

int cq_config_load(const char *dir, cq_model_config *cfg, cq_error *err)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s/config.json", dir) >= (int)sizeof path)
        return cq_errorf(err, CQ_E_USAGE, "%s: path too long", dir);
    char *text = NULL;
    size_t len;
    /* FIFO-safe, regular files only, capped: a config is a few KB */
    int rc = cq_read_file(path, (size_t)64 << 20, 0, &text, &len, err);
    if (rc == CQ_OK)
        rc = cq_config_parse(text, path, cfg, err);
    free(text);
    return rc;
}

/* HF `_compute_default_rope_parameters`: inv_freq = 1 / base^(arange(0, dim, 2) / dim) in
 * float32; `_compute_llama3_parameters` then rescales by wavelength band. */
void cq_rope_inv_freq(const cq_model_config *cfg, float *inv_freq)
{
    int64_t half = cfg->head_dim / 2;
    float base = (float)cfg->rope_theta, dim = (float)cfg->head_dim;
    for (int64_t i = 0; i < half; i++) {
        float e = (float)(2 * i) / dim;
        inv_freq[i] = 1.0f / powf(base, e);
    }
    if (cfg->rope_type == CQ_ROPE_LINEAR) {
        for (int64_t i = 0; i < half; i++)
            inv_freq[i] /= (float)cfg->rope_factor;
        return;
    }
    if (cfg->rope_type != CQ_ROPE_LLAMA3)
        return;
    double factor = cfg->rope_factor, lo = cfg->rope_low_freq_factor;
    double hi = cfg->rope_high_freq_factor, old = (double)cfg->rope_orig_max_pos;
    double lo_wavelen = old / lo, hi_wavelen = old / hi;
    for (int64_t i = 0; i < half; i++) {
        float f = inv_freq[i];
        double wavelen = 2 * M_PI / f;
        if (wavelen > lo_wavelen) {
            inv_freq[i] = (float)(f / factor);
        } else if (wavelen >= hi_wavelen) {
            double smooth = (old / wavelen - lo) / (hi - lo);
            inv_freq[i] = (float)((1 - smooth) * f / factor + smooth * f);
        }
    }
}
