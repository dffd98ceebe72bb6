#!/usr/bin/env bash
# GPTQ speed: cquant vs the PyTorch-CPU reference (scripts/ref/gptq_ref.py), in one invocation,
# same inputs, same thread count (OPENBLAS_NUM_THREADS, torch.set_num_threads, cfg.threads).
# Usage: scripts/bench_gptq.sh [threads] [shapes...]   shapes as ROWSxCOLS (W: out x in)
# Default shapes: 4096x4096 11008x4096 4096x11008. Needs build/src/libcquant_core.a and
# /usr/bin/python3 with torch (Debian: apt-get install python3-torch).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
threads=${1:-$(nproc)}
shift || true
shapes=("$@")
[ ${#shapes[@]} -gt 0 ] || shapes=(4096x4096 11008x4096 4096x11008)
ntok=2048
lib="$root/build/src/libcquant_core.a"
[ -f "$lib" ] || { echo "bench_gptq: build first (cmake --build build)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cblas_inc=/usr/include/x86_64-linux-gnu/openblas-pthread
cc -O3 -std=c11 -D_GNU_SOURCE -I"$root/include" -I"$root/tests" -I"$cblas_inc" \
  "$root/scripts/bench/gptq_bench.c" \
  "$lib" -llapacke -lopenblas -lpthread -lm -o "$work/gptq_bench"
export OPENBLAS_NUM_THREADS=$threads OMP_NUM_THREADS=$threads
echo "threads=$threads cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) nproc=$(nproc)"
for s in "${shapes[@]}"; do
  rows=${s%x*} cols=${s#*x}
  echo "== W ${rows}x${cols} (out x in), ntok=$ntok, 4-bit g128 sym, block 128"
  "$work/gptq_bench" "$work" "$rows" "$cols" "$ntok" "$threads" | tee "$work/c.txt"
  /usr/bin/python3 "$root/scripts/ref/gptq_ref.py" "$work" "$rows" "$cols" "$ntok" "$threads" | tee "$work/p.txt"
  c=$(sed -n 's/^cq_total_s=//p' "$work/c.txt") p=$(sed -n 's/^ref_total_s=//p' "$work/p.txt")
  awk -v c="$c" -v p="$p" 'BEGIN { printf "speedup_vs_torch=%.2f\n", p / c }'
  rm -f "$work/x.f32" "$work/w.f32"
done
