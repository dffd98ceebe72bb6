/* cquant awq --then-gptq on the repo's cq-llama-tiny (runs the real binary, CQ_BIN): the
 * output loads as an AWQ GEMM checkpoint, the report records both stages (per scaling group the
 * ratio and the loss before/after; per Linear the GPTQ loss), and each Linear's GPTQ loss
 * tr(ΔHΔᵀ)/2 on the scaled model's inputs is at most the loss of RTN (same grid) on the same
 * scaled weights, as GPTQ's column-wise error compensation guarantees in exact arithmetic.
 * The exactness of the folding itself is tests/unit/test_awq.c (model_driver_folds_exactly_*). */
#include "cq_test.h"
#include "cquant/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static int run(const char *cmd)
{
    int st = system(cmd);
    return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : -1.0;
}

static const char *str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* Per Linear: method awq+gptq, 0 < gptq_loss <= rtn_loss. Returns the Linears seen. */
static int check_linears(const cJSON *layers)
{
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, layers)
    {
        if (!strstr(str(e, "name"), "_proj.weight"))
            continue;
        n++;
        double g = num(e, "gptq_loss"), r = num(e, "rtn_loss");
        CQ_CHECK(!strcmp(str(e, "method"), "awq+gptq"));
        if (!(g > 0 && g <= r * (1 + 1e-9)))
            CQ_FAIL("%s: gptq loss %.6g, rtn loss %.6g on the same scaled weights", str(e, "name"),
                    g, r);
    }
    return n;
}

/* Per decoder layer: q/k/v, gate/up and down searched (GQA: no v->o), ratio in [0, 1),
 * positive losses (test_awq.c checks the search itself against a brute force). */
static int check_groups(const cJSON *awq)
{
    int searched = 0;
    const cJSON *l, *g;
    cJSON_ArrayForEach(l, cJSON_GetObjectItemCaseSensitive(awq, "layers"))
    {
        cJSON_ArrayForEach(g, cJSON_GetObjectItemCaseSensitive(l, "groups"))
        {
            if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(g, "searched")))
                continue;
            searched++;
            double r = num(g, "ratio");
            CQ_CHECK(r >= 0 && r < 1);
            CQ_CHECK(num(g, "loss_before") > 0 && num(g, "loss_after") > 0);
        }
    }
    return searched;
}

CQ_TEST(then_gptq_on_tiny)
{
    const char *bin = getenv("CQ_BIN"), *src = getenv("CQ_SRC"), *tmp = cq_test_tmpdir();
    if (!bin || !src) {
        CQ_FAIL("CQ_BIN and CQ_SRC must be set");
        return;
    }
    char cmd[8192], path[4096];
    snprintf(cmd, sizeof cmd,
             "'%s' -q awq --then-gptq --grid 5 --calib-mode split --calib-block 64 --calib-blocks 8 --threads 2 "
             "'%s/data/models/cq-llama-tiny' '%s/data/calib-docs.txt' -o '%s/ag' >/dev/null",
             bin, src, src, tmp);
    CQ_CHECK_EQ_INT(run(cmd), 0);
    cJSON *r = NULL;
    cq_error err = CQ_ERROR_INIT;
    snprintf(path, sizeof path, "%s/ag/cquant-report.json", tmp);
    CQ_CHECK_OK(cq_json_load(&r, path, &err), &err);
    if (!r)
        return;
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(r, "config");
    const cJSON *awq = cJSON_GetObjectItemCaseSensitive(cfg, "awq");
    const cJSON *gq = cJSON_GetObjectItemCaseSensitive(cfg, "gptq");
    CQ_CHECK(!strcmp(str(cfg, "method"), "awq+gptq"));
    CQ_CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(awq, "clip")));
    CQ_CHECK(gq != NULL);
    CQ_CHECK_EQ_INT(num(awq, "calib_blocks"), 8);
    CQ_CHECK_EQ_INT(num(gq, "samples"), 8);
    CQ_CHECK_EQ_INT(check_groups(awq), 3 * 4);
    CQ_CHECK_EQ_INT(check_linears(cJSON_GetObjectItemCaseSensitive(r, "layers")), 7 * 4);
    cJSON_Delete(r);
    /* the layout holds it: inspect and eval read it back */
    snprintf(cmd, sizeof cmd, "grep -q '\"quant_method\":[[:space:]]*\"awq\"' '%s/ag/config.json'",
             tmp);
    CQ_CHECK_EQ_INT(run(cmd), 0);
    snprintf(cmd, sizeof cmd, "'%s' -q eval --max-windows 2 --seqlen 128 '%s/ag' "
             "'%s/data/calib-docs.txt' >/dev/null", bin, tmp, src);
    CQ_CHECK_EQ_INT(run(cmd), 0);
}

/* Options that only mean something with --then-gptq, and layouts that cannot hold it. */
CQ_TEST(then_gptq_refusals)
{
    const char *bin = getenv("CQ_BIN"), *src = getenv("CQ_SRC"), *tmp = cq_test_tmpdir();
    if (!bin || !src)
        return;
    char cmd[8192];
    static const char *const bad[] = {"--act-order", "--sym", "--then-gptq --act-order", "--then-gptq --sym"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        /* act-order/sym with the default awq layout: no g_idx, zero point required */
        snprintf(cmd, sizeof cmd, "'%s' -q awq %s '%s/data/models/cq-llama-tiny' "
                 "'%s/data/calib-docs.txt' -o '%s/x' 2>/dev/null", bin, bad[i], src, src, tmp);
        CQ_CHECK_EQ_INT(run(cmd), 2);
    }
}
