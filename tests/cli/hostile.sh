# Hostile inputs against every command that reads a checkpoint (inspect, rtn, awq, gptq, dequant,
# eval): crafted by tests/cli/hostile/gen.sh (containers, shapes, offsets, indexes, symlinks and
# the HuggingFace cache layout, FIFOs, NaN/Inf, configs), hostile calibration and statistics
# files for gptq/eval, hostile tokenizer.json and text files (on data/models/cq-llama-tiny),
# plus corrupted quantized checkpoints made here for dequant. Each failing run must give
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
while IFS='|' read -r name path want_inspect want_rtn rx want_awq awq_rx want_gptq gptq_rx \
    want_eval eval_rx; do
    N=$((N + 1))
    run_case "$name/inspect" "$want_inspect" "$rx" "$CQ_BIN" inspect "$path"
    run_case "$name/rtn" "$want_rtn" "$rx" "$CQ_BIN" -q rtn -g 32 "$path" -o "$O/o"
    run_case "$name/awq" "$want_awq" "$awq_rx" "$CQ_BIN" -q awq -g 32 "$path" "$T/h/calib.bin" -o "$O/o"
    run_case "$name/gptq" "$want_gptq" "$gptq_rx" "$CQ_BIN" -q gptq -g 32 "$path" "$T/h/calib.bin" -o "$O/o"
    run_case "$name/eval" "$want_eval" "$eval_rx" "$CQ_BIN" -q eval "$path" "$T/h/calib.bin"
    # float inputs are never valid for dequant: an input error (the parse error or "not
    # quantized"), or the I/O error for unreadable files
    want_dq=4
    [ "$want_inspect" -eq 3 ] && want_dq=3
    run_case "$name/dequant" "$want_dq" "" "$CQ_BIN" -q dequant "$path" -o "$O/o"
done <"$T/h/cases.txt"
[ "$N" -ge 30 ] && ok || fail "only $N generated cases"

# ---- hostile calibration ids and statistics files (gptq, eval) ----
NC=0
while IFS='|' read -r name path want_gptq gptq_rx want_eval eval_rx; do
    NC=$((NC + 1))
    run_case "$name/gptq" "$want_gptq" "$gptq_rx" "$CQ_BIN" -q gptq -g 32 "$T/h/base" "$path" -o "$O/o"
    run_case "$name/eval" "$want_eval" "$eval_rx" "$CQ_BIN" -q eval "$T/h/base" "$path"
done <"$T/h/calib_cases.txt"

# ---- hostile tokenizer.json and text (cq-llama-tiny; its weights linked, not copied) ----
# tk NAME: a folder with TINY's weights and config and no tokenizer.json (the caller adds one).
tk() {
    rm -rf "$T/tk/$1" && mkdir -p "$T/tk/$1" &&
        ln -s "$TINY/model.safetensors" "$T/tk/$1/model.safetensors" &&
        cp "$TINY/config.json" "$T/tk/$1/" && echo "$T/tk/$1"
}
TXT="$T/text.txt"
for i in $(seq 1 40); do echo "Line $i: the quick brown fox jumps over the lazy dog, then rests."; done >"$TXT"
GQ=(-q gptq -g 32 --samples 2 --seqlen 32)
# tok_case NAME WANT REGEX: eval and gptq with text on the folder $d
NT=0
tok_case() {
    NT=$((NT + 1))
    run_case "tok_$1/eval" "$2" "$3" "$CQ_BIN" -q eval --seqlen 32 --max-windows 2 "$d" "$TXT"
    run_case "tok_$1/gptq" "$2" "$3" "$CQ_BIN" "${GQ[@]}" "$d" "$TXT" -o "$O/o"
}
d=$(tk ok) && cp "$TINY/tokenizer.json" "$d/" && tok_case valid 0 ""
d=$(tk missing) && tok_case missing 3 "tokenizer\.json"
d=$(tk empty) && : >"$d/tokenizer.json" && tok_case empty 4 "tokenizer\.json"
d=$(tk broken) && head -c 5000 "$TINY/tokenizer.json" >"$d/tokenizer.json" && tok_case truncated 4 "tokenizer\.json"
d=$(tk array) && printf '[1, 2]' >"$d/tokenizer.json" && tok_case not_object 4 "tokenizer\.json"
d=$(tk unigram) && printf '{"model":{"type":"Unigram","vocab":[["a",0.0]]}}' >"$d/tokenizer.json" && tok_case unigram 4 "tokenizer\.json"
d=$(tk vocab_type) && printf '{"model":{"type":"BPE","vocab":{"a":"x"},"merges":[]}}' >"$d/tokenizer.json" && tok_case vocab_type 4 "tokenizer\.json"
d=$(tk vocab_range) && printf '{"model":{"type":"BPE","vocab":{"a":99999999999},"merges":[]}}' >"$d/tokenizer.json" && tok_case vocab_range 4 "tokenizer\.json"
d=$(tk merges_type) && printf '{"model":{"type":"BPE","vocab":{"a":0,"b":1},"merges":[7]}}' >"$d/tokenizer.json" && tok_case merges_type 4 "tokenizer\.json"
d=$(tk dup_key) && printf '{"model":{"type":"BPE","vocab":{"a":0,"a":1},"merges":[]}}' >"$d/tokenizer.json" && tok_case dup_key 4 "tokenizer\.json"
d=$(tk fifo) && mkfifo "$d/tokenizer.json" && tok_case fifo 3 "tokenizer\.json"
d=$(tk dir) && mkdir "$d/tokenizer.json" && tok_case dir 3 "tokenizer\.json"
# config.json of another architecture beside a Llama checkpoint and tokenizer
d=$(tk arch) && cp "$TINY/tokenizer.json" "$d/" &&
    printf '{"architectures":["GPT2LMHeadModel"],"model_type":"gpt2","n_embd":256}' >"$d/config.json" &&
    tok_case config_gpt2 4 "config\.json.*GPT2LMHeadModel"
# hostile text files (valid model)
d=$(tk text) && cp "$TINY/tokenizer.json" "$d/"
text_case() { # NAME WANT REGEX FILE
    NT=$((NT + 1))
    run_case "text_$1/eval" "$2" "$3" "$CQ_BIN" -q eval --seqlen 32 --max-windows 2 "$d" "$4"
    run_case "text_$1/gptq" "$2" "$3" "$CQ_BIN" "${GQ[@]}" "$d" "$4" -o "$O/o"
}
: >"$T/empty.txt" && text_case empty 4 "empty\.txt" "$T/empty.txt"
printf 'abc \xff\xfe def\n' >"$T/bad_utf8.txt" && text_case bad_utf8 4 "bad_utf8\.txt" "$T/bad_utf8.txt"
gzip -c "$TXT" | head -c 100 >"$T/trunc.txt.gz" && text_case gzip_truncated 4 "trunc\.txt\.gz" "$T/trunc.txt.gz"
printf '{"text": "a"}\n[1, 2]\n' >"$T/bad.jsonl" && text_case jsonl_not_object 4 "bad\.jsonl:2" "$T/bad.jsonl"
printf '{"text": 5}\n' >"$T/num.jsonl" && text_case jsonl_text_number 4 "num\.jsonl:1" "$T/num.jsonl"
mkfifo "$T/fifo.txt" && text_case fifo 3 "fifo\.txt.*not a regular file" "$T/fifo.txt"
text_case missing 3 "nonexistent\.txt" "$T/nonexistent.txt"

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

echo "hostile: $N generated cases x 6 commands + $NC calibration files x 2 + $NT tokenizer/text cases x 2 + $DQ corrupted quantized checkpoints, $RUNS runs"
finish
