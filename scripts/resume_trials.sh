#!/usr/bin/env bash
# kill -9 a `cquant gptq` run at random points, then finish it with --resume, N times; every
# resumed output must equal an uninterrupted run byte for byte (the report holds timings and the
# command line, so it is left out of the comparison).
# Usage: scripts/resume_trials.sh [N] [CQ_BIN] [MODEL] [CALIB]
set -u
N=${1:-20}
BIN=${2:-build/src/cquant}
MODEL=${3:-data/models/cq-llama-tiny}
CALIB=${4:-data/calib-docs.txt}
OPTS=(--bits 4 --group 128 --samples 32 --seqlen 512 -q)
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
digest() { (cd "$1" && sha256sum $(ls | grep -v cquant-report.json | sort)) | sha256sum | cut -c1-16; }
start=$(date +%s.%N)
"$BIN" gptq "${OPTS[@]}" "$MODEL" "$CALIB" -o "$W/ref" >/dev/null || exit 1
full=$(echo "$(date +%s.%N) - $start" | bc)
want=$(digest "$W/ref")
echo "uninterrupted run: ${full}s, digest $want"
fail=0 killed=0
for i in $(seq 1 "$N"); do
    rm -rf "$W/out" "$W/out.cquant-tmp"*
    delay=$(awk -v s="$RANDOM" -v f="$full" 'BEGIN{srand(s); printf "%.2f", rand()*f}')
    "$BIN" gptq "${OPTS[@]}" "$MODEL" "$CALIB" -o "$W/out" >/dev/null 2>&1 &
    pid=$!
    sleep "$delay"
    if kill -9 "$pid" 2>/dev/null; then killed=$((killed + 1)); fi
    wait "$pid" 2>/dev/null
    if [ -d "$W/out" ]; then
        got=$(digest "$W/out")     # the kill came after the rename: must be complete
    else
        "$BIN" gptq "${OPTS[@]}" --resume "$MODEL" "$CALIB" -o "$W/out" >/dev/null 2>"$W/err" ||
            { echo "trial $i: resume failed: $(head -1 "$W/err")"; fail=$((fail + 1)); continue; }
        got=$(digest "$W/out")
    fi
    [ "$got" = "$want" ] || { echo "trial $i (kill at ${delay}s): digest $got != $want"; fail=$((fail + 1)); }
    [ -z "$(ls -d "$W"/out.cquant-tmp* 2>/dev/null)" ] || { echo "trial $i: temporary left"; fail=$((fail + 1)); }
done
echo "$N trials, $killed killed mid-run, $fail failed"
[ "$fail" -eq 0 ]
