/* The native forward of each dense architecture against transformers: the fixtures in
 * tests/data/arch/<name>/ (random-initialized, bf16, scripts/ref/make_arch_fixtures.py) hold the
 * fp32 eager forward of 64 tokens: every layer's input (hidden.<i>) and the logits. */
#include "cq_test.h"
#include "cq_testutil.h"

#include "cquant/awq.h"
#include "cquant/model.h"
#include "cquant/safetensors.h"
#include "cquant/tokenizer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fixture {
    char dir[4096];
    cq_model_config cfg;
    cq_st_model *st, *ref;
    int32_t *ids;
    int64_t S;
} fixture;

static int open_fixture(fixture *f, const char *name)
{
    cq_error err = CQ_ERROR_INIT;
    memset(f, 0, sizeof *f);
    const char *data = getenv("CQ_TESTDATA");
    snprintf(f->dir, sizeof f->dir, "%s/arch/%s", data ? data : "tests/data", name);
    char ref[4200];
    snprintf(ref, sizeof ref, "%s/reference.safetensors", f->dir);
    int rc = cq_config_load(f->dir, &f->cfg, &err);
    if (rc == CQ_OK) rc = cq_st_open(&f->st, f->dir, &err);
    if (rc == CQ_OK) rc = cq_config_check(&f->cfg, f->st, &err);
    if (rc == CQ_OK) rc = cq_st_open(&f->ref, ref, &err);
    const cq_st_tensor *ids = rc == CQ_OK ? cq_st_find(f->ref, "ids") : NULL;
    if (rc == CQ_OK && !(ids && ids->dtype == CQ_DT_I64 && ids->ndim == 1))
        rc = cq_errorf(&err, CQ_E_FORMAT, "%s: no I64 ids", ref);
    if (rc == CQ_OK) {
        f->S = ids->shape[0];
        f->ids = malloc((size_t)f->S * sizeof *f->ids);
        for (int64_t i = 0; i < f->S; i++)
            f->ids[i] = (int32_t)((const int64_t *)ids->data)[i];
    }
    CQ_CHECK_OK(rc, &err);
    return rc;
}

static void close_fixture(fixture *f)
{
    cq_st_close(f->st);
    cq_st_close(f->ref);
    free(f->ids);
}

static double max_diff(const float *a, const float *b, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++)
        m = fmax(m, fabs((double)a[i] - b[i]));
    return isnan(m) ? INFINITY : m;
}

/* Read reference tensor `name` of n floats into a new buffer (NULL on a mismatch). */
static float *ref_tensor(const fixture *f, const char *name, int64_t n)
{
    cq_error err = CQ_ERROR_INIT;
    const cq_st_tensor *t = cq_st_find(f->ref, name);
    float *out = t && t->numel == n ? malloc((size_t)n * sizeof *out) : NULL;
    if (out && cq_st_read_f32(t, out, &err) != CQ_OK) {
        free(out);
        out = NULL;
    }
    if (!out)
        CQ_FAIL("%s: reference tensor %s missing or not %lld floats", f->dir, name,
                (long long)n);
    return out;
}

/* Forward the reference ids through every layer (checking each layer's input against
 * hidden.<i>), then the head; returns max |logits - reference|, or +inf on an error. */
static double forward_diff(fixture *f, const cq_model_config *cfg, bool check_hidden)
{
    cq_error err = CQ_ERROR_INIT;
    int64_t S = f->S, H = cfg->hidden, V = cfg->vocab;
    float *h = malloc((size_t)(S * H) * sizeof(float)), *lg = malloc((size_t)(S * V) * 4);
    cq_llama *m = NULL;
    cq_layer_weights w = {0};
    cq_head_weights hw = {0};
    char name[64];
    int rc = cq_llama_create(&m, cfg, S, 0, &err);
    if (rc == CQ_OK)
        rc = cq_embed_seqs(cfg, f->st, f->ids, 1, S, h, &err);
    for (int64_t l = 0; l < cfg->n_layers && rc == CQ_OK; l++) {
        snprintf(name, sizeof name, "hidden.%lld", (long long)l);
        float *want = check_hidden ? ref_tensor(f, name, S * H) : NULL;
        double d = want ? max_diff(h, want, S * H) : 0;
        if (check_hidden)
            fprintf(stderr, "  %s: input of layer %lld: max |diff| %.3g\n", f->dir,
                    (long long)l, d);
        if (check_hidden && !(d <= 1e-3))
            CQ_FAIL("%s: input of layer %lld differs from %s by %.3g", f->dir, (long long)l,
                    name, d);
        free(want);
        rc = cq_layer_load(&w, cfg, f->st, l, &err);
        if (rc == CQ_OK)
            rc = cq_layer_forward(m, &w, h, h, 1, S, NULL, NULL, &err);
    }
    if (rc == CQ_OK) rc = cq_head_load(&hw, cfg, f->st, &err);
    if (rc == CQ_OK) rc = cq_head_logits(m, &hw, h, S, lg, &err);
    CQ_CHECK_OK(rc, &err);
    float *want = rc == CQ_OK ? ref_tensor(f, "logits", S * V) : NULL;
    double d = want ? max_diff(lg, want, S * V) : INFINITY;
    free(want);
    cq_head_release(&hw);
    cq_layer_release(&w);
    cq_llama_free(m);
    free(h);
    free(lg);
    return d;
}

static void check_logits(const char *name, cq_arch arch)
{
    fixture f;
    if (open_fixture(&f, name) != CQ_OK)
        return;
    CQ_CHECK_EQ_INT(f.cfg.arch, arch);
    double d = forward_diff(&f, &f.cfg, true);
    fprintf(stderr, "%s: max |logit - transformers| = %.3g over %lld x %lld\n", name, d,
            (long long)f.S, (long long)f.cfg.vocab);
    if (!(d <= 1e-3))
        CQ_FAIL("%s: logits differ from transformers by %.3g (tol 1e-3)", name, d);
    close_fixture(&f);
}

CQ_TEST(logits_opt) { check_logits("opt", CQ_ARCH_OPT); }
CQ_TEST(logits_opt350) { check_logits("opt350", CQ_ARCH_OPT); }
CQ_TEST(logits_qwen2) { check_logits("qwen2", CQ_ARCH_QWEN2); }
CQ_TEST(logits_qwen3) { check_logits("qwen3", CQ_ARCH_QWEN3); }
CQ_TEST(logits_mistral) { check_logits("mistral", CQ_ARCH_MISTRAL); }

/* The fixtures really exercise what they claim: dropping the feature moves the logits far
 * beyond the tolerance. */
CQ_TEST(features_matter)
{
    fixture f;
    if (open_fixture(&f, "mistral") == CQ_OK) {
        cq_model_config c = f.cfg;
        CQ_CHECK_EQ_INT(c.sliding_window, 16);
        c.sliding_window = 0;
        double full = forward_diff(&f, &c, false);
        c.sliding_window = 17; /* off by one: keys with i - j == 16 would be seen */
        double off = forward_diff(&f, &c, false);
        fprintf(stderr, "mistral: without the window %.3g, window 17 %.3g\n", full, off);
        CQ_CHECK(full > 0.05 && off > 1e-3);
        close_fixture(&f);
    }
    if (open_fixture(&f, "opt") == CQ_OK) {
        CQ_CHECK(!f.cfg.post_ln && !f.cfg.no_final_norm && f.cfg.norm_bias &&
                 f.cfg.pos_offset == 2 && f.cfg.qkv_bias && f.cfg.mlp_bias);
        CQ_CHECK(!cq_linear_present(&f.cfg, CQ_LIN_GATE) &&
                 !strcmp(cq_arch_linear_name(&f.cfg, CQ_LIN_DOWN), "fc2"));
        cq_model_config c = f.cfg;
        c.pos_offset = 1; /* HF's offset is 2 rows (same table size: one more position) */
        c.max_pos += 1;
        double d = forward_diff(&f, &c, false);
        CQ_CHECK(d > 0.01);
        close_fixture(&f);
    }
    if (open_fixture(&f, "opt350") == CQ_OK) {
        CQ_CHECK(f.cfg.post_ln && f.cfg.no_final_norm && f.cfg.word_dim == 64);
        close_fixture(&f);
    }
    if (open_fixture(&f, "qwen3") == CQ_OK) {
        CQ_CHECK(f.cfg.head_dim == 64 && !f.cfg.qkv_bias);
        close_fixture(&f);
    }
}

/* Several sequences per call: OPT's learned positions restart at every sequence. */
CQ_TEST(opt_positions_per_sequence)
{
    fixture f;
    if (open_fixture(&f, "opt") != CQ_OK)
        return;
    cq_error err = CQ_ERROR_INIT;
    int64_t S = 16, H = f.cfg.hidden;
    float *two = malloc((size_t)(2 * S * H) * sizeof(float));
    float *one = malloc((size_t)(S * H) * sizeof(float));
    CQ_CHECK_OK(cq_embed_seqs(&f.cfg, f.st, f.ids, 2, S, two, &err), &err);
    CQ_CHECK_OK(cq_embed_seqs(&f.cfg, f.st, f.ids + S, 1, S, one, &err), &err);
    CQ_CHECK(max_diff(two + S * H, one, S * H) == 0);
    CQ_CHECK_EQ_INT(cq_embed_seqs(&f.cfg, f.st, f.ids, 1, f.cfg.max_pos + 1, two, &err),
                    CQ_E_USAGE);
    free(two);
    free(one);
    close_fixture(&f);
}

/* The fixture tokenizers give transformers' ids for text.txt (BOS included). */
static void check_tokens(const char *name)
{
    fixture f;
    if (open_fixture(&f, name) != CQ_OK)
        return;
    cq_error err = CQ_ERROR_INIT;
    cq_tokenizer *tok = NULL;
    char path[4200];
    snprintf(path, sizeof path, "%s/../text.txt", f.dir);
    FILE *fp = fopen(path, "rb");
    char *text = malloc(1 << 16);
    size_t len = fp ? fread(text, 1, (1 << 16) - 1, fp) : 0;
    if (fp)
        fclose(fp);
    CQ_CHECK(len > 0);
    int32_t *ids = NULL;
    int64_t n = 0;
    const cq_st_tensor *want = cq_st_find(f.ref, "text_ids");
    int rc = cq_tokenizer_load(&tok, f.dir, &err);
    if (rc == CQ_OK)
        rc = cq_tokenizer_encode(tok, text, len, 1, &ids, &n, &err);
    CQ_CHECK_OK(rc, &err);
    CQ_CHECK(want && want->dtype == CQ_DT_I64);
    if (rc == CQ_OK && want) {
        const int64_t *w = want->data;
        int64_t bad = -1;
        for (int64_t i = 0; i < n && i < want->numel && bad < 0; i++)
            if (ids[i] != w[i])
                bad = i;
        if (n != want->numel || bad >= 0)
            CQ_FAIL("%s: %lld ids vs transformers' %lld, first difference at %lld", name,
                    (long long)n, (long long)want->numel, (long long)bad);
    }
    free(ids);
    free(text);
    cq_tokenizer_free(tok);
    close_fixture(&f);
}

CQ_TEST(tokens_opt) { check_tokens("opt"); }
CQ_TEST(tokens_qwen2) { check_tokens("qwen2"); }
CQ_TEST(tokens_qwen3) { check_tokens("qwen3"); }
CQ_TEST(tokens_mistral) { check_tokens("mistral"); }

CQ_TEST(unsupported_names_the_architecture)
{
    cq_error err = CQ_ERROR_INIT;
    cq_model_config c;
    const char *json = "{\"architectures\": [\"FalconForCausalLM\"], \"hidden_size\": 64}";
    CQ_CHECK_EQ_INT(cq_config_parse(json, "x/config.json", &c, &err), CQ_E_UNSUPPORTED);
    CQ_CHECK(strstr(err.msg, "FalconForCausalLM") && strstr(err.msg, "docs/stats.md") &&
             strstr(err.msg, "OPTForCausalLM") && !strchr(err.msg, '\n'));
}

/* ---- AWQ folding: without clipping, the scaled float layer reproduces the original ---- */

typedef struct fold_check {
    fixture *f;
    cq_llama *m;
    float *hidden, *ref, *got;
    int64_t n_seq, seqlen, layers;
    int searched[CQ_AWQ_N_GROUPS];
    double worst;
} fold_check;

static int on_layer(void *ctx, int64_t layer, const cq_layer_weights *w,
                    const cq_awq_layer_report *rep, cq_error *err)
{
    fold_check *c = ctx;
    const cq_model_config *cfg = &c->f->cfg;
    cq_layer_weights orig = {0};
    int64_t n = c->n_seq * c->seqlen * cfg->hidden;
    int rc = cq_layer_load(&orig, cfg, c->f->st, layer, err);
    if (rc == CQ_OK)
        rc = cq_layer_forward(c->m, &orig, c->hidden, c->ref, c->n_seq, c->seqlen, NULL, NULL,
                              err);
    if (rc == CQ_OK)
        rc = cq_layer_forward(c->m, w, c->hidden, c->got, c->n_seq, c->seqlen, NULL, NULL, err);
    c->worst = fmax(c->worst,
                    rc == CQ_OK ? cq_test_max_rel_diff(c->got, c->ref, n) : INFINITY);
    for (int g = 0; g < CQ_AWQ_N_GROUPS; g++)
        c->searched[g] += rep->group[g].done;
    c->layers++;
    memcpy(c->hidden, c->ref, (size_t)n * sizeof(float)); /* FP propagation */
    cq_layer_release(&orig);
    return rc;
}

/* expect: how many layers search each group (q/k/v, o, gate/up or fc1, down or fc2). */
static void check_fold(const char *name, const int expect[CQ_AWQ_N_GROUPS])
{
    fixture f;
    if (open_fixture(&f, name) != CQ_OK)
        return;
    cq_error err = CQ_ERROR_INIT;
    fold_check c = {.f = &f, .n_seq = 2, .seqlen = 32};
    int64_t T = c.n_seq * c.seqlen, H = f.cfg.hidden;
    c.hidden = malloc((size_t)(T * H) * sizeof(float));
    c.ref = malloc((size_t)(T * H) * sizeof(float));
    c.got = malloc((size_t)(T * H) * sizeof(float));
    cq_qconfig q;
    cq_qconfig_defaults(&q);
    q.bits = 4;
    q.group_size = 32;
    q.sym = false;
    q.threads = 1;
    cq_awq_opts o;
    cq_awq_opts_defaults(&o);
    o.clip = false;
    o.n_grid = 5;
    int rc = cq_llama_create(&c.m, &f.cfg, c.seqlen, 0, &err);
    if (rc == CQ_OK)
        rc = cq_embed_seqs(&f.cfg, f.st, f.ids, c.n_seq, c.seqlen, c.hidden, &err);
    if (rc == CQ_OK)
        rc = cq_awq_model_run(&f.cfg, f.st, f.ids, c.n_seq, c.seqlen, &q, &o, on_layer, &c,
                              &err);
    CQ_CHECK_OK(rc, &err);
    fprintf(stderr, "%s: awq fold: worst folded-vs-original rel %.3g; groups searched %d %d %d "
            "%d\n", name, c.worst, c.searched[0], c.searched[1], c.searched[2], c.searched[3]);
    CQ_CHECK_EQ_INT(c.layers, f.cfg.n_layers);
    CQ_CHECK(c.worst <= 1e-4);
    for (int g = 0; g < CQ_AWQ_N_GROUPS; g++)
        CQ_CHECK_EQ_INT(c.searched[g], expect[g]);
    cq_llama_free(c.m);
    free(c.hidden), free(c.ref), free(c.got);
    close_fixture(&f);
}

/* pre-LN OPT: all four groups; post-LN: only out_proj after v and fc2 after fc1. GQA (qwen2,
 * mistral) and Qwen3's head_dim 64 x 4 heads != hidden leave v->o out. */
CQ_TEST(awq_fold_opt) { check_fold("opt", (const int[]){2, 2, 2, 2}); }
CQ_TEST(awq_fold_opt350) { check_fold("opt350", (const int[]){0, 2, 0, 2}); }
CQ_TEST(awq_fold_qwen2) { check_fold("qwen2", (const int[]){2, 0, 2, 2}); }
CQ_TEST(awq_fold_qwen3) { check_fold("qwen3", (const int[]){2, 0, 2, 2}); }
CQ_TEST(awq_fold_mistral) { check_fold("mistral", (const int[]){2, 0, 2, 2}); }

/* ---- config.json semantics of transformers' configuration classes ---- */

static int parse(const char *arch, const char *extra, cq_model_config *c, cq_error *err)
{
    char json[1024];
    snprintf(json, sizeof json, "{\"architectures\": [\"%s\"], \"hidden_size\": 64, "
             "\"intermediate_size\": 128, \"ffn_dim\": 128, \"num_hidden_layers\": 2, "
             "\"num_attention_heads\": 4, \"vocab_size\": 100, "
             "\"max_position_embeddings\": 64%s}", arch, extra);
    return cq_config_parse(json, "t/config.json", c, err);
}

CQ_TEST(config_defaults_per_architecture)
{
    cq_error err = CQ_ERROR_INIT;
    cq_model_config c;
    /* MistralConfig: window 4096 when absent, none when null */
    CQ_CHECK_OK(parse("MistralForCausalLM", "", &c, &err), &err);
    CQ_CHECK_EQ_INT(c.sliding_window, 4096);
    CQ_CHECK_OK(parse("MistralForCausalLM", ", \"sliding_window\": null", &c, &err), &err);
    CQ_CHECK_EQ_INT(c.sliding_window, 0);
    /* Qwen2/Qwen3: only with use_sliding_window, on layers >= max_window_layers (default 28),
     * or as layer_types says; a mix of windowed and full layers is refused */
    const char *on = ", \"use_sliding_window\": true, \"sliding_window\": 8";
    char extra[256];
    CQ_CHECK_OK(parse("Qwen2ForCausalLM", on, &c, &err), &err);
    CQ_CHECK_EQ_INT(c.sliding_window, 0);
    snprintf(extra, sizeof extra, "%s, \"max_window_layers\": 0", on);
    CQ_CHECK_OK(parse("Qwen3ForCausalLM", extra, &c, &err), &err);
    CQ_CHECK_EQ_INT(c.sliding_window, 8);
    snprintf(extra, sizeof extra, "%s, \"max_window_layers\": 1", on);
    CQ_CHECK_EQ_INT(parse("Qwen2ForCausalLM", extra, &c, &err), CQ_E_UNSUPPORTED);
    cq_error_clear(&err);
    snprintf(extra, sizeof extra, "%s, \"layer_types\": [\"full_attention\", "
             "\"full_attention\"]", on);
    CQ_CHECK_OK(parse("Qwen2ForCausalLM", extra, &c, &err), &err);
    CQ_CHECK_EQ_INT(c.sliding_window, 0);
    /* Qwen3: head_dim defaults to 128; attention_bias to false */
    CQ_CHECK_OK(parse("Qwen3ForCausalLM", "", &c, &err), &err);
    CQ_CHECK(c.head_dim == 128 && !c.qkv_bias && !c.o_bias);
    CQ_CHECK_OK(parse("Qwen2ForCausalLM", "", &c, &err), &err);
    CQ_CHECK(c.head_dim == 16 && c.qkv_bias && !c.o_bias);
    /* OPT: ffn_dim, pre-LN with a final norm, enable_bias, eps 1e-5, offset 2 */
    CQ_CHECK_OK(parse("OPTForCausalLM", "", &c, &err), &err);
    CQ_CHECK(c.intermediate == 128 && !c.post_ln && !c.no_final_norm && c.qkv_bias &&
             c.o_bias && c.mlp_bias && c.rms_eps == 1e-5 && c.pos_offset == 2 &&
             c.word_dim == 0 && c.n_kv_heads == 4);
    CQ_CHECK_OK(parse("OPTForCausalLM", ", \"enable_bias\": false, \"_remove_final_layer_norm\": "
                      "true, \"word_embed_proj_dim\": 32", &c, &err), &err);
    CQ_CHECK(!c.qkv_bias && !c.mlp_bias && c.no_final_norm && c.word_dim == 32);
    CQ_CHECK_EQ_INT(parse("OPTForCausalLM", ", \"activation_function\": \"gelu\"", &c, &err),
                    CQ_E_UNSUPPORTED);
    cq_error_clear(&err);
}
