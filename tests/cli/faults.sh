# Fault injection (scripts/fault_inject.sh) in its short form: 5 kill -9 trials each for rtn, gptq
# and awq (a plain rerun or --resume after each: identical bytes, stale temporaries of ours
# removed, a foreign one kept), SIGTERM/SIGINT/double SIGINT per command, and write failures per
# command (EFBIG, injected ENOSPC and fsync EIO, tmpfs full/read-only where mount works,
# chmod 555 where not root). The long form (40 trials per command) is manual:
# scripts/fault_inject.sh -b build/src/cquant (docs/reliability.md).
. "$(dirname "$0")/lib.sh"
bash "$CQ_SRC/scripts/fault_inject.sh" -n 5 -s "$TINY" -b "$CQ_BIN" && ok || fail "scripts/fault_inject.sh"
finish
