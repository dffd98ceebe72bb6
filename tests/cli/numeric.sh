# Numeric faults (docs/reliability.md, "Numeric faults"), each through rtn, gptq and awq on the
# 1-layer hidden-64 checkpoint of tests/cli/hostile/gen.sh (q_proj at data offset 16640):
# NaN/Inf weights and calibration activations, all-zero and constant groups, a huge and a tiny
# dynamic range, and a Hessian that will not factor. Failures: exit 5, one line naming the
# layer/tensor, the --json error object, nothing at -o. Successes: the report's per-Linear
# zero_range_groups and, for gptq, the damping fields.
. "$(dirname "$0")/lib.sh"
G="$T/gen"
bash "$CQ_SRC/tests/cli/hostile/gen.sh" "$G/pat" >/dev/null 2>&1 || fail "gen.sh"
CQ_GEN_QFILL=zero bash "$CQ_SRC/tests/cli/hostile/gen.sh" "$G/zero" >/dev/null 2>&1
CQ_GEN_QFILL=const bash "$CQ_SRC/tests/cli/hostile/gen.sh" "$G/const" >/dev/null 2>&1
CAL="$G/pat/calib.bin"
Q=model.layers.0.self_attn.q_proj.weight

# poke SRC DST OFFSET BYTES: copy checkpoint SRC to DST with BYTES (printf escapes) written at
# data offset OFFSET of model.safetensors
poke() {
    cp -r "$1" "$2"
    local f="$2/model.safetensors" hl
    hl=$(od -An -tu8 -N8 "$f" | tr -d ' ')
    printf "$4" | dd of="$f" bs=1 seek=$((8 + hl + $3)) conv=notrunc 2>/dev/null
}
poke "$G/pat/base" "$T/actnan" 0 '\x00\x00\xc0\x7f'                         # token 0's embedding
poke "$G/pat/base" "$T/huge" 16640 '\xca\xf2\x49\x71\xca\xf2\x49\xf1'        # +-1e30 in q_proj
poke "$G/zero/base" "$T/tiny" 16640 '\x5f\x70\x89\x30'                       # 1e-9 in a zero group

# run METHOD MODEL [ARGS...]: cquant -q METHOD -g 32 ARGS MODEL [CALIB] -o $T/o --json
run() {
    local m=$1 model=$2
    shift 2
    rm -rf "$T/o"
    if [ "$m" = rtn ]; then
        "$CQ_BIN" -q "$m" -g 32 --json "$@" "$model" -o "$T/o" >"$T/out" 2>"$T/err"
    else
        "$CQ_BIN" -q "$m" -g 32 --json "$@" "$model" "$CAL" -o "$T/o" >"$T/out" 2>"$T/err"
    fi
    echo $?
}
# fails CODE REGEX METHOD MODEL [ARGS...]
fails() {
    local code=$1 re=$2 got
    shift 2
    got=$(run "$@")
    eq "$got" "$code" "exit of $*"
    eq "$(wc -l <"$T/err")" 1 "one stderr line: $*"
    has "$T/err" "^cquant: error: $re" "$*"
    has "$T/out" "\"exit_code\":[[:space:]]*$code" "--json error object: $*"
    [ -e "$T/o" ] && fail "output left: $*" || ok
}
# zrg METHOD: zero_range_groups of q_proj in $T/o's report
zrg() {
    tr -d '\n\t ' <"$T/o/cquant-report.json" | grep -o "\"name\":\"$Q\"[^}]*" |
        grep -o '"zero_range_groups":[0-9]*' | cut -d: -f2
}

for m in rtn gptq awq; do
    w="tensor '$Q': weight has a non-finite value"
    [ "$m" = rtn ] || w="layer 0 self_attn\.q_proj: weight has a non-finite value"
    fails 5 "$w at 4095" "$m" "$G/pat/nan"
    fails 5 "$w at 0" "$m" "$G/pat/inf"
    # a 1e30 range needs a scale of ~1e29: beyond f16, refused naming the tensor
    fails 5 ".*'$Q': scale inf is not finite in f16" "$m" "$T/huge"
    # all-zero and constant q_proj: quantized (64 rows x 2 groups, all zero-range), except that
    # awq's per-column scales make a constant group non-constant (its count is then 0)
    for k in zero const; do
        eq "$(run "$m" "$G/$k/base")" 0 "$m $k exit" && eq "$(zrg)" \
            "$([ "$m/$k" = awq/const ] && echo 0 || echo 128)" "$m $k zero_range_groups"
    done
    # 1e-9 in an all-zero group: the f16 scale underflows to 0, the value dequantizes to 0 and
    # the error is the value itself (bounded by the range)
    if [ "$(run "$m" "$T/tiny")" = 0 ]; then
        ok
        eq "$(zrg)" 127 "$m tiny zero_range_groups"
    else
        fail "$m tiny: $(cat "$T/err")"
    fi
done
# rtn copies tensors it does not quantize as they are (the embedding with a NaN included)
eq "$(run rtn "$T/actnan")" 0 "rtn, NaN in the embedding"
for m in gptq awq; do
    fails 5 "layer 0: non-finite calibration activations at the input of self_attn\.q_proj/" \
        "$m" "$T/actnan"
done
# gptq: damping 0 on 64 calibration tokens (of 32 distinct ids) leaves the Hessians singular;
# the first, k_proj's, does not factor and every retry fails (0 x 10 stays 0) -> exit 5; the
# default damping factors at the first try and is reported
fails 5 "layer 0 self_attn\.k_proj: hessian is not positive definite after 6 damping attempts" \
    gptq "$G/pat/base" --damp 0
eq "$(run gptq "$G/pat/base")" 0 "gptq default damping"
has "$T/o/cquant-report.json" '"damp_tries":[[:space:]]*1' "damp_tries reported"
has "$T/o/cquant-report.json" '"dead_columns":' "dead_columns reported"
finish
