# Resource limits (docs/reliability.md): --max-memory refuses up front, with the planned peak, for
# rtn, gptq, awq, eval and batch (each batch job gets its share), and every writing command
# (rtn, gptq, awq, dequant, calib) refuses a filesystem without room for its planned output
# before writing anything. The free space is faked with the CQ_TEST_DISK_FREE test hook.
. "$(dirname "$0")/lib.sh"
CAL="$CQ_SRC/data/calib-docs.txt"
GPTQ=(gptq --samples 2 --seqlen 64)
AWQ=(awq --calib-docs 8 --calib-block 128 --grid 2 --no-clip)

# refused CODE REGEX CMD...: exit CODE, exactly one error line matching REGEX, nothing at $T/o
refused() {
    local code=$1 re=$2
    shift 2
    expect "$code" "$@" || return
    eq "$(wc -l <"$T/err")" 1 "one stderr line: $*"
    has "$T/err" "^cquant: error: .*$re" "$*"
    [ -e "$T/o" ] && fail "output left: $*" || ok
    ls -d "$T"/*cquant-tmp* >/dev/null 2>&1 && fail "temporary left: $*" || ok
}

MEM='planned peak memory [0-9.]+ [KMG]iB.* exceeds --max-memory 1.0 MiB'
refused 6 "$MEM" "$CQ_BIN" -q rtn --max-memory 1MiB "$TINY" -o "$T/o"
refused 6 "$MEM" "$CQ_BIN" -q "${GPTQ[@]}" --max-memory 1MiB "$TINY" "$CAL" -o "$T/o"
refused 6 "$MEM" "$CQ_BIN" -q "${AWQ[@]}" --max-memory 1MiB "$TINY" "$CAL" -o "$T/o"
refused 6 "$MEM" "$CQ_BIN" -q eval --max-memory 1MiB --seqlen 128 "$TINY" "$CAL"
# the plan is an upper bound: a limit at the plan passes (rtn, eval; gptq/awq: a generous one)
expect 0 "$CQ_BIN" -q rtn --max-memory 1GiB "$TINY" -o "$T/q" && ok
expect 0 "$CQ_BIN" -q eval --max-memory 1GiB --seqlen 128 --max-windows 2 "$TINY" "$CAL" && ok
expect 0 "$CQ_BIN" -q "${GPTQ[@]}" --max-memory 1GiB "$TINY" "$CAL" -o "$T/g" && ok

# free space: refused before anything is written
for cmd in "rtn" "${GPTQ[*]}" "${AWQ[*]}"; do
    pos=("$TINY")
    [ "$cmd" = rtn ] || pos+=("$CAL")
    CQ_TEST_DISK_FREE=100000 refused 3 "not enough free space: the output needs about" \
        "$CQ_BIN" -q $cmd "${pos[@]}" -o "$T/o"
done
CQ_TEST_DISK_FREE=100000 refused 3 "not enough free space" "$CQ_BIN" -q dequant "$T/q" -o "$T/o"
CQ_TEST_DISK_FREE=1000 refused 3 "not enough free space" "$CQ_BIN" -q calib --samples 4 \
    --seqlen 64 -o "$T/o" "$TINY" "$CAL"
# and with room, the same commands write
CQ_TEST_DISK_FREE=1000000000 expect 0 "$CQ_BIN" -q dequant "$T/q" -o "$T/dq" && ok
CQ_TEST_DISK_FREE=1000000 expect 0 "$CQ_BIN" -q calib --samples 4 --seqlen 64 -o "$T/c.bin" \
    "$TINY" "$CAL" && ok

# batch --max-memory: each of --jobs N gets SIZE/N (here 2 MiB / 2 = 1 MiB); the refused job
# fails with the child's message; a limit is not part of the command line that decides "done"
cat >"$T/m.json" <<JSON
{"jobs": [{"name": "r", "method": "rtn", "model": "$TINY", "output": "$T/b1"}]}
JSON
expect 8 "$CQ_BIN" batch --json --jobs 2 --max-memory 2MiB "$T/m.json"
has "$T/out" 'exceeds --max-memory 1.0 MiB' "batch gives the job its share"
[ -e "$T/b1" ] && fail "batch job output left" || ok
expect 0 "$CQ_BIN" batch --json "$T/m.json" && ok
expect 0 "$CQ_BIN" batch --json --max-memory 1GiB "$T/m.json"
has "$T/out" '"skipped"' "a limit does not make a finished job stale"
finish
