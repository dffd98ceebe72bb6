# Fault injection (scripts/fault_inject.sh) in its short form: 5 kill -9 trials each for rtn, gptq
# and awq (a plain rerun or --resume after each: identical bytes, stale temporaries of ours
# removed, a foreign one kept), SIGTERM/SIGINT/double SIGINT per command, and write failures per
# command (EFBIG, injected ENOSPC and fsync EIO, tmpfs full/read-only where mount works,
# chmod 555 where not root). The long form (40 trials per command) is manual:
# scripts/fault_inject.sh -b build/src/cquant (docs/reliability.md).
# Then two gptq resume states the random trials found, made exactly with the test hooks.
. "$(dirname "$0")/lib.sh"
bash "$CQ_SRC/scripts/fault_inject.sh" -n 5 -r 1 -s "$TINY" -b "$CQ_BIN" && ok || fail "scripts/fault_inject.sh"

export OPENBLAS_NUM_THREADS=1
CH='{"input_ids":{"dtype":"I32","shape":[2,32],"data_offsets":[0,256]}}'
{
    for i in 0 1 2 3 4 5 6 7; do printf "\\x$(printf %02x $(((${#CH} >> (8 * i)) & 255)))"; done
    printf '%s' "$CH"
    for i in $(seq 0 63); do printf "\\x$(printf %02x $((i * 7 % 64)))\\x00\\x00\\x00"; done
} >"$T/cal.bin"
G=(-q gptq --threads 1 "$TINY" "$T/cal.bin")
digest() { (cd "$1" && find . -type f ! -name cquant-report.json -print0 | sort -z | xargs -0 sha256sum); }
expect 0 "$CQ_BIN" "${G[@]}" -o "$T/ref" && digest "$T/ref" >"$T/ref.sha"
# 1. killed between layer 1's hidden file and its state.json: the state still says 1 layer
#    done, and the resume must read layer 1's input, not layer 2's (one hidden.f32 for both
#    once fed it the wrong one)
CQ_TEST_DIE_BEFORE_STATE=1 "$CQ_BIN" "${G[@]}" -o "$T/b" 2>/dev/null
eq "$?" 137 "hook exit code"
has "$T/b.cquant-tmp/.cquant-gptq/state.json" '"done_layers":[[:space:]]*1' "state after layer 1"
expect 0 "$CQ_BIN" "${G[@]}" --resume -o "$T/b"
digest "$T/b" | cmp -s - "$T/ref.sha" && ok || fail "resume after a kill between hidden and state differs"
# 2. killed after the last layer while the configs were written: a stale config.json blocked
#    the resume ("exists"), and an atomic write's temporary ended up in the output
CQ_TEST_DIE_AFTER_LAYER=3 "$CQ_BIN" "${G[@]}" -o "$T/c" 2>/dev/null
eq "$?" 137 "hook exit code (last layer)"
echo '{"stale": true}' >"$T/c.cquant-tmp/config.json"
echo 'half' >"$T/c.cquant-tmp/quantize_config.json.cquant-tmp.Ab12Cd"
expect 0 "$CQ_BIN" "${G[@]}" --resume -o "$T/c"
digest "$T/c" | cmp -s - "$T/ref.sha" && ok || fail "resume after a kill while writing configs differs"
finish
