/* Side-by-side comparison of quantization reports (cquant-report/1, docs/report.md), as used by
 * `cquant report` (docs/cli.md; output schema "cquant-compare/1" in docs/report.md).
 *
 * Reports are matched layer by layer by tensor name. Every numeric per-layer field present in
 * any input is compared (future fields such as gptq_loss or rel_output_error need no code here);
 * a missing layer, a null metric or a field one report lacks is a gap, never an error. The first
 * report is the baseline: delta = run - baseline, ratio = run / baseline.
 *
 * The comparison is built once into a cJSON tree; the text and HTML renderers read only that
 * tree, so every number a page shows or plots is the number in the JSON. Does not print. */
#ifndef CQUANT_COMPARE_H
#define CQUANT_COMPARE_H

#include "cquant/error.h"

#include <cjson/cJSON.h>
#include <stddef.h>

#define CQ_COMPARE_SCHEMA "cquant-compare/1"

typedef struct cq_compare cq_compare;

typedef struct cq_compare_opts {
    const char *sort;           /* a numeric field, "order" or "name"; NULL: rel_frobenius_error */
    int top;                    /* worst layers listed; 0 = all */
    const char *const *fields;  /* fields the text/HTML show; NULL: the default set (see .c) */
    int n_fields;
} cq_compare_opts;

int cq_compare_create(cq_compare **out, cq_error *err);
void cq_compare_free(cq_compare *c);
/* Load and validate one report. Errors name PATH: CQ_E_IO (cannot read), CQ_E_FORMAT (not JSON,
 * not a report, duplicate layer), CQ_E_UNSUPPORTED (another schema). */
int cq_compare_add_file(cq_compare *c, const char *path, cq_error *err);
/* The same for a parsed report; takes ownership of REPORT (also on failure). LABEL names it in
 * messages and output (a path). */
int cq_compare_add_json(cq_compare *c, cJSON *report, const char *label, cq_error *err);
/* Match layers and compute values, deltas, ratios, module means and the worst layers.
 * CQ_E_USAGE: no report, or a sort/field name no report has. */
int cq_compare_build(cq_compare *c, const cq_compare_opts *o, cq_error *err);
/* The result of build (borrowed; NULL before). */
const cJSON *cq_compare_json(const cq_compare *c);

/* Renderers of a "cquant-compare/1" tree. *out is malloc'd text (NUL-terminated). */
int cq_compare_text(const cJSON *cmp, char **out, size_t *len, cq_error *err);
/* One self-contained HTML page: tables and inline SVG charts, no script, no external resource.
 * Every plotted bar or point carries data-field, data-run, data-value (%.17g) and data-layer or
 * data-module. */
int cq_compare_html(const cJSON *cmp, char **out, size_t *len, cq_error *err);

/* The module type of a tensor name: "q", "k", "v", "o", "gate", "up", "down" for the Llama
 * projections, else the last module component ("fc1"); *block is the first all-digit
 * component (the layer index) or -1. OUT gets at most n bytes. */
void cq_compare_module(const char *name, char *out, size_t n, long *block);

#endif
