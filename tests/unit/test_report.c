/* Report metrics against closed forms, totals weighting, JSON shape, NaN as null. */
#include "cq_test.h"
#include "cquant/report.h"

#include <string.h>

CQ_TEST(weight_error_closed_form)
{
    const float w[] = {1, 2, 3, 4}, wq[] = {1, 2, 3, 5};
    cq_werr e;
    cq_weight_error(w, wq, 4, &e);
    CQ_CHECK_NEAR(e.mse, 0.25, 1e-15);          /* (5-4)^2 / 4 */
    CQ_CHECK_NEAR(e.max_abs, 1.0, 0);
    CQ_CHECK_NEAR(e.rel_fro, sqrt(1.0 / 30.0), 1e-15); /* 1 / sqrt(1+4+9+16) */
    const float z[] = {0, 0};
    cq_weight_error(z, z, 2, &e);
    CQ_CHECK_NEAR(e.rel_fro, 0, 0);
    const float n[] = {NAN, 1};
    cq_weight_error(n, z, 2, &e);
    CQ_CHECK(isnan(e.max_abs) && isnan(e.mse));
}

CQ_TEST(totals_and_json)
{
    cq_error err = CQ_ERROR_INIT;
    cq_report *r = NULL;
    char *argv[] = {"cquant", "rtn", "M"};
    CQ_CHECK_OK(cq_report_create(&r, "rtn", 3, argv, &err), &err);
    if (!r)
        return;
    const float a[] = {1, 1}, aq[] = {1, 0};          /* sq err 1, sq w 2 */
    const float b[] = {2, 2, 2, 2}, bq[] = {2, 2, 2, 2}; /* sq err 0, sq w 16 */
    cq_layer_report la = {.name = "a.weight", .rows = 1, .cols = 2, .method = "rtn", .bits = 4};
    cq_layer_report lb = {.name = "b.weight", .rows = 2, .cols = 2, .method = "rtn", .bits = 4};
    cq_layer_report ls = {.name = "c.weight", .rows = 3, .cols = 3, .method = "rtn", .bits = 4,
                          .skipped = true, .reason = "does not fit"};
    cq_weight_error(a, aq, 2, &la.err);
    cq_weight_error(b, bq, 4, &lb.err);
    CQ_CHECK_OK(cq_report_add_layer(r, &la, &err), &err);
    CQ_CHECK_OK(cq_report_add_layer(r, &lb, &err), &err);
    CQ_CHECK_OK(cq_report_add_layer(r, &ls, &err), &err);
    CQ_CHECK_OK(cq_report_finish(r, 1.5, &err), &err);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(cq_report_json(r), "totals");
#define TOT(k) cJSON_GetObjectItemCaseSensitive(t, k)->valuedouble
    CQ_CHECK_EQ_INT(TOT("quantized"), 2);
    CQ_CHECK_EQ_INT(TOT("skipped"), 1);
    CQ_CHECK_EQ_INT(TOT("params_quantized"), 6);
    CQ_CHECK_NEAR(TOT("weight_mse"), 1.0 / 6.0, 1e-15);          /* element-weighted */
    CQ_CHECK_NEAR(TOT("rel_frobenius_error"), sqrt(1.0 / 18.0), 1e-15);
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(cq_report_json(r), "layers");
    CQ_CHECK_EQ_INT(cJSON_GetArraySize(layers), 3);
    const cJSON *sk = cJSON_GetArrayItem(layers, 2);
    CQ_CHECK(!strcmp(cJSON_GetObjectItemCaseSensitive(sk, "status")->valuestring, "skipped"));
    CQ_CHECK(!strcmp(cJSON_GetObjectItemCaseSensitive(sk, "reason")->valuestring, "does not fit"));
    CQ_CHECK(!cJSON_GetObjectItemCaseSensitive(sk, "weight_mse"));
    /* a written report refuses to be replaced without force */
    char path[512];
    snprintf(path, sizeof path, "%s/r.json", cq_test_tmpdir());
    CQ_CHECK_OK(cq_report_write(r, path, false, &err), &err);
    cq_error e2 = CQ_ERROR_INIT;
    CQ_CHECK_EQ_INT(cq_report_write(r, path, false, &e2), CQ_E_EXISTS);
    cq_report_free(r);
    cq_report_free(NULL);
}
