/* --json everywhere: every command prints exactly one JSON object on stdout with the keys
 * docs/cli.md lists and "ok": true (or, on failure, ok false, status, exit_code, error), and
 * every command in the table offers --json. Runs the real binary (CQ_BIN). */
#include "cq_test.h"
#include "cquant/json.h"

#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* Run the shell command; parse its whole stdout as one JSON value (NULL when it is not). */
static cJSON *run_json(const char *cmd, int *exit_code)
{
    FILE *p = popen(cmd, "r");
    static char buf[1 << 22];
    size_t n = p ? fread(buf, 1, sizeof buf - 1, p) : 0;
    int st = p ? pclose(p) : -1;
    *exit_code = st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    cJSON *j = NULL;
    cq_error err = CQ_ERROR_INIT;
    if (cq_json_parse(&j, buf, n, "stdout", &err) != CQ_OK) {
        CQ_FAIL("'%s': stdout is not one JSON value: %s", cmd, err.msg);
        return NULL;
    }
    return j;
}

static void check_keys(const cJSON *j, const char *cmd, const char *const *keys)
{
    CQ_CHECK(cJSON_IsObject(j));
    for (const char *const *k = keys; *k; k++)
        if (!cJSON_HasObjectItem(j, *k))
            CQ_FAIL("'%s' --json: no key '%s'", cmd, *k);
}

static void expect_ok(const char *cmd, const char *const *keys)
{
    int code;
    cJSON *j = run_json(cmd, &code);
    CQ_CHECK_EQ_INT(code, 0);
    if (j) {
        check_keys(j, cmd, keys);
        CQ_CHECK(cJSON_IsTrue(cJSON_GetObjectItem(j, "ok")));
    }
    cJSON_Delete(j);
}

CQ_TEST(every_command_json)
{
    const char *bin = getenv("CQ_BIN"), *src = getenv("CQ_SRC"), *tmp = cq_test_tmpdir();
    if (!bin || !src) {
        CQ_FAIL("CQ_BIN and CQ_SRC must be set");
        return;
    }
    char cmd[4096], tiny[1024];
    snprintf(tiny, sizeof tiny, "%s/data/models/cq-llama-tiny", src);
    static const char *const k_inspect[] = {"path", "tensors", "shards", "tensor_count",
                                            "parameters", "total_bytes", "ok", NULL};
    static const char *const k_rtn[] = {"command", "model", "output", "report", "format", "bits",
                                        "group_size", "sym", "tensors", "quantized", "skipped",
                                        "seconds", "ok", NULL};
    static const char *const k_dequant[] = {"output", "format", "linears", "dtype", "ok", NULL};
    static const char *const k_report[] = {"schema", "runs", "fields", "shown", "totals", "sort",
                                           "worst", "mismatches", "layers", "module_types",
                                           "module_means", "ok", NULL};
    static const char *const k_batch[] = {"manifest", "jobs_total", "succeeded", "failed",
                                          "skipped", "not_run", "jobs", "ok", NULL};
    static const char *const k_help[] = {"version", "commands", "ok", NULL};
    static const char *const k_calib[] = {"output", "mode", "n", "seqlen", "seed", "bos",
                                          "tokenizer_hash", "sources", "ok", NULL};
    static const char *const k_eval[] = {"model", "text", "format", "ppl", "perplexity", "nll",
                                         "nll_sum", "windows", "tokens", "scored", "seqlen",
                                         "seconds", "ok", NULL};
    snprintf(cmd, sizeof cmd, "'%s' -q inspect --json '%s'", bin, tiny);
    expect_ok(cmd, k_inspect);
    snprintf(cmd, sizeof cmd, "'%s' -q rtn --json '%s' -o '%s/q'", bin, tiny, tmp);
    expect_ok(cmd, k_rtn);
    snprintf(cmd, sizeof cmd, "'%s' -q dequant --json '%s/q' -o '%s/d'", bin, tmp, tmp);
    expect_ok(cmd, k_dequant);
    snprintf(cmd, sizeof cmd, "'%s' -q report --json '%s/q' '%s/q/cquant-report.json'", bin, tmp,
             tmp);
    expect_ok(cmd, k_report);
    char manifest[1200];
    snprintf(manifest, sizeof manifest, "%s/m.json", tmp);
    FILE *f = fopen(manifest, "w");
    if (f) {
        fprintf(f, "[{\"name\": \"t\", \"model\": \"%s\", \"method\": \"rtn\", \"output\": "
                   "\"b\", \"options\": {\"bits\": 8}}]", tiny);
        fclose(f);
    }
    snprintf(cmd, sizeof cmd, "'%s' -q batch --json '%s'", bin, manifest);
    expect_ok(cmd, k_batch);
    snprintf(cmd, sizeof cmd, "'%s' help --json", bin);
    expect_ok(cmd, k_help);
    snprintf(cmd, sizeof cmd, "'%s' -q calib --json --samples 2 --seqlen 64 '%s' '%s/README.md' "
             "-o '%s/c.bin'", bin, tiny, src, tmp);
    expect_ok(cmd, k_calib);
    snprintf(cmd, sizeof cmd, "'%s' -q eval --json '%s/q' '%s/c.bin'", bin, tmp, tmp);
    expect_ok(cmd, k_eval);

    /* failure: the error object, with the documented exit code */
    static const char *const k_fail[] = {"ok", "status", "exit_code", "error", NULL};
    int code;
    snprintf(cmd, sizeof cmd, "'%s' -q rtn --json '%s/missing' -o '%s/never' 2>/dev/null", bin,
             tmp, tmp);
    cJSON *j = run_json(cmd, &code);
    CQ_CHECK_EQ_INT(code, 3);
    check_keys(j, cmd, k_fail);
    CQ_CHECK(cJSON_IsFalse(cJSON_GetObjectItem(j, "ok")));
    CQ_CHECK_EQ_INT(cJSON_GetNumberValue(cJSON_GetObjectItem(j, "exit_code")), 3);
    cJSON_Delete(j);
}

/* Every command in the table (other developers add more) offers --json in its help. */
CQ_TEST(every_command_offers_json)
{
    const char *bin = getenv("CQ_BIN");
    if (!bin)
        return;
    char cmd[2048];
    int code;
    snprintf(cmd, sizeof cmd, "'%s' help --json", bin);
    cJSON *j = run_json(cmd, &code);
    const cJSON *c;
    int n = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(j, "commands"))
    {
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        if (!strcmp(name, "help"))
            continue;
        snprintf(cmd, sizeof cmd, "'%s' %s --help | grep -q -- '--json'", bin, name);
        if (system(cmd) != 0)
            CQ_FAIL("'cquant %s --help' does not offer --json", name);
        n++;
    }
    CQ_CHECK(n >= 5);
    cJSON_Delete(j);
}
