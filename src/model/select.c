/* Linear selection (see select.h). Name rules only: whether the layout can hold a shape is the
 * packer's question (cq_layout.check), not this file's. */
#include "cquant/select.h"

#include <fnmatch.h>
#include <stdio.h>
#include <string.h>

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
    s->desc = s->arch[0] ? cq_arch_lookup(s->arch) : NULL;
    s->llama_rules = s->desc != NULL;
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

/* Length of the decimal number at p (0 when none). */
static size_t digits(const char *p)
{
    size_t n = 0;
    while (p[n] >= '0' && p[n] <= '9')
        n++;
    return n;
}

/* Expert Linears: block_sparse_moe.experts.N.w1|w2|w3 (Mixtral),
 * mlp.experts.N.gate_proj|up_proj|down_proj and mlp.shared_expert.* (Qwen MoE). The routers
 * (block_sparse_moe.gate, mlp.gate, mlp.shared_expert_gate) are not among them. */
static bool moe_match(const char *rest)
{
    static const char *const qwen[] = {"gate_proj.weight", "up_proj.weight", "down_proj.weight"};
    static const char *const mix[] = {"w1.weight", "w2.weight", "w3.weight"};
    const char *const *parts = NULL;
    const char *p = NULL;
    if (!strncmp(rest, "block_sparse_moe.experts.", 25)) {
        p = rest + 25;
        parts = mix;
    } else if (!strncmp(rest, "mlp.experts.", 12)) {
        p = rest + 12;
        parts = qwen;
    } else if (!strncmp(rest, "mlp.shared_expert.", 18)) {
        p = rest + 18;
        parts = qwen;
    }
    if (!p)
        return false;
    if (parts == mix || p != rest + 18) { /* an expert index */
        size_t n = digits(p);
        if (!n || p[n] != '.')
            return false;
        p += n + 1;
    }
    for (int i = 0; i < 3; i++)
        if (!strcmp(p, parts[i]))
            return true;
    return false;
}

/* "<layers>.N.<module>.weight" for one of the architecture's Linears. */
static bool arch_match(const cq_arch_desc *d, const char *name)
{
    size_t lp = strlen(d->layers);
    if (strncmp(name, d->layers, lp) || name[lp] != '.')
        return false;
    const char *rest = name + lp + 1;
    if (*rest < '0' || *rest > '9')
        return false;
    while (*rest >= '0' && *rest <= '9')
        rest++;
    if (*rest++ != '.')
        return false;
    if (d->arch == CQ_ARCH_MIXTRAL || d->arch == CQ_ARCH_QWEN2_MOE || d->arch == CQ_ARCH_QWEN3_MOE)
        if (moe_match(rest))
            return true;
    for (int i = 0; i < CQ_LIN_COUNT; i++) {
        size_t n = d->lin[i] ? strlen(d->lin[i]) : 0;
        if (n && !strncmp(rest, d->lin[i], n) && !strcmp(rest + n, ".weight"))
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

static bool ends_with(const char *s, size_t n, const char *suffix)
{
    size_t k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

bool cq_select_is_router(const char *name)
{
    size_t n = strlen(name);
    return ends_with(name, n, ".mlp.gate.weight") ||
           ends_with(name, n, ".block_sparse_moe.gate.weight") ||
           ends_with(name, n, ".shared_expert_gate.weight");
}

/* MoE routers stay float (vLLM and transformers' quantized MoE kernels expect a float gate). */
static bool never(const char *name)
{
    size_t n = strlen(name);
    return strstr(name, "embed") || strstr(name, "norm") || ends_with(name, n, "lm_head.weight") ||
           cq_select_is_router(name);
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
        pick = s->desc ? arch_match(s->desc, name) : generic_match(name);
    return pick && !glob_any(s->exclude, s->n_exclude, name);
}
