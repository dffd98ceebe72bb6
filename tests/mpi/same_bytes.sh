# mpirun -n 2 / -n 4 give the bytes of one process (GPTQ w4g128, AWQ, RTN), eval the same NLL
# total, a rank that dies fails the job without output, and --resume continues it with another
# number of ranks, again with the same bytes; OPT and an MoE AWQ likewise, MoE GPTQ refused.
# Registered only with -DCQ_MPI=ON (ctest mpi.*).
# Model: data/models/cq-llama-tiny; CQ_MPI_MODEL=DIR picks another (ctest mpi.same_bytes_16m
# runs it on ../shared's cq-llama-16m, the issue's model; docs/scale-out.md has its numbers).
. "$(dirname "$0")/../cli/lib.sh"
: "${CQ_MPIRUN:?CQ_MPIRUN is not set}"
export OPENBLAS_NUM_THREADS=1 OMPI_MCA_rmaps_base_oversubscribe=1
ROOT=()
[ "$(id -u)" = 0 ] && ROOT=(--allow-run-as-root)
mpi() { local n=$1; shift; "$CQ_MPIRUN" "${ROOT[@]}" --oversubscribe -n "$n" "$@"; }
MODEL="${CQ_MPI_MODEL:-$TINY}"
[ -f "$MODEL/config.json" ] || { echo "FAIL: no model at '$MODEL' (CQ_MPI_MODEL)" >&2; exit 1; }
TEXT="$CQ_SRC/data/calib-docs.txt"
# 8 Hessian blocks of 2 windows: shares of 8, 4 and 2 blocks, and the tree across ranks
G=(gptq --bits 4 --group 128 --samples 16 --seqlen 128 --chunk-tokens 256)
A=(awq --calib-block 128 --calib-docs 8)

same() { # same A B: identical files
    if cmp -s "$1" "$2"; then ok; else fail "$1 and $2 differ"; fi
}

expect 0 "$CQ_BIN" -q "${G[@]}" "$MODEL" "$TEXT" -o "$T/g1"
for n in 2 4; do
    expect 0 mpi "$n" "$CQ_BIN" -q "${G[@]}" "$MODEL" "$TEXT" -o "$T/g$n"
    same "$T/g1/model.safetensors" "$T/g$n/model.safetensors"
    same "$T/g1/quantize_config.json" "$T/g$n/quantize_config.json"
done

expect 0 "$CQ_BIN" -q "${A[@]}" "$MODEL" "$TEXT" -o "$T/a1"
for n in 2 4; do
    expect 0 mpi "$n" "$CQ_BIN" -q "${A[@]}" "$MODEL" "$TEXT" -o "$T/a$n"
    same "$T/a1/model.safetensors" "$T/a$n/model.safetensors"
done

expect 0 "$CQ_BIN" -q rtn --bits 4 --group 128 "$MODEL" -o "$T/r1"
expect 0 mpi 2 "$CQ_BIN" -q rtn --bits 4 --group 128 "$MODEL" -o "$T/r2"
same "$T/r1/model.safetensors" "$T/r2/model.safetensors"

# batch (not split): rank 0 runs its jobs as single processes
printf '{"jobs": [{"name": "r", "method": "rtn", "model": "%s", "output": "%s"}]}\n' \
    "$MODEL" "$T/rb" >"$T/m.json"
expect 0 mpi 2 "$CQ_BIN" -q batch "$T/m.json"
same "$T/r1/model.safetensors" "$T/rb/model.safetensors"

# eval: one line on stdout (rank 0), the NLL total to the last bit
E=(eval --json --seqlen 128 --max-windows 7 "$MODEL" "$TEXT")
expect 0 "$CQ_BIN" -q "${E[@]}"
grep '"nll_sum"' "$T/out" >"$T/e1"
expect 0 mpi 3 "$CQ_BIN" -q "${E[@]}"
grep '"nll_sum"' "$T/out" >"$T/e3"
[ -s "$T/e1" ] && same "$T/e1" "$T/e3"
[ "$(grep -c '"nll_sum"' "$T/out")" = 1 ] && ok || fail "eval printed more than once"

# rank 1 dies after layer 2: the job fails, nothing at the output path; --resume with 3 ranks
CQ_TEST_DIE_AFTER_LAYER=1 CQ_TEST_DIE_RANK=1 mpi 2 "$CQ_BIN" -q "${G[@]}" "$MODEL" "$TEXT" \
    -o "$T/gk" >"$T/out" 2>"$T/err"
[ $? -ne 0 ] && ok || fail "a dead rank did not fail the job"
[ ! -e "$T/gk" ] && ok || fail "a failed job left $T/gk"
expect 0 mpi 3 "$CQ_BIN" "${G[@]}" --resume "$MODEL" "$TEXT" -o "$T/gk"
grep -q "resuming after layer" "$T/err" && ok || fail "--resume did not resume"
same "$T/g1/model.safetensors" "$T/gk/model.safetensors"
[ ! -e "$T/gk.cquant-tmp" ] && ok || fail "the temporary folder stayed"

# rank 0 killed between hidden.2.f32 and the state.json that names it (the fuzz finding): the
# resume with 3 ranks reads hidden.1.f32, the input of layer 1, and gives the same bytes
CQ_TEST_DIE_BEFORE_STATE=1 mpi 2 "$CQ_BIN" -q "${G[@]}" "$MODEL" "$TEXT" -o "$T/gb" \
    >"$T/out" 2>"$T/err"
[ $? -ne 0 ] && ok || fail "CQ_TEST_DIE_BEFORE_STATE did not fail the job"
[ -f "$T/gb.cquant-tmp/.cquant-gptq/hidden.1.f32" ] && ok || fail "hidden.1.f32 missing"
expect 0 mpi 3 "$CQ_BIN" "${G[@]}" --resume "$MODEL" "$TEXT" -o "$T/gb"
grep -q "resuming after layer 1 " "$T/err" && ok || fail "--resume did not resume after layer 1"
same "$T/g1/model.safetensors" "$T/gb/model.safetensors"

# other architectures (tests/data/arch): OPT (learned positions through cq_embed_seqs) splits
# its 4 Hessian blocks over 2 ranks; AWQ of an MoE model runs its expert part whole on every
# rank; GPTQ of an MoE model is refused (expert Hessians need every rank's routed tokens)
ARCH="$CQ_SRC/tests/data/arch"
O=(gptq --group 32 --samples 4 --seqlen 32 --chunk-tokens 32 "$ARCH/opt" "$TEXT")
expect 0 "$CQ_BIN" -q "${O[@]}" -o "$T/o1"
expect 0 mpi 2 "$CQ_BIN" -q "${O[@]}" -o "$T/o2"
same "$T/o1/model.safetensors" "$T/o2/model.safetensors"
Q=(awq --group 32 --calib-block 32 --calib-mode split --grid 5 "$ARCH/qwen2moe" "$ARCH/text.txt")
expect 0 "$CQ_BIN" -q "${Q[@]}" -o "$T/q1"
expect 0 mpi 2 "$CQ_BIN" -q "${Q[@]}" -o "$T/q2"
same "$T/q1/model.safetensors" "$T/q2/model.safetensors"
expect 4 mpi 2 "$CQ_BIN" -q gptq --group 32 --samples 4 --seqlen 32 "$ARCH/mixtral" \
    "$ARCH/text.txt" -o "$T/mx"
eq "$(grep -c '^cquant: error: .*mixture-of-experts model under mpirun is not supported' \
    "$T/err")" 1 "gptq moe under mpirun: one refusal line"
[ ! -e "$T/mx" ] && [ ! -e "$T/mx.cquant-tmp" ] && ok || fail "the refused job left output"

echo "$CHECKS passed, $FAILS failed"
[ "$FAILS" -eq 0 ]
