/* config.json fields of the MoE architectures (docs/moe.md):
 *   Mixtral:    num_local_experts, num_experts_per_tok, intermediate_size (the experts' width);
 *               every layer sparse, top-k weights always renormalized.
 *   Qwen2-MoE:  num_experts, num_experts_per_tok, moe_intermediate_size,
 *               shared_expert_intermediate_size, norm_topk_prob, decoder_sparse_step,
 *               mlp_only_layers (dense layers use intermediate_size).
 *   Qwen3-MoE:  as Qwen2-MoE without the shared expert. */
#include "model/moe.h"

#include <math.h>
#include <string.h>

static int field_int(const cJSON *o, const char *key, int64_t def, int64_t lo, int64_t hi,
                     int64_t *out, const char *path, cq_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) {
        if (def < 0)
            return cq_errorf(err, CQ_E_FORMAT, "%s: missing \"%s\"", path, key);
        *out = def;
        return CQ_OK;
    }
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!(d >= (double)lo && d <= (double)hi) || d != floor(d))
        return cq_errorf(err, CQ_E_FORMAT, "%s: \"%s\" is not an integer in [%lld, %lld]", path,
                         key, (long long)lo, (long long)hi);
    *out = (int64_t)d;
    return CQ_OK;
}

static int mlp_only_layers(const cJSON *root, const char *path, cq_model_config *cfg,
                           cq_error *err)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, "mlp_only_layers"), *e;
    if (!a || cJSON_IsNull(a))
        return CQ_OK;
    if (!cJSON_IsArray(a))
        return cq_errorf(err, CQ_E_FORMAT, "%s: \"mlp_only_layers\" is not an array", path);
    cJSON_ArrayForEach(e, a)
    {
        double d = cJSON_IsNumber(e) ? e->valuedouble : NAN;
        if (!(d >= 0 && d < (double)(8 * sizeof cfg->mlp_only)) || d != floor(d))
            return cq_errorf(err, CQ_E_FORMAT, "%s: \"mlp_only_layers\" holds a bad layer index",
                             path);
        int64_t l = (int64_t)d;
        cfg->mlp_only[l / 8] |= (unsigned char)(1u << (l % 8));
    }
    return CQ_OK;
}

int cq_moe_parse_config(const cJSON *root, const char *path, cq_model_config *cfg,
                        cq_error *err)
{
    cfg->n_experts = 0;
    memset(cfg->mlp_only, 0, sizeof cfg->mlp_only);
    if (cfg->arch != CQ_ARCH_MIXTRAL && cfg->arch != CQ_ARCH_QWEN2_MOE &&
        cfg->arch != CQ_ARCH_QWEN3_MOE)
        return CQ_OK;
    bool mixtral = cfg->arch == CQ_ARCH_MIXTRAL;
    cfg->moe_names = mixtral ? CQ_MOE_NAMES_MIXTRAL : CQ_MOE_NAMES_QWEN;
    /* Qwen names it num_experts; transformers 5 saves Qwen3-MoE's as num_local_experts */
    const char *key = !mixtral && cJSON_GetObjectItemCaseSensitive(root, "num_experts")
                          ? "num_experts"
                          : "num_local_experts";
    int rc = field_int(root, key, -1, 1, 4096, &cfg->n_experts, path, err);
    if (rc == CQ_OK)
        rc = field_int(root, "num_experts_per_tok", -1, 1, cfg->n_experts, &cfg->top_k, path,
                       err);
    if (rc != CQ_OK)
        return rc;
    cfg->sparse_step = 1;
    cfg->shared_intermediate = 0;
    if (mixtral) {
        cfg->moe_intermediate = cfg->intermediate;
        cfg->norm_topk_prob = true; /* MixtralSparseMoeBlock always renormalizes */
        return CQ_OK;
    }
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(root, "norm_topk_prob");
    cfg->norm_topk_prob = cJSON_IsTrue(n);
    rc = field_int(root, "moe_intermediate_size", -1, 1, 1 << 22, &cfg->moe_intermediate, path,
                   err);
    if (rc == CQ_OK && cfg->arch == CQ_ARCH_QWEN2_MOE)
        rc = field_int(root, "shared_expert_intermediate_size", 0, 0, 1 << 22,
                       &cfg->shared_intermediate, path, err);
    if (rc == CQ_OK)
        rc = field_int(root, "decoder_sparse_step", 1, 1, 4096, &cfg->sparse_step, path, err);
    if (rc == CQ_OK)
        rc = mlp_only_layers(root, path, cfg, err);
    return rc;
}
