#!/usr/bin/env bash
# Forward-pass throughput of cquant's f32 runtime against the machine's sgemm peak and a
# PyTorch-CPU forward, same model, same ids, same thread count, in one invocation.
#   scripts/bench_forward.sh [MODEL_DIR] [N_WINDOWS] [SEQLEN] [THREADS]
# Defaults: ../shared/models/cq-llama-16m, 8 windows of 1024, all cores. Needs a built tree in
# build/ (cmake -S . -B build && cmake --build build); PyTorch (Debian python3-torch) is optional.
. "$(dirname "$0")/lib_bench.sh"
bench_init bench_forward
model=${1:-$root/../shared/models/cq-llama-16m}
nw=${2:-8}
seqlen=${3:-1024}
threads=${4:-$(nproc)}
bench_build bench_forward
bench_header "model=$model windows=$nw seqlen=$seqlen threads=$threads"
OPENBLAS_NUM_THREADS=$threads "$bin" "$model" "$nw" "$seqlen"
if bench_have_torch; then
  OMP_NUM_THREADS=$threads "$py" "$root/scripts/ref/torch_forward.py" "$model" "$nw" "$seqlen" "$threads"
fi
