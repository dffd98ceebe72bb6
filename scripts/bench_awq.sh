#!/usr/bin/env bash
# AWQ scale-search time per layer: cquant against a PyTorch-CPU implementation of the same
# search (scripts/ref/awq_ref.py, AutoAWQ's _search_best_scale in f32), same model, same
# calibration ids, same layer, same thread count, in one invocation. The two alternate
# (cquant, pytorch, cquant, pytorch, ...) for ROUNDS rounds so that a change in the load of a
# shared machine hits both; each round's ratio is printed, then the median, with the load
# average before and after. cquant's lines carry the GFLOP of each search and GFLOP/s.
#   scripts/bench_awq.sh [MODEL_DIR] [N_SEQ] [SEQLEN] [LAYER] [THREADS] [ROUNDS]
# Defaults: ../shared/models/cq-llama-16m, 8 blocks of 512 tokens (the AutoAWQ-protocol
# calibration of calib-debian-docs.txt), layer 3, all cores, 3 rounds.
# Needs a built tree in build/; PyTorch: Debian python3-torch (/usr/bin/python3).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
model=${1:-$root/../shared/models/cq-llama-16m}
nseq=${2:-8}
seqlen=${3:-512}
layer=${4:-3}
threads=${5:-$(nproc)}
rounds=${6:-3}
lib=$root/build/src/libcquant_core.a
[ -f "$lib" ] || { echo "bench_awq: build first (missing $lib)" >&2; exit 2; }
py=/usr/bin/python3
"$py" -c 'import torch' 2>/dev/null || { echo "bench_awq: $py has no torch (apt-get install python3-torch)" >&2; exit 2; }
bin=$(mktemp -d)/bench_awq
trap 'rm -rf "$(dirname "$bin")"' EXIT
cblas_inc=$(dirname "$(find /usr/include -name cblas.h -path '*openblas*' | head -1)")
cc -O2 -D_GNU_SOURCE -I "$root/include" -I "$cblas_inc" "$root/scripts/bench_awq.c" "$lib" \
  -llapacke -lopenblas -lcjson -lz -lm -lpthread -o "$bin"
echo "model=$model n_seq=$nseq seqlen=$seqlen layer=$layer threads=$threads rounds=$rounds cpu=\"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)\" torch=$("$py" -c 'import torch; print(torch.__version__)')"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
sum() { grep '^group=' "$1" | grep -o ' seconds=[0-9.]*' | cut -d= -f2 | paste -sd+ | bc; }
ratios=()
for r in $(seq 1 "$rounds"); do
  OPENBLAS_NUM_THREADS=$threads "$bin" "$model" "$nseq" "$seqlen" "$layer" "$threads" >"$bin.c.txt"
  OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads MKL_NUM_THREADS=$threads \
    "$py" "$root/scripts/ref/awq_ref.py" "$model" "$nseq" "$seqlen" "$layer" "$threads" >"$bin.py.txt"
  echo "== round $r: cquant (f32, OpenBLAS sgemm)"
  grep '^group=' "$bin.c.txt"
  echo "== round $r: pytorch (f32, CPU)"
  cat "$bin.py.txt"
  c=$(sum "$bin.c.txt")
  p=$(sum "$bin.py.txt")
  x=$(echo "scale=2; $p / $c" | bc)
  ratios+=("$x")
  echo "round $r: search seconds cquant $c, pytorch $p, speedup ${x}x (load $(cut -d' ' -f1 /proc/loadavg))"
done
med=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
echo "speedups: ${ratios[*]}; median ${med}x; load after: $(cut -d' ' -f1-3 /proc/loadavg)"
