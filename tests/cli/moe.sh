# Mixture of experts end to end on the tests/data/arch fixtures (Mixtral, Qwen2-MoE with a
# shared expert, Qwen3-MoE): rtn, gptq and awq outputs pack every expert Linear, keep the
# routers float (and say so in quantization_config), decode and evaluate; the reports list the
# tokens each expert received; an expert that received no calibration token is quantized with
# the documented fallback (all tokens' Hessian) and its report entry says so.
source "$(dirname "$0")/lib.sh"
D="$CQ_SRC/tests/data/arch"
TXT="$D/text.txt"
ppl_ok() { # ppl_ok DIR: cquant eval succeeds with a finite perplexity
    expect 0 "$CQ_BIN" eval --json --seqlen 64 "$1" "$TXT" || return
    has "$T/out" '"ppl":[[:space:]]*[0-9]' "$1: finite perplexity"
}
packed() { # packed DIR ROUTER EXPERT: the expert is packed, the router float
    expect 0 "$CQ_BIN" inspect "$1" || return
    has "$T/out" "$3\.(qweight|weight_packed)" "$1: expert packed"
    has "$T/out" "$2\.weight " "$1: router float"
}
for m in mixtral qwen2moe qwen3moe; do
    case $m in
    mixtral) R=model.layers.1.block_sparse_moe.gate; X=model.layers.1.block_sparse_moe.experts.3.w2 ;;
    *) R=model.layers.1.mlp.gate; X=model.layers.1.mlp.experts.3.down_proj ;;
    esac
    expect 0 "$CQ_BIN" -q rtn --group 32 "$D/$m" -o "$T/$m-rtn" && ok
    packed "$T/$m-rtn" "$R" "$X"
    # gptq format: a negative "dynamic" rule per router ("-:^model\\.layers\\.1\\.mlp\\.gate$")
    grep -qF -- "\"-:^${R//./\\\\.}\$\"" "$T/$m-rtn/config.json" && ok ||
        fail "$m rtn: router not in the dynamic exclusions"
    ppl_ok "$T/$m-rtn"
    expect 0 "$CQ_BIN" gptq --group 32 --samples 4 --seqlen 32 "$D/$m" "$TXT" -o "$T/$m-gptq"
    has "$T/err" "layer 2/2 experts, routed calibration tokens: 0:[0-9]+" "$m gptq: tokens per expert"
    has "$T/$m-gptq/cquant-report.json" '"routed_tokens"' "$m gptq: report tokens"
    has "$T/$m-gptq/cquant-report.json" '"fallback_experts"' "$m gptq: report fallback list"
    packed "$T/$m-gptq" "$R" "$X"
    ppl_ok "$T/$m-gptq"
    # one 200-token paragraph: split mode keeps it (concat skips documents over a block)
    expect 0 "$CQ_BIN" awq --group 32 --calib-block 32 --calib-mode split "$D/$m" "$TXT" \
        -o "$T/$m-awq"
    has "$T/err" "layer 1 experts, routed calibration tokens" "$m awq: tokens per expert"
    has "$T/$m-awq/config.json" "\"modules_to_not_convert\"" "$m awq: float modules listed"
    has "$T/$m-awq/config.json" "\"$R\"" "$m awq: router not converted"
    packed "$T/$m-awq" "$R" "$X"
    ppl_ok "$T/$m-awq"
done
grep -q '"shared"' "$T/qwen2moe-awq/cquant-report.json" && ok || fail "qwen2moe awq: shared expert in the report"

# Two calibration tokens (top-2 of 4 experts): Mixtral's layer 0 routes both to experts 0 and 1
# (layer 1: 0, 2, 0, 3), so experts 2 and 3 of layer 0 and expert 1 of layer 1 receive none.
expect 0 "$CQ_BIN" gptq --group 32 --samples 1 --seqlen 2 --moe-min-tokens 1 --json \
    "$D/mixtral" "$TXT" -o "$T/none"
has "$T/err" "layer 1/2 experts, routed calibration tokens: .*2:0\*" "fallback marked on stderr"
REP="$T/none/cquant-report.json"
has "$REP" '"fallback_experts":[[:space:]]*\[2, 3\]' "layer 0 fallback experts in the summary"
# the entry of an unrouted expert: 0 routed tokens, Hessian from all (2) tokens, the fallback
tr -d ' \n\t' <"$REP" | grep -o '"name":"model.layers.0.block_sparse_moe.experts.2.w2.weight"[^}]*}[^}]*}' >"$T/entry"
has "$T/entry" '"routed_tokens":0' "unrouted expert: 0 tokens"
has "$T/entry" '"hessian_tokens":2' "unrouted expert: Hessian from all tokens"
has "$T/entry" '"fallback":"all_tokens_hessian"' "unrouted expert: fallback named"
has "$T/entry" '"method":"gptq"' "unrouted expert: quantized with gptq"
packed "$T/none" model.layers.0.block_sparse_moe.gate model.layers.0.block_sparse_moe.experts.2.w2
ppl_ok "$T/none"
finish
