/* cquant entry point: the command table, global flags, and the one place where a status
 * becomes a printed error and an exit code (docs/cli.md lists the codes). */
#include "cli.h"

#include "cquant/dist.h"
#include "cquant/json.h"
#include "cquant/log.h"
#include "cquant/outdir.h"
#include "linalg/blas_threads.h"

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int cmd_help(cq_cli *cli, int argc, char **argv, cq_error *err);

static const cq_command commands[] = {
    {"inspect", cmd_inspect, "list the tensors, totals and quantization of a checkpoint"},
    {"rtn", cmd_quant, "quantize with round-to-nearest (min-max, no calibration)"},
    {"gptq", cmd_gptq, "quantize with GPTQ (layer by layer on calibration data; needs CALIB)"},
    {"awq", cmd_awq, "quantize with AWQ (activation-aware scales and clipping; needs CALIB)"},
    {"dequant", cmd_dequant, "unpack a quantized checkpoint back to float"},
    {"calib", cmd_calib, "tokenize text into calibration windows (calib.bin)"},
    {"eval", cmd_eval, "perplexity of a float or quantized checkpoint on a text"},
    {"report", cmd_report, "compare quantization reports layer by layer (text, JSON, HTML)"},
    {"batch", cmd_batch, "run the quantization jobs of a manifest (skips finished ones)"},
    {"help", cmd_help, "show help for a command"},
};
#define N_COMMANDS (sizeof commands / sizeof *commands)

static const cq_command *find_command(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!strcmp(commands[i].name, name))
            return &commands[i];
    return NULL;
}

int cli_has_command(const char *name) { return find_command(name) != NULL; }

const cq_command *cli_commands(size_t *n)
{
    *n = N_COMMANDS;
    return commands;
}

static void main_help(FILE *f)
{
    fprintf(f, "usage: cquant [-q|-v] [--version] [--help] <command> [options] [args]\n\n"
               "Quantize Hugging Face safetensors checkpoints (RTN; GPTQ/AWQ layouts).\n\n"
               "commands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "    %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nexit codes: 0 ok, 1 internal, 2 usage, 3 I/O, 4 bad or unsupported input,\n"
               "            5 numeric, 6 out of memory, 7 output exists, 130 interrupted\n"
               "\nSee 'cquant help <command>' or 'cquant <command> --help'.\n");
}

int cli_parse(cq_cli *cli, const cq_option *opts, const char *usage, const char *summary,
              int argc, char **argv, cq_error *err)
{
    int n = cq_opts_parse(opts, argc, argv, err);
    if (n < 0)
        return n;
    if (cli->common.quiet)
        cq_log_set_level(CQ_LOG_QUIET);
    else if (cli->common.verbose)
        cq_log_set_level(CQ_LOG_DEBUG);
    if (cli->common.help) {
        if (cli->man)
            cq_opts_man(cli->man, usage, summary, opts);
        else
            cq_opts_help(stdout, usage, summary, opts);
        cli->help_shown = true;
    }
    return n;
}

int cli_expect_args(int got, int want, const char *what, cq_error *err)
{
    if (got < want)
        return cq_errorf(err, CQ_E_USAGE, "missing argument: %s", what);
    if (got > want)
        return cq_errorf(err, CQ_E_USAGE, "too many arguments (expected %s)", what);
    return CQ_OK;
}

int cli_input_file(const char *path, const char *what, cq_error *err)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return cq_errorf_errno(err, CQ_E_IO, "%s '%s': cannot open", what, path);
    if (!S_ISREG(st.st_mode))
        return cq_errorf(err, CQ_E_IO, "%s '%s': not a regular file", what, path);
    return CQ_OK;
}

/* "cquant help CMD" runs "cquant CMD --help". */
static int cmd_help(cq_cli *cli, int argc, char **argv, cq_error *err)
{
    if (argc >= 2 && !strcmp(argv[1], "--json")) { /* the command list, for tools */
        cli->common.json = true;
        cli->json = cJSON_CreateObject();
        cJSON_AddStringToObject(cli->json, "version", CQ_VERSION);
        cJSON *arr = cJSON_AddArrayToObject(cli->json, "commands");
        for (size_t i = 0; arr && i < N_COMMANDS; i++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "name", commands[i].name);
            cJSON_AddStringToObject(o, "summary", commands[i].summary);
            cJSON_AddItemToArray(arr, o);
        }
        return CQ_OK;
    }
    if (argc < 2) {
        main_help(stdout);
        cli->help_shown = true;
        return CQ_OK;
    }
    const cq_command *c = find_command(argv[1]);
    if (!c)
        return cq_errorf(err, CQ_E_USAGE, "'%s' is not a cquant command", argv[1]);
    char *hargv[] = {argv[1], "--help", NULL};
    cli->cmd = c->name;
    return c->fn(cli, 2, hargv, err);
}

/* Flags before the command: -q, -v, --version, --help. Returns the index of the command. */
static int global_flags(int argc, char **argv, cq_cli *cli, int *done)
{
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--version")) {
            printf("cquant %s\n", CQ_VERSION);
            *done = 1;
        } else if (!strcmp(a, "--man")) { /* hidden: docs/cquant.1 is its output */
            *done = cli_man(stdout) == CQ_OK ? 1 : -1; /* -1: exit 1 */
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            main_help(stdout);
            *done = 1;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            cli->common.quiet = true;
            cq_log_set_level(CQ_LOG_QUIET);
        } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            cli->common.verbose++;
            cq_log_set_level(CQ_LOG_DEBUG);
        } else {
            return -i;
        }
        if (*done)
            return i;
    }
    return i;
}

static int report_failure(const cq_cli *cli, const cq_error *in)
{
    if (cq_dist_rank() > 0) /* rank 0 prints the job's error */
        return cq_exit_code(in->code ? in->code : CQ_E_INTERNAL);
    /* Messages quote names taken from input files: keep the error one line whatever they hold. */
    cq_error copy = *in, *err = &copy;
    cq_error_printable(err);
    int code = err->code ? err->code : CQ_E_INTERNAL;
    cq_progress_end();
    fprintf(stderr, "cquant: error: %s\n", err->msg[0] ? err->msg : cq_status_name(code));
    if (code == CQ_E_USAGE && cli->cmd)
        fprintf(stderr, "see 'cquant %s --help'\n", cli->cmd);
    else if (code == CQ_E_USAGE)
        fprintf(stderr, "see 'cquant --help'\n");
    if (cli->common.json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddBoolToObject(o, "ok", 0);
        cJSON_AddStringToObject(o, "status", cq_status_name(code));
        cJSON_AddNumberToObject(o, "exit_code", cq_exit_code(code));
        cJSON_AddStringToObject(o, "error", err->msg);
        char *s = cJSON_Print(o);
        if (s)
            puts(s);
        free(s);
        cJSON_Delete(o);
    }
    return cq_exit_code(code);
}

static int print_json(cq_cli *cli)
{
    if (!cli->common.json || !cli->json)
        return CQ_EXIT_OK;
    if (!cJSON_HasObjectItem(cli->json, "ok"))
        cJSON_AddBoolToObject(cli->json, "ok", 1);
    char *s = cJSON_Print(cli->json);
    if (!s)
        return CQ_EXIT_NOMEM;
    puts(s);
    free(s);
    return CQ_EXIT_OK;
}

/* Commands that split their work over MPI ranks; under mpirun the others run on rank 0 only. */
static bool dist_aware(const char *cmd)
{
    return !strcmp(cmd, "gptq") || !strcmp(cmd, "awq") || !strcmp(cmd, "eval");
}

static int run_command(const cq_command *c, cq_cli *cli, int argc, char **args, cq_error *err)
{
    int rc = CQ_OK;
    bool solo = !dist_aware(c->name);
    if (cq_dist_rank() == 0 || !solo) {
        cq_dist_set_solo(solo && cq_dist_active()); /* e.g. batch: its gptq jobs run alone */
        rc = c->fn(cli, argc, args, err);
        cq_dist_set_solo(false);
    }
    /* every rank ends with the same status; the failing rank's message reaches rank 0 */
    rc = cq_dist_agree(rc, err);
    int64_t sent = (int64_t)cq_dist_bytes_sent();
    cq_error ignore = CQ_ERROR_INIT;
    if (rc == CQ_OK && cq_dist_active() && cq_dist_sum_i64(&sent, 1, &ignore) == CQ_OK)
        cq_info("mpi: %d ranks sent %.3f MiB", cq_dist_size(), (double)sent / 1048576.0);
    return rc;
}

static int run_main(int argc, char **argv)
{
    cq_cli cli = {0};
    cq_error err = CQ_ERROR_INIT;
    int done = 0, rc;
    int i = global_flags(argc, argv, &cli, &done);
    if (done)
        return done > 0 ? CQ_EXIT_OK : CQ_EXIT_INTERNAL;
    if (i < 0) {
        cq_errorf(&err, CQ_E_USAGE, "unknown option '%s'", argv[-i]);
        return report_failure(&cli, &err);
    }
    if (i >= argc) {
        main_help(stderr);
        return CQ_EXIT_USAGE;
    }
    const cq_command *c = find_command(argv[i]);
    if (!c) {
        cq_errorf(&err, CQ_E_USAGE, "'%s' is not a cquant command", argv[i]);
        return report_failure(&cli, &err);
    }
    cli.cmd = c->name;
    cli.full_argc = argc;
    cli.full_argv = argv;
    /* Option parsing reorders its argv; give it a copy so the report sees the real line. */
    char **args = calloc((size_t)argc + 1, sizeof *args);
    if (!args)
        return CQ_EXIT_NOMEM;
    memcpy(args, argv + i, (size_t)(argc - i) * sizeof *args);
    /* Commands that compute load OpenBLAS up front, so a missing library is a clean error;
     * these never call it and skip the cost (linalg/blas_threads.h). */
    static const char *const no_blas[] = {"inspect", "rtn", "dequant", "report", "help"};
    bool blas = true;
    for (size_t k = 0; k < sizeof no_blas / sizeof *no_blas; k++)
        blas &= strcmp(c->name, no_blas[k]) != 0;
    if (blas && (rc = cq_blas_load(&err)) != CQ_OK) {
        free(args);
        return report_failure(&cli, &err);
    }
    cq_signals_install();
    /* Past a file-size limit (ulimit -f) write() must fail with EFBIG, reported as an I/O
     * error with the usual cleanup, rather than SIGXFSZ killing us with temporaries left. */
    signal(SIGXFSZ, SIG_IGN);
    rc = run_command(c, &cli, argc - i, args, &err);
    free(args);
    if (rc == CQ_OK && !cli.help_shown)
        rc = print_json(&cli);
    if (rc == CQ_EXIT_OK && !cli.help_shown && cli.exit_code)
        rc = cli.exit_code;
    else if (rc != CQ_OK)
        rc = report_failure(&cli, &err);
    cJSON_Delete(cli.json);
    return rc;
}

int main(int argc, char **argv)
{
    cq_error err = CQ_ERROR_INIT;
    if (cq_dist_init(&argc, &argv, &err) != CQ_OK) {
        fprintf(stderr, "cquant: error: %s\n", err.msg);
        return CQ_EXIT_INTERNAL;
    }
    /* Under mpirun rank 0 speaks for the job: the other ranks print nothing. */
    if (cq_dist_rank() > 0 && !freopen("/dev/null", "w", stdout))
        return CQ_EXIT_IO;
    int rc = run_main(argc, argv);
    cq_dist_finalize();
    return rc;
}
