/* cquant calib: tokenize text (.txt / .jsonl, gzipped or not) with a model's tokenizer and
 * write calibration windows to a calib.bin (docs/calib.md). The work is cq_calib_from_text;
 * this file parses options and writes the file atomically. */
#include "cli.h"
#include "quantize.h"

#include "cquant/calib.h"
#include "cquant/log.h"
#include "cquant/plan.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct calib_args {
    const char *out, *mode;
    int samples, seqlen, seed, bos;
    bool force;
} calib_args;

static int check_output(const char *out, bool force, cq_error *err)
{
    struct stat sb;
    if (stat(out, &sb) != 0)
        return CQ_OK;
    if (S_ISDIR(sb.st_mode))
        return cq_errorf(err, CQ_E_EXISTS, "'%s' is a folder", out);
    if (!force)
        return cq_errorf(err, CQ_E_EXISTS, "'%s' exists (use --force to replace it)", out);
    return CQ_OK;
}

static void summary(cq_cli *cli, const calib_args *a, const cq_calib *c)
{
    cJSON *o = cli->json = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "output", a->out);
    cJSON_AddStringToObject(o, "mode", c->mode);
    cJSON_AddNumberToObject(o, "n", (double)c->n);
    cJSON_AddNumberToObject(o, "seqlen", (double)c->seqlen);
    cJSON_AddNumberToObject(o, "seed", (double)c->seed);
    cJSON_AddBoolToObject(o, "bos", c->bos == 1);
    cJSON_AddStringToObject(o, "tokenizer_hash", c->tokenizer_hash);
    cJSON *src = cJSON_Parse(c->sources);
    if (src)
        cJSON_AddItemToObject(o, "sources", src);
    if (!cli->common.json)
        printf("%s\n", a->out);
}

int cmd_calib(cq_cli *cli, int argc, char **argv, cq_error *err)
{
    calib_args a = {.mode = "random", .samples = 128, .bos = -1};
    const cq_option opts[] = {
        OPT_STRING('o', "output", &a.out, "FILE", "the calib.bin to write (required)", NULL),
        OPT_STRING(0, "mode", &a.mode, "M", "random: GPTQ windows of one token stream; concat: "
                   "AutoAWQ blocks of whole documents; split: blocks of all documents, long "
                   "ones kept (cquant awq's default)", "random|concat|split"),
        OPT_INT('n', "samples", &a.samples, "N",
                "random: windows; concat: most documents kept; split: blocks", 1, 1000000,
                NULL),
        OPT_INT(0, "seqlen", &a.seqlen, "N", "tokens per window (0 = random: the model's "
                "context capped at 2048; concat: 512)", 0, 1 << 20, NULL),
        OPT_INT(0, "seed", &a.seed, "N", "random.seed of the window starts", 0, INT_MAX, NULL),
        OPT_SETINT(0, "bos", &a.bos, 1, "put BOS first (random: the stream, as GPTQ's "
                   "tokenizer(text); concat: each document, the default)"),
        OPT_SETINT(0, "no-bos", &a.bos, 0, "no BOS (random's default)"),
        OPT_BOOL(0, "force", &a.force, "replace an existing output file"),
        CQ_OPT_COMMON(&cli->common),
        OPT_END(),
    };
    int n = cli_parse(cli, opts, "cquant calib [options] -o FILE MODEL TEXT...",
                      "Tokenize TEXT (.txt or .jsonl with a \"text\" field, gzipped or not) with "
                      "MODEL's tokenizer into calibration windows.", argc, argv, err);
    if (n < 0 || cli->help_shown)
        return n < 0 ? n : CQ_OK;
    if (n < 2)
        return cq_errorf(err, CQ_E_USAGE, "missing argument: %s", n ? "TEXT" : "MODEL");
    if (!a.out)
        return cq_errorf(err, CQ_E_USAGE, "missing option: -o FILE");
    if (a.seqlen == 1)
        return cq_errorf(err, CQ_E_USAGE, "--seqlen must be at least 2");
    int rc = check_output(a.out, a.force, err);
    cq_calib_text_opts o = cq_calib_text_defaults();
    o.mode = !strcmp(a.mode, "concat")  ? CQ_CALIB_CONCAT
             : !strcmp(a.mode, "split") ? CQ_CALIB_SPLIT
                                        : CQ_CALIB_RANDOM;
    o.n = a.samples;
    o.seqlen = a.seqlen;
    o.seed = (uint64_t)a.seed;
    o.bos = a.bos;
    cq_calib c;
    memset(&c, 0, sizeof c);
    if (rc == CQ_OK)
        rc = cq_calib_from_text(argv[0], (const char *const *)argv + 1, n - 1, &o, &c, err);
    if (rc == CQ_OK)
        cq_info("calib: %lld %s windows of %lld tokens", (long long)c.n, c.mode,
                (long long)c.seqlen);
    if (rc == CQ_OK)
        rc = cq_make_parents(a.out, err);
    if (rc == CQ_OK) { /* the ids (4 bytes each) and a header; checked before writing */
        cq_plan p = {.output_bytes = (size_t)(c.n * c.seqlen) * 4 + 65536};
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", a.out);
        char *slash = strrchr(dir, '/');
        if (!slash)
            snprintf(dir, sizeof dir, ".");
        else
            slash[slash == dir] = 0;
        rc = cq_plan_check_disk(&p, dir, err);
    }
    if (rc == CQ_OK)
        rc = cq_calib_write(a.out, &c, err);
    if (rc == CQ_OK)
        summary(cli, &a, &c);
    cq_calib_release(&c);
    return rc;
}
