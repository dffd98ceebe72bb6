/* Helpers shared by the comparison builder and its renderers (compare*.c). */
#ifndef CQ_REPORT_COMPARE_INTERNAL_H
#define CQ_REPORT_COMPARE_INTERNAL_H

#include <cjson/cJSON.h>
#include <stddef.h>

/* "A".."Z", then "R26", ... */
void cq_compare_label(int run, char *buf, size_t n);
/* Index of NAME in fields[0..n), or -1. */
int cq_compare_field_index(const char *const *fields, int n, const char *name);

/* Readers of the result tree; they tolerate missing or mistyped items (NaN, NULL, 0). */
const cJSON *cq_cmp_get(const cJSON *o, const char *key);
/* Item r of the array, or NaN when absent or null. */
double cq_cmp_num(const cJSON *arr, int r);
/* o[key] as a string, or `dflt`. */
const char *cq_cmp_str(const cJSON *o, const char *key, const char *dflt);
/* o.section[key]: the per-run array of one field, or NULL. */
const cJSON *cq_cmp_series(const cJSON *o, const char *section, const char *key);
/* "%.4g", or "-" for NaN. */
void cq_cmp_fmt(char *buf, size_t n, double v);

#endif
