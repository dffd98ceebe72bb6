/* Report comparison (see compare.h): load and validate reports, match layers by name through a
 * hash map, fill a [layer][field][run] matrix (NaN = gap), and emit the "cquant-compare/1" tree.
 * Input files are untrusted: every count that sizes an allocation is bounded or checked. */
#include "cquant/compare.h"

#include "cquant/checked.h"
#include "cquant/json.h"
#include "compare_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Limits that keep a hostile report from turning into quadratic work or gigabytes of matrix. */
enum { MAX_FIELDS = 256, MAX_LAYER_KEYS = 1024 };
#define MAX_CELLS ((int64_t)1 << 24)

typedef struct run {
    cJSON *root;
    char *path;
    const cJSON *layers, *totals, *config;
} run;

struct cq_compare {
    run *runs;
    int n_runs;
    cJSON *result;
};

/* ---- a string -> index map (open addressing, FNV-1a); keys are borrowed ---- */

typedef struct strmap {
    const char **keys;
    int64_t *vals;
    size_t cap, n;
} strmap;

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int strmap_grow(strmap *m)
{
    size_t cap = m->cap ? m->cap * 2 : 64;
    const char **keys = calloc(cap, sizeof *keys);
    int64_t *vals = calloc(cap, sizeof *vals);
    if (!keys || !vals) {
        free(keys);
        free(vals);
        return -1;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i])
            continue;
        size_t j = fnv1a(m->keys[i]) & (cap - 1);
        while (keys[j])
            j = (j + 1) & (cap - 1);
        keys[j] = m->keys[i];
        vals[j] = m->vals[i];
    }
    free(m->keys);
    free(m->vals);
    m->keys = keys;
    m->vals = vals;
    m->cap = cap;
    return 0;
}

/* The index of KEY, or -1. */
static int64_t strmap_get(const strmap *m, const char *key)
{
    if (!m->cap)
        return -1;
    for (size_t j = fnv1a(key) & (m->cap - 1); m->keys[j]; j = (j + 1) & (m->cap - 1))
        if (!strcmp(m->keys[j], key))
            return m->vals[j];
    return -1;
}

/* Insert KEY with value VAL unless present; *idx gets the stored value. 0, or -1 on ENOMEM. */
static int strmap_put(strmap *m, const char *key, int64_t val, int64_t *idx)
{
    int64_t v = strmap_get(m, key);
    if (v >= 0) {
        *idx = v;
        return 0;
    }
    if ((m->n + 1) * 2 > m->cap && strmap_grow(m))
        return -1;
    size_t j = fnv1a(key) & (m->cap - 1);
    while (m->keys[j])
        j = (j + 1) & (m->cap - 1);
    m->keys[j] = key;
    m->vals[j] = val;
    m->n++;
    *idx = val;
    return 0;
}

static void strmap_free(strmap *m)
{
    free(m->keys);
    free(m->vals);
    m->keys = NULL;
    m->vals = NULL;
    m->cap = m->n = 0;
}

/* ---- loading ---- */

int cq_compare_create(cq_compare **out, cq_error *err)
{
    *out = calloc(1, sizeof **out);
    return *out ? CQ_OK : cq_errorf(err, CQ_E_NOMEM, "out of memory");
}

void cq_compare_free(cq_compare *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->n_runs; i++) {
        cJSON_Delete(c->runs[i].root);
        free(c->runs[i].path);
    }
    free(c->runs);
    cJSON_Delete(c->result);
    free(c);
}

static int check_layer(const cJSON *l, int64_t i, strmap *names, const char *path, cq_error *err)
{
    char what[64];
    snprintf(what, sizeof what, "layers[%lld]", (long long)i);
    if (!cJSON_IsObject(l))
        return cq_errorf(err, CQ_E_FORMAT, "'%s': %s is not an object", path, what);
    int64_t keys = 0, idx;
    for (const cJSON *k = l->child; k; k = k->next)
        if (++keys > MAX_LAYER_KEYS)
            return cq_errorf(err, CQ_E_FORMAT, "'%s': %s has more than %d keys", path, what,
                             MAX_LAYER_KEYS);
    if (cq_json_check_unique(l, path, err) != CQ_OK)
        return err->code;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(l, "name");
    if (!cJSON_IsString(name) || !name->valuestring[0])
        return cq_errorf(err, CQ_E_FORMAT, "'%s': %s has no \"name\" string", path, what);
    if (strmap_put(names, name->valuestring, i, &idx))
        return cq_errorf(err, CQ_E_NOMEM, "'%s': out of memory", path);
    if (idx != i)
        return cq_errorf(err, CQ_E_FORMAT, "'%s': layer '%s' appears twice", path,
                         name->valuestring);
    return CQ_OK;
}

/* A report: an object with schema cquant-report/1 and a "layers" array of named objects. */
static int check_report(run *r, cq_error *err)
{
    const cJSON *root = r->root, *schema;
    const char *p = r->path;
    if (!cJSON_IsObject(root))
        return cq_errorf(err, CQ_E_FORMAT, "'%s': not a cquant report (not a JSON object)", p);
    if (cq_json_check_unique(root, p, err) != CQ_OK)
        return err->code;
    schema = cJSON_GetObjectItemCaseSensitive(root, "schema");
    if (!cJSON_IsString(schema) || strncmp(schema->valuestring, "cquant-report/", 14) != 0)
        return cq_errorf(err, CQ_E_FORMAT, "'%s': not a cquant report (no \"schema\": "
                         "\"cquant-report/1\")", p);
    if (strcmp(schema->valuestring, "cquant-report/1") != 0)
        return cq_errorf(err, CQ_E_UNSUPPORTED, "'%s': schema '%.40s' is not supported "
                         "(this cquant reads cquant-report/1)", p, schema->valuestring);
    r->layers = cJSON_GetObjectItemCaseSensitive(root, "layers");
    if (!cJSON_IsArray(r->layers))
        return cq_errorf(err, CQ_E_FORMAT, "'%s': \"layers\" is not an array", p);
    r->totals = cJSON_GetObjectItemCaseSensitive(root, "totals");
    r->config = cJSON_GetObjectItemCaseSensitive(root, "config");
    if ((r->totals && !cJSON_IsObject(r->totals)) || (r->config && !cJSON_IsObject(r->config)))
        return cq_errorf(err, CQ_E_FORMAT, "'%s': \"totals\" and \"config\" must be objects", p);
    if (r->totals && cq_json_check_unique(r->totals, p, err) != CQ_OK)
        return err->code;
    strmap names = {0};
    int rc = CQ_OK;
    int64_t i = 0;
    for (const cJSON *l = r->layers->child; l && rc == CQ_OK; l = l->next, i++)
        rc = check_layer(l, i, &names, p, err);
    strmap_free(&names);
    return rc;
}

int cq_compare_add_json(cq_compare *c, cJSON *report, const char *label, cq_error *err)
{
    run *runs = realloc(c->runs, (size_t)(c->n_runs + 1) * sizeof *runs);
    char *path = strdup(label ? label : "");
    if (!runs || !path) {
        if (runs)
            c->runs = runs;
        free(path);
        cJSON_Delete(report);
        return cq_errorf(err, CQ_E_NOMEM, "out of memory");
    }
    c->runs = runs;
    run *r = &c->runs[c->n_runs];
    *r = (run){.root = report, .path = path};
    int rc = check_report(r, err);
    if (rc != CQ_OK) {
        cJSON_Delete(report);
        free(path);
        cq_error_printable(err);
        return rc;
    }
    c->n_runs++;
    return CQ_OK;
}

int cq_compare_add_file(cq_compare *c, const char *path, cq_error *err)
{
    cJSON *root = NULL;
    int rc = cq_json_load(&root, path, err);
    if (rc != CQ_OK) {
        if (!strstr(err->msg, path))
            cq_error_prefix(err, "'%s'", path);
        cq_error_printable(err);
        return rc;
    }
    return cq_compare_add_json(c, root, path, err);
}

const cJSON *cq_compare_json(const cq_compare *c) { return c->result; }

/* ---- building ---- */

void cq_compare_module(const char *name, char *out, size_t n, long *block)
{
    static const char *const proj[][2] = {
        {"q_proj", "q"},       {"k_proj", "k"},   {"v_proj", "v"},       {"o_proj", "o"},
        {"gate_proj", "gate"}, {"up_proj", "up"}, {"down_proj", "down"},
    };
    char last[128] = "", prev[128] = "";
    *block = -1;
    for (const char *p = name; *p;) {
        size_t len = strcspn(p, ".");
        if (len < sizeof last) {
            snprintf(prev, sizeof prev, "%s", last);
            snprintf(last, sizeof last, "%.*s", (int)len, p);
        }
        if (*block < 0 && len > 0 && len < 10 && strspn(p, "0123456789") == len)
            *block = strtol(p, NULL, 10);
        p += len;
        if (*p == '.')
            p++;
    }
    /* "<module>.weight": the module is the component before the parameter name */
    const char *mod = !strcmp(last, "weight") && prev[0] ? prev : last;
    for (size_t i = 0; i < sizeof proj / sizeof *proj; i++)
        if (!strcmp(mod, proj[i][0]))
            mod = proj[i][1];
    snprintf(out, n, "%s", mod);
}

typedef struct build {
    cq_compare *c;
    const cq_compare_opts *o;
    int R;                    /* runs */
    int64_t L;                /* layers (union) */
    int F;                    /* numeric per-layer fields (union) */
    strmap names, fieldmap;
    const char **name;        /* [L] */
    const char *field[MAX_FIELDS];
    const cJSON **lay;        /* [L][R]: the layer object, or NULL when absent */
    double *val;              /* [L][F][R]: NaN = gap */
    int64_t *order;           /* [L] worst first */
    const char *sort;
} build;

static int is_metric(const cJSON *v) { return cJSON_IsNumber(v) || cJSON_IsNull(v); }

static int collect(build *b, cq_error *err)
{
    for (int r = 0; r < b->R; r++) {
        const run *ru = &b->c->runs[r];
        for (const cJSON *l = ru->layers->child; l; l = l->next) {
            const char *nm = cJSON_GetObjectItemCaseSensitive(l, "name")->valuestring;
            int64_t idx;
            if (strmap_put(&b->names, nm, b->L, &idx))
                return cq_errorf(err, CQ_E_NOMEM, "out of memory matching layers");
            if (idx == b->L)
                b->L++;
            for (const cJSON *k = l->child; k; k = k->next) {
                if (!is_metric(k) || strmap_get(&b->fieldmap, k->string) >= 0)
                    continue;
                if (b->F >= MAX_FIELDS)
                    return cq_errorf(err, CQ_E_FORMAT, "'%s': more than %d numeric per-layer "
                                     "fields", ru->path, MAX_FIELDS);
                if (strmap_put(&b->fieldmap, k->string, b->F, &idx))
                    return cq_errorf(err, CQ_E_NOMEM, "out of memory");
                b->field[b->F++] = k->string;
            }
        }
    }
    return CQ_OK;
}

static int fill(build *b, cq_error *err)
{
    int64_t cells, lr;
    if (cq_mul_i64(b->L, (int64_t)(b->F ? b->F : 1), &cells) ||
        cq_mul_i64(cells, b->R, &cells) || cells > MAX_CELLS || cq_mul_i64(b->L, b->R, &lr))
        return cq_errorf(err, CQ_E_FORMAT, "reports too large to compare (%lld layers, %d "
                         "fields, %d reports)", (long long)b->L, b->F, b->R);
    b->name = calloc((size_t)(b->L ? b->L : 1), sizeof *b->name);
    b->lay = calloc((size_t)(lr ? lr : 1), sizeof *b->lay);
    b->val = malloc((size_t)(cells ? cells : 1) * sizeof *b->val);
    b->order = malloc((size_t)(b->L ? b->L : 1) * sizeof *b->order);
    if (!b->name || !b->lay || !b->val || !b->order)
        return cq_errorf(err, CQ_E_NOMEM, "out of memory comparing %lld layers", (long long)b->L);
    for (int64_t i = 0; i < cells; i++)
        b->val[i] = NAN;
    for (int r = 0; r < b->R; r++)
        for (const cJSON *l = b->c->runs[r].layers->child; l; l = l->next) {
            const char *nm = cJSON_GetObjectItemCaseSensitive(l, "name")->valuestring;
            int64_t i = strmap_get(&b->names, nm);
            b->name[i] = nm;
            b->lay[i * b->R + r] = l;
            for (const cJSON *k = l->child; k; k = k->next) {
                int64_t f = strmap_get(&b->fieldmap, k->string);
                if (f >= 0 && cJSON_IsNumber(k))
                    b->val[(i * b->F + f) * b->R + r] = k->valuedouble;
            }
        }
    return CQ_OK;
}

static double cell(const build *b, int64_t i, int f, int r)
{
    return b->val[((int64_t)i * b->F + f) * b->R + r];
}

int cq_compare_field_index(const char *const *fields, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(fields[i], name))
            return i;
    return -1;
}

/* ---- sorting ---- */

static const build *sort_ctx; /* qsort has no context argument; build is single-threaded */

static double sort_value(const build *b, int64_t i, int f)
{
    double m = NAN;
    for (int r = 0; r < b->R; r++) {
        double v = cell(b, i, f, r);
        if (isfinite(v) && !(v <= m))
            m = v;
    }
    return m;
}

static int cmp_worst(const void *pa, const void *pb)
{
    const build *b = sort_ctx;
    int64_t i = *(const int64_t *)pa, j = *(const int64_t *)pb;
    if (!strcmp(b->sort, "name")) {
        int c = strcmp(b->name[i], b->name[j]);
        if (c)
            return c;
    } else if (strcmp(b->sort, "order") != 0) {
        int f = cq_compare_field_index(b->field, b->F, b->sort);
        double x = sort_value(b, i, f), y = sort_value(b, j, f);
        if (isnan(x) != isnan(y))
            return isnan(x) ? 1 : -1; /* gaps last */
        if (x > y)
            return -1;
        if (x < y)
            return 1;
    }
    return i < j ? -1 : i > j;
}

static int pick_sort(build *b, cq_error *err)
{
    const char *s = b->o && b->o->sort ? b->o->sort : NULL;
    if (s && strcmp(s, "name") && strcmp(s, "order") &&
        cq_compare_field_index(b->field, b->F, s) < 0)
        return cq_errorf(err, CQ_E_USAGE, "--sort: no report has a numeric per-layer field '%s'",
                         s);
    if (!s)
        s = cq_compare_field_index(b->field, b->F, "rel_frobenius_error") >= 0
                ? "rel_frobenius_error"
                : "order";
    b->sort = s;
    for (int64_t i = 0; i < b->L; i++)
        b->order[i] = i;
    sort_ctx = b;
    qsort(b->order, (size_t)b->L, sizeof *b->order, cmp_worst);
    sort_ctx = NULL;
    return CQ_OK;
}

/* ---- the result tree ---- */

static void add_num(cJSON *arr, double v)
{
    cJSON_AddItemToArray(arr, isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull());
}

/* values / delta / ratio arrays of one row: v[0..R) */
static void add_series(cJSON *values, cJSON *delta, cJSON *ratio, const char *key,
                       const double *v, int R)
{
    cJSON *va = cJSON_AddArrayToObject(values, key);
    cJSON *da = cJSON_AddArrayToObject(delta, key);
    cJSON *ra = cJSON_AddArrayToObject(ratio, key);
    if (!va || !da || !ra)
        return;
    for (int r = 0; r < R; r++) {
        add_num(va, v[r]);
        add_num(da, r ? v[r] - v[0] : NAN);
        add_num(ra, r && v[0] != 0 ? v[r] / v[0] : NAN);
    }
}

void cq_compare_label(int r, char *buf, size_t n)
{
    if (r < 26)
        snprintf(buf, n, "%c", 'A' + r);
    else
        snprintf(buf, n, "R%d", r);
}

static void copy_item(cJSON *dst, const cJSON *src, const char *key)
{
    const cJSON *v = src ? cJSON_GetObjectItemCaseSensitive(src, key) : NULL;
    if (v && (cJSON_IsString(v) || cJSON_IsNumber(v) || cJSON_IsBool(v)))
        cJSON_AddItemToObject(dst, key, cJSON_Duplicate(v, 0));
}

static void add_runs(const build *b, cJSON *root)
{
    static const char *const cfg_keys[] = {"method", "bits", "group_size", "sym", "format",
                                           "model"};
    cJSON *runs = cJSON_AddArrayToObject(root, "runs");
    for (int r = 0; runs && r < b->R; r++) {
        const run *ru = &b->c->runs[r];
        cJSON *o = cJSON_CreateObject();
        char lab[16];
        cq_compare_label(r, lab, sizeof lab);
        cJSON_AddStringToObject(o, "label", lab);
        cJSON_AddStringToObject(o, "path", ru->path);
        copy_item(o, ru->root, "command");
        for (size_t k = 0; k < sizeof cfg_keys / sizeof *cfg_keys; k++)
            copy_item(o, ru->config, cfg_keys[k]);
        cJSON_AddNumberToObject(o, "layers", cJSON_GetArraySize(ru->layers));
        cJSON_AddItemToArray(runs, o);
    }
}

static const char *status_of(const cJSON *l)
{
    const cJSON *s = l ? cJSON_GetObjectItemCaseSensitive(l, "status") : NULL;
    return cJSON_IsString(s) ? s->valuestring : NULL;
}

static cJSON *layer_json(const build *b, int64_t i, double *row)
{
    cJSON *o = cJSON_CreateObject(), *st;
    char mod[64];
    long block;
    cq_compare_module(b->name[i], mod, sizeof mod, &block);
    cJSON_AddStringToObject(o, "name", b->name[i]);
    cJSON_AddNumberToObject(o, "index", (double)i);
    cJSON_AddNumberToObject(o, "block", (double)block);
    cJSON_AddStringToObject(o, "module", mod);
    if ((st = cJSON_AddArrayToObject(o, "status")))
        for (int r = 0; r < b->R; r++) {
            const cJSON *l = b->lay[i * b->R + r];
            const char *s = status_of(l);
            cJSON_AddItemToArray(st, !l ? cJSON_CreateString("absent")
                                        : s ? cJSON_CreateString(s) : cJSON_CreateNull());
        }
    cJSON *values = cJSON_AddObjectToObject(o, "values");
    cJSON *delta = cJSON_AddObjectToObject(o, "delta");
    cJSON *ratio = cJSON_AddObjectToObject(o, "ratio");
    for (int f = 0; values && delta && ratio && f < b->F; f++) {
        for (int r = 0; r < b->R; r++)
            row[r] = cell(b, i, f, r);
        add_series(values, delta, ratio, b->field[f], row, b->R);
    }
    return o;
}

/* Totals: every numeric key of any report's "totals". */
static void add_totals(const build *b, cJSON *root, double *row)
{
    cJSON *t = cJSON_AddObjectToObject(root, "totals"), *keys = cJSON_CreateArray();
    cJSON *values = cJSON_CreateObject(), *delta = cJSON_CreateObject();
    cJSON *ratio = cJSON_CreateObject();
    cJSON_AddItemToObject(t, "fields", keys);
    cJSON_AddItemToObject(t, "values", values);
    cJSON_AddItemToObject(t, "delta", delta);
    cJSON_AddItemToObject(t, "ratio", ratio);
    for (int r = 0; r < b->R; r++) {
        const cJSON *tot = b->c->runs[r].totals;
        for (const cJSON *k = tot ? tot->child : NULL; k; k = k->next) {
            if (!is_metric(k) || cJSON_GetObjectItemCaseSensitive(values, k->string) ||
                cJSON_GetArraySize(keys) >= MAX_FIELDS)
                continue;
            for (int q = 0; q < b->R; q++) {
                const cJSON *x = b->c->runs[q].totals;
                const cJSON *v = x ? cJSON_GetObjectItemCaseSensitive(x, k->string) : NULL;
                row[q] = cJSON_IsNumber(v) ? v->valuedouble : NAN;
            }
            cJSON_AddItemToArray(keys, cJSON_CreateString(k->string));
            add_series(values, delta, ratio, k->string, row, b->R);
        }
    }
}

static const char *const default_fields[] = {
    "rel_frobenius_error", "rel_output_error", "gptq_loss", "rtn_loss", "awq_loss",
    "weight_mse",          "max_abs_error",    "damp_used", "awq_ratio",
};
/* Numeric per-layer fields that are configuration or diagnostics (zero_range_groups: a count
 * of degenerate groups), not results: charted only with --fields all. */
static const char *const config_fields[] = {"bits", "group_size", "seconds",
                                            "zero_range_groups"};

static int in_list(const char *const *l, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(l[i], s))
            return 1;
    return 0;
}

/* Known metrics in a sensible order, then any field this code does not know (a newer report's
 * metric), then seconds. */
static int add_shown(const build *b, cJSON *root, cq_error *err)
{
    cJSON *shown = cJSON_AddArrayToObject(root, "shown");
    const cq_compare_opts *o = b->o;
    if (o && o->fields && !(o->n_fields == 1 && !strcmp(o->fields[0], "all"))) {
        for (int i = 0; i < o->n_fields; i++) {
            if (cq_compare_field_index(b->field, b->F, o->fields[i]) < 0)
                return cq_errorf(err, CQ_E_USAGE, "--fields: no report has a numeric "
                                 "per-layer field '%s'", o->fields[i]);
            cJSON_AddItemToArray(shown, cJSON_CreateString(o->fields[i]));
        }
        return CQ_OK;
    }
    int all = o && o->fields;
    size_t nd = sizeof default_fields / sizeof *default_fields;
    size_t nc = sizeof config_fields / sizeof *config_fields;
    for (size_t k = 0; k < nd; k++)
        if (cq_compare_field_index(b->field, b->F, default_fields[k]) >= 0)
            cJSON_AddItemToArray(shown, cJSON_CreateString(default_fields[k]));
    for (int f = 0; f < b->F; f++)
        if (!in_list(default_fields, nd, b->field[f]) &&
            (all || !in_list(config_fields, nc, b->field[f])) && strcmp(b->field[f], "seconds"))
            cJSON_AddItemToArray(shown, cJSON_CreateString(b->field[f]));
    if (cq_compare_field_index(b->field, b->F, "seconds") >= 0)
        cJSON_AddItemToArray(shown, cJSON_CreateString("seconds"));
    return CQ_OK;
}

static void add_worst(const build *b, cJSON *root)
{
    int64_t n = b->o && b->o->top > 0 && b->o->top < b->L ? b->o->top : b->L;
    cJSON_AddStringToObject(root, "sort", b->sort);
    cJSON_AddNumberToObject(root, "top", b->o ? b->o->top : 0);
    cJSON *w = cJSON_AddArrayToObject(root, "worst");
    for (int64_t k = 0; w && k < n; k++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "index", (double)b->order[k]);
        cJSON_AddStringToObject(e, "name", b->name[b->order[k]]);
        cJSON_AddItemToArray(w, e);
    }
}

static void mismatch(cJSON *arr, const char *layer, const char *kind, const char *detail)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "layer", layer);
    cJSON_AddStringToObject(o, "kind", kind);
    cJSON_AddStringToObject(o, "detail", detail);
    cJSON_AddItemToArray(arr, o);
}

/* "A, C" into buf: the runs where pred(layer object) holds */
static void runs_where(const build *b, int64_t i, int absent, char *buf, size_t n)
{
    size_t len = 0;
    buf[0] = 0;
    for (int r = 0; r < b->R && len + 8 < n; r++)
        if ((b->lay[i * b->R + r] == NULL) == absent) {
            char lab[16];
            cq_compare_label(r, lab, sizeof lab);
            len += (size_t)snprintf(buf + len, n - len, "%s%s", len ? ", " : "", lab);
        }
}

static int same_json(const cJSON *a, const cJSON *b) { return cJSON_Compare(a, b, 1); }

static void add_mismatches(const build *b, cJSON *root)
{
    cJSON *arr = cJSON_AddArrayToObject(root, "mismatches");
    char in[256], out[256], detail[600];
    for (int64_t i = 0; arr && i < b->L; i++) {
        const cJSON *first = NULL;
        int shape_diff = 0, status_diff = 0, absent = 0;
        for (int r = 0; r < b->R; r++) {
            const cJSON *l = b->lay[i * b->R + r];
            if (!l) {
                absent = 1;
                continue;
            }
            if (!first) {
                first = l;
                continue;
            }
            const cJSON *s1 = cJSON_GetObjectItemCaseSensitive(first, "shape");
            const cJSON *s2 = cJSON_GetObjectItemCaseSensitive(l, "shape");
            shape_diff |= (s1 || s2) && !(s1 && s2 && same_json(s1, s2));
            const char *t1 = status_of(first), *t2 = status_of(l);
            status_diff |= (t1 || t2) && !(t1 && t2 && !strcmp(t1, t2));
        }
        if (absent) {
            runs_where(b, i, 0, in, sizeof in);
            runs_where(b, i, 1, out, sizeof out);
            snprintf(detail, sizeof detail, "only in %s (missing in %s)", in, out);
            mismatch(arr, b->name[i], "missing", detail);
        }
        if (shape_diff)
            mismatch(arr, b->name[i], "shape", "shapes differ between reports");
        if (status_diff)
            mismatch(arr, b->name[i], "status", "quantized in one report, not in another");
    }
}

/* Mean of each field per module type and run, over the layers where it is a number. */
static void add_modules(const build *b, cJSON *root)
{
    static const char *const canon[] = {"q", "k", "v", "o", "gate", "up", "down"};
    cJSON *mods = cJSON_AddArrayToObject(root, "module_types");
    char (*mod)[64] = malloc((size_t)(b->L ? b->L : 1) * sizeof *mod);
    double *sum = calloc((size_t)b->R, sizeof *sum), *row = calloc((size_t)b->R, sizeof *row);
    int64_t *cnt = calloc((size_t)b->R, sizeof *cnt);
    cJSON *means = cJSON_AddObjectToObject(root, "module_means");
    if (!mods || !mod || !sum || !row || !cnt || !means)
        goto done;
    long block;
    for (int64_t i = 0; i < b->L; i++)
        cq_compare_module(b->name[i], mod[i], sizeof mod[i], &block);
    for (size_t k = 0; k < 7; k++) /* canonical ones first, then the rest as met */
        for (int64_t i = 0; i < b->L; i++)
            if (!strcmp(mod[i], canon[k])) {
                cJSON_AddItemToArray(mods, cJSON_CreateString(canon[k]));
                break;
            }
    for (int64_t i = 0; i < b->L; i++) {
        int seen = in_list(canon, 7, mod[i]);
        for (const cJSON *m = mods->child; m && !seen; m = m->next)
            seen = !strcmp(m->valuestring, mod[i]);
        if (!seen && cJSON_GetArraySize(mods) < 4096)
            cJSON_AddItemToArray(mods, cJSON_CreateString(mod[i]));
    }
    for (int f = 0; f < b->F; f++) {
        cJSON *fo = cJSON_AddObjectToObject(means, b->field[f]);
        for (const cJSON *m = mods->child; fo && m; m = m->next) {
            memset(sum, 0, (size_t)b->R * sizeof *sum);
            memset(cnt, 0, (size_t)b->R * sizeof *cnt);
            for (int64_t i = 0; i < b->L; i++)
                for (int r = 0; r < b->R && !strcmp(mod[i], m->valuestring); r++)
                    if (isfinite(cell(b, i, f, r))) {
                        sum[r] += cell(b, i, f, r);
                        cnt[r]++;
                    }
            cJSON *arr = cJSON_AddArrayToObject(fo, m->valuestring);
            for (int r = 0; arr && r < b->R; r++)
                add_num(arr, cnt[r] ? sum[r] / (double)cnt[r] : NAN);
        }
    }
done:
    free(mod);
    free(sum);
    free(row);
    free(cnt);
}

static int emit(build *b, cq_error *err)
{
    cJSON *root = cJSON_CreateObject(), *fields, *layers;
    double *row = calloc((size_t)b->R, sizeof *row);
    int rc = CQ_OK;
    if (!root || !row) {
        rc = cq_errorf(err, CQ_E_NOMEM, "out of memory");
        goto done;
    }
    cJSON_AddStringToObject(root, "schema", CQ_COMPARE_SCHEMA);
    add_runs(b, root);
    cJSON_AddNumberToObject(root, "baseline", 0);
    if ((fields = cJSON_AddArrayToObject(root, "fields")))
        for (int f = 0; f < b->F; f++)
            cJSON_AddItemToArray(fields, cJSON_CreateString(b->field[f]));
    if ((rc = add_shown(b, root, err)) != CQ_OK)
        goto done;
    add_totals(b, root, row);
    add_worst(b, root);
    add_mismatches(b, root);
    if ((layers = cJSON_AddArrayToObject(root, "layers")))
        for (int64_t i = 0; i < b->L; i++)
            cJSON_AddItemToArray(layers, layer_json(b, i, row));
    add_modules(b, root);
    cJSON_Delete(b->c->result);
    b->c->result = root;
    root = NULL;
done:
    cJSON_Delete(root);
    free(row);
    return rc;
}

int cq_compare_build(cq_compare *c, const cq_compare_opts *o, cq_error *err)
{
    if (c->n_runs < 1)
        return cq_errorf(err, CQ_E_USAGE, "no report to compare");
    build b = {.c = c, .o = o, .R = c->n_runs};
    int rc;
    if ((rc = collect(&b, err)) == CQ_OK && (rc = fill(&b, err)) == CQ_OK &&
        (rc = pick_sort(&b, err)) == CQ_OK)
        rc = emit(&b, err);
    strmap_free(&b.names);
    strmap_free(&b.fieldmap);
    free(b.name);
    free(b.lay);
    free(b.val);
    free(b.order);
    /* cJSON reports allocation failure only by missing items; a complete tree is re-checked by
     * its consumers (renderers tolerate gaps), and an empty one here is out of memory. */
    if (rc == CQ_OK && !c->result)
        rc = cq_errorf(err, CQ_E_NOMEM, "out of memory");
    return rc;
}

/* ---- readers for the renderers ---- */

const cJSON *cq_cmp_get(const cJSON *o, const char *key)
{
    return o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
}

double cq_cmp_num(const cJSON *arr, int r)
{
    const cJSON *v = cJSON_IsArray(arr) ? cJSON_GetArrayItem(arr, r) : NULL;
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

const char *cq_cmp_str(const cJSON *o, const char *key, const char *dflt)
{
    const cJSON *v = cq_cmp_get(o, key);
    return cJSON_IsString(v) ? v->valuestring : dflt;
}

const cJSON *cq_cmp_series(const cJSON *o, const char *section, const char *key)
{
    return cq_cmp_get(cq_cmp_get(o, section), key);
}

void cq_cmp_fmt(char *buf, size_t n, double v)
{
    if (isnan(v))
        snprintf(buf, n, "-");
    else
        snprintf(buf, n, "%.4g", v);
}
