/* Which tensors of a checkpoint are quantized: the Linear weights inside the decoder layers.
 * Architecture rules come from config.json through the native forward's architecture table
 * (cq_arch_lookup: Llama family q/k/v/o_proj and gate/up/down_proj, notes §B.7; OPT
 * q/k/v/out_proj, fc1, fc2); other architectures use a generic rule (2-D float "*.weight" under "layers.N.",
 * not a norm or embedding). --include globs replace the default set, --exclude globs remove from
 * it. Embeddings, norms and lm_head are never selected. Knows names and shapes, not data. */
#ifndef CQUANT_SELECT_H
#define CQUANT_SELECT_H

#include "cquant/dtype.h"
#include "cquant/error.h"
#include "cquant/model.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct cq_select {
    char arch[64];                /* "LlamaForCausalLM", or "" when config.json gives none */
    bool llama_rules;             /* the architecture's explicit module list applies */
    const cq_arch_desc *desc;     /* that list (cq_arch_lookup), NULL for the generic rule */
    const char *const *include;   /* borrowed fnmatch globs; n_include == 0: default set */
    int n_include;
    const char *const *exclude;   /* borrowed */
    int n_exclude;
} cq_select;

/* Set up from config.json (may be NULL: generic rule) and the globs (borrowed; must outlive s).
 * Returns CQ_OK, or CQ_E_USAGE for an empty glob. Never allocates. */
int cq_select_init(cq_select *s, const cJSON *config, const char *const *include, int n_include,
                   const char *const *exclude, int n_exclude, cq_error *err);

/* Is this tensor a Linear weight to quantize? Needs ndim 2 and a float dtype.
 * Thread-safe (reads s only). */
bool cq_select_tensor(const cq_select *s, const char *name, cq_dtype dtype, int ndim);

/* Is this tensor a MoE router weight (block_sparse_moe.gate, mlp.gate, shared_expert_gate)?
 * Routers are never quantized; writers list them as float modules for loaders. */
bool cq_select_is_router(const char *name);

/* The rule set: "llama" (any architecture of cq_arch_lookup) or "generic". */
const char *cq_select_rule_name(const cq_select *s);

#endif
