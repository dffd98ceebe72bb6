#!/usr/bin/env bash
# Scale-out benchmark: wall time of `cquant gptq` (w4g128) in one process and under
# `mpirun -n 2`, one BLAS thread per rank, the peak RSS of every rank, and the bytes all ranks
# sent per layer (counted in cq_dist_*: Hessian tree, Hessians to their Linears' owners,
# quantized weights, the resume state's activations). Checks the two outputs are identical.
#
# usage: scripts/bench_mpi.sh [MODEL_DIR] [TEXT] [N...]   (default: cq-llama-tiny, the docs, 1 2)
# env:   CQ_BIN (default build/src/cquant, built with -DCQ_MPI=ON), SAMPLES (32), SEQLEN (512),
#        CHUNK (2048 tokens per Hessian block), MPIRUN (mpirun)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${CQ_BIN:-build/src/cquant}
MODEL=${1:-data/models/cq-llama-tiny}
TEXT=${2:-data/calib-docs.txt}
shift $(($# > 2 ? 2 : $#)) || true
NS=("$@")
[ ${#NS[@]} -gt 0 ] || NS=(1 2)
MPIRUN=${MPIRUN:-mpirun}
ROOT=()
[ "$(id -u)" = 0 ] && ROOT=(--allow-run-as-root)
export OPENBLAS_NUM_THREADS=1
OPTS=(gptq --bits 4 --group 128 --samples "${SAMPLES:-32}" --seqlen "${SEQLEN:-512}"
      --chunk-tokens "${CHUNK:-2048}" --force)
W=$(mktemp -d "${TMPDIR:-/tmp}/bench_mpi.XXXXXX")
trap 'rm -rf "$W"' EXIT
echo "model $MODEL, ${SAMPLES:-32} windows x ${SEQLEN:-512} tokens, blocks of ${CHUNK:-2048} tokens"
first=
for n in "${NS[@]}"; do
    t0=$(date +%s.%N)
    if [ "$n" = 1 ]; then
        /usr/bin/time -f "rank peak RSS %M KiB" "$BIN" "${OPTS[@]}" "$MODEL" "$TEXT" -o "$W/out$n" \
            >/dev/null 2>"$W/err$n"
    else
        "$MPIRUN" "${ROOT[@]}" --oversubscribe -n "$n" /usr/bin/time -f "rank peak RSS %M KiB" \
            "$BIN" "${OPTS[@]}" "$MODEL" "$TEXT" -o "$W/out$n" >/dev/null 2>"$W/err$n"
    fi
    t1=$(date +%s.%N)
    printf 'N=%s: wall %.1f s\n' "$n" "$(echo "$t1 - $t0" | bc)"
    grep -E "ranks sent|peak RSS" "$W/err$n" | sed 's/^/  /'
    if [ -z "$first" ]; then
        first=$n
    elif cmp -s "$W/out$first/model.safetensors" "$W/out$n/model.safetensors"; then
        echo "  output identical to N=$first"
    else
        echo "  OUTPUT DIFFERS from N=$first"
        exit 1
    fi
done
