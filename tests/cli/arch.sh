# rtn, gptq and awq end to end on the dense architecture fixtures (tests/data/arch: OPT pre-LN
# and post-LN with project_in/out, Qwen2, Qwen3, Mistral): every Linear quantized, the outputs
# evaluate, and dequant decodes to the same perplexity. The models are random, so perplexity is
# near the vocabulary size and 4-bit moves the mean nll by a few thousandths only; the checks
# bound that, and tie dequant to the packed checkpoint exactly.
. "$(dirname "$0")/lib.sh"

A="$CQ_SRC/tests/data/arch"
C="$CQ_SRC/data/calib-docs.txt"

# nll MODEL: mean nll over 4 windows of 32 tokens of the calibration text
nll() {
    "$CQ_BIN" eval --json --seqlen 32 --max-windows 4 "$1" "$C" >"$T/ev" 2>"$T/everr" || {
        fail "eval $1"
        sed 's/^/  stderr: /' "$T/everr" | head -3 >&2
        echo nan
        return
    }
    json_num "$T/ev" nll
}

# close A B TOL WHAT: |A - B| <= TOL
close() {
    if awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= t) }'
    then ok; else fail "$4: $1 vs $2 (tol $3)"; fi
}

for n in opt opt350 qwen2 qwen3 mistral; do
    M="$A/$n"
    lin=14 # 2 layers x 7 Linears; OPT has no gate
    case $n in opt*) lin=12 ;; esac
    f=$(nll "$M")
    expect 0 "$CQ_BIN" -q rtn --group 32 "$M" -o "$T/$n-rtn"
    eq "$(json_num "$T/$n-rtn/cquant-report.json" quantized)" $lin "$n rtn: Linears quantized"
    expect 0 "$CQ_BIN" -q gptq --group 32 --samples 2 --seqlen 32 "$M" "$C" -o "$T/$n-gptq"
    eq "$(json_num "$T/$n-gptq/cquant-report.json" quantized)" $lin "$n gptq: Linears quantized"
    expect 0 "$CQ_BIN" -q awq --group 32 --calib-block 32 --calib-docs 4 --grid 5 "$M" "$C" \
        -o "$T/$n-awq"
    eq "$(json_num "$T/$n-awq/cquant-report.json" quantized)" $lin "$n awq: Linears quantized"
    expect 0 "$CQ_BIN" -q dequant "$T/$n-gptq" -o "$T/$n-deq"
    r=$(nll "$T/$n-rtn") g=$(nll "$T/$n-gptq") w=$(nll "$T/$n-awq") d=$(nll "$T/$n-deq")
    echo "$n: mean nll float $f rtn $r gptq $g awq $w (dequant of gptq $d)"
    for q in "rtn $r" "gptq $g" "awq $w"; do
        set -- $q
        close "$2" "$f" 0.02 "$n $1 vs float nll"
    done
    close "$d" "$g" 1e-6 "$n dequant vs packed gptq nll"
done

# AWQ's folds into OPT's LayerNorm and fc1/v biases are written (F32 replacements), and the
# post-LN model only scales out_proj and fc2 (its norms feed the residual stream too).
expect 0 "$CQ_BIN" inspect "$T/opt-awq"
has "$T/out" "^model\.decoder\.layers\.0\.self_attn_layer_norm\.bias +F32 " "opt awq: norm bias folded"
has "$T/out" "^model\.decoder\.layers\.0\.fc1\.bias +F32 " "opt awq: fc1 bias folded"
has "$T/out" "^model\.decoder\.layers\.0\.self_attn\.v_proj\.bias +F32 " "opt awq: v bias folded"
has "$T/out" "^native_forward|native forward: yes" "inspect: native forward"
eq "$(grep -c '"reason":[[:space:]]*"post-LN' "$T/opt350-awq/cquant-report.json")" 4 \
    "opt350 awq: q/k/v and fc1 groups not scaled in both layers"

# An architecture without a native forward: inspect says so, gptq on text fails with one line
# naming it and the statistics-file path.
mkdir -p "$T/gptj"
cp "$A/opt/model.safetensors" "$T/gptj/"
sed -e 's/OPTForCausalLM/GPTJForCausalLM/' -e 's/"model_type": "opt"/"model_type": "gptj"/' \
    "$A/opt/config.json" >"$T/gptj/config.json"
expect 0 "$CQ_BIN" inspect "$T/gptj"
has "$T/out" "native forward: no .*docs/stats.md" "inspect: gptj not native"
expect 4 "$CQ_BIN" gptq --group 32 --samples 4 --seqlen 32 "$T/gptj" "$C" -o "$T/gptj-q"
eq "$(wc -l <"$T/err")" 1 "unsupported: one line"
has "$T/err" "GPTJForCausalLM.*docs/stats.md" "unsupported: names it and the statistics path"
finish
