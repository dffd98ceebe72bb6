/* Hostile config.json for the model runtime's parser (cq_config_parse / cq_config_load): each
 * error is the documented status with a one-line message naming the file. The first case is
 * fuzz_config's finding (a raw newline inside the architecture string made a three-line
 * "unsupported architecture" message); the FIFO case hung in fopen before the fix. */
#include "cq_test.h"

#include "cquant/model.h"
#include "model/vecmath.h"

#include <math.h>

#include <string.h>
#include <sys/stat.h>

static void expect(const char *json, int code, const char *phrase)
{
    cq_model_config c;
    cq_error err = CQ_ERROR_INIT;
    int rc = cq_config_parse(json, "cfg/config.json", &c, &err);
    CQ_CHECK_EQ_INT(rc, code);
    CQ_CHECK(strchr(err.msg, '\n') == NULL && strchr(err.msg, '\r') == NULL);
    CQ_CHECK(strstr(err.msg, "cfg/config.json") != NULL);
    if (!strstr(err.msg, phrase))
        CQ_FAIL("message '%s' lacks '%s'", err.msg, phrase);
}

#define DIMS "\"hidden_size\":64,\"intermediate_size\":128,\"num_hidden_layers\":1," \
             "\"num_attention_heads\":2,\"vocab_size\":10"

CQ_TEST(config_messages_one_line)
{
    expect("{\"architectures\":[\"Qwen2ForCa\n\n\nusalLM\"]," DIMS "}", CQ_E_FORMAT,
           "control");
    expect("{\"architectures\":[\"Qwen2\\u000aX\"]," DIMS "}", CQ_E_UNSUPPORTED, "Qwen2?X");
    expect("{\"architectures\":[\"LlamaForCausalLM\"]," DIMS "} trailing", CQ_E_FORMAT,
           "cfg/config.json");
    expect("[1]", CQ_E_FORMAT, "not a JSON object");
    cq_model_config c;
    cq_error err = CQ_ERROR_INIT;
    CQ_CHECK_OK(cq_config_parse("{\"architectures\":[\"LlamaForCausalLM\"]," DIMS "}", "x", &c,
                                &err), &err);
    CQ_CHECK_EQ_INT(c.hidden, 64);
    CQ_CHECK_EQ_INT(c.head_dim, 32);
}

CQ_TEST(config_fifo)
{
    char d[4096], p[4200];
    snprintf(d, sizeof d, "%s/cfgfifo", cq_test_tmpdir());
    mkdir(d, 0755);
    snprintf(p, sizeof p, "%s/config.json", d);
    CQ_CHECK(mkfifo(p, 0644) == 0);
    cq_model_config c;
    cq_error err = CQ_ERROR_INIT;
    CQ_CHECK_EQ_INT(cq_config_load(d, &c, &err), CQ_E_IO);
    CQ_CHECK(strstr(err.msg, "not a regular file") != NULL);
}

/* NaN weights reach the forward pass's exp (awq on a NaN checkpoint): the result must be NaN,
 * without undefined behaviour on the way (UBSan reported a signed overflow in the exponent
 * arithmetic: the sanitizer build of this test is the check). Finite values are compared with
 * libm's expf (the polynomial is ~2 ulp). */
CQ_TEST(vexp_nan_inf)
{
    float x[8] = {NAN, -NAN, INFINITY, -INFINITY, 0.0f, 1.0f, -100.0f, 50.0f};
    cq_vexp_sub(x, 8, 0.0f);
    CQ_CHECK(isnan(x[0]) && isnan(x[1]));
    CQ_CHECK(x[2] > 1e38f);           /* clamped at exp(88) */
    CQ_CHECK(x[3] >= 0 && x[3] < 1e-37f); /* clamped at exp(-87) */
    CQ_CHECK_NEAR(x[4], 1.0, 1e-6);
    CQ_CHECK_NEAR(x[5], expf(1.0f), 1e-6);
    CQ_CHECK(x[6] >= 0 && x[6] < 1e-37f);
    CQ_CHECK_NEAR(x[7] / expf(50.0f), 1.0, 1e-6);
    float y[3] = {NAN, 2.0f, 3.0f};
    cq_vsilu_mul(y, (const float[]){1.0f, 1.0f, 1.0f}, 3);
    CQ_CHECK(isnan(y[0]));
    CQ_CHECK_NEAR(y[1], 2.0 / (1.0 + exp(-2.0)), 1e-6);
}
