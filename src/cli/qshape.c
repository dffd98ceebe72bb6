/* Logical shapes of packed Linears (see qshape.h). */
#include "qshape.h"

#include <stdio.h>
#include <string.h>

static const char *const primaries[] = {".qweight", ".weight_packed"};

bool cq_qshape_is_primary_ex(const char *name, char *prefix, size_t n)
{
    size_t len = strlen(name);
    for (size_t i = 0; i < sizeof primaries / sizeof *primaries; i++) {
        size_t s = strlen(primaries[i]);
        if (len > s && !strcmp(name + len - s, primaries[i])) {
            if (prefix)
                snprintf(prefix, n, "%.*s", (int)(len - s), name);
            return true;
        }
    }
    return false;
}

static const cq_st_tensor *need(const cq_st_model *m, const char *prefix, const char *suffix,
                                int ndim, cq_error *err)
{
    char name[1024];
    snprintf(name, sizeof name, "%s.%s", prefix, suffix);
    const cq_st_tensor *t = cq_st_find(m, name);
    if (!t)
        cq_errorf(err, CQ_E_FORMAT, "tensor '%s' is missing", name);
    else if (t->ndim != ndim)
        cq_errorf(err, CQ_E_FORMAT, "tensor '%s': expected %d dimensions, got %d", name, ndim,
                  t->ndim);
    else
        return t;
    return NULL;
}

/* compressed-tensors stores the original (out, in) in an I64 (or I32) tensor of 2 values. */
static int ct_shape(const cq_st_model *m, const char *prefix, int64_t *rows, int64_t *cols,
                    cq_error *err)
{
    const cq_st_tensor *t = need(m, prefix, "weight_shape", 1, err);
    if (!t)
        return err->code;
    if (t->shape[0] != 2 || (t->dtype != CQ_DT_I64 && t->dtype != CQ_DT_I32))
        return cq_errorf(err, CQ_E_FORMAT, "tensor '%s.weight_shape': expected 2 integers",
                         prefix);
    int64_t v[2];
    for (int i = 0; i < 2; i++) {
        if (t->dtype == CQ_DT_I64) {
            memcpy(&v[i], (const char *)t->data + 8 * i, 8);
        } else {
            int32_t x;
            memcpy(&x, (const char *)t->data + 4 * i, 4);
            v[i] = x;
        }
    }
    if (v[0] <= 0 || v[1] <= 0)
        return cq_errorf(err, CQ_E_FORMAT, "tensor '%s.weight_shape': non-positive dimension",
                         prefix);
    *rows = v[0];
    *cols = v[1];
    return CQ_OK;
}

int cq_qshape_infer(const cq_st_model *m, const cq_layout *layout, const char *prefix,
                    int64_t *rows, int64_t *cols, cq_error *err)
{
    if (!strcmp(layout->name, "ct"))
        return ct_shape(m, prefix, rows, cols, err);
    const cq_st_tensor *scales = need(m, prefix, "scales", 2, err);
    const cq_st_tensor *in = !scales ? NULL
                             : !strcmp(layout->name, "gptq") ? need(m, prefix, "g_idx", 1, err)
                                                             : need(m, prefix, "qweight", 2, err);
    if (!scales || !in)
        return err->code;
    *rows = scales->shape[1];
    *cols = in->shape[0];
    if (*rows <= 0 || *cols <= 0)
        return cq_errorf(err, CQ_E_FORMAT, "'%s': empty packed Linear", prefix);
    return CQ_OK;
}
