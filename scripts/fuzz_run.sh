#!/usr/bin/env bash
# Time-boxed libFuzzer run of one target, its corpus merged back afterwards.
#   scripts/fuzz_run.sh [-b BUILD_FUZZ] [-t SECONDS] [-w WORKDIR] TARGET
# BUILD_FUZZ: a CQ_FUZZ=ON build (default build-fuzz); TARGET: safetensors, index, config,
# tokenizer, calib, stats. Works on a copy of tests/fuzz/corpus/TARGET (libFuzzer adds files),
# with tests/fuzz/TARGET.dict when present, -max_len=4096, nice 19, one process. A crash stops
# libFuzzer: the run restarts (up to 5 times) for the time left, so one finding does not end
# the session; crashers stay in WORKDIR/TARGET/crash-*. At the end the new inputs that add
# coverage are merged into the committed corpus (-merge=1) and one summary line is printed:
#   TARGET seconds=S execs=N cov=C ft=F crashes=K
set -u
B=build-fuzz T=600 W=${TMPDIR:-/tmp}/cqfuzz-run
while getopts b:t:w: o; do
    case $o in
    b) B=$OPTARG ;;
    t) T=$OPTARG ;;
    w) W=$OPTARG ;;
    *) exit 2 ;;
    esac
done
shift $((OPTIND - 1))
name=${1:?target}
SRC=$(cd "$(dirname "$0")/.." && pwd)
bin=$B/tests/fuzz_$name
[ -x "$bin" ] || { echo "no $bin (build with -DCQ_FUZZ=ON)" >&2; exit 2; }
d=$W/$name
mkdir -p "$d/corpus"
cp -n "$SRC/tests/fuzz/corpus/$name/"* "$d/corpus/" 2>/dev/null
dict=()
[ -f "$SRC/tests/fuzz/$name.dict" ] && dict=(-dict="$SRC/tests/fuzz/$name.dict")
end=$((SECONDS + T)) execs=0 cov=0 ft=0 crashes=0 run=0
while [ $SECONDS -lt $end ] && [ $run -lt 6 ]; do
    run=$((run + 1))
    nice -n 19 "$bin" -max_len=4096 -max_total_time=$((end - SECONDS)) -print_final_stats=1 \
        -artifact_prefix="$d/" "${dict[@]}" "$d/corpus" >"$d/log.$run" 2>&1
    rc=$?
    e=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$d/log.$run" | grep -o '[0-9]*$')
    execs=$((execs + ${e:-0}))
    l=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+' "$d/log.$run" | tail -1)
    [ -n "$l" ] && { cov=$(echo "$l" | awk '{print $2}'); ft=$(echo "$l" | awk '{print $4}'); }
    [ $rc -ne 0 ] && crashes=$((crashes + 1))
done
# keep only inputs that add coverage to the committed corpus
"$bin" -merge=1 "$SRC/tests/fuzz/corpus/$name" "$d/corpus" >"$d/merge.log" 2>&1
echo "$name seconds=$T execs=$execs cov=$cov ft=$ft crashes=$crashes"
