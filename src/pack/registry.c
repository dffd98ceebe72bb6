/* The table of on-disk layouts: lookup by --format name, and detection from a checkpoint's
 * quantization_config. */
#include "cquant/pack.h"

#include <string.h>

static const cq_layout *const layouts[] = {&cq_layout_gptq, &cq_layout_awq, &cq_layout_ct};
#define N_LAYOUTS (sizeof(layouts) / sizeof(layouts[0]))

const cq_layout *cq_layout_find(const char *name)
{
    for (size_t i = 0; name && i < N_LAYOUTS; i++)
        if (strcmp(layouts[i]->name, name) == 0)
            return layouts[i];
    return NULL;
}

const cq_layout *cq_layout_detect(const cJSON *qcfg)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(qcfg, "quant_method");
    const char *s = cJSON_GetStringValue(m);
    if (!s)
        return NULL;
    if (strcmp(s, "gptq") == 0)
        return &cq_layout_gptq;
    if (strcmp(s, "awq") == 0)
        return &cq_layout_awq;
    if (strcmp(s, "compressed-tensors") == 0)
        return &cq_layout_ct;
    return NULL;
}
