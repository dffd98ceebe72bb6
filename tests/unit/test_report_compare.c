/* cquant report's comparison: values, deltas, ratios, totals, module means, the worst-layer
 * order and mismatches against values recomputed here from the generator (report_gen.h); the
 * text rendering's numbers; and hostile report files (errors name the file, nothing crashes). */
#include "cq_test.h"
#include "cquant/compare.h"
#include "report_gen.h"

#include <string.h>

static cq_compare *build_pair(const gen_set *g, const cq_compare_opts *o)
{
    cq_error err = CQ_ERROR_INIT;
    cq_compare *c = NULL;
    CQ_CHECK_OK(cq_compare_create(&c, &err), &err);
    for (int r = 0; r < 2; r++) {
        cJSON *rep = gen_report(g, r);
        char path[512];
        snprintf(path, sizeof path, "%s/run%d.json", cq_test_tmpdir(), r);
        CQ_CHECK(gen_write(rep, path) == 0);
        cJSON_Delete(rep);
        CQ_CHECK_OK(cq_compare_add_file(c, path, &err), &err);
    }
    CQ_CHECK_OK(cq_compare_build(c, o, &err), &err);
    return c;
}

static double num_at(const cJSON *arr, int r)
{
    const cJSON *v = cJSON_GetArrayItem(arr, r);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

#define SAME(a, b) ((isnan(a) && isnan(b)) || (a) == (b))

CQ_TEST(values_deltas_ratios)
{
    static gen_set g;
    gen_make(&g, 4, 7);
    cq_compare *c = build_pair(&g, NULL);
    const cJSON *cmp = cq_compare_json(c);
    const cJSON *layers = cJSON_GetObjectItem(cmp, "layers");
    CQ_CHECK_EQ_INT(cJSON_GetArraySize(layers), g.n); /* union of both runs */
    int checked = 0;
    for (const cJSON *l = layers ? layers->child : NULL; l; l = l->next) {
        const gen_layer *gl = gen_find(&g, cJSON_GetObjectItem(l, "name")->valuestring);
        CQ_CHECK(gl != NULL);
        if (!gl)
            continue;
        CQ_CHECK_EQ_INT(cJSON_GetObjectItem(l, "block")->valuedouble, gl->block);
        CQ_CHECK(!strcmp(cJSON_GetObjectItem(l, "module")->valuestring, gl->module));
        for (int f = 0; f < GEN_FIELDS; f++) {
            const cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(l, "values"), gen_field[f]);
            const cJSON *d = cJSON_GetObjectItem(cJSON_GetObjectItem(l, "delta"), gen_field[f]);
            const cJSON *q = cJSON_GetObjectItem(cJSON_GetObjectItem(l, "ratio"), gen_field[f]);
            double a = gl->v[0][f], b = gl->v[1][f];
            double want_d = b - a, want_q = b / a;
            if (!SAME(num_at(v, 0), a) || !SAME(num_at(v, 1), b) ||
                !SAME(num_at(d, 1), want_d) || !SAME(num_at(q, 1), want_q) ||
                !isnan(num_at(d, 0)) || !isnan(num_at(q, 0)))
                CQ_FAIL("%s %s: got %g %g d %g q %g, want %g %g d %g q %g", gl->name,
                        gen_field[f], num_at(v, 0), num_at(v, 1), num_at(d, 1), num_at(q, 1), a,
                        b, want_d, want_q);
            checked++;
        }
    }
    CQ_CHECK_EQ_INT(checked, g.n * GEN_FIELDS);
    /* totals: B - A and B / A of the reports' own totals */
    const cJSON *t = cJSON_GetObjectItem(cmp, "totals");
    const cJSON *td = cJSON_GetObjectItem(cJSON_GetObjectItem(t, "delta"), "rel_frobenius_error");
    const cJSON *tq = cJSON_GetObjectItem(cJSON_GetObjectItem(t, "ratio"), "quantized");
    CQ_CHECK(num_at(td, 1) == 0.127 - 0.111);
    CQ_CHECK(num_at(tq, 1) == 55.0 / 56.0);
    cq_compare_free(c);
}

CQ_TEST(fields_shown_and_mismatches)
{
    static gen_set g;
    gen_make(&g, 3, 11);
    cq_compare *c = build_pair(&g, NULL);
    const cJSON *cmp = cq_compare_json(c);
    /* every numeric per-layer field, including the one only B has; bits is config, hidden */
    const cJSON *shown = cJSON_GetObjectItem(cmp, "shown");
    const char *want[] = {"rel_frobenius_error", "gptq_loss", "weight_mse", "seconds"};
    CQ_CHECK_EQ_INT(cJSON_GetArraySize(shown), 4);
    for (int i = 0; i < 4 && i < cJSON_GetArraySize(shown); i++)
        CQ_CHECK(!strcmp(cJSON_GetArrayItem(shown, i)->valuestring, want[i]));
    CQ_CHECK_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItem(cmp, "fields")), 5);
    const cJSON *mm = cJSON_GetObjectItem(cmp, "mismatches");
    CQ_CHECK_EQ_INT(cJSON_GetArraySize(mm), 3);
    int missing = 0, status = 0;
    for (const cJSON *m = mm ? mm->child : NULL; m; m = m->next) {
        const char *k = cJSON_GetObjectItem(m, "kind")->valuestring;
        const char *layer = cJSON_GetObjectItem(m, "layer")->valuestring;
        missing += !strcmp(k, "missing") && (!strcmp(layer, "lm_extra.weight") ||
                                             !strcmp(layer, "model.layers.2.mlp.down_proj.weight"));
        status += !strcmp(k, "status") && !strcmp(layer, "model.layers.1.self_attn.v_proj.weight");
    }
    CQ_CHECK_EQ_INT(missing, 2);
    CQ_CHECK_EQ_INT(status, 1);
    cq_compare_free(c);
}

/* The worst layers: by the largest value in any run, descending; ties by checkpoint order. */
CQ_TEST(worst_order_and_top)
{
    static gen_set g;
    gen_make(&g, 5, 3);
    for (int f = 0; f < 2; f++) {
        const char *key = gen_field[f];
        cq_compare_opts o = {.sort = key, .top = 7};
        cq_compare *c = build_pair(&g, &o);
        const cJSON *worst = cJSON_GetObjectItem(cq_compare_json(c), "worst");
        CQ_CHECK_EQ_INT(cJSON_GetArraySize(worst), 7);
        int used[GEN_MAX_LAYERS] = {0};
        const cJSON *w = worst ? worst->child : NULL;
        for (int k = 0; k < 7 && w; k++, w = w->next) { /* selection by hand */
            int best = -1;
            double bv = -1;
            for (int i = 0; i < g.n; i++) {
                double m = fmax(isnan(g.l[i].v[0][f]) ? -1 : g.l[i].v[0][f],
                                isnan(g.l[i].v[1][f]) ? -1 : g.l[i].v[1][f]);
                if (!used[i] && m > bv) {
                    bv = m;
                    best = i;
                }
            }
            used[best] = 1;
            const char *got = cJSON_GetObjectItem(w, "name")->valuestring;
            if (strcmp(got, g.l[best].name))
                CQ_FAIL("%s: worst[%d] is %s, want %s", key, k, got, g.l[best].name);
        }
        cq_compare_free(c);
    }
    cq_compare_opts bad = {.sort = "no_such_field"};
    cq_compare *c = NULL;
    cq_error err = CQ_ERROR_INIT;
    cq_compare_create(&c, &err);
    cJSON *rep = gen_report(&g, 0);
    CQ_CHECK_OK(cq_compare_add_json(c, rep, "a.json", &err), &err);
    CQ_CHECK_EQ_INT(cq_compare_build(c, &bad, &err), CQ_E_USAGE);
    CQ_CHECK(strstr(err.msg, "no_such_field") != NULL);
    cq_compare_free(c);
}

CQ_TEST(module_means)
{
    static gen_set g;
    gen_make(&g, 4, 5);
    cq_compare *c = build_pair(&g, NULL);
    const cJSON *means = cJSON_GetObjectItem(cq_compare_json(c), "module_means");
    const cJSON *types = cJSON_GetObjectItem(cq_compare_json(c), "module_types");
    CQ_CHECK_EQ_INT(cJSON_GetArraySize(types), 8); /* q..down, then lm_extra */
    CQ_CHECK(!strcmp(cJSON_GetArrayItem(types, 7)->valuestring, "lm_extra"));
    for (int f = 0; f < GEN_FIELDS; f++)
        for (int m = 0; m < 7; m++)
            for (int r = 0; r < 2; r++) {
                double s = 0;
                int n = 0;
                for (int i = 0; i < g.n; i++)
                    if (!strcmp(g.l[i].module, gen_mods[m]) && !isnan(g.l[i].v[r][f])) {
                        s += g.l[i].v[r][f];
                        n++;
                    }
                double want = n ? s / n : NAN;
                double got = num_at(cJSON_GetObjectItem(cJSON_GetObjectItem(means, gen_field[f]),
                                                        gen_mods[m]), r);
                if (!(SAME(got, want) || fabs(got - want) <= 1e-15 * fabs(want)))
                    CQ_FAIL("mean %s %s run %d: got %.17g want %.17g", gen_field[f], gen_mods[m],
                            r, got, want);
            }
    cq_compare_free(c);
}

/* The text shows the same numbers: the worst row has A, B, B-A and B/A as formatted here. */
CQ_TEST(text_numbers)
{
    static gen_set g;
    gen_make(&g, 3, 9);
    cq_compare_opts o = {.top = 3};
    cq_compare *c = build_pair(&g, &o);
    char *text = NULL;
    size_t len = 0;
    cq_error err = CQ_ERROR_INIT;
    CQ_CHECK_OK(cq_compare_text(cq_compare_json(c), &text, &len, &err), &err);
    CQ_CHECK(text && strlen(text) == len);
    const cJSON *worst = cJSON_GetObjectItem(cq_compare_json(c), "worst");
    const char *w0 = "";
    const gen_layer *gl = NULL;
    for (const cJSON *w = worst ? worst->child : NULL; w && !gl; w = w->next) {
        w0 = cJSON_GetObjectItem(w, "name")->valuestring; /* the first one in both runs */
        gl = gen_find(&g, w0);
        gl = gl && gl->present[0] && gl->present[1] && !gl->skipped[1] ? gl : NULL;
    }
    CQ_CHECK(gl != NULL);
    const char *sec = text ? strstr(text, "worst 3 layers by rel_frobenius_error") : NULL;
    CQ_CHECK(sec != NULL);
    const char *row = sec ? strstr(sec, w0) : NULL;
    CQ_CHECK(row != NULL);
    if (row && gl) {
        char want[4][32], line[512];
        snprintf(line, sizeof line, "%.*s", (int)strcspn(row, "\n"), row);
        snprintf(want[0], 32, " %.4g ", gl->v[0][0]);
        snprintf(want[1], 32, " %.4g ", gl->v[1][0]);
        snprintf(want[2], 32, " %+.3g ", gl->v[1][0] - gl->v[0][0]);
        snprintf(want[3], 32, " %.4g", gl->v[1][0] / gl->v[0][0]);
        for (int k = 0; k < 4; k++)
            if (!strstr(line, want[k]))
                CQ_FAIL("text row '%s' lacks '%s'", line, want[k]);
    }
    CQ_CHECK(text && strstr(text, "mismatches (3):"));
    CQ_CHECK(text && strstr(text, "lm_extra.weight: only in B (missing in A)"));
    free(text);
    cq_compare_free(c);
}

/* ---- hostile inputs ---- */

static int add_text(const char *text, size_t len, cq_error *err)
{
    char path[512];
    snprintf(path, sizeof path, "%s/hostile.json", cq_test_tmpdir());
    FILE *f = fopen(path, "wb");
    if (!f)
        return CQ_E_IO;
    fwrite(text, 1, len, f);
    fclose(f);
    cq_compare *c = NULL;
    cq_compare_create(&c, err);
    int rc = cq_compare_add_file(c, path, err);
    if (rc == CQ_OK) /* accepted files must also build and render */
        rc = cq_compare_build(c, NULL, err);
    if (rc == CQ_OK) {
        char *s = NULL;
        size_t n;
        if (cq_compare_text(cq_compare_json(c), &s, &n, err) == CQ_OK)
            free(s);
        s = NULL;
        if (cq_compare_html(cq_compare_json(c), &s, &n, err) == CQ_OK)
            free(s);
    }
    if (rc != CQ_OK && !strstr(err->msg, "hostile.json"))
        CQ_FAIL("error does not name the file: %s", err->msg);
    if (rc != CQ_OK && strchr(err->msg, '\n'))
        CQ_FAIL("error is not one line: %s", err->msg);
    cq_compare_free(c);
    return rc;
}

#define REJECT(text, code)                                                                     \
    do {                                                                                       \
        cq_error e_ = CQ_ERROR_INIT;                                                           \
        int rc_ = add_text(text, sizeof(text) - 1, &e_);                                       \
        if (rc_ != (code))                                                                     \
            CQ_FAIL("%s: got %d (%s), want %d", text, rc_, e_.msg, code);                      \
    } while (0)
#define ACCEPT(text) REJECT(text, CQ_OK)
#define HDR "{\"schema\":\"cquant-report/1\","

CQ_TEST(hostile_reports)
{
    REJECT("", CQ_E_FORMAT);
    REJECT("{", CQ_E_FORMAT);
    REJECT("[]", CQ_E_FORMAT);
    REJECT("{}", CQ_E_FORMAT);
    REJECT("{\"schema\":7,\"layers\":[]}", CQ_E_FORMAT);
    REJECT("{\"schema\":\"cquant-report/2\",\"layers\":[]}", CQ_E_UNSUPPORTED);
    REJECT(HDR "\"layers\":{}}", CQ_E_FORMAT);
    REJECT(HDR "\"layers\":[1]}", CQ_E_FORMAT);
    REJECT(HDR "\"layers\":[{\"name\":5}]}", CQ_E_FORMAT);
    REJECT(HDR "\"layers\":[{\"name\":\"\"}]}", CQ_E_FORMAT);
    REJECT(HDR "\"layers\":[{\"name\":\"a\"},{\"name\":\"a\"}]}", CQ_E_FORMAT);
    REJECT(HDR "\"layers\":[{\"name\":\"a\",\"x\":1,\"x\":2}]}", CQ_E_FORMAT);
    REJECT(HDR "\"layers\":[],\"totals\":[]}", CQ_E_FORMAT);
    REJECT(HDR "\"layers\":[{\"name\":\"a\",\"x\":NaN}]}", CQ_E_FORMAT);
    REJECT(HDR "\"layers\":[{\"name\":\"a\\u0000b\"}]}", CQ_E_FORMAT);
    REJECT(HDR "\"layers\":[{\"name\":\"\xff\xfe\"}]}", CQ_E_FORMAT);
    REJECT(HDR "\"layers\":[]} trailing", CQ_E_FORMAT);
    ACCEPT(HDR "\"layers\":[]}");
    ACCEPT(HDR "\"layers\":[{\"name\":\"a\"}]}");
    /* extremes: overflowing differences become null, not inf in the JSON or NaN in the SVG */
    ACCEPT(HDR "\"layers\":[{\"name\":\"a\",\"rel_frobenius_error\":1e308},"
               "{\"name\":\"b\",\"rel_frobenius_error\":-1e308},"
               "{\"name\":\"c\",\"rel_frobenius_error\":null,\"w\":\"str\",\"v\":[1],\"z\":{}}],"
               "\"totals\":{\"q\":1e308,\"r\":\"x\"}}");
    ACCEPT(HDR "\"layers\":[{\"name\":\"<script>alert(1)</script>&\\n\\u0001\",\"e\":0}]}");
    /* sizes: too many keys in one layer, too many distinct fields, deep nesting */
    size_t cap = 1 << 20, n = 0;
    char *big = malloc(cap);
    if (!big)
        return;
    n += (size_t)snprintf(big + n, cap - n, HDR "\"layers\":[{\"name\":\"a\"");
    for (int i = 0; i < 1100; i++)
        n += (size_t)snprintf(big + n, cap - n, ",\"k%d\":%d", i, i);
    n += (size_t)snprintf(big + n, cap - n, "}]}");
    cq_error e = CQ_ERROR_INIT;
    CQ_CHECK_EQ_INT(add_text(big, n, &e), CQ_E_FORMAT);
    n = (size_t)snprintf(big, cap, HDR "\"layers\":[");
    for (int i = 0; i < 300; i++)
        n += (size_t)snprintf(big + n, cap - n, "%s{\"name\":\"l%d\",\"f%d\":1}", i ? "," : "",
                              i, i);
    n += (size_t)snprintf(big + n, cap - n, "]}");
    e = (cq_error)CQ_ERROR_INIT;
    CQ_CHECK_EQ_INT(add_text(big, n, &e), CQ_E_FORMAT);
    n = (size_t)snprintf(big, cap, HDR "\"layers\":[{\"name\":\"a\",\"deep\":");
    for (int i = 0; i < 5000; i++)
        big[n++] = '[';
    for (int i = 0; i < 5000; i++)
        big[n++] = ']';
    n += (size_t)snprintf(big + n, cap - n, "}]}");
    e = (cq_error)CQ_ERROR_INIT;
    CQ_CHECK_EQ_INT(add_text(big, n, &e), CQ_E_FORMAT); /* cJSON's nesting limit */
    free(big);
    cq_error e2 = CQ_ERROR_INIT;
    cq_compare *c = NULL;
    cq_compare_create(&c, &e2);
    CQ_CHECK_EQ_INT(cq_compare_add_file(c, "/nonexistent/r.json", &e2), CQ_E_IO);
    CQ_CHECK(strstr(e2.msg, "/nonexistent/r.json") != NULL);
    cq_compare_free(c);
}

