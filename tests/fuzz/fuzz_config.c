/* libFuzzer target: any byte string as a checkpoint's config.json. Runs every consumer of the
 * file: the strict JSON loader (cq_json_parse), the tensor selection rules (cq_select_init and
 * queries) and, where the model runtime is built, cq_config_parse. Each must return a status and
 * a one-line message; accepted configs must satisfy the invariants the forward pass relies on.
 * Built with libFuzzer (CQ_FUZZ=ON) or replay_main.c (ctest). */
#include "cquant/json.h"
#include "cquant/select.h"
#include "fuzz_util.h"

#if __has_include("cquant/model.h")
#include "cquant/model.h"
#define HAVE_MODEL 1
#endif

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_select(const cJSON *cfg)
{
    static const char *const names[] = {
        "model.layers.0.self_attn.q_proj.weight", "model.layers.3.mlp.down_proj.weight",
        "model.embed_tokens.weight",              "lm_head.weight",
        "model.layers.1.input_layernorm.weight",  "transformer.h.0.attn.c_attn.weight"};
    cq_select s;
    cq_error err = CQ_ERROR_INIT;
    int rc = cq_select_init(&s, cfg, NULL, 0, NULL, 0, &err);
    fuzz_check_refusal(rc, &err);
    if (rc != CQ_OK)
        return;
    if (strnlen(s.arch, sizeof s.arch) == sizeof s.arch)
        abort(); /* arch must stay NUL-terminated */
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        bool q = cq_select_tensor(&s, names[i], CQ_DT_F32, 2);
        if (q && (strstr(names[i], "embed") || strstr(names[i], "lm_head") ||
                  strstr(names[i], "norm")))
            abort();
    }
    (void)cq_select_rule_name(&s);
}

#ifdef HAVE_MODEL
static void fuzz_model_config(const char *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return;
    memcpy(text, data, size);
    text[size] = 0;
    cq_model_config c;
    cq_error err = CQ_ERROR_INIT;
    int rc = cq_config_parse(text, "fuzz/config.json", &c, &err);
    fuzz_check_refusal(rc, &err);
    if (rc == CQ_OK &&
        (c.hidden <= 0 || c.n_layers <= 0 || c.n_heads <= 0 || c.n_kv_heads <= 0 ||
         c.head_dim <= 0 || c.vocab <= 0 || c.intermediate <= 0 || c.n_heads % c.n_kv_heads))
        abort();
    free(text);
}
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = fuzz_copy(data, size);
    if (!copy)
        return 0;
    cq_error err = CQ_ERROR_INIT;
    cJSON *cfg = NULL;
    int rc = cq_json_parse(&cfg, copy, size, "fuzz/config.json", &err);
    fuzz_check_refusal(rc, &err);
    if (rc == CQ_OK) {
        fuzz_select(cfg);
        int64_t v;
        double d;
        const char *str;
        err = (cq_error)CQ_ERROR_INIT;
        fuzz_check_refusal(cq_json_get_int(cfg, "hidden_size", 1, INT64_C(1) << 40, &v, "config", &err),
                  &err);
        err = (cq_error)CQ_ERROR_INIT;
        fuzz_check_refusal(cq_json_get_double(cfg, "rms_norm_eps", &d, "config", &err), &err);
        err = (cq_error)CQ_ERROR_INIT;
        fuzz_check_refusal(cq_json_get_string(cfg, "model_type", &str, "config", &err), &err);
        err = (cq_error)CQ_ERROR_INIT;
        fuzz_check_refusal(cq_json_check_unique(cfg, "config", &err), &err);
    }
    cJSON_Delete(cfg);
#ifdef HAVE_MODEL
    fuzz_model_config(copy, size);
#endif
    free(copy);
    return 0;
}
