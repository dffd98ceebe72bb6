/* Plain-text rendering of a comparison tree: the reports, totals, mismatches, the worst layers
 * with deltas and ratios against the baseline, and every layer side by side. Columns are
 * aligned for a fixed-width terminal; names from files are made printable. */
#include "cquant/compare.h"

#include "compare_internal.h"
#include "sbuf.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

enum { COL = 11, NAME_MAX_W = 60, MISMATCH_LINES = 20 };

/* NAME padded or cut to width w, control bytes as '?'. */
static void put_name(cq_sbuf *b, const char *name, int w)
{
    int n = 0;
    for (const char *p = name; *p && n < w; p++, n++) {
        char c = (unsigned char)*p < 0x20 || *p == 0x7f ? '?' : *p;
        if (n == w - 1 && p[1]) /* cut: show that something is missing */
            c = '~';
        cq_sbuf_put(b, &c, 1);
    }
    cq_sbuf_printf(b, "%*s", w - n, "");
}

static void put_num(cq_sbuf *b, double v)
{
    char buf[32];
    cq_cmp_fmt(buf, sizeof buf, v);
    cq_sbuf_printf(b, " %*s", COL - 1, buf);
}

static void put_delta(cq_sbuf *b, double v)
{
    char buf[32];
    if (isnan(v))
        snprintf(buf, sizeof buf, "-");
    else
        snprintf(buf, sizeof buf, "%+.3g", v);
    cq_sbuf_printf(b, " %*s", COL - 1, buf);
}

static int label_of(const cJSON *runs, int r, char *buf, size_t n)
{
    snprintf(buf, n, "%.8s", cq_cmp_str(cJSON_GetArrayItem(runs, r), "label", "?"));
    return (int)strlen(buf);
}

/* "  B-A  B/A" headers for every run after the baseline */
static void put_diff_header(cq_sbuf *b, const cJSON *runs, int R)
{
    char base[16], lab[16], h[40];
    label_of(runs, 0, base, sizeof base);
    for (int r = 1; r < R; r++) {
        label_of(runs, r, lab, sizeof lab);
        snprintf(h, sizeof h, "%s-%s", lab, base);
        cq_sbuf_printf(b, " %*s", COL - 1, h);
        snprintf(h, sizeof h, "%s/%s", lab, base);
        cq_sbuf_printf(b, " %*s", COL - 1, h);
    }
}

static void put_row(cq_sbuf *b, const cJSON *holder, const char *key, int R)
{
    const cJSON *v = cq_cmp_series(holder, "values", key);
    for (int r = 0; r < R; r++)
        put_num(b, cq_cmp_num(v, r));
    for (int r = 1; r < R; r++) {
        put_delta(b, cq_cmp_num(cq_cmp_series(holder, "delta", key), r));
        put_num(b, cq_cmp_num(cq_cmp_series(holder, "ratio", key), r));
    }
    CQ_SBUF_PUTS(b, "\n");
}

static void put_runs(cq_sbuf *b, const cJSON *cmp, int R, int64_t L)
{
    const cJSON *runs = cq_cmp_get(cmp, "runs");
    cq_sbuf_printf(b, "cquant report: %d report%s, %lld layers\n", R, R == 1 ? "" : "s",
                   (long long)L);
    for (int r = 0; r < R; r++) {
        const cJSON *ru = cJSON_GetArrayItem(runs, r);
        char lab[16];
        label_of(runs, r, lab, sizeof lab);
        cq_sbuf_printf(b, "  %-3s ", lab);
        put_name(b, cq_cmp_str(ru, "path", ""), (int)strlen(cq_cmp_str(ru, "path", "")));
        cq_sbuf_printf(b, ": %s", cq_cmp_str(ru, "command", cq_cmp_str(ru, "method", "?")));
        const cJSON *bits = cq_cmp_get(ru, "bits"), *g = cq_cmp_get(ru, "group_size");
        if (cJSON_IsNumber(bits))
            cq_sbuf_printf(b, " w%g", bits->valuedouble);
        if (cJSON_IsNumber(g))
            cq_sbuf_printf(b, " g%g", g->valuedouble);
        const cJSON *sym = cq_cmp_get(ru, "sym");
        if (cJSON_IsBool(sym))
            cq_sbuf_printf(b, " %s", cJSON_IsTrue(sym) ? "sym" : "asym");
        const char *fmt = cq_cmp_str(ru, "format", NULL);
        if (fmt)
            cq_sbuf_printf(b, " %s", fmt);
        cq_sbuf_printf(b, ", %g layers\n", cJSON_GetNumberValue(cq_cmp_get(ru, "layers")));
    }
}

static void put_totals(cq_sbuf *b, const cJSON *cmp, int R)
{
    const cJSON *t = cq_cmp_get(cmp, "totals"), *keys = cq_cmp_get(t, "fields");
    if (!cJSON_GetArraySize(keys))
        return;
    CQ_SBUF_PUTS(b, "\n");
    put_name(b, "totals", 24);
    for (int r = 0; r < R; r++) {
        char lab[16];
        label_of(cq_cmp_get(cmp, "runs"), r, lab, sizeof lab);
        cq_sbuf_printf(b, " %*s", COL - 1, lab);
    }
    put_diff_header(b, cq_cmp_get(cmp, "runs"), R);
    CQ_SBUF_PUTS(b, "\n");
    for (const cJSON *k = keys->child; k; k = k->next) {
        if (!cJSON_IsString(k))
            continue;
        put_name(b, k->valuestring, 24);
        put_row(b, t, k->valuestring, R);
    }
}

static void put_mismatches(cq_sbuf *b, const cJSON *cmp)
{
    const cJSON *m = cq_cmp_get(cmp, "mismatches");
    int n = cJSON_GetArraySize(m), i = 0;
    if (!n)
        return;
    cq_sbuf_printf(b, "\nmismatches (%d):\n", n);
    for (const cJSON *e = m->child; e && i < MISMATCH_LINES; e = e->next, i++) {
        CQ_SBUF_PUTS(b, "  ");
        const char *nm = cq_cmp_str(e, "layer", "");
        put_name(b, nm, (int)strlen(nm) < NAME_MAX_W ? (int)strlen(nm) : NAME_MAX_W);
        cq_sbuf_printf(b, ": %s\n", cq_cmp_str(e, "detail", ""));
    }
    if (n > i)
        cq_sbuf_printf(b, "  ... %d more (see --json)\n", n - i);
}

static int name_width(const cJSON *layers)
{
    int w = 5;
    for (const cJSON *l = layers ? layers->child : NULL; l; l = l->next) {
        int n = (int)strlen(cq_cmp_str(l, "name", ""));
        w = n > w ? n : w;
    }
    return w < NAME_MAX_W ? w : NAME_MAX_W;
}

/* The field the worst table shows: the sort key, or the first shown field. */
static const char *worst_field(const cJSON *cmp)
{
    const char *s = cq_cmp_str(cmp, "sort", "order");
    if (strcmp(s, "order") && strcmp(s, "name"))
        return s;
    const cJSON *shown = cq_cmp_get(cmp, "shown");
    return shown && cJSON_IsString(shown->child) ? shown->child->valuestring : NULL;
}

static void put_worst(cq_sbuf *b, const cJSON *cmp, int R, int nw)
{
    const cJSON *worst = cq_cmp_get(cmp, "worst"), *layers = cq_cmp_get(cmp, "layers");
    const char *f = worst_field(cmp), *sort = cq_cmp_str(cmp, "sort", "order");
    int n = cJSON_GetArraySize(worst);
    if (!f || !n)
        return;
    if (!strcmp(sort, "order") || !strcmp(sort, "name"))
        cq_sbuf_printf(b, "\n%d layers by %s: %s\n", n, sort, f);
    else
        cq_sbuf_printf(b, "\nworst %d layers by %s (largest value in any report)\n", n, f);
    put_name(b, "layer", nw);
    for (int r = 0; r < R; r++) {
        char lab[16];
        label_of(cq_cmp_get(cmp, "runs"), r, lab, sizeof lab);
        cq_sbuf_printf(b, " %*s", COL - 1, lab);
    }
    put_diff_header(b, cq_cmp_get(cmp, "runs"), R);
    CQ_SBUF_PUTS(b, "\n");
    for (const cJSON *w = worst->child; w; w = w->next) {
        const cJSON *l = cJSON_GetArrayItem(layers, (int)cJSON_GetNumberValue(cq_cmp_get(w, "index")));
        if (!l)
            continue;
        put_name(b, cq_cmp_str(l, "name", ""), nw);
        put_row(b, l, f, R);
    }
}

static void put_layers(cq_sbuf *b, const cJSON *cmp, int R, int nw)
{
    const cJSON *shown = cq_cmp_get(cmp, "shown"), *layers = cq_cmp_get(cmp, "layers");
    if (!cJSON_GetArraySize(shown) || !cJSON_GetArraySize(layers))
        return;
    int gw = R * COL;
    cq_sbuf_printf(b, "\nper layer (checkpoint order)\n%*s", nw, "");
    for (const cJSON *f = shown->child; f; f = f->next) {
        CQ_SBUF_PUTS(b, " ");
        put_name(b, cJSON_IsString(f) ? f->valuestring : "?", gw - 1);
    }
    CQ_SBUF_PUTS(b, "\n");
    put_name(b, "layer", nw);
    for (const cJSON *f = shown->child; f; f = f->next)
        for (int r = 0; r < R; r++) {
            char lab[16];
            label_of(cq_cmp_get(cmp, "runs"), r, lab, sizeof lab);
            cq_sbuf_printf(b, " %*s", COL - 1, lab);
        }
    CQ_SBUF_PUTS(b, "\n");
    for (const cJSON *l = layers->child; l; l = l->next) {
        put_name(b, cq_cmp_str(l, "name", ""), nw);
        for (const cJSON *f = shown->child; f; f = f->next) {
            const cJSON *v = cJSON_IsString(f) ? cq_cmp_series(l, "values", f->valuestring) : NULL;
            for (int r = 0; r < R; r++)
                put_num(b, cq_cmp_num(v, r));
        }
        CQ_SBUF_PUTS(b, "\n");
    }
}

/* Drop the padding before each newline (the last column of a row is padded too). */
static void trim_lines(char *s, size_t *len)
{
    size_t w = 0, spaces = 0;
    for (size_t r = 0; r < *len; r++) {
        if (s[r] == ' ') {
            spaces++;
            continue;
        }
        if (s[r] != '\n')
            for (; spaces; spaces--)
                s[w++] = ' ';
        spaces = 0;
        s[w++] = s[r];
    }
    s[w] = 0;
    *len = w;
}

int cq_compare_text(const cJSON *cmp, char **out, size_t *len, cq_error *err)
{
    cq_sbuf b = {0};
    int R = cJSON_GetArraySize(cq_cmp_get(cmp, "runs"));
    const cJSON *layers = cq_cmp_get(cmp, "layers");
    int nw = name_width(layers);
    put_runs(&b, cmp, R, cJSON_GetArraySize(layers));
    put_totals(&b, cmp, R);
    put_mismatches(&b, cmp);
    put_worst(&b, cmp, R, nw);
    put_layers(&b, cmp, R, nw);
    int rc = cq_sbuf_finish(&b, out, len, err);
    if (rc == CQ_OK)
        trim_lines(*out, len);
    return rc;
}
