# Fault injection (scripts/fault_inject.sh) in its short form: 5 rtn + 1 awq kill -9 trials, SIGTERM/SIGINT
# mid-run, EFBIG / ENOSPC / read-only write failures. The full run (100 trials) is manual:
# scripts/fault_inject.sh -b build/src/cquant (docs/reliability.md).
. "$(dirname "$0")/lib.sh"
bash "$CQ_SRC/scripts/fault_inject.sh" -n 5 -a 1 -b "$CQ_BIN" && ok || fail "scripts/fault_inject.sh"
finish
