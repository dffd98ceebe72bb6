/* Synthetic cquant-report/1 pairs for the comparison tests: known values per layer, so the
 * tests can recompute every delta, ratio, mean and ordering on their own. Header-only; included
 * by test_report_compare.c and test_report_html.c. */
#ifndef CQ_TEST_REPORT_GEN_H
#define CQ_TEST_REPORT_GEN_H

#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { GEN_FIELDS = 4, GEN_MAX_LAYERS = 512 };
/* f = 0..3; gptq_loss only exists in run B, as a field a newer report would add. */
static const char *const gen_field[GEN_FIELDS] = {"rel_frobenius_error", "weight_mse", "seconds",
                                                  "gptq_loss"};
static const char *const gen_mods[7] = {"q", "k", "v", "o", "gate", "up", "down"};
static const char *const gen_paths[7] = {"self_attn.q_proj", "self_attn.k_proj",
                                         "self_attn.v_proj", "self_attn.o_proj",
                                         "mlp.gate_proj",    "mlp.up_proj",
                                         "mlp.down_proj"};

typedef struct gen_layer {
    char name[96];
    char module[16];
    long block;
    int present[2], skipped[2];
    double v[2][GEN_FIELDS]; /* NaN: not in the report */
} gen_layer;

typedef struct gen_set {
    gen_layer l[GEN_MAX_LAYERS];
    int n;
    double tot[2][2]; /* rel_frobenius_error, quantized */
} gen_set;

/* Values of 12 significant digits: cJSON prints numbers with %.15g when that reads back within
 * an epsilon, so only such values survive a report file bit-exactly. */
static inline double gen_round(double v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%.12g", v);
    return strtod(buf, NULL);
}

static inline double gen_rand(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return 0.01 + 0.19 * (double)(*s >> 11) / 9007199254740992.0;
}

/* BLOCKS x 7 Llama Linears in both runs, plus: the last down_proj only in A, "lm_extra.weight"
 * only in B, block 1's v_proj skipped in B. */
static inline void gen_make(gen_set *g, int blocks, uint64_t seed)
{
    memset(g, 0, sizeof *g);
    for (int b = 0; b < blocks; b++)
        for (int m = 0; m < 7 && g->n < GEN_MAX_LAYERS - 1; m++) {
            gen_layer *l = &g->l[g->n++];
            snprintf(l->name, sizeof l->name, "model.layers.%d.%s.weight", b, gen_paths[m]);
            snprintf(l->module, sizeof l->module, "%s", gen_mods[m]);
            l->block = b;
            l->present[0] = l->present[1] = 1;
        }
    gen_layer *x = &g->l[g->n++];
    snprintf(x->name, sizeof x->name, "lm_extra.weight");
    snprintf(x->module, sizeof x->module, "lm_extra");
    x->block = -1;
    x->present[1] = 1;
    g->l[g->n - 2].present[1] = 0; /* the last down_proj: only in A */
    if (blocks > 1)
        g->l[7 + 2].skipped[1] = 1; /* block 1 v_proj */
    for (int i = 0; i < g->n; i++)
        for (int r = 0; r < 2; r++)
            for (int f = 0; f < GEN_FIELDS; f++) {
                gen_layer *l = &g->l[i];
                int has = l->present[r] && !(l->skipped[r] && f != 2) && !(f == 3 && r == 0);
                l->v[r][f] = has ? gen_round(gen_rand(&seed) / (f == 1 ? 1024 : 1)) : NAN;
            }
    g->tot[0][0] = 0.111;
    g->tot[1][0] = 0.127;
    g->tot[0][1] = 56;
    g->tot[1][1] = 55;
}

static inline cJSON *gen_report(const gen_set *g, int r)
{
    cJSON *root = cJSON_CreateObject(), *layers, *tot, *cfg;
    cJSON_AddStringToObject(root, "schema", "cquant-report/1");
    cJSON_AddStringToObject(root, "command", r ? "gptq" : "rtn");
    cfg = cJSON_AddObjectToObject(root, "config");
    cJSON_AddNumberToObject(cfg, "bits", 4);
    cJSON_AddNumberToObject(cfg, "group_size", r ? -1 : 128);
    layers = cJSON_AddArrayToObject(root, "layers");
    for (int i = 0; i < g->n; i++) {
        const gen_layer *l = &g->l[i];
        if (!l->present[r])
            continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", l->name);
        cJSON_AddNumberToObject(o, "bits", 4);
        cJSON_AddStringToObject(o, "status", l->skipped[r] ? "skipped" : "quantized");
        for (int f = 0; f < GEN_FIELDS; f++)
            if (!isnan(l->v[r][f]))
                cJSON_AddNumberToObject(o, gen_field[f], l->v[r][f]);
        cJSON_AddItemToArray(layers, o);
    }
    tot = cJSON_AddObjectToObject(root, "totals");
    cJSON_AddNumberToObject(tot, "rel_frobenius_error", g->tot[r][0]);
    cJSON_AddNumberToObject(tot, "quantized", g->tot[r][1]);
    return root;
}

static inline int gen_write(const cJSON *root, const char *path)
{
    char *s = cJSON_Print(root);
    FILE *f = fopen(path, "wb");
    int ok = s && f && fputs(s, f) >= 0;
    if (f)
        ok &= fclose(f) == 0;
    free(s);
    return ok ? 0 : -1;
}

static inline const gen_layer *gen_find(const gen_set *g, const char *name)
{
    for (int i = 0; i < g->n; i++)
        if (!strcmp(g->l[i].name, name))
            return &g->l[i];
    return NULL;
}

#endif
