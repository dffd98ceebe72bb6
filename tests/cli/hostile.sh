# Hostile inputs against every command that reads a checkpoint (inspect, rtn, awq, dequant): crafted
# by tests/cli/hostile/gen.sh (containers, shapes, offsets, indexes, symlinks, FIFOs, NaN/Inf,
# configs) plus corrupted quantized checkpoints made here for dequant. Each failing run must give
# exactly one stderr line "cquant: error: ..." matching the case's regex (file/tensor named), the
# documented exit code, no sanitizer report (it would add lines), nothing at -o and no temporary
# folder. Also: all-zero and constant weight groups quantize to the documented values.
. "$(dirname "$0")/lib.sh"

GEN="$(dirname "$0")/hostile/gen.sh"
bash "$GEN" "$T/h" || { fail "generator failed"; finish; }
O="$T/outs"
mkdir -p "$O"
RUNS=0

# run_case NAME WANT REGEX CMD...: the command's output folder is $O/o.
run_case() {
    local name=$1 want=$2 rx=$3
    shift 3
    rm -rf "$O/o"
    RUNS=$((RUNS + 1))
    timeout -s KILL 120 "$@" </dev/null >"$T/out" 2>"$T/err"
    local got=$? lines
    lines=$(wc -l <"$T/err")
    if [ "$got" -ne "$want" ]; then
        fail "$name: exit $got (want $want): ${*:2}"
        head -3 "$T/err" | sed 's/^/  stderr: /' >&2
    else
        ok
    fi
    if [ "$want" -ne 0 ]; then
        local want_lines=1
        [ "$want" -eq 2 ] && want_lines=2 # usage errors add "see 'cquant CMD --help'"
        [ "$lines" -eq "$want_lines" ] && ok || { fail "$name: $lines stderr lines"; head -5 "$T/err" >&2; }
        grep -Eq -- "^cquant: error: .*$rx" "$T/err" && ok ||
            fail "$name: stderr '$(head -c 300 "$T/err")' does not match /$rx/"
        [ ! -e "$O/o" ] && ok || fail "$name: output left at -o"
    fi
    local tmp
    tmp=$(find "$O" "$T/h" -name '*.cquant-tmp*' -o -name '*.cquant-old*' 2>/dev/null | head -1)
    [ -z "$tmp" ] && ok || fail "$name: temporary left: $tmp"
}

N=0
while IFS='|' read -r name path want_inspect want_rtn rx want_awq awq_rx; do
    N=$((N + 1))
    run_case "$name/inspect" "$want_inspect" "$rx" "$CQ_BIN" inspect "$path"
    run_case "$name/rtn" "$want_rtn" "$rx" "$CQ_BIN" -q rtn -g 32 "$path" -o "$O/o"
    run_case "$name/awq" "$want_awq" "$awq_rx" "$CQ_BIN" -q awq -g 32 "$path" "$T/h/calib.bin" -o "$O/o"
    # float inputs are never valid for dequant: an input error (the parse error or "not
    # quantized"), or the I/O error for unreadable files
    want_dq=4
    [ "$want_inspect" -eq 3 ] && want_dq=3
    run_case "$name/dequant" "$want_dq" "" "$CQ_BIN" -q dequant "$path" -o "$O/o"
done <"$T/h/cases.txt"
[ "$N" -ge 30 ] && ok || fail "only $N generated cases"

# ---- corrupted quantized checkpoints (dequant) ----
Q="$T/q"
expect 0 "$CQ_BIN" -q rtn -g 32 "$T/h/base" -o "$Q"
# qcopy NAME: a fresh copy of the valid quantized checkpoint in $T/dq/NAME
qcopy() { rm -rf "$T/dq/$1" && mkdir -p "$T/dq" && cp -r "$Q" "$T/dq/$1" && echo "$T/dq/$1"; }
# subst DIR FILE FROM TO: same-length byte substitution (header offsets stay valid)
subst() { LC_ALL=C sed -i "s/$3/$4/" "$1/$2"; }
QP='model\.layers\.0\.self_attn\.q_proj'
DQ=0
dq_case() { # NAME WANT REGEX DIR
    DQ=$((DQ + 1))
    run_case "dq_$1" "$2" "$3" "$CQ_BIN" -q dequant "$4" -o "$O/o"
    run_case "dq_$1/inspect" 0 "" "$CQ_BIN" inspect "$4"
}
d=$(qcopy ok) && run_case dq_valid 0 "" "$CQ_BIN" -q dequant "$d" -o "$O/o"
d=$(qcopy no_qzeros) && subst "$d" model.safetensors 'q_proj\.qzeros"' 'q_proj.qzerox"'
dq_case no_qzeros 4 "q_proj" "$d"
d=$(qcopy scales_i16) && subst "$d" model.safetensors 'q_proj\.scales":{"dtype":"F16"' 'q_proj.scales":{"dtype":"I16"'
dq_case scales_dtype 4 "q_proj" "$d"
d=$(qcopy qweight_f32) && subst "$d" model.safetensors 'q_proj\.qweight":{"dtype":"I32"' 'q_proj.qweight":{"dtype":"F32"'
dq_case qweight_dtype 4 "q_proj" "$d"
d=$(qcopy qzeros_shape) && subst "$d" model.safetensors 'q_proj\.qzeros":{"dtype":"I32","shape":\[2,8\]' 'q_proj.qzeros":{"dtype":"I32","shape":[8,2]'
dq_case qzeros_shape 4 "q_proj" "$d"
d=$(qcopy gidx_range)
hl=$(od -An -tu8 -N8 "$d/model.safetensors" | tr -d ' ')
goff=$(head -c $((8 + hl)) "$d/model.safetensors" | grep -ao "$QP\.g_idx\":{[^}]*}" | grep -o 'data_offsets":\[[0-9]*' | grep -o '[0-9]*$')
printf '\xff\xff\xff\x7f' | dd of="$d/model.safetensors" bs=1 seek=$((8 + hl + goff + 8)) conv=notrunc status=none
dq_case g_idx_out_of_range 4 "q_proj" "$d"
d=$(qcopy bits5) && LC_ALL=C sed -i 's/"bits":\t4/"bits":\t5/' "$d/config.json"
dq_case bits_5 4 "config\.json|bits" "$d"
d=$(qcopy method) && LC_ALL=C sed -i 's/"quant_method":\t"gptq"/"quant_method":\t"gpt0"/' "$d/config.json"
dq_case unknown_method 4 "config\.json.*quantization_config" "$d"
d=$(qcopy group) && LC_ALL=C sed -i 's/"group_size":\t32/"group_size":\t48/' "$d/config.json"
dq_case group_mismatch 4 "qzeros|group" "$d"
d=$(qcopy qcfg_type) && LC_ALL=C sed -i 's/"quantization_config":\t{/"quantization_config": 7, "x":\t{/' "$d/config.json"
dq_case qcfg_not_object 4 "config\.json|quantization_config" "$d"
d=$(qcopy trunc) && truncate -s -100 "$d/model.safetensors"
DQ=$((DQ + 1))
run_case dq_truncated 4 "model\.safetensors" "$CQ_BIN" -q dequant "$d" -o "$O/o"

# ---- defined behaviour for degenerate groups (docs/reliability.md) ----
# f32_at FILE TENSOR INDEX: element INDEX of an F32 tensor, printed with %.9g
f32_at() {
    local hl off
    hl=$(od -An -tu8 -N8 "$1" | tr -d ' ')
    off=$(head -c $((8 + hl)) "$1" | grep -ao "\"$2\":{[^}]*}" | grep -o 'data_offsets":\[[0-9]*' | grep -o '[0-9]*$')
    od -An -tf4 -j $((8 + hl + off + 4 * $3)) -N4 "$1" | tr -d ' '
}
# q_proj all zero, or all 0.5 (every group constant), through rtn and dequant.
for kind in zero const; do
    rm -rf "$T/deg"
    mkdir -p "$T/deg"
    CQ_GEN_QFILL=$kind bash "$GEN" "$T/deg" >/dev/null
    for sym in --sym --asym; do
        fmt=gptq
        [ $sym = --asym ] && fmt=awq
        rm -rf "$T/dg" "$T/dgd"
        expect 0 "$CQ_BIN" -q rtn -g 32 $sym -f $fmt "$T/deg/base" -o "$T/dg" &&
            expect 0 "$CQ_BIN" -q dequant "$T/dg" -o "$T/dgd" || continue
        v0=$(f32_at "$T/dgd/model.safetensors" model.layers.0.self_attn.q_proj.weight 0)
        v1=$(f32_at "$T/dgd/model.safetensors" model.layers.0.self_attn.q_proj.weight 4095)
        # f16 scale of 0.5/15 is 1092/32768. zero: exactly 0 (the range becomes [-1, 1]).
        # const sym: xmin stays 0 (notes §B.4), code clamps to 15, zero 8: 7 * scale.
        # const asym: range [0, 0.5], zero 0, code 15: 15 * scale.
        case $kind/$sym in
        zero/*) want=0 ;;
        const/--sym) want=$(awk 'BEGIN{printf "%.10g", 7 * 1092 / 32768}') ;;
        const/--asym) want=$(awk 'BEGIN{printf "%.10g", 15 * 1092 / 32768}') ;;
        esac
        awk -v a="$v0" -v b="$v1" -v w="$want" 'function d(x){x -= w; return x < 0 ? -x : x}
            BEGIN{exit !(d(a) <= 1e-7 && d(b) <= 1e-7)}' && ok ||
            fail "degenerate $kind $sym: dequant gives $v0, $v1 (want $want)"
    done
done

# ---- resource limits: --max-memory is checked against the plan before anything is created ----
# The plan for the base model: fixed 16 MiB + the largest tensor in flight (gate/up 128x64 F32:
# mapped 32 KiB + working buffers about 9 bytes per element), so 16 MiB is below it and 17 above.
run_case max_memory_low 6 "planned peak memory 16\.[0-9] MiB \(tensor '.*'\) exceeds --max-memory 16\.0 MiB" \
    "$CQ_BIN" -q rtn -g 32 --max-memory 16MiB "$T/h/base" -o "$O/o"
run_case max_memory_ok 0 "" "$CQ_BIN" -q rtn -g 32 --max-memory 17MiB "$T/h/base" -o "$O/o"
run_case max_memory_bad 2 "--max-memory" "$CQ_BIN" -q rtn --max-memory 12Q "$T/h/base" -o "$O/o"
tail -1 "$T/err" | grep -q "see 'cquant rtn --help'" && ok || fail "usage error without the help hint"

echo "hostile: $N generated cases x 4 commands + $DQ corrupted quantized checkpoints, $RUNS runs"
finish
