/* Shared pieces of the cquant commands: each cmd_* parses its option table, builds a config,
 * calls one library (or driver) entry point and returns a cq_status; main() prints the error
 * and picks the exit code. */
#ifndef CQ_CLI_H
#define CQ_CLI_H

#include "opts.h"

#include "cquant/error.h"

#include <cjson/cJSON.h>
#include <stdio.h>

typedef struct cq_cli {
    const char *cmd;        /* "rtn", "inspect", ... */
    cq_common_opts common;
    bool help_shown;        /* --help was handled: exit 0 */
    cJSON *json;            /* --json summary, printed by main() on success; owned */
    int full_argc;          /* the whole command line, untouched by option parsing */
    char **full_argv;
    int exit_code;          /* non-zero: main() prints the --json summary, then exits with it */
    FILE *man;              /* set by `cquant --man`: cli_parse writes roff here, not help */
} cq_cli;

typedef int (*cq_cmd_fn)(cq_cli *cli, int argc, char **argv, cq_error *err);

typedef struct cq_command {
    const char *name;
    cq_cmd_fn fn;
    const char *summary;
} cq_command;

/* Parse argv with opts (which must include CQ_OPT_COMMON(&cli->common)), apply -q/-v, and
 * print help when asked (cli->help_shown). Returns the positional count or CQ_E_USAGE. */
int cli_parse(cq_cli *cli, const cq_option *opts, const char *usage, const char *summary,
              int argc, char **argv, cq_error *err);
/* CQ_E_USAGE unless exactly `want` positionals (what = their names for the message). */
/* 1 when this build has the command (batch asks for "eval"). */
int cli_has_command(const char *name);
/* The command table (main.c). */
const cq_command *cli_commands(size_t *n);
/* The man page, generated from the command and option tables (`cquant --man`). */
int cli_man(FILE *f);
int cli_expect_args(int got, int want, const char *what, cq_error *err);
/* An input file argument (WHAT: "calibration", "text") must exist and be a regular file (a
 * FIFO or device is refused before anything opens it); CQ_E_IO naming it otherwise. */
int cli_input_file(const char *path, const char *what, cq_error *err);

int cmd_inspect(cq_cli *cli, int argc, char **argv, cq_error *err);
int cmd_quant(cq_cli *cli, int argc, char **argv, cq_error *err);
int cmd_gptq(cq_cli *cli, int argc, char **argv, cq_error *err);
int cmd_dequant(cq_cli *cli, int argc, char **argv, cq_error *err);
int cmd_report(cq_cli *cli, int argc, char **argv, cq_error *err);
int cmd_batch(cq_cli *cli, int argc, char **argv, cq_error *err);
int cmd_calib(cq_cli *cli, int argc, char **argv, cq_error *err);
int cmd_eval(cq_cli *cli, int argc, char **argv, cq_error *err);
int cmd_awq(cq_cli *cli, int argc, char **argv, cq_error *err);

#endif
