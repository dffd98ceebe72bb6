/* Hostile config.json for the model runtime's parser (cq_config_parse / cq_config_load): each
 * error is the documented status with a one-line message naming the file. The first case is
 * fuzz_config's finding (a raw newline inside the architecture string made a three-line
 * "unsupported architecture" message); the FIFO case hung in fopen before the fix. */
#include "cq_test.h"

#include "cquant/model.h"

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
