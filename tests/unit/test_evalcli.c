/* `cquant calib` and `cquant eval` (the real binary, CQ_BIN) against the library:
 * - calib's random windows on the WikiText stream are the ones Python's random.seed(0) picks;
 * - eval's perplexity equals cq_eval_ppl's exactly (same ids, windows and batching), for a text
 *   and for a calib.bin, and for `cquant rtn` output against the library's own RTN (weights
 *   fake-quantized in memory with f16 scales, as the packed file stores them);
 * - with CQ_TEST_FULL_PPL=1: eval of `cquant rtn --bits 4 --group 128 --asym` of cq-llama-16m
 *   at 1024 is within 0.5% of MODEL.md's RTN row (155.9124). */
#include "cq_test.h"
#include "cq_testutil.h"
#include "cquant/calib.h"
#include "cquant/json.h"
#include "cquant/log.h"
#include "cquant/model.h"
#include "cquant/quant.h"
#include "cquant/tokenizer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define WIKITEXT "text/wikitext-2-raw-v1.test.joined.txt"

static const char *tiny_dir(void)
{
    static char dir[4096];
    const char *src = getenv("CQ_SRC");
    snprintf(dir, sizeof dir, "%s/data/models/cq-llama-tiny", src ? src : ".");
    return dir;
}

/* Run a shell command; its stdout parsed as one JSON value (NULL and a failure otherwise). */
static cJSON *run_json(const char *cmd)
{
    FILE *p = popen(cmd, "r");
    static char buf[1 << 16];
    size_t n = p ? fread(buf, 1, sizeof buf - 1, p) : 0;
    int st = p ? pclose(p) : -1;
    if (!(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
        CQ_FAIL("'%s' failed (status %d)", cmd, st);
        return NULL;
    }
    cJSON *j = NULL;
    cq_error err = CQ_ERROR_INIT;
    if (cq_json_parse(&j, buf, n, "stdout", &err) != CQ_OK)
        CQ_FAIL("'%s': stdout is not JSON: %s", cmd, err.msg);
    return j;
}

static double num(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!cJSON_IsNumber(v))
        CQ_FAIL("no number '%s' in the summary", key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* python3 -c "import random; random.seed(0);
 *   print([random.randint(0, 384593 - 2048 - 1) for _ in range(4)])" -> these starts. */
CQ_TEST(calib_random_windows_are_pythons)
{
    const char *bin = getenv("CQ_BIN");
    int32_t *ids = NULL;
    int64_t n = 0;
    if (!cq_test_shared() || !bin || cq_test_wikitext_ids(tiny_dir(), &ids, &n) != CQ_OK)
        return;
    char out[4200], cmd[12000];
    snprintf(out, sizeof out, "%s/w.bin", cq_test_tmpdir());
    snprintf(cmd, sizeof cmd, "'%s' -q calib --json --samples 4 --seed 0 '%s' '%s' -o '%s'", bin,
             tiny_dir(), cq_test_shared_path(WIKITEXT), out);
    cJSON *j = run_json(cmd);
    CQ_CHECK_EQ_INT(num(j, "seqlen"), 2048); /* max_position_embeddings 2048 */
    cJSON_Delete(j);
    cq_calib c;
    cq_error err = CQ_ERROR_INIT;
    static const int64_t starts[4] = {201979, 220500, 21225, 135746};
    CQ_CHECK_OK(cq_calib_read(out, 8192, &c, &err), &err);
    CQ_CHECK(c.n == 4 && c.seqlen == 2048);
    for (int s = 0; s < 4 && c.n == 4 && c.seqlen == 2048; s++)
        if (memcmp(c.ids + s * 2048, ids + starts[s], 2048 * sizeof(int32_t)) != 0)
            CQ_FAIL("window %d is not stream[%lld:+2048]", s, (long long)starts[s]);
    CQ_CHECK(!strcmp(c.mode, "random") && c.seed == 0 && c.bos == 0);
    CQ_CHECK(strstr(c.sources, "\"wikitext-2-raw-v1.test.joined.txt\"") != NULL);
    CQ_CHECK_EQ_INT(strlen(c.tokenizer_hash), 64);
    cq_calib_release(&c);
    free(ids);
}

/* What the eval tests start from: the binary, the tiny model and (WITH_IDS) WikiText's ids.
 * False (nothing to close) when any is missing: ../shared absent outside CI, or a failed check. */
typedef struct tiny_fx {
    const char *bin;
    int32_t *ids;
    int64_t n;
    cq_model_config cfg;
    cq_st_model *st;
} tiny_fx;

static void tiny_close(tiny_fx *f)
{
    cq_st_close(f->st);
    free(f->ids);
}

static bool tiny_open(tiny_fx *f, bool with_ids)
{
    memset(f, 0, sizeof *f);
    f->bin = getenv("CQ_BIN");
    if (!cq_test_shared() || !f->bin ||
        (with_ids && cq_test_wikitext_ids(tiny_dir(), &f->ids, &f->n) != CQ_OK) ||
        cq_test_open_model(tiny_dir(), &f->cfg, &f->st) != CQ_OK) {
        tiny_close(f);
        return false;
    }
    return true;
}

/* The CLI on a text slice (--max-windows) gives the library's numbers bit for bit: cJSON prints
 * doubles with enough digits to round-trip. */
CQ_TEST(eval_text_equals_library)
{
    tiny_fx fx;
    if (!tiny_open(&fx, true))
        return;
    cq_eval_opts o = {.seqlen = 1024, .max_windows = 3};
    cq_eval_result r;
    cq_error err = CQ_ERROR_INIT;
    CQ_CHECK_OK(cq_eval_ppl(&fx.cfg, fx.st, fx.ids, fx.n, &o, &r, &err), &err);
    char cmd[12000];
    snprintf(cmd, sizeof cmd, "'%s' -q eval --json --seqlen 1024 --max-windows 3 '%s' '%s'", fx.bin,
             tiny_dir(), cq_test_shared_path(WIKITEXT));
    cJSON *j = run_json(cmd);
    fprintf(stderr, "tiny, 3 windows @1024: library ppl %.10f, cquant eval %.10f\n", r.ppl,
            num(j, "ppl"));
    CQ_CHECK(num(j, "ppl") == r.ppl && num(j, "perplexity") == r.ppl);
    CQ_CHECK(num(j, "nll_sum") == r.nll_sum && num(j, "nll") == r.mean_nll);
    CQ_CHECK_EQ_INT(num(j, "windows"), 3);
    CQ_CHECK_EQ_INT(num(j, "scored"), 3 * 1023);
    CQ_CHECK_EQ_INT(num(j, "tokens"), 384593);
    CQ_CHECK_EQ_INT(num(j, "seqlen"), 1024);
    /* the first windows of WikiText are harder than the average: MODEL.md's full-text 138.13 */
    CQ_CHECK(r.ppl > 100 && r.ppl < 300);
    cJSON_Delete(j);
    tiny_close(&fx);
}

/* A calib.bin as TEXT: its rows are the windows (default seqlen = its row length). */
CQ_TEST(eval_calib_file_equals_library)
{
    tiny_fx fx;
    if (!tiny_open(&fx, false))
        return;
    char out[4200], cmd[12000];
    snprintf(out, sizeof out, "%s/e.bin", cq_test_tmpdir());
    snprintf(cmd, sizeof cmd, "'%s' -q calib --json --samples 3 --seqlen 256 --seed 7 '%s' '%s' "
             "-o '%s'", fx.bin, tiny_dir(), cq_test_shared_path(WIKITEXT), out);
    cJSON_Delete(run_json(cmd));
    cq_calib c;
    cq_error err = CQ_ERROR_INIT;
    CQ_CHECK_OK(cq_calib_read(out, fx.cfg.vocab, &c, &err), &err);
    cq_eval_opts o = {.seqlen = 256};
    cq_eval_result r;
    if (c.ids)
        CQ_CHECK_OK(cq_eval_ppl(&fx.cfg, fx.st, c.ids, c.n * c.seqlen, &o, &r, &err), &err);
    snprintf(cmd, sizeof cmd, "'%s' -q eval --json '%s' '%s'", fx.bin, tiny_dir(), out);
    cJSON *j = run_json(cmd);
    CQ_CHECK(c.ids && num(j, "ppl") == r.ppl && num(j, "nll_sum") == r.nll_sum);
    CQ_CHECK_EQ_INT(num(j, "windows"), 3);
    CQ_CHECK_EQ_INT(num(j, "seqlen"), 256);
    cJSON_Delete(j);
    cq_calib_release(&c);
    tiny_close(&fx);
}

/* Layer source for the library reference: float weights, each Linear fake-quantized with
 * cq_rtn_quantize (w4 g128 asym) and its scales rounded to f16 (what the packed file holds). */
typedef struct rtn_source {
    const cq_model_config *cfg;
    const cq_st_model *st;
} rtn_source;

static int rtn_layer(void *ctx, int64_t layer, cq_layer_weights *w, cq_error *err)
{
    rtn_source *s = ctx;
    int rc = cq_layer_load(w, s->cfg, s->st, layer, err);
    cq_qconfig qc;
    cq_qconfig_defaults(&qc);
    qc.sym = false;
    for (int i = 0; i < CQ_LIN_COUNT && rc == CQ_OK; i++) {
        int64_t r, c;
        cq_linear_shape(s->cfg, i, &r, &c);
        cq_qresult q;
        rc = cq_rtn_quantize(&qc, w->lin[i], r, c, &q, err);
        if (rc != CQ_OK)
            break;
        size_t ns = (size_t)(q.n_groups * r);
        uint16_t *h = malloc(ns * sizeof *h);
        cq_convert_from_f32(CQ_DT_F16, q.scale, h, ns);
        cq_convert_to_f32(CQ_DT_F16, h, q.scale, ns);
        free(h);
        cq_qresult_dequant(&q, w->lin[i]);
        cq_qresult_release(&q);
    }
    return rc;
}

CQ_TEST(eval_rtn_checkpoint_equals_library_rtn)
{
    tiny_fx fx;
    if (!tiny_open(&fx, true))
        return;
    char cmd[12000];
    snprintf(cmd, sizeof cmd, "'%s' -q rtn --json --bits 4 --group 128 --asym '%s' -o '%s/qr'",
             fx.bin, tiny_dir(), cq_test_tmpdir());
    cJSON_Delete(run_json(cmd));
    snprintf(cmd, sizeof cmd, "'%s' -q eval --json --seqlen 512 --max-windows 2 '%s/qr' '%s'",
             fx.bin, cq_test_tmpdir(), cq_test_shared_path(WIKITEXT));
    cJSON *j = run_json(cmd);
    rtn_source src = {&fx.cfg, fx.st};
    cq_eval_opts o = {.seqlen = 512, .max_windows = 2, .source = rtn_layer, .source_ctx = &src};
    cq_eval_result r, f;
    cq_error err = CQ_ERROR_INIT;
    CQ_CHECK_OK(cq_eval_ppl(&fx.cfg, fx.st, fx.ids, fx.n, &o, &r, &err), &err);
    cq_eval_opts of = {.seqlen = 512, .max_windows = 2};
    CQ_CHECK_OK(cq_eval_ppl(&fx.cfg, fx.st, fx.ids, fx.n, &of, &f, &err), &err);
    fprintf(stderr, "tiny rtn w4 g128 asym, 2 windows @512: cquant eval %.10f, library RTN "
            "%.10f (float %.4f)\n", num(j, "ppl"), r.ppl, f.ppl);
    CQ_CHECK_NEAR(num(j, "ppl"), r.ppl, 1e-9 * r.ppl);
    CQ_CHECK(fabs(r.ppl - f.ppl) > 1e-3 * f.ppl); /* the 4-bit weights were used */
    cJSON_Delete(j);
    tiny_close(&fx);
}

/* The user's bar: MODEL.md "RTN 4-bit g128 asym" 155.9124 @1024 (exact 155.91237031), through
 * rtn + eval of the packed checkpoint. A few minutes: only with CQ_TEST_FULL_PPL=1. */
CQ_TEST(full_rtn_16m_matches_model_md)
{
    const char *bin = getenv("CQ_BIN"), *full = getenv("CQ_TEST_FULL_PPL");
    if (!full || strcmp(full, "1") || !cq_test_shared() || !bin)
        return;
    char cmd[12000];
    snprintf(cmd, sizeof cmd, "'%s' -q rtn --json --bits 4 --group 128 --asym '%s' -o '%s/q16'",
             bin, cq_test_shared_path("models/cq-llama-16m"), cq_test_tmpdir());
    cJSON_Delete(run_json(cmd));
    snprintf(cmd, sizeof cmd, "'%s' -q eval --json --seqlen 1024 '%s/q16' '%s'", bin,
             cq_test_tmpdir(), cq_test_shared_path(WIKITEXT));
    cJSON *j = run_json(cmd);
    double ppl = num(j, "ppl");
    fprintf(stderr, "cq-llama-16m rtn w4 g128 asym: ppl@1024 %.4f (MODEL.md 155.9124)\n", ppl);
    CQ_CHECK_NEAR(ppl, 155.91237031, 0.005 * 155.91237031);
    CQ_CHECK_EQ_INT(num(j, "windows"), 375);
    cJSON_Delete(j);
}
