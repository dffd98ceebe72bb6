#!/usr/bin/env bash
# Benchmark `cquant rtn --bits 4 --group 128` on cq-llama-16m against `cp -r` of the same
# checkpoint, in one invocation: median of N runs each (warm page cache for both), plus the
# peak RSS of one rtn run (/usr/bin/time -v). Goals: time <= 2x copy; peak RSS <= 2x the
# largest tensor in f32 + 64 MB.
# usage: scripts/bench_rtn.sh [MODEL_DIR] [N]   (env CQ_BIN: the binary, default build/src/cquant)
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-../shared/models/cq-llama-16m}
N=${2:-5}
BIN=${CQ_BIN:-build/src/cquant}
[ -x "$BIN" ] || { echo "no binary at $BIN (build first)" >&2; exit 1; }
[ -d "$MODEL" ] || { echo "no model at $MODEL" >&2; exit 1; }
if [ ! -x /usr/bin/time ]; then
    echo "installing GNU time (for peak RSS)" >&2
    if [ "$(id -u)" = 0 ]; then apt-get install -y -qq time >/dev/null; else sudo apt-get install -y -qq time >/dev/null; fi
fi
W=$(mktemp -d "${TMPDIR:-/tmp}/cqbench.XXXXXX")
trap 'rm -rf "$W"' EXIT

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

cp -r "$MODEL" "$W/warm" && rm -rf "$W/warm"   # warm the page cache once for both
: >"$W/cp.txt"
: >"$W/rtn.txt"
# each line: wall user sys (seconds); CPU time is reported too because wall time on a shared,
# loaded machine mostly measures the other tenants
timed() { local out=$1; shift; /usr/bin/time -f "%e %U %S" -a -o "$out" "$@"; }
for i in $(seq "$N"); do
    timed "$W/cp.txt" cp -r "$MODEL" "$W/copy"; rm -rf "$W/copy"
    timed "$W/rtn.txt" "$BIN" -q rtn --bits 4 --group 128 "$MODEL" -o "$W/q" >/dev/null; rm -rf "$W/q"
done
cp_med=$(awk '{print $1}' "$W/cp.txt" | median)
rtn_med=$(awk '{print $1}' "$W/rtn.txt" | median)
cp_cpu=$(awk '{print $2 + $3}' "$W/cp.txt" | median)
rtn_cpu=$(awk '{print $2 + $3}' "$W/rtn.txt" | median)
ratio=$(awk "BEGIN {print $rtn_med / $cp_med}")

/usr/bin/time -v "$BIN" -q rtn --bits 4 --group 128 "$MODEL" -o "$W/q" >/dev/null 2>"$W/time.txt"
rss_kb=$(sed -nE 's/.*Maximum resident set size \(kbytes\): ([0-9]+).*/\1/p' "$W/time.txt")
# largest tensor, from inspect's "name DTYPE [d0, d1] bytes" lines
largest=$("$BIN" inspect "$MODEL" | sed -nE 's/^[^ ]+ +[A-Z0-9]+ +\[([0-9, ]*)\].*/\1/p' |
    awk -F', ' '{n=1; for (i=1;i<=NF;i++) n*=$i; if (n>m) m=n} END {print m}')
limit_kb=$(( (2 * largest * 4 + 64 * 1024 * 1024) / 1024 ))

printf 'model            %s\n' "$MODEL"
printf 'runs             %d each (median)\n' "$N"
printf 'cp -r            %.4f s\n' "$cp_med"
printf 'cquant rtn       %.4f s\n' "$rtn_med"
printf 'ratio            %.2f x copy (goal <= 2)\n' "$ratio"
printf 'CPU (user+sys)   cp %.3f s, rtn %.3f s (load average: %s)\n' "$cp_cpu" "$rtn_cpu" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf 'peak RSS         %d KiB (goal <= %d KiB = 2 x largest tensor f32 (%d elements) + 64 MiB)\n' \
    "$rss_kb" "$limit_kb" "$largest"
ok=1
awk "BEGIN {exit !($ratio <= 2)}" || { echo "time goal: MISSED"; ok=0; }
[ "$rss_kb" -le "$limit_kb" ] || { echo "memory goal: MISSED"; ok=0; }
[ $ok = 1 ] && echo "goals: met"
