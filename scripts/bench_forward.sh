#!/usr/bin/env bash
# Forward-pass throughput of cquant's f32 runtime against the machine's sgemm peak and a
# PyTorch-CPU forward, same model, same ids, same thread count, in one invocation.
#   scripts/bench_forward.sh [MODEL_DIR] [N_WINDOWS] [SEQLEN] [THREADS]
# Defaults: ../shared/models/cq-llama-16m, 8 windows of 1024, all cores. Needs a built tree in
# build/ (cmake -S . -B build && cmake --build build); PyTorch (Debian python3-torch) is optional.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
model=${1:-$root/../shared/models/cq-llama-16m}
nw=${2:-8}
seqlen=${3:-1024}
threads=${4:-$(nproc)}
lib=$root/build/src/libcquant_core.a
[ -f "$lib" ] || { echo "bench_forward: build first (missing $lib)" >&2; exit 2; }
bin=$(mktemp -d)/bench_forward
trap 'rm -rf "$(dirname "$bin")"' EXIT
cblas_inc=$(dirname "$(find /usr/include -name cblas.h -path '*openblas*' | head -1)")
cc -O2 -D_GNU_SOURCE -I "$root/include" -I "$cblas_inc" "$root/scripts/bench_forward.c" "$lib" \
  -llapacke -lopenblas -lcjson -lz -lm -lpthread -o "$bin"
echo "model=$model windows=$nw seqlen=$seqlen threads=$threads cpu=\"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)\""
echo "== cquant (f32, OpenBLAS sgemm)"
OPENBLAS_NUM_THREADS=$threads "$bin" "$model" "$nw" "$seqlen"
py=/usr/bin/python3
if "$py" -c 'import torch' 2>/dev/null; then
  echo "== pytorch $("$py" -c 'import torch; print(torch.__version__)') (f32, CPU)"
  OMP_NUM_THREADS=$threads "$py" "$root/scripts/ref/torch_forward.py" "$model" "$nw" "$seqlen" "$threads"
else
  echo "== pytorch: not installed (apt-get install python3-torch)"
fi
