# cquant awq on the embedded cq-llama-tiny: the three layouts, the report's per-group search
# results, scaled norms written as F32, and refusals before any search.
. "$(dirname "$0")/lib.sh"

# Calibration text: the repo's own markdown, split at blank lines into documents.
cat "$TINY/MODEL.md" "$CQ_SRC"/docs/*.md >"$T/calib.txt"
A="--calib-mode concat --calib-block 64 --calib-docs 6 --threads 2"
expect 0 "$CQ_BIN" -q awq $A "$TINY" "$T/calib.txt" -o "$T/a"
has "$T/a/config.json" '"quant_method":[[:space:]]*"awq"' "awq: quant_method"
has "$T/a/config.json" '"version":[[:space:]]*"gemm"' "awq: gemm version"
has "$T/a/config.json" '"zero_point":[[:space:]]*true' "awq: zero_point"
R="$T/a/cquant-report.json"
has "$R" '"group":[[:space:]]*"self_attn.q_k_v"' "report: qkv group"
eq "$(grep -c '"loss_after"' "$R")" 12 "report: 3 searched groups x 4 layers (GQA: no v->o)"
eq "$(grep -c 'shapes differ' "$R")" 4 "report: o_proj group skipped in every layer"
has "$R" '"mlp.down_proj":[[:space:]]*0\.[0-9]' "report: clip mean shrink"
expect 0 "$CQ_BIN" inspect "$T/a"
has "$T/out" "^model\.layers\.0\.input_layernorm\.weight +F32 " "scaled norm written as F32"
has "$T/out" "^model\.layers\.0\.mlp\.down_proj\.qweight +I32 " "down_proj packed"
has "$T/out" "^model\.norm\.weight +BF16 " "final norm untouched"
# the other layouts take the same result
expect 0 "$CQ_BIN" -q awq $A --grid 2 --no-clip --format gptq "$TINY" "$T/calib.txt" -o "$T/g"
has "$T/g/config.json" '"method":[[:space:]]*"awq"' "gptq layout: meta method awq"
expect 0 "$CQ_BIN" -q awq $A --grid 2 --no-clip --format ct "$TINY" "$T/calib.txt" -o "$T/c"
has "$T/c/config.json" '"quant_method":[[:space:]]*"compressed-tensors"' "ct layout"
expect 0 "$CQ_BIN" -q dequant "$T/a" -o "$T/d"
# refusals: options the layout cannot hold, a missing calibration, too little text
expect 2 "$CQ_BIN" awq --bits 3 "$TINY" "$T/calib.txt" -o "$T/x" && has "$T/err" "format awq" "awq 3-bit refused"
expect 3 "$CQ_BIN" awq "$TINY" "$T/none.txt" -o "$T/x"
echo "tiny text" >"$T/small.txt"
expect 4 "$CQ_BIN" awq --calib-mode split "$TINY" "$T/small.txt" -o "$T/x" && has "$T/err" "too little text" "split: too little text"
expect 4 "$CQ_BIN" awq --calib-mode concat "$TINY" "$T/small.txt" -o "$T/x" && has "$T/err" "less than one block" "concat: too little text"
# split: long documents kept, n counts blocks; the same ids as `cquant calib --mode split`
expect 0 "$CQ_BIN" -q awq --calib-mode split --calib-block 64 --calib-blocks 5 --grid 2 --no-clip "$TINY" "$T/calib.txt" -o "$T/s"
has "$T/s/cquant-report.json" '"calib_blocks":[[:space:]]*5,' "split: 5 blocks"
has "$T/s/cquant-report.json" '"calib_mode":[[:space:]]*"split"' "split: mode in the report"
expect 0 "$CQ_BIN" -q calib --mode split -n 5 --seqlen 64 -o "$T/s.bin" "$TINY" "$T/calib.txt"
expect 0 "$CQ_BIN" -q awq --grid 2 --no-clip "$TINY" "$T/s.bin" -o "$T/s2"
cmp -s "$T/s/model.safetensors" "$T/s2/model.safetensors" && ok || fail "split text and calib.bin give other weights"
# --then-gptq with the GPTQ stage on its own calibration (4 windows of 32 tokens)
expect 0 "$CQ_BIN" -q calib -n 4 --seqlen 32 -o "$T/g.bin" "$TINY" "$T/calib.txt"
expect 0 "$CQ_BIN" -q awq $A --grid 2 --then-gptq --gptq-calib "$T/g.bin" "$TINY" "$T/calib.txt" -o "$T/ag"
has "$T/ag/cquant-report.json" '"samples":[[:space:]]*4,' "gptq-calib: 4 windows in config.gptq"
has "$T/ag/cquant-report.json" '"method":[[:space:]]*"awq.gptq"' "then-gptq: method"
expect 2 "$CQ_BIN" awq --gptq-calib "$T/g.bin" "$TINY" "$T/calib.txt" -o "$T/x"
expect 2 "$CQ_BIN" awq "$TINY" -o "$T/x"
[ ! -e "$T/x" ] && ok || fail "refusals left an output"
finish
