/* cquant report: compare quantization reports side by side (text, --json, --html).
 * The work is in src/report/compare*.c; this file parses options and writes the outputs. */
#include "cli.h"

#include "cquant/compare.h"
#include "cquant/log.h"
#include "cquant/outdir.h"
#include "cquant/report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { MAX_FIELD_ARGS = 64 };

/* "a,b,c" -> fields (pointers into the writable copy buf). */
static int split_fields(char *buf, const char **fields, int *n, cq_error *err)
{
    *n = 0;
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        if (*n >= MAX_FIELD_ARGS)
            return cq_errorf(err, CQ_E_USAGE, "--fields: more than %d fields", MAX_FIELD_ARGS);
        fields[(*n)++] = tok;
    }
    if (!*n)
        return cq_errorf(err, CQ_E_USAGE, "--fields: empty list");
    return CQ_OK;
}

/* A folder stands for the report inside it (an output folder of rtn/gptq/awq). */
static int add_report(cq_compare *c, const char *arg, cq_error *err)
{
    struct stat st;
    char path[4096];
    if (stat(arg, &st) == 0 && S_ISDIR(st.st_mode)) {
        if ((size_t)snprintf(path, sizeof path, "%s/%s", arg, CQ_REPORT_FILE) >= sizeof path)
            return cq_errorf(err, CQ_E_USAGE, "'%s': path too long", arg);
        arg = path;
    }
    return cq_compare_add_file(c, arg, err);
}

static int write_html(const cJSON *cmp, const char *path, bool force, cq_error *err)
{
    char *html = NULL;
    size_t len = 0;
    int rc = cq_compare_html(cmp, &html, &len, err);
    if (rc == CQ_OK)
        rc = cq_atomic_write(path, html, len, force, err);
    free(html);
    if (rc == CQ_OK)
        cq_info("wrote %s", path);
    return rc;
}

static int print_text(const cJSON *cmp, cq_error *err)
{
    char *text = NULL;
    size_t len = 0;
    int rc = cq_compare_text(cmp, &text, &len, err);
    if (rc == CQ_OK && fwrite(text, 1, len, stdout) != len)
        rc = cq_errorf(err, CQ_E_IO, "cannot write to stdout");
    free(text);
    return rc;
}

int cmd_report(cq_cli *cli, int argc, char **argv, cq_error *err)
{
    cq_compare_opts co = {.top = 10};
    const char *fields_arg = NULL, *html = NULL;
    const char *fields[MAX_FIELD_ARGS];
    char *fbuf = NULL;
    bool force = false;
    cq_compare *c = NULL;
    const cq_option opts[] = {
        OPT_STRING('s', "sort", &co.sort, "KEY",
                   "order the worst-layers table by KEY (a numeric per-layer field, 'order' or "
                   "'name'; default rel_frobenius_error)", NULL),
        OPT_INT('n', "top", &co.top, "N", "worst layers listed; 0 = all", 0, 1 << 30, NULL),
        OPT_STRING(0, "fields", &fields_arg, "LIST",
                   "per-layer fields shown and plotted (comma-separated, or 'all'; default: "
                   "the error metrics present, then seconds)", NULL),
        OPT_STRING(0, "html", &html, "OUT.html",
                   "also write one self-contained HTML page with SVG charts", NULL),
        OPT_BOOL(0, "force", &force, "replace an existing OUT.html"),
        CQ_OPT_COMMON(&cli->common),
        OPT_END(),
    };
    int n = cli_parse(cli, opts, "cquant report [options] REPORT [REPORT ...]",
                      "Compare quantization reports layer by layer (the first is the baseline). "
                      "REPORT: a\ncquant-report.json or an output folder holding one.",
                      argc, argv, err),
        rc;
    if (n < 0 || cli->help_shown)
        return n < 0 ? n : CQ_OK;
    if (n < 1)
        return cq_errorf(err, CQ_E_USAGE, "missing argument: REPORT (a cquant-report.json)");
    if (fields_arg) {
        if (!(fbuf = strdup(fields_arg)))
            return cq_errorf(err, CQ_E_NOMEM, "out of memory");
        if ((rc = split_fields(fbuf, fields, &co.n_fields, err)) != CQ_OK)
            goto done;
        co.fields = fields;
    }
    if ((rc = cq_compare_create(&c, err)) != CQ_OK)
        goto done;
    for (int i = 0; i < n && rc == CQ_OK; i++)
        rc = add_report(c, argv[i], err);
    if (rc == CQ_OK)
        rc = cq_compare_build(c, &co, err);
    if (rc == CQ_OK && html)
        rc = write_html(cq_compare_json(c), html, force, err);
    if (rc == CQ_OK && cli->common.json)
        cli->json = cJSON_Duplicate(cq_compare_json(c), 1);
    else if (rc == CQ_OK)
        rc = print_text(cq_compare_json(c), err);
    if (rc == CQ_OK && cli->common.json && !cli->json)
        rc = cq_errorf(err, CQ_E_NOMEM, "out of memory");
done:
    cq_compare_free(c);
    free(fbuf);
    return rc;
}
