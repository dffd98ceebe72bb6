#!/usr/bin/env bash
# GPTQ speed: cquant vs the PyTorch-CPU reference (scripts/ref/gptq_ref.py), in one invocation,
# same inputs, same thread count (OPENBLAS_NUM_THREADS, torch.set_num_threads, cfg.threads).
# Usage: scripts/bench_gptq.sh [threads] [shapes...]   shapes as ROWSxCOLS (W: out x in)
# Default shapes: 4096x4096 11008x4096 4096x11008. Needs build/src/libcquant_core.a and
# /usr/bin/python3 with torch (Debian: apt-get install python3-torch).
. "$(dirname "$0")/lib_bench.sh"
bench_init bench_gptq
threads=${1:-$(nproc)}
shift || true
shapes=("$@")
[ ${#shapes[@]} -gt 0 ] || shapes=(4096x4096 11008x4096 4096x11008)
ntok=2048
bench_cc "$work/gptq_bench" "$root/scripts/bench/gptq_bench.c" -O3 -std=c11
export OPENBLAS_NUM_THREADS=$threads OMP_NUM_THREADS=$threads
echo "threads=$threads cpu=$(bench_cpu) nproc=$(nproc)"
for s in "${shapes[@]}"; do
  rows=${s%x*} cols=${s#*x}
  echo "== W ${rows}x${cols} (out x in), ntok=$ntok, 4-bit g128 sym, block 128"
  "$work/gptq_bench" "$work" "$rows" "$cols" "$ntok" "$threads" | tee "$work/c.txt"
  "$py" "$root/scripts/ref/gptq_ref.py" "$work" "$rows" "$cols" "$ntok" "$threads" | tee "$work/p.txt"
  c=$(sed -n 's/^cq_total_s=//p' "$work/c.txt") p=$(sed -n 's/^ref_total_s=//p' "$work/p.txt")
  awk -v c="$c" -v p="$p" 'BEGIN { printf "speedup_vs_torch=%.2f\n", p / c }'
  rm -f "$work/x.f32" "$work/w.f32"
done
