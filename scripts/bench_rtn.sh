#!/usr/bin/env bash
# Benchmark `cquant rtn --bits 4 --group 128` on cq-llama-16m against `cp -r` of the same
# checkpoint, in one invocation: median of N runs each, alternating (warm page cache for both:
# the input is read once before timing), the ratio, and the peak RSS of the rtn runs
# (/usr/bin/time). Three rtn figures: the default (the output is fsynced before it is renamed
# into place: durable on power loss; the input digests come from the digest cache, which an
# untimed first run fills, as the first cat fills the page cache); the first run on a
# checkpoint (no digest cache: every shard is hashed, CQ_DIGEST_CACHE=off); and --no-sync
# (rename only, like cp: safe if cquant is killed, not on power loss). The goal is checked on
# the default; the first-run figure is printed beside it. Goals: time <= 2x copy; peak RSS <= 2x the largest tensor in f32 + 64 MB,
# independent of the number of layers: checked by quantizing single shards of the same model
# (same dims, different numbers of Linears) and comparing their peak RSS.
# usage: scripts/bench_rtn.sh [MODEL_DIR] [N]   (env CQ_BIN: the binary, default build/src/cquant)
set -euo pipefail
export LC_ALL=C   # decimal points in EPOCHREALTIME and awk
cd "$(dirname "$0")/.."
MODEL=${1:-../shared/models/cq-llama-16m}
N=${2:-7}
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
# one line per run: wall user sys maxrss_kb. Wall from bash's microsecond clock (time's %e has
# 10 ms steps, a third of a copy); CPU time is reported too because wall time on a shared,
# loaded machine mostly measures the other tenants.
timed() {
    local out=$1 s e; shift
    s=$EPOCHREALTIME
    /usr/bin/time -f "%U %S %M" -o "$W/t1" "$@"
    e=$EPOCHREALTIME
    echo "$(awk -v s="$s" -v e="$e" 'BEGIN {printf "%.6f", e - s}') $(cat "$W/t1")" >>"$out"
}
RTN=("$BIN" -q rtn --bits 4 --group 128)
NOSYNC=("$BIN" -q rtn --bits 4 --group 128 --no-sync)

export CQ_DIGEST_CACHE=$W/digests # this run's own cache: nothing from earlier runs
cat "$MODEL"/* >/dev/null   # warm the page cache once for both
"${RTN[@]}" "$MODEL" -o "$W/q" >/dev/null; rm -rf "$W/q" # and the digest cache
: >"$W/cp.txt"
: >"$W/rtn.txt"
: >"$W/cold.txt"
: >"$W/nosync.txt"
for i in $(seq "$N"); do
    timed "$W/cp.txt" cp -r "$MODEL" "$W/copy"; rm -rf "$W/copy"
    timed "$W/rtn.txt" "${RTN[@]}" "$MODEL" -o "$W/q" >/dev/null; rm -rf "$W/q"
    CQ_DIGEST_CACHE=off timed "$W/cold.txt" "${RTN[@]}" "$MODEL" -o "$W/q" >/dev/null
    rm -rf "$W/q"
    timed "$W/nosync.txt" "${NOSYNC[@]}" "$MODEL" -o "$W/q" >/dev/null; rm -rf "$W/q"
done
cp_med=$(awk '{print $1}' "$W/cp.txt" | median)
rtn_med=$(awk '{print $1}' "$W/rtn.txt" | median)
cp_cpu=$(awk '{print $2 + $3}' "$W/cp.txt" | median)
rtn_cpu=$(awk '{print $2 + $3}' "$W/rtn.txt" | median)
rtn_user=$(awk '{print $2}' "$W/rtn.txt" | median)
rtn_sys=$(awk '{print $3}' "$W/rtn.txt" | median)
ratio=$(awk "BEGIN {print $rtn_med / $cp_med}")
cold_med=$(awk '{print $1}' "$W/cold.txt" | median)
cold_cpu=$(awk '{print $2 + $3}' "$W/cold.txt" | median)
cold_ratio=$(awk "BEGIN {print $cold_med / $cp_med}")
ns_med=$(awk '{print $1}' "$W/nosync.txt" | median)
ns_cpu=$(awk '{print $2 + $3}' "$W/nosync.txt" | median)
ns_ratio=$(awk "BEGIN {print $ns_med / $cp_med}")
rss_kb=$(awk '{if ($4 > m) m = $4} END {print m}' "$W/rtn.txt")

# largest tensor, from inspect's "name DTYPE [d0, d1] bytes" lines
largest() {
    "$BIN" inspect "$1" | sed -nE 's/^[^ ]+ +[A-Z0-9]+ +\[([0-9, ]*)\].*/\1/p' |
        awk -F', ' '{n=1; for (i=1;i<=NF;i++) n*=$i; if (n>m) m=n} END {print m}'
}
big=$(largest "$MODEL")
limit_kb=$(( (2 * big * 4 + 64 * 1024 * 1024) / 1024 ))

printf 'model            %s\n' "$MODEL"
printf 'runs             %d each (median, alternating)\n' "$N"
printf 'cp -r            %.4f s wall, %.3f s CPU\n' "$cp_med" "$cp_cpu"
printf 'cquant rtn       %.4f s wall, %.3f s CPU (user %.3f, sys %.3f)\n' "$rtn_med" "$rtn_cpu" \
    "$rtn_user" "$rtn_sys"
printf 'rtn, first run   %.4f s wall, %.3f s CPU (no digest cache: sha256 of every shard)\n' \
    "$cold_med" "$cold_cpu"
printf 'rtn --no-sync    %.4f s wall, %.3f s CPU\n' "$ns_med" "$ns_cpu"
printf 'ratio            %.2f x copy (goal <= 2)   first run %.2f x   --no-sync %.2f x   load average: %s\n' \
    "$ratio" "$cold_ratio" "$ns_ratio" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf 'peak RSS         %d KiB (max of %d runs; goal <= %d KiB = 2 x largest tensor in f32 ' \
    "$rss_kb" "$N" "$limit_kb"
printf '(%d elements, %d KiB) + 64 MiB)\n' "$big" $((big * 4 / 1024))
ok=1
awk "BEGIN {exit !($ratio <= 2)}" || { echo "time goal: MISSED"; ok=0; }
[ "$rss_kb" -le "$limit_kb" ] || { echo "memory goal: MISSED"; ok=0; }

# Layer-count independence: the same model's shards hold the same shapes but different numbers
# of Linears; peak RSS should not grow with that number.
shards=$(ls "$MODEL"/*.safetensors 2>/dev/null | grep -v reference || true)
if [ "$(echo "$shards" | grep -c .)" -ge 2 ]; then
    lo_rss=; hi_rss=; lo_n=; hi_n=
    for f in $shards; do
        n=$("$BIN" inspect "$f" | grep -cE '_proj\.weight|fc[12]?\.weight|dense.*\.weight' || true)
        : >"$W/one.txt"
        timed "$W/one.txt" "${RTN[@]}" "$f" -o "$W/s" >/dev/null; rm -rf "$W/s"
        r=$(awk '{print $4}' "$W/one.txt")
        printf 'shard            %s: %d Linears, peak RSS %d KiB\n' "$(basename "$f")" "$n" "$r"
        if [ -z "$lo_n" ] || [ "$n" -lt "$lo_n" ]; then lo_n=$n; lo_rss=$r; fi
        if [ -z "$hi_n" ] || [ "$n" -gt "$hi_n" ]; then hi_n=$n; hi_rss=$r; fi
    done
    # 4 MiB of slack: page-cache and allocator noise, far below one Linear's f32 buffer here
    if [ "$hi_rss" -le $((lo_rss + 4096)) ]; then
        echo "layer count      RSS flat: $hi_n Linears $hi_rss KiB vs $lo_n Linears $lo_rss KiB"
    else
        echo "layer count      RSS grows: $hi_n Linears $hi_rss KiB vs $lo_n Linears $lo_rss KiB: MISSED"
        ok=0
    fi
fi
[ $ok = 1 ] && echo "goals: met"
exit 0
