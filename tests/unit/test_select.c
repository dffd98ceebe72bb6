/* Linear selection: the Llama rule picks exactly the seven projections per layer, the generic
 * rule picks 2-D layer weights but no norms/embeddings, globs include/exclude, and lm_head,
 * embeddings, norms and non-float or 1-D tensors are never picked. Expected sets are written
 * out by hand from notes §B.7. */
#include "cq_test.h"
#include "cquant/select.h"

#include <string.h>

static cJSON *config_for(const char *arch)
{
    cJSON *c = cJSON_CreateObject();
    cJSON *a = cJSON_AddArrayToObject(c, "architectures");
    cJSON_AddItemToArray(a, cJSON_CreateString(arch));
    return c;
}

static const struct {
    const char *name;
    int llama, generic;  /* expected picks under each rule */
} names[] = {
    {"model.layers.0.self_attn.q_proj.weight", 1, 1},
    {"model.layers.0.self_attn.k_proj.weight", 1, 1},
    {"model.layers.0.self_attn.v_proj.weight", 1, 1},
    {"model.layers.0.self_attn.o_proj.weight", 1, 1},
    {"model.layers.12.mlp.gate_proj.weight", 1, 1},
    {"model.layers.12.mlp.up_proj.weight", 1, 1},
    {"model.layers.12.mlp.down_proj.weight", 1, 1},
    {"model.layers.3.self_attn.rotary_emb.weight", 0, 1},
    {"model.layers.0.input_layernorm.weight", 0, 0},
    {"model.layers.0.post_attention_layernorm.weight", 0, 0},
    {"model.layers.0.self_attn.q_proj.bias", 0, 0},
    {"model.embed_tokens.weight", 0, 0},
    {"model.norm.weight", 0, 0},
    {"lm_head.weight", 0, 0},
    {"transformer.h.0.attn.c_attn.weight", 0, 0},
    {"model.sublayers.0.mlp.up_proj.weight", 0, 0},
};
#define N_NAMES (int)(sizeof names / sizeof *names)

CQ_TEST(llama_rule)
{
    cq_error err = CQ_ERROR_INIT;
    cq_select s;
    cJSON *c = config_for("LlamaForCausalLM");
    CQ_CHECK_OK(cq_select_init(&s, c, NULL, 0, NULL, 0, &err), &err);
    CQ_CHECK(!strcmp(cq_select_rule_name(&s), "llama"));
    for (int i = 0; i < N_NAMES; i++)
        if (cq_select_tensor(&s, names[i].name, CQ_DT_BF16, 2) != names[i].llama)
            CQ_FAIL("llama rule on '%s': want %d", names[i].name, names[i].llama);
    /* 1-D and integer tensors are never Linear weights */
    CQ_CHECK(!cq_select_tensor(&s, "model.layers.0.mlp.up_proj.weight", CQ_DT_BF16, 1));
    CQ_CHECK(!cq_select_tensor(&s, "model.layers.0.mlp.up_proj.weight", CQ_DT_I32, 2));
    cJSON_Delete(c);
}

CQ_TEST(generic_rule)
{
    cq_error err = CQ_ERROR_INIT;
    cq_select s;
    cJSON *c = config_for("SomethingNewForCausalLM");
    CQ_CHECK_OK(cq_select_init(&s, c, NULL, 0, NULL, 0, &err), &err);
    CQ_CHECK(!strcmp(cq_select_rule_name(&s), "generic"));
    for (int i = 0; i < N_NAMES; i++)
        if (cq_select_tensor(&s, names[i].name, CQ_DT_F16, 2) != names[i].generic)
            CQ_FAIL("generic rule on '%s': want %d", names[i].name, names[i].generic);
    cJSON_Delete(c);
    CQ_CHECK_OK(cq_select_init(&s, NULL, NULL, 0, NULL, 0, &err), &err); /* no config.json */
    CQ_CHECK(cq_select_tensor(&s, "model.layers.0.mlp.up_proj.weight", CQ_DT_F32, 2));
}

CQ_TEST(globs)
{
    cq_error err = CQ_ERROR_INIT;
    cq_select s;
    cJSON *c = config_for("LlamaForCausalLM");
    const char *inc[] = {"*.self_attn.*"}, *exc[] = {"model.layers.1.*", "*.k_proj"};
    CQ_CHECK_OK(cq_select_init(&s, c, inc, 1, exc, 2, &err), &err);
    CQ_CHECK(cq_select_tensor(&s, "model.layers.0.self_attn.q_proj.weight", CQ_DT_BF16, 2));
    CQ_CHECK(!cq_select_tensor(&s, "model.layers.0.self_attn.k_proj.weight", CQ_DT_BF16, 2));
    CQ_CHECK(!cq_select_tensor(&s, "model.layers.1.self_attn.q_proj.weight", CQ_DT_BF16, 2));
    CQ_CHECK(!cq_select_tensor(&s, "model.layers.0.mlp.up_proj.weight", CQ_DT_BF16, 2));
    /* an include glob cannot reach lm_head or the embedding */
    const char *all[] = {"*"};
    CQ_CHECK_OK(cq_select_init(&s, c, all, 1, NULL, 0, &err), &err);
    CQ_CHECK(!cq_select_tensor(&s, "lm_head.weight", CQ_DT_BF16, 2));
    CQ_CHECK(!cq_select_tensor(&s, "model.embed_tokens.weight", CQ_DT_BF16, 2));
    const char *empty[] = {""};
    CQ_CHECK_EQ_INT(cq_select_init(&s, c, empty, 1, NULL, 0, &err), CQ_E_USAGE);
    cJSON_Delete(c);
}

/* OPT's table row: q/k/v/out_proj and fc1/fc2 under model.decoder.layers; never its norms,
 * learned positions or project_in/out (2-D, outside the layers). */
CQ_TEST(opt_rule)
{
    static const struct {
        const char *name;
        bool pick;
    } opt[] = {
        {"model.decoder.layers.0.self_attn.q_proj.weight", true},
        {"model.decoder.layers.11.self_attn.out_proj.weight", true},
        {"model.decoder.layers.0.fc1.weight", true},
        {"model.decoder.layers.0.fc2.weight", true},
        {"model.decoder.layers.0.fc2.bias", false},
        {"model.decoder.layers.0.self_attn_layer_norm.weight", false},
        {"model.decoder.embed_positions.weight", false},
        {"model.decoder.project_in.weight", false},
        {"model.decoder.project_out.weight", false},
        {"model.layers.0.mlp.up_proj.weight", false},
        {"lm_head.weight", false},
    };
    cq_error err = CQ_ERROR_INIT;
    cq_select s;
    cJSON *c = config_for("OPTForCausalLM");
    CQ_CHECK_OK(cq_select_init(&s, c, NULL, 0, NULL, 0, &err), &err);
    CQ_CHECK(!strcmp(cq_select_rule_name(&s), "llama") && s.desc);
    for (size_t i = 0; i < sizeof opt / sizeof *opt; i++)
        if (cq_select_tensor(&s, opt[i].name, CQ_DT_F16, 2) != opt[i].pick)
            CQ_FAIL("opt rule on '%s': want %d", opt[i].name, opt[i].pick);
    cJSON_Delete(c);
}
