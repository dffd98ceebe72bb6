# rtn -> dequant round trips: names and shapes come back, skipped layers stay float and are
# reported, config.json loses quantization_config.
. "$(dirname "$0")/lib.sh"

# "name [shape]" of every tensor, sorted (dtype and size dropped)
names_shapes() { sed -nE 's/^([^ ]+) +[A-Z0-9]+ +(\[[^]]*\]).*/\1 \2/p' "$1" | sort; }

need_shared
M="$SHARED/models/cq-llama-16m"
expect 0 "$CQ_BIN" -q rtn --bits 4 --group 128 --asym "$M" -o "$T/q"
has "$T/q/config.json" '"checkpoint_format":[[:space:]]*"gptq_v2"' "asym gptq is written as gptq_v2"
[ -f "$T/q/quantize_config.json" ] && ok || fail "quantize_config.json missing"
for f in tokenizer.json tokenizer_config.json special_tokens_map.json generation_config.json; do
    cmp -s "$M/$f" "$T/q/$f" && ok || fail "$f not copied byte-exact"
done
expect 0 "$CQ_BIN" -q dequant "$T/q" -o "$T/d"
expect 0 "$CQ_BIN" inspect "$M" && names_shapes "$T/out" >"$T/orig.txt"
expect 0 "$CQ_BIN" inspect "$T/d" && names_shapes "$T/out" >"$T/deq.txt"
cmp -s "$T/orig.txt" "$T/deq.txt" && ok || fail "dequant: names/shapes differ from the original"
has "$T/out" "^tensors: 74 in 1 shard\(s\), 15735168 parameters" "dequant: totals"
has "$T/out" "^model\.layers\.0\.mlp\.down_proj\.weight +F32 " "dequant: Linear in F32"
has "$T/out" "^model\.embed_tokens\.weight +BF16 " "dequant: embedding untouched"
grep -q quantization_config "$T/d/config.json" && fail "dequant config keeps quantization_config" || ok

# stories260K: dims 64/172. With groups of 32, q/k/v/o fit GPTQ; gate/up (out 172) and
# down (in 172) do not: 5 layers x 3 skipped, 5 x 4 quantized; each skip warned once.
S="$SHARED/models/stories260K/hf"
expect 0 "$CQ_BIN" rtn --group 32 "$S" -o "$T/s"
eq "$(grep -c '^cquant: warning: tensor .*kept in F32' "$T/err")" 15 "stories: one warning per skipped layer"
R="$T/s/cquant-report.json"
eq "$(json_num "$R" quantized)" 20 "stories: quantized in report"
eq "$(json_num "$R" skipped)" 15 "stories: skipped in report"
eq "$(grep -c '"status":[[:space:]]*"skipped"' "$R")" 15 "stories: skipped entries"
eq "$(grep -c '"reason":[[:space:]]*"gptq needs' "$R")" 15 "stories: skip reasons"
has "$T/s/config.json" '"-:\^model\\\\.layers\\\\.0\\\\.mlp\\\\.down_proj\$"' "stories: skipped Linear in dynamic"
expect 0 "$CQ_BIN" inspect "$T/s" && has "$T/out" "^model\.layers\.0\.mlp\.up_proj\.weight +F32 +\[172, 64\]" "stories: skipped layer kept F32"
expect 0 "$CQ_BIN" -q dequant --dtype f16 "$T/s" -o "$T/sd"
expect 0 "$CQ_BIN" inspect "$S" && names_shapes "$T/out" >"$T/sorig.txt"
expect 0 "$CQ_BIN" inspect "$T/sd" && names_shapes "$T/out" >"$T/sdeq.txt"
cmp -s "$T/sorig.txt" "$T/sdeq.txt" && ok || fail "stories dequant: names/shapes differ"
has "$T/out" "^model\.layers\.0\.self_attn\.q_proj\.weight +F16 " "dequant --dtype f16"
has "$T/out" "^model\.layers\.0\.mlp\.up_proj\.weight +F32 " "skipped layer copied as F32"
# --strict turns the first skip into an error (exit 4) and leaves nothing behind
expect 4 "$CQ_BIN" rtn --strict --group 32 "$S" -o "$T/strict" && has "$T/err" "--strict" "strict message"
[ ! -e "$T/strict" ] && ok || fail "--strict left an output"
# sharded output: --max-shard-size splits and writes the index
expect 0 "$CQ_BIN" -q rtn --max-shard-size 4MB "$TINY" -o "$T/sh"
[ -f "$T/sh/model.safetensors.index.json" ] && ok || fail "no index for a sharded output"
expect 0 "$CQ_BIN" inspect --json "$T/sh" && [ "$(json_num "$T/out" shards)" -gt 1 ] && ok || fail "not sharded"
finish
