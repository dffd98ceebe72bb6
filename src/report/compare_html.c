/* One self-contained HTML page for a comparison tree: tables plus inline SVG charts (no script,
 * no external resource, so it opens offline and in CI artifact viewers). Per shown field: a
 * chart by layer (every Linear in checkpoint order, grouped by block index; bars, or lines with
 * points when there are too many bars to read) and a chart by module type (mean over blocks).
 * One colour per report. Every plotted bar or point carries its exact value (%.17g) in
 * data-value, so tests can read the plotted numbers back and compare them with the JSON. */
#include "cquant/compare.h"

#include "compare_internal.h"
#include "sbuf.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

enum { MAX_BARS = 600, MISMATCH_ROWS = 200 };

static const char *const palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                      "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"};
#define COLOR(r) palette[(r) % (int)(sizeof palette / sizeof *palette)]

typedef struct chart {
    double x0, y0, w, h; /* plot area */
    double lo, hi, step; /* y range and tick step */
} chart;

/* A "nice" tick step (1, 2 or 5 x 10^k) giving about n intervals over span. */
static double nice_step(double span, int n)
{
    double raw = span / n, p = pow(10, floor(log10(raw))), m = raw / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

static void set_range(chart *c, double lo, double hi)
{
    lo = fmin(lo, 0);
    hi = fmax(hi, 0);
    if (!(hi > lo) || !isfinite(hi - lo))
        hi = lo + 1;
    if (!isfinite(lo) || !isfinite(hi)) {
        lo = 0;
        hi = 1;
    }
    c->step = nice_step(hi - lo, 5);
    c->lo = floor(lo / c->step) * c->step;
    c->hi = ceil(hi / c->step) * c->step;
    if (!(c->hi > c->lo))
        c->hi = c->lo + c->step;
}

static double ypos(const chart *c, double v)
{
    double t = (c->hi - v) / (c->hi - c->lo);
    return c->y0 + c->h * fmin(fmax(t, 0), 1);
}

static void open_svg(cq_sbuf *b, int w, int h, const char *title)
{
    cq_sbuf_printf(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                      "viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"", w, h, w, h);
    cq_sbuf_html(b, title);
    CQ_SBUF_PUTS(b, "\">\n");
}

/* Grid, y tick labels, axes and the axis titles. */
static void axes(cq_sbuf *b, const chart *c, const char *xlabel, const char *ylabel)
{
    for (int k = 0; k <= 1000; k++) {
        double v = c->lo + k * c->step;
        if (v > c->hi + c->step * 1e-9)
            break;
        double y = ypos(c, v);
        cq_sbuf_printf(b, "<line class=\"grid\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>"
                          "<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.3g"
                          "</text>\n",
                       c->x0, y, c->x0 + c->w, y, c->x0 - 6, y + 4, fabs(v) < c->step * 1e-9 ? 0 : v);
    }
    double yz = ypos(c, 0);
    cq_sbuf_printf(b, "<line class=\"axis\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>"
                      "<line class=\"axis\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n",
                   c->x0, c->y0, c->x0, c->y0 + c->h, c->x0, yz, c->x0 + c->w, yz);
    cq_sbuf_printf(b, "<text class=\"label\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">",
                   c->x0 + c->w / 2, c->y0 + c->h + 44);
    cq_sbuf_html(b, xlabel);
    cq_sbuf_printf(b, "</text><text class=\"label\" transform=\"translate(16 %.1f) rotate(-90)\" "
                      "text-anchor=\"middle\">", c->y0 + c->h / 2);
    cq_sbuf_html(b, ylabel);
    CQ_SBUF_PUTS(b, "</text>\n");
}

/* One swatch and label per report along the top edge. */
static void legend(cq_sbuf *b, const cJSON *runs, double x, double maxw)
{
    int r = 0;
    for (const cJSON *ru = runs ? runs->child : NULL; ru; ru = ru->next, r++) {
        char text[96];
        snprintf(text, sizeof text, "%s: %.60s", cq_cmp_str(ru, "label", "?"),
                 cq_cmp_str(ru, "path", ""));
        double tw = 12 + 6.6 * (double)strlen(text) + 18;
        if (x + tw > maxw && r)
            break; /* the table above names every report; the legend must not overflow */
        cq_sbuf_printf(b, "<g class=\"legend\"><rect x=\"%.1f\" y=\"6\" width=\"12\" "
                          "height=\"12\" fill=\"%s\"/><text x=\"%.1f\" y=\"16\">",
                       x, COLOR(r), x + 16);
        cq_sbuf_html(b, text);
        CQ_SBUF_PUTS(b, "</text></g>\n");
        x += tw;
    }
}

static void value_range(const cJSON *layers, const char *field, double *lo, double *hi)
{
    *lo = INFINITY;
    *hi = -INFINITY;
    for (const cJSON *l = layers ? layers->child : NULL; l; l = l->next) {
        const cJSON *v = cq_cmp_series(l, "values", field);
        for (const cJSON *x = v ? v->child : NULL; x; x = x->next)
            if (cJSON_IsNumber(x) && isfinite(x->valuedouble)) {
                *lo = fmin(*lo, x->valuedouble);
                *hi = fmax(*hi, x->valuedouble);
            }
    }
    if (*lo > *hi)
        *lo = *hi = 0;
}

/* data-* attributes and a hover title shared by bars and points */
static void point_attrs(cq_sbuf *b, const char *field, const char *key, const char *id, int r,
                        const char *label, double v)
{
    CQ_SBUF_PUTS(b, " data-field=\"");
    cq_sbuf_html(b, field);
    cq_sbuf_printf(b, "\" data-%s=\"", key);
    cq_sbuf_html(b, id);
    cq_sbuf_printf(b, "\" data-run=\"%d\" data-value=\"%.17g\"><title>", r, v);
    cq_sbuf_html(b, id);
    cq_sbuf_printf(b, " | %s: %.6g</title>", label, v);
}

static void bar(cq_sbuf *b, const chart *c, double x, double w, double v, int r)
{
    double ya = ypos(c, fmax(v, 0)), yb = ypos(c, fmin(v, 0));
    cq_sbuf_printf(b, "<rect class=\"bar\" x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" "
                      "fill=\"%s\"", x, ya, w, fmax(yb - ya, 0.5), COLOR(r));
}

/* Block separators and block-number tick labels (thinned so labels do not overlap). */
static void block_ticks(cq_sbuf *b, const chart *c, const cJSON *layers, double slot)
{
    int64_t L = cJSON_GetArraySize(layers), i = 0, nblocks = 0;
    long prev = -2;
    for (const cJSON *l = layers->child; l; l = l->next) {
        long blk = (long)cJSON_GetNumberValue(cq_cmp_get(l, "block"));
        nblocks += blk != prev;
        prev = blk;
    }
    double per = L && nblocks ? c->w / (double)nblocks : c->w;
    int every = per >= 28 ? 1 : (int)ceil(28 / per);
    int64_t k = 0, start = 0;
    prev = -2;
    for (const cJSON *l = layers->child;; l = l ? l->next : NULL, i++) {
        long blk = l ? (long)cJSON_GetNumberValue(cq_cmp_get(l, "block")) : -3;
        if (blk == prev)
            continue;
        if (prev != -2 && k++ % every == 0) {
            double xm = c->x0 + slot * (double)(start + i) / 2;
            if (prev >= 0)
                cq_sbuf_printf(b, "<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" "
                                  "text-anchor=\"middle\">%ld</text>\n", xm, c->y0 + c->h + 16,
                               prev);
            else
                cq_sbuf_printf(b, "<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" "
                                  "text-anchor=\"middle\">%lld</text>\n", xm, c->y0 + c->h + 16,
                               (long long)start);
        }
        if (!l)
            break;
        if (prev != -2 && nblocks <= 400)
            cq_sbuf_printf(b, "<line class=\"sep\" x1=\"%.2f\" y1=\"%.1f\" x2=\"%.2f\" "
                              "y2=\"%.1f\"/>\n", c->x0 + slot * (double)i, c->y0,
                           c->x0 + slot * (double)i, c->y0 + c->h);
        prev = blk;
        start = i;
    }
}

static void points_or_bars(cq_sbuf *b, const chart *c, const cJSON *layers, const char *f,
                           const cJSON *runs, int R, double slot)
{
    int64_t L = cJSON_GetArraySize(layers);
    int bars = L * R <= MAX_BARS;
    for (int r = 0; r < R; r++) {
        const char *lab = cq_cmp_str(cJSON_GetArrayItem(runs, r), "label", "?");
        int64_t i = 0;
        int open = 0;
        for (const cJSON *l = layers->child; l; l = l->next, i++) {
            double v = cq_cmp_num(cq_cmp_series(l, "values", f), r);
            const char *nm = cq_cmp_str(l, "name", "");
            if (!isfinite(v)) {
                if (open)
                    CQ_SBUF_PUTS(b, "\"/>\n");
                open = 0;
                continue;
            }
            if (bars) {
                double bw = slot * 0.8 / R;
                bar(b, c, c->x0 + slot * ((double)i + 0.1) + bw * r, bw, v, r);
                point_attrs(b, f, "layer", nm, r, lab, v);
                CQ_SBUF_PUTS(b, "</rect>\n");
                continue;
            }
            double x = c->x0 + slot * ((double)i + 0.5);
            if (!open)
                cq_sbuf_printf(b, "<polyline class=\"line\" stroke=\"%s\" points=\"", COLOR(r));
            cq_sbuf_printf(b, "%.2f,%.2f ", x, ypos(c, v));
            open = 1;
        }
        if (open)
            CQ_SBUF_PUTS(b, "\"/>\n");
        i = 0;
        for (const cJSON *l = layers->child; l && !bars; l = l->next, i++) {
            double v = cq_cmp_num(cq_cmp_series(l, "values", f), r);
            if (!isfinite(v))
                continue;
            cq_sbuf_printf(b, "<circle class=\"pt\" cx=\"%.2f\" cy=\"%.2f\" r=\"2\" fill=\"%s\"",
                           c->x0 + slot * ((double)i + 0.5), ypos(c, v), COLOR(r));
            point_attrs(b, f, "layer", cq_cmp_str(l, "name", ""), r, lab, v);
            CQ_SBUF_PUTS(b, "</circle>\n");
        }
    }
}

static void chart_by_layer(cq_sbuf *b, const cJSON *cmp, const char *f)
{
    const cJSON *layers = cq_cmp_get(cmp, "layers"), *runs = cq_cmp_get(cmp, "runs");
    int R = cJSON_GetArraySize(runs);
    int64_t L = cJSON_GetArraySize(layers);
    const int W = 1320, H = 320;
    chart c = {.x0 = 72, .y0 = 30, .w = W - 72 - 16, .h = H - 30 - 58};
    double lo, hi, slot = L ? c.w / (double)L : c.w;
    char title[300];
    value_range(layers, f, &lo, &hi);
    set_range(&c, lo, hi);
    snprintf(title, sizeof title, "%s by layer", f);
    open_svg(b, W, H, title);
    axes(b, &c, "layer index (block; every Linear in checkpoint order)", f);
    if (L)
        block_ticks(b, &c, layers, slot);
    points_or_bars(b, &c, layers, f, runs, R, slot);
    legend(b, runs, c.x0, W);
    CQ_SBUF_PUTS(b, "</svg>\n");
}

static void module_range(const cJSON *means, double *lo, double *hi)
{
    *lo = INFINITY;
    *hi = -INFINITY;
    for (const cJSON *m = means ? means->child : NULL; m; m = m->next)
        for (const cJSON *x = m->child; x; x = x->next)
            if (cJSON_IsNumber(x) && isfinite(x->valuedouble)) {
                *lo = fmin(*lo, x->valuedouble);
                *hi = fmax(*hi, x->valuedouble);
            }
    if (*lo > *hi)
        *lo = *hi = 0;
}

static void chart_by_module(cq_sbuf *b, const cJSON *cmp, const char *f)
{
    const cJSON *mods = cq_cmp_get(cmp, "module_types"), *runs = cq_cmp_get(cmp, "runs");
    const cJSON *means = cq_cmp_series(cmp, "module_means", f);
    int R = cJSON_GetArraySize(runs), M = cJSON_GetArraySize(mods);
    const int W = 640, H = 320;
    chart c = {.x0 = 72, .y0 = 30, .w = W - 72 - 16, .h = H - 30 - 58};
    double lo, hi, slot = M ? c.w / M : c.w;
    char title[300];
    module_range(means, &lo, &hi);
    set_range(&c, lo, hi);
    snprintf(title, sizeof title, "%s by module type", f);
    open_svg(b, W, H, title);
    axes(b, &c, "module type (mean over blocks)", f);
    int k = 0;
    for (const cJSON *m = mods ? mods->child : NULL; m; m = m->next, k++) {
        const char *mn = cJSON_IsString(m) ? m->valuestring : "?";
        const cJSON *arr = cq_cmp_get(means, mn);
        for (int r = 0; r < R; r++) {
            double v = cq_cmp_num(arr, r), bw = slot * 0.8 / R;
            if (!isfinite(v))
                continue;
            bar(b, &c, c.x0 + slot * (k + 0.1) + bw * r, bw, v, r);
            CQ_SBUF_PUTS(b, " data-kind=\"module\"");
            point_attrs(b, f, "module", mn, r, cq_cmp_str(cJSON_GetArrayItem(runs, r), "label", "?"),
                        v);
            CQ_SBUF_PUTS(b, "</rect>\n");
        }
        if (M <= 40) {
            cq_sbuf_printf(b, "<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">",
                           c.x0 + slot * (k + 0.5), c.y0 + c.h + 16);
            cq_sbuf_html(b, mn);
            CQ_SBUF_PUTS(b, "</text>\n");
        }
    }
    legend(b, runs, c.x0, W);
    CQ_SBUF_PUTS(b, "</svg>\n");
}

/* ---- tables ---- */

static void td_num(cq_sbuf *b, double v, const char *fmt)
{
    if (isnan(v))
        CQ_SBUF_PUTS(b, "<td>-</td>");
    else
        cq_sbuf_printf(b, fmt, v);
}

static void th_runs(cq_sbuf *b, const cJSON *runs, int R, const char *first)
{
    cq_sbuf_printf(b, "<tr><th class=\"l\">%s</th>", first);
    for (int r = 0; r < R; r++) {
        cq_sbuf_printf(b, "<th><span class=\"sw\" style=\"background:%s\"></span>", COLOR(r));
        cq_sbuf_html(b, cq_cmp_str(cJSON_GetArrayItem(runs, r), "label", "?"));
        CQ_SBUF_PUTS(b, "</th>");
    }
    const char *base = cq_cmp_str(cJSON_GetArrayItem(runs, 0), "label", "?");
    for (int r = 1; r < R; r++) {
        const char *lab = cq_cmp_str(cJSON_GetArrayItem(runs, r), "label", "?");
        CQ_SBUF_PUTS(b, "<th>");
        cq_sbuf_html(b, lab);
        CQ_SBUF_PUTS(b, " &#8722; ");
        cq_sbuf_html(b, base);
        CQ_SBUF_PUTS(b, "</th><th>");
        cq_sbuf_html(b, lab);
        CQ_SBUF_PUTS(b, " / ");
        cq_sbuf_html(b, base);
        CQ_SBUF_PUTS(b, "</th>");
    }
    CQ_SBUF_PUTS(b, "</tr>\n");
}

static void tr_values(cq_sbuf *b, const cJSON *holder, const char *name, const char *key, int R)
{
    CQ_SBUF_PUTS(b, "<tr><td class=\"l\">");
    cq_sbuf_html(b, name);
    CQ_SBUF_PUTS(b, "</td>");
    for (int r = 0; r < R; r++)
        td_num(b, cq_cmp_num(cq_cmp_series(holder, "values", key), r), "<td>%.5g</td>");
    for (int r = 1; r < R; r++) {
        td_num(b, cq_cmp_num(cq_cmp_series(holder, "delta", key), r), "<td>%+.4g</td>");
        td_num(b, cq_cmp_num(cq_cmp_series(holder, "ratio", key), r), "<td>%.4f</td>");
    }
    CQ_SBUF_PUTS(b, "</tr>\n");
}

static void runs_table(cq_sbuf *b, const cJSON *runs)
{
    static const char *const keys[] = {"path", "command", "bits", "group_size", "sym", "format",
                                       "model", "layers"};
    CQ_SBUF_PUTS(b, "<h2>Reports</h2>\n<table><tr><th class=\"l\">run</th>");
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++)
        cq_sbuf_printf(b, "<th class=\"l\">%s</th>", keys[k]);
    CQ_SBUF_PUTS(b, "</tr>\n");
    int r = 0;
    for (const cJSON *ru = runs ? runs->child : NULL; ru; ru = ru->next, r++) {
        cq_sbuf_printf(b, "<tr><td class=\"l\"><span class=\"sw\" style=\"background:%s\">"
                          "</span>", COLOR(r));
        cq_sbuf_html(b, cq_cmp_str(ru, "label", "?"));
        CQ_SBUF_PUTS(b, "</td>");
        for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
            const cJSON *v = cq_cmp_get(ru, keys[k]);
            char num[40] = "";
            if (cJSON_IsNumber(v))
                snprintf(num, sizeof num, "%g", v->valuedouble);
            CQ_SBUF_PUTS(b, "<td class=\"l\">");
            cq_sbuf_html(b, cJSON_IsString(v) ? v->valuestring
                            : cJSON_IsBool(v) ? (cJSON_IsTrue(v) ? "true" : "false") : num);
            CQ_SBUF_PUTS(b, "</td>");
        }
        CQ_SBUF_PUTS(b, "</tr>\n");
    }
    CQ_SBUF_PUTS(b, "</table>\n");
}

static void totals_table(cq_sbuf *b, const cJSON *cmp, int R)
{
    const cJSON *t = cq_cmp_get(cmp, "totals"), *keys = cq_cmp_get(t, "fields");
    if (!cJSON_GetArraySize(keys))
        return;
    CQ_SBUF_PUTS(b, "<h2>Summary (totals)</h2>\n<table class=\"summary\">");
    th_runs(b, cq_cmp_get(cmp, "runs"), R, "total");
    for (const cJSON *k = keys->child; k; k = k->next)
        if (cJSON_IsString(k))
            tr_values(b, t, k->valuestring, k->valuestring, R);
    CQ_SBUF_PUTS(b, "</table>\n");
}

static void mismatch_list(cq_sbuf *b, const cJSON *cmp)
{
    const cJSON *m = cq_cmp_get(cmp, "mismatches");
    int n = cJSON_GetArraySize(m), i = 0;
    if (!n)
        return;
    cq_sbuf_printf(b, "<h2>Mismatches (%d)</h2>\n<ul>\n", n);
    for (const cJSON *e = m->child; e && i < MISMATCH_ROWS; e = e->next, i++) {
        CQ_SBUF_PUTS(b, "<li><code>");
        cq_sbuf_html(b, cq_cmp_str(e, "layer", ""));
        CQ_SBUF_PUTS(b, "</code>: ");
        cq_sbuf_html(b, cq_cmp_str(e, "detail", ""));
        CQ_SBUF_PUTS(b, "</li>\n");
    }
    if (n > i)
        cq_sbuf_printf(b, "<li>... %d more (see --json)</li>\n", n - i);
    CQ_SBUF_PUTS(b, "</ul>\n");
}

static void worst_table(cq_sbuf *b, const cJSON *cmp, int R)
{
    const cJSON *worst = cq_cmp_get(cmp, "worst"), *layers = cq_cmp_get(cmp, "layers");
    const cJSON *shown = cq_cmp_get(cmp, "shown");
    const char *sort = cq_cmp_str(cmp, "sort", "order"), *f = sort;
    if (!strcmp(sort, "order") || !strcmp(sort, "name"))
        f = shown && cJSON_IsString(shown->child) ? shown->child->valuestring : NULL;
    if (!f || !cJSON_GetArraySize(worst))
        return;
    cq_sbuf_printf(b, "<h2>%s %d layers by ", strcmp(f, sort) ? "First" : "Worst",
                   cJSON_GetArraySize(worst));
    cq_sbuf_html(b, sort);
    CQ_SBUF_PUTS(b, "</h2>\n<table class=\"worst\">");
    th_runs(b, cq_cmp_get(cmp, "runs"), R, "layer");
    for (const cJSON *w = worst->child; w; w = w->next) {
        const cJSON *l = cJSON_GetArrayItem(layers, (int)cJSON_GetNumberValue(cq_cmp_get(w, "index")));
        if (l)
            tr_values(b, l, cq_cmp_str(l, "name", ""), f, R);
    }
    CQ_SBUF_PUTS(b, "</table>\n");
}

static const char css[] =
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#222;"
    "background:#fafafa}h1{font-size:22px}h2{font-size:17px;margin-top:28px}"
    "table{border-collapse:collapse;font-size:13px;background:#fff}"
    "td,th{padding:3px 9px;border-bottom:1px solid #e3e3e3;text-align:right;"
    "font-variant-numeric:tabular-nums}td.l,th.l{text-align:left}th{background:#f0f0f0}"
    ".sw{display:inline-block;width:11px;height:11px;margin-right:5px;vertical-align:-1px}"
    ".charts{display:flex;flex-wrap:wrap;gap:14px}svg{background:#fff;border:1px solid #ddd}"
    "svg text{font-size:11px;fill:#333}svg .label{font-size:12px;fill:#111}"
    ".grid{stroke:#e8e8e8}.axis{stroke:#555}.sep{stroke:#d0d0d0;stroke-dasharray:2 3}"
    ".line{fill:none;stroke-width:1.4}code{font-size:12px}";

int cq_compare_html(const cJSON *cmp, char **out, size_t *len, cq_error *err)
{
    cq_sbuf b = {0};
    const cJSON *runs = cq_cmp_get(cmp, "runs"), *shown = cq_cmp_get(cmp, "shown");
    int R = cJSON_GetArraySize(runs);
    cq_sbuf_printf(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                       "<title>cquant report</title>\n<style>%s</style></head>\n<body>\n"
                       "<h1>cquant report: %d report%s, %d layers</h1>\n"
                       "<p>Baseline: report A; differences are run &#8722; A and run / A. "
                       "Layers are matched by tensor name.</p>\n",
                   css, R, R == 1 ? "" : "s", cJSON_GetArraySize(cq_cmp_get(cmp, "layers")));
    runs_table(&b, runs);
    totals_table(&b, cmp, R);
    mismatch_list(&b, cmp);
    worst_table(&b, cmp, R);
    for (const cJSON *f = shown ? shown->child : NULL; f; f = f->next) {
        if (!cJSON_IsString(f))
            continue;
        CQ_SBUF_PUTS(&b, "<h2>");
        cq_sbuf_html(&b, f->valuestring);
        CQ_SBUF_PUTS(&b, "</h2>\n<div class=\"charts\">\n");
        chart_by_layer(&b, cmp, f->valuestring);
        chart_by_module(&b, cmp, f->valuestring);
        CQ_SBUF_PUTS(&b, "</div>\n");
    }
    CQ_SBUF_PUTS(&b, "</body></html>\n");
    return cq_sbuf_finish(&b, out, len, err);
}
