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
        pick = s->desc ? arch_match(s->desc, name) : generic_match(name);
    return pick && !glob_any(s->exclude, s->n_exclude, name);
}
