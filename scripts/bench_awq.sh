#!/usr/bin/env bash
# AWQ scale-search time per layer: cquant against a PyTorch-CPU implementation of the same
# search (scripts/ref/awq_ref.py, AutoAWQ's _search_best_scale in f32), same model, same
# calibration ids, same layer, same thread count, in one invocation.
#   scripts/bench_awq.sh [MODEL_DIR] [N_SEQ] [SEQLEN] [LAYER] [THREADS]
# Defaults: ../shared/models/cq-llama-16m, 16 blocks of 512 tokens, layer 3, all cores.
# Needs a built tree in build/; PyTorch: Debian python3-torch (/usr/bin/python3).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
model=${1:-$root/../shared/models/cq-llama-16m}
nseq=${2:-16}
seqlen=${3:-512}
layer=${4:-3}
threads=${5:-$(nproc)}
lib=$root/build/src/libcquant_core.a
[ -f "$lib" ] || { echo "bench_awq: build first (missing $lib)" >&2; exit 2; }
bin=$(mktemp -d)/bench_awq
trap 'rm -rf "$(dirname "$bin")"' EXIT
cblas_inc=$(dirname "$(find /usr/include -name cblas.h -path '*openblas*' | head -1)")
cc -O2 -D_GNU_SOURCE -I "$root/include" -I "$cblas_inc" "$root/scripts/bench_awq.c" "$lib" \
  -llapacke -lopenblas -lcjson -lz -lm -lpthread -o "$bin"
echo "model=$model n_seq=$nseq seqlen=$seqlen layer=$layer threads=$threads cpu=\"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)\""
echo "== cquant (f32, OpenBLAS sgemm)"
OPENBLAS_NUM_THREADS=$threads "$bin" "$model" "$nseq" "$seqlen" "$layer" "$threads" | tee "$bin.c.txt"
py=/usr/bin/python3
if "$py" -c 'import torch' 2>/dev/null; then
  echo "== pytorch $("$py" -c 'import torch; print(torch.__version__)') (f32, CPU)"
  OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads MKL_NUM_THREADS=$threads \
    "$py" "$root/scripts/ref/awq_ref.py" "$model" "$nseq" "$seqlen" \
    "$layer" "$threads" | tee "$bin.py.txt"
  sum() { grep '^group=' "$1" | grep -o ' seconds=[0-9.]*' | cut -d= -f2 | paste -sd+ | bc; }
  c=$(sum "$bin.c.txt")
  p=$(sum "$bin.py.txt")
  echo "search seconds: cquant $c, pytorch $p, speedup $(echo "scale=2; $p / $c" | bc)x"
else
  echo "== pytorch: not installed (apt-get install python3-torch)"
fi
