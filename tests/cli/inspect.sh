# cquant inspect: tensor count, parameter count, architecture, quantization summary.
. "$(dirname "$0")/lib.sh"

# embedded tiny model (always present): 4 layers x 9 tensors + embedding + final norm
expect 0 "$CQ_BIN" inspect --json "$TINY"
eq "$(json_num "$T/out" tensor_count)" 38 "tiny: tensors"
# 8192*256 + 4*(256*256*2 + 2*128*256 + 3*256*768 + 2*256) + 256, from config.json's dims
eq "$(json_num "$T/out" parameters)" $((8192 * 256 + 4 * (256 * 256 * 2 + 2 * 128 * 256 + 3 * 256 * 768 + 2 * 256) + 256)) "tiny: parameters"
has "$T/out" '"architecture":[[:space:]]*"LlamaForCausalLM"' "tiny: architecture"

need_shared
M="$SHARED/models/cq-llama-16m"
expect 0 "$CQ_BIN" inspect "$M"
has "$T/out" "^tensors: 74 in 3 shard\(s\), 15735168 parameters" "16m: totals line (MODEL.md: 74 tensors, 15,735,168)"
has "$T/out" "^model\.embed_tokens\.weight +BF16 +\[8192, 384\] +6291456$" "16m: embedding row"
has "$T/out" "^architecture: LlamaForCausalLM$" "16m: architecture"
expect 0 "$CQ_BIN" inspect --json "$M"
eq "$(json_num "$T/out" tensor_count)" 74 "16m --json: tensors"
eq "$(json_num "$T/out" parameters)" 15735168 "16m --json: parameters"
eq "$(json_num "$T/out" total_bytes)" 31470336 "16m --json: bytes (index total_size)"
eq "$(json_num "$T/out" num_hidden_layers)" 8 "16m --json: layers"

# a quantized checkpoint: method, bits, group, format, and the 56 packed Linears
expect 0 "$CQ_BIN" -q rtn --bits 4 --group 128 "$M" -o "$T/q"
expect 0 "$CQ_BIN" inspect "$T/q"
has "$T/out" '^  quant_method: "gptq"$' "quantized: method"
has "$T/out" '^  bits: 4$' "quantized: bits"
has "$T/out" '^  group_size: 128$' "quantized: group"
has "$T/out" '^  checkpoint_format: "gptq"$' "quantized: format"
has "$T/out" '^  quantized linears: 56$' "quantized: linears"
# 74 - 56 weights + 4 tensors per Linear
has "$T/out" "^tensors: $((74 - 56 + 4 * 56)) in 1 shard" "quantized: tensor count"
expect 4 "$CQ_BIN" inspect "$M/config.json" && has "$T/err" "^cquant: error: " "inspect of a JSON file"
finish
