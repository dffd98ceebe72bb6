/* Linear selection (see select.h). Name rules only: whether the layout can hold a shape is the
 * packer's question (cq_layout.check), not this file's. */
#include "cquant/select.h"

#include <fnmatch.h>
#include <stdio.h>
#include <string.h>

/* Architectures whose decoder layer is Llama's: the same seven projections (notes §B.7). */
static const char *const llama_family[] = {
    "LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM",
};

static const char *const llama_modules[] = {
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
    "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj",
};

int cq_select_init(cq_select *s, const cJSON *config, const char *const *include, int n_include,
                   const char *const *exclude, int n_exclude, cq_error *err)
{
    memset(s, 0, sizeof *s);
    for (int i = 0; i < n_include; i++)
        if (!include[i][0])
            return cq_errorf(err, CQ_E_USAGE, "--include: empty pattern");
    for (int i = 0; i < n_exclude; i++)
        if (!exclude[i][0])
            return cq_errorf(err, CQ_E_USAGE, "--exclude: empty pattern");
    s->include = include;
    s->n_include = n_include;
    s->exclude = exclude;
    s->n_exclude = n_exclude;
    const cJSON *archs = config ? cJSON_GetObjectItemCaseSensitive(config, "architectures") : NULL;
    const cJSON *a0 = cJSON_IsArray(archs) ? cJSON_GetArrayItem(archs, 0) : NULL;
    if (cJSON_IsString(a0))
        snprintf(s->arch, sizeof s->arch, "%s", a0->valuestring);
    for (size_t i = 0; i < sizeof llama_family / sizeof *llama_family; i++)
        if (!strcmp(s->arch, llama_family[i]))
            s->llama_rules = true;
    return CQ_OK;
}

const char *cq_select_rule_name(const cq_select *s) { return s->llama_rules ? "llama" : "generic"; }

/* Length of "layers.N." at p, or 0. */
static size_t layer_prefix(const char *p)
{
    if (strncmp(p, "layers.", 7))
        return 0;
    size_t n = 7;
    if (p[n] < '0' || p[n] > '9')
        return 0;
    while (p[n] >= '0' && p[n] <= '9')
        n++;
    return p[n] == '.' ? n + 1 : 0;
}

/* The part of NAME after the first "layers.N.", or NULL. */
static const char *in_layer(const char *name)
{
    for (const char *p = name; (p = strstr(p, "layers.")); p++) {
        size_t n = layer_prefix(p);
        if (n && (p == name || p[-1] == '.'))
            return p + n;
    }
    return NULL;
}

static bool llama_match(const char *name)
{
    const char *rest = in_layer(name);
    if (!rest || strncmp(name, "model.layers.", 13))
        return false;
    for (size_t i = 0; i < sizeof llama_modules / sizeof *llama_modules; i++) {
        size_t n = strlen(llama_modules[i]);
        if (!strncmp(rest, llama_modules[i], n) && !strcmp(rest + n, ".weight"))
            return true;
    }
    return false;
}

static bool generic_match(const char *name)
{
    const char *rest = in_layer(name);
    size_t n = strlen(name);
    return rest && n > 7 && !strcmp(name + n - 7, ".weight") && !strstr(rest, "norm") &&
           !strstr(rest, "embed");
}

/* A glob matches the tensor name or its module name (the name without ".weight"). */
static bool glob_any(const char *const *pats, int n, const char *name)
{
    char module[512];
    size_t len = strlen(name);
    snprintf(module, sizeof module, "%s", name);
    if (len > 7 && len < sizeof module && !strcmp(name + len - 7, ".weight"))
        module[len - 7] = 0;
    for (int i = 0; i < n; i++)
        if (!fnmatch(pats[i], name, 0) || !fnmatch(pats[i], module, 0))
            return true;
    return false;
}

static bool never(const char *name)
{
    size_t n = strlen(name);
    return strstr(name, "embed") || strstr(name, "norm") ||
           (n >= 14 && !strcmp(name + n - 14, "lm_head.weight"));
}

bool cq_select_tensor(const cq_select *s, const char *name, cq_dtype dtype, int ndim)
{
    const cq_dtype_traits *dt = cq_dtype_info(dtype);
    size_t n = strlen(name);
    if (ndim != 2 || !dt || !dt->is_float || n <= 7 || strcmp(name + n - 7, ".weight") ||
        never(name))
        return false;
    bool pick;
    if (s->n_include > 0)
        pick = glob_any(s->include, s->n_include, name);
    else
        pick = s->llama_rules ? llama_match(name) : generic_match(name);
    return pick && !glob_any(s->exclude, s->n_exclude, name);
}
