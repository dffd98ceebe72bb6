#include "cli.h"
int cmd_batch(cq_cli *cli, int argc, char **argv, cq_error *err)
{
    return cq_errorf(err, CQ_E_INTERNAL, "todo");
}
