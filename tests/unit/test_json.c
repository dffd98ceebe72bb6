/* Strict JSON helpers: typed getters with exact messages, rejection of hostile text, and the
 * atomic writer's output read back. */
#include "cq_test.h"

#include "cquant/json.h"

#include <stdlib.h>
#include <string.h>

static cJSON *parse(const char *text, int want_rc, const char *want_msg)
{
    cq_error err = CQ_ERROR_INIT;
    cJSON *j = NULL;
    int rc = cq_json_parse(&j, text, strlen(text), "t.json", &err);
    CQ_CHECK_EQ_INT(rc, want_rc);
    if (want_msg && !strstr(err.msg, want_msg))
        CQ_FAIL("message '%s' lacks '%s'", err.msg, want_msg);
    return j;
}

CQ_TEST(getters)
{
    cJSON *j = parse("{\"s\":\"x\",\"i\":4096,\"f\":2.5,\"b\":true,\"o\":{},\"a\":[1],"
                     "\"big\":1e300,\"neg\":-3,\"d\":1,\"d\":2}", CQ_OK, NULL);
    cq_error err = CQ_ERROR_INIT;
    const char *s;
    int64_t i;
    double f;
    int b;
    const cJSON *o;
    CQ_CHECK_OK(cq_json_get_string(j, "s", &s, "t.json", &err), &err);
    CQ_CHECK(strcmp(s, "x") == 0);
    CQ_CHECK_OK(cq_json_get_int(j, "i", 1, 1 << 20, &i, "t.json", &err), &err);
    CQ_CHECK_EQ_INT(i, 4096);
    CQ_CHECK_OK(cq_json_get_double(j, "f", &f, "t.json", &err), &err);
    CQ_CHECK(f == 2.5);
    CQ_CHECK_OK(cq_json_get_bool(j, "b", &b, "t.json", &err), &err);
    CQ_CHECK_EQ_INT(b, 1);
    CQ_CHECK_OK(cq_json_get_object(j, "o", &o, "t.json", &err), &err);
    CQ_CHECK_OK(cq_json_get_array(j, "a", &o, "t.json", &err), &err);
    CQ_CHECK(cq_json_has(j, "s") && !cq_json_has(j, "S"));
    struct {
        int rc;
        const char *msg;
    } r[8];
    cq_error e[8];
    for (int k = 0; k < 8; k++)
        cq_error_clear(&e[k]);
    r[0].rc = cq_json_get_int(j, "s", 0, 9, &i, "t.json", &e[0]);
    r[0].msg = "'t.json': key 's': expected an integer, got a string";
    r[1].rc = cq_json_get_int(j, "f", 0, 9, &i, "t.json", &e[1]);
    r[1].msg = "'t.json': key 'f': expected an integer, got 2.5";
    r[2].rc = cq_json_get_int(j, "i", 0, 9, &i, "t.json", &e[2]);
    r[2].msg = "'t.json': key 'i': 4096 is outside [0, 9]";
    r[3].rc = cq_json_get_int(j, "big", 0, 9, &i, "t.json", &e[3]);
    r[3].msg = "key 'big': expected an integer";
    r[4].rc = cq_json_get_string(j, "missing", &s, "t.json", &e[4]);
    r[4].msg = "'t.json': missing key 'missing'";
    r[5].rc = cq_json_get_int(j, "d", 0, 9, &i, "t.json", &e[5]);
    r[5].msg = "'t.json': duplicate key 'd'";
    r[6].rc = cq_json_get_bool(j, "i", &b, "t.json", &e[6]);
    r[6].msg = "expected a boolean, got a number";
    r[7].rc = cq_json_check_unique(j, "t.json", &e[7]);
    r[7].msg = "duplicate key 'd'";
    for (int k = 0; k < 8; k++) {
        CQ_CHECK_EQ_INT(r[k].rc, CQ_E_FORMAT);
        if (!strstr(e[k].msg, r[k].msg))
            CQ_FAIL("case %d: '%s' lacks '%s'", k, e[k].msg, r[k].msg);
    }
    CQ_CHECK_OK(cq_json_get_int(j, "neg", -5, 0, &i, "t.json", &err), &err);
    CQ_CHECK_EQ_INT(i, -3);
    cJSON_Delete(j);
}

CQ_TEST(hostile_text)
{
    cJSON_Delete(parse("{\"a\":1} trailing", CQ_E_FORMAT, "after the JSON value"));
    cJSON_Delete(parse("{\"a\":1}  \n", CQ_OK, NULL));
    cJSON_Delete(parse("{\"a\\u0000\":1}", CQ_E_FORMAT, "\\u0000"));
    cJSON_Delete(parse("{\"a\\\\u0000\":1}", CQ_OK, NULL)); /* an escaped backslash */
    cJSON_Delete(parse("{\"\xe2\x82\":1}", CQ_E_FORMAT, "invalid UTF-8"));
    cJSON_Delete(parse("{\"\xf4\x90\x80\x80\":1}", CQ_E_FORMAT, "invalid UTF-8"));
    cJSON_Delete(parse("{\"\xe2\x82\xac\":1}", CQ_OK, NULL));
    cJSON_Delete(parse("{\"a\":1", CQ_E_FORMAT, "not valid JSON"));
    cJSON_Delete(parse("", CQ_E_FORMAT, "not valid JSON"));
    CQ_CHECK(cq_utf8_valid("\xf0\x9f\x98\x80", 4) && !cq_utf8_valid("\xc1\xbf", 2));
    cq_error err = CQ_ERROR_INIT;
    cJSON *j = NULL;
    char p[4096];
    snprintf(p, sizeof p, "%s/nofile.json", cq_test_tmpdir());
    CQ_CHECK(cq_json_load(&j, p, &err) == CQ_E_IO && strstr(err.msg, "nofile.json"));
}

CQ_TEST(write_and_load)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/w.json", cq_test_tmpdir());
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "bits", 4);
    cJSON_AddStringToObject(root, "quant_method", "gptq");
    cq_error err = CQ_ERROR_INIT;
    CQ_CHECK_OK(cq_json_write_file(root, p, 0, &err), &err);
    CQ_CHECK(cq_json_write_file(root, p, 0, &err) == CQ_E_EXISTS);
    cq_error_clear(&err);
    CQ_CHECK_OK(cq_json_write_file(root, p, 1, &err), &err);
    cJSON_Delete(root);
    FILE *f = fopen(p, "r");
    char buf[256] = {0};
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    const char *want = "{\n\t\"bits\":\t4,\n\t\"quant_method\":\t\"gptq\"\n}\n";
    CQ_CHECK(n == strlen(want) && strcmp(buf, want) == 0);
    cJSON *j = NULL;
    int64_t bits = 0;
    CQ_CHECK_OK(cq_json_load(&j, p, &err), &err);
    CQ_CHECK_OK(cq_json_get_int(j, "bits", 2, 8, &bits, p, &err), &err);
    CQ_CHECK_EQ_INT(bits, 4);
    cJSON_Delete(j);
    CQ_CHECK(cq_json_load_capped(&j, p, 10, &err) == CQ_E_FORMAT && strstr(err.msg, "limit"));
}

/* Numbers copied to an output keep their literal: "0.0" must not come back as "0" (strict
 * loaders reject an int in a float field), nested arrays and strings holding digits included. */
CQ_TEST(verbatim_numbers)
{
    char in[4096], out[4096];
    snprintf(in, sizeof in, "%s/v_in.json", cq_test_tmpdir());
    snprintf(out, sizeof out, "%s/v_out.json", cq_test_tmpdir());
    const char *text = "{\"a\": 0.0, \"s\": \"-12 3.5e4 \\\"7\\\"\", \"b\": [1, -2.50, 1e-06, "
                       "{\"c\": 10000.0}], \"t\": true, \"n\": null, \"d\": 1E+3}";
    FILE *f = fopen(in, "w");
    CQ_CHECK(f && fputs(text, f) >= 0);
    if (f)
        fclose(f);
    cq_error err = CQ_ERROR_INIT;
    cJSON *j = NULL;
    CQ_CHECK_OK(cq_json_load_verbatim(&j, in, &err), &err);
    CQ_CHECK_OK(cq_json_write_file(j, out, 1, &err), &err);
    cJSON_Delete(j);
    char buf[1024] = {0};
    f = fopen(out, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    CQ_CHECK(n > 0);
    const char *want[] = {"\"a\":\t0.0,", "-12 3.5e4", "1, -2.50, 1e-06", "\"c\":\t10000.0",
                          "\"d\":\t1E+3", "\"t\":\ttrue"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        if (!strstr(buf, want[i]))
            CQ_FAIL("'%s' lacks '%s'", buf, want[i]);
    /* the plain loader still gives numbers, which the getters need */
    CQ_CHECK_OK(cq_json_load(&j, out, &err), &err);
    double a = -1;
    CQ_CHECK_OK(cq_json_get_double(j, "a", &a, out, &err), &err);
    CQ_CHECK(a == 0.0);
    cJSON_Delete(j);
}
