#!/usr/bin/env bash
# AWQ scale-search time per layer: cquant against a PyTorch-CPU implementation of the same
# search (scripts/ref/awq_ref.py, AutoAWQ's _search_best_scale in f32), same model, same
# calibration ids, same layer, same thread count, in one invocation.
#   scripts/bench_awq.sh [MODEL_DIR] [N_SEQ] [SEQLEN] [LAYER] [THREADS]
# Defaults: ../shared/models/cq-llama-16m, 16 blocks of 512 tokens, layer 3, all cores.
# Needs a built tree in build/; PyTorch: Debian python3-torch (/usr/bin/python3).
. "$(dirname "$0")/lib_bench.sh"
bench_init bench_awq
model=${1:-$root/../shared/models/cq-llama-16m}
nseq=${2:-16}
seqlen=${3:-512}
layer=${4:-3}
threads=${5:-$(nproc)}
bench_build bench_awq
bench_header "model=$model n_seq=$nseq seqlen=$seqlen layer=$layer threads=$threads"
OPENBLAS_NUM_THREADS=$threads "$bin" "$model" "$nseq" "$seqlen" "$layer" "$threads" | tee "$work/c.txt"
if bench_have_torch; then
  OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads MKL_NUM_THREADS=$threads \
    "$py" "$root/scripts/ref/awq_ref.py" "$model" "$nseq" "$seqlen" \
    "$layer" "$threads" | tee "$work/py.txt"
  sum() { grep '^group=' "$1" | grep -o ' seconds=[0-9.]*' | cut -d= -f2 | paste -sd+ | bc; }
  c=$(sum "$work/c.txt")
  p=$(sum "$work/py.txt")
  echo "search seconds: cquant $c, pytorch $p, speedup $(echo "scale=2; $p / $c" | bc)x"
fi
