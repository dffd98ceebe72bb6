# cquant eval of quantized checkpoints: for each layout (gptq v2, awq, compressed-tensors), the
# perplexity of the packed output equals that of its `cquant dequant` f32 copy (same weights,
# same forward: to 1e-9 relative, in practice bit for bit); gzip/jsonl text gives the plain text's
# numbers; hostile ids files and tokenizer-hash warnings.
. "$(dirname "$0")/lib.sh"
need_shared
W="$SHARED/text/wikitext-2-raw-v1.test.joined.txt"
EV="--json --seqlen 128 --max-windows 3"

# rel_eq A B WHAT: |A - B| <= 1e-9 |B|
rel_eq() {
    if awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; if (d < 0) d = -d; m = b < 0 ? -b : b; exit !(a != "" && d <= 1e-9 * m) }'; then
        ok
    else
        fail "$3: $1 vs $2"
    fi
}

# a head of the text: eval tokenizes the whole TEXT, and 3 windows of 128 need far less
head -c 20000 "$W" >"$T/w.txt"
expect 0 "$CQ_BIN" -q eval $EV "$TINY" "$T/w.txt"
float=$(json_num "$T/out" ppl)
has "$T/out" '"format":[[:space:]]*"float"' "float: format"
for fmt in gptq awq ct; do
    expect 0 "$CQ_BIN" -q rtn --bits 4 --group 128 --asym --format $fmt "$TINY" -o "$T/q-$fmt"
    expect 0 "$CQ_BIN" -q dequant "$T/q-$fmt" -o "$T/d-$fmt"
    expect 0 "$CQ_BIN" -q eval $EV "$T/q-$fmt" "$T/w.txt"
    q=$(json_num "$T/out" ppl)
    has "$T/out" "\"format\":[[:space:]]*\"$fmt\"" "$fmt: detected layout"
    expect 0 "$CQ_BIN" -q eval $EV "$T/d-$fmt" "$T/w.txt"
    d=$(json_num "$T/out" ppl)
    rel_eq "$q" "$d" "$fmt: eval of the packed checkpoint vs its dequant copy"
    # 4-bit weights change the perplexity (the packed Linears were used, not skipped)
    awk -v q="$q" -v f="$float" 'BEGIN { exit !(q != f && q > 0.9 * f && q < 1.5 * f) }' && ok ||
        fail "$fmt: ppl $q is not a 4-bit perturbation of the float $float"
done

# gzip and jsonl text: the same ids, so the same numbers
gzip -c "$T/w.txt" >"$T/w.gz"
expect 0 "$CQ_BIN" -q eval $EV "$TINY" "$T/w.gz"
eq "$(json_num "$T/out" ppl)" "$float" "gzipped text"

# ids files: an id outside the vocabulary (8192) is bad input naming the file; a calib.bin
# without tokenizer_hash, or with another one, is evaluated with a warning
# st FILE META IDS...: a safetensors file with input_ids I32 [1, n] and __metadata__ META
st() {
    local f=$1 meta=$2
    shift 2
    local n=$#
    local hdr="{\"__metadata__\":{$meta},\"input_ids\":{\"dtype\":\"I32\",\"shape\":[1,$n],\"data_offsets\":[0,$((4 * n))]}}"
    local len=${#hdr}
    {
        printf "\\x$(printf %02x $((len % 256)))\\x$(printf %02x $((len / 256)))\\0\\0\\0\\0\\0\\0"
        printf '%s' "$hdr"
        for v in "$@"; do
            printf "\\x$(printf %02x $((v % 256)))\\x$(printf %02x $((v / 256 % 256)))\\0\\0"
        done
    } >"$f"
}
st "$T/oov.bin" '"mode":"random"' 5 6 9000 7
expect 4 "$CQ_BIN" eval "$TINY" "$T/oov.bin"
eq "$(wc -l <"$T/err")" 1 "oov: one line"
has "$T/err" "^cquant: error: .*oov\.bin.*outside the vocabulary" "oov: names the file"
st "$T/nohash.bin" '"mode":"random"' 5 6 7 8 9 10 11 12
expect 0 "$CQ_BIN" eval --seqlen 4 "$TINY" "$T/nohash.bin"
has "$T/err" "^cquant: warning: .*nohash\.bin: no tokenizer_hash" "missing hash: warning"
st "$T/other.bin" '"tokenizer_hash":"0000000000000000000000000000000000000000000000000000000000000000"' 5 6 7 8
expect 0 "$CQ_BIN" eval "$TINY" "$T/other.bin"
has "$T/err" "^cquant: warning: .*other\.bin: made with another tokenizer" "hash mismatch: warning"
eq "$(grep -c 'warning' "$T/err")" 1 "hash mismatch: one warning"

# usage: text shorter than one window; a quantized checkpoint with a Linear missing
expect 2 "$CQ_BIN" eval --seqlen 100000 "$TINY" "$T/w.txt" && has "$T/err" "shorter than one window" "short text"
expect 2 "$CQ_BIN" eval "$TINY"
cp -r "$T/q-gptq" "$T/broken"
sed -i -E 's/"quant_method":[[:space:]]*"gptq"/"quant_method": "marlin-x"/' "$T/broken/config.json"
expect 4 "$CQ_BIN" eval "$T/broken" "$T/w.txt" && has "$T/err" "no layout" "unknown quant_method"
finish
