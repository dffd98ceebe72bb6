#!/usr/bin/env bash
# Hostile-input generator for tests/cli/hostile.sh (not a test itself: it lives below tests/cli/).
#   gen.sh OUT
# Writes OUT/base (a valid 1-layer F32 Llama checkpoint, hidden 64) and one crafted input per
# case, and OUT/cases.txt with one line per case:
#   name|path|inspect exit|rtn exit|message regex|awq exit|awq regex|gptq exit|gptq regex|
#   eval exit|eval regex
# (awq defaults to rtn's code and regex, gptq and eval to awq's; awq, gptq and eval run with
# OUT/calib.bin, 2 x 32 token ids < 64). OUT/calib_cases.txt lists hostile calibration inputs
# (calib.bin and statistics files) for `gptq OUT/base CALIB` and `eval OUT/base CALIB`:
#   name|calib path|gptq exit|gptq regex|eval exit|eval regex
# The exit codes are docs/cli.md's: 3 I/O, 4 invalid/unsupported input, 5 numeric; 0 where the
# input is valid and the documented behaviour is to proceed.
set -eu
export LC_ALL=C
OUT=$1
mkdir -p "$OUT"
CASES="$OUT/cases.txt"
: >"$CASES"

case_line() {
    local aw=${6:-$4} awr=${7:-$5}
    local gp=${8:-$aw} gpr=${9:-$awr}
    echo "$1|$2|$3|$4|$5|$aw|$awr|$gp|$gpr|${10:-$aw}|${11:-$awr}" >>"$CASES"
}

# le64 N: N as 8 little-endian bytes on stdout.
le64() {
    local n=$1 i
    for i in 0 1 2 3 4 5 6 7; do
        printf "\\x$(printf %02x $(((n >> (8 * i)) & 255)))"
    done
}

# A 64-byte block of 16 distinct finite f32 values in [-1, 1] (little-endian).
PAT="$OUT/.pattern"
printf '\x00\x00\x80\x3f\xcd\xcc\x4c\x3e\x00\x00\x80\xbf\x9a\x99\x19\xbf\x00\x00\x00\x3f\x0a\xd7\x23\x3c\xcd\xcc\xcc\xbd\x66\x66\x66\x3f\x00\x00\x00\xbe\xcd\xcc\x4c\xbf\x9a\x99\x99\x3e\x33\x33\x33\xbf\x00\x00\x40\x3f\x8f\xc2\xf5\xbc\x9a\x99\x19\x3f\x00\x00\x00\x00' >"$PAT"
for _ in 1 2 3 4 5 6 7 8 9 10; do cat "$PAT" "$PAT" >"$PAT.2" && mv "$PAT.2" "$PAT"; done # 64 KiB

# fill KIND NBYTES: tensor bytes on stdout. pat | zero | nan | inf | const (0.5)
fill() {
    case $1 in
    pat) head -c "$2" "$PAT" ;;
    zero) head -c "$2" /dev/zero ;;
    nan) head -c $(($2 - 4)) "$PAT"; printf '\x00\x00\xc0\x7f' ;;
    inf) printf '\x00\x00\x80\x7f'; head -c $(($2 - 4)) "$PAT" ;;
    const) for ((i = 0; i < $2 / 4; i++)); do printf '\x00\x00\x00\x3f'; done ;;
    esac
}

# st FILE HEADER [DATA_FILE]: a safetensors file from a raw header string and data bytes.
st() {
    { le64 ${#2}; printf "%s" "$2"; if [ $# -ge 3 ]; then cat "$3"; fi; } >"$1"
}

# The base model's tensors: name|shape|rows*cols (F32). q_proj's fill is a parameter.
TENSORS="model.embed_tokens.weight|64,64
model.layers.0.input_layernorm.weight|64
model.layers.0.self_attn.q_proj.weight|64,64
model.layers.0.self_attn.k_proj.weight|64,64
model.layers.0.self_attn.v_proj.weight|64,64
model.layers.0.self_attn.o_proj.weight|64,64
model.layers.0.post_attention_layernorm.weight|64
model.layers.0.mlp.gate_proj.weight|128,64
model.layers.0.mlp.up_proj.weight|128,64
model.layers.0.mlp.down_proj.weight|64,128
model.norm.weight|64"

CONFIG='{"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":64,
"intermediate_size":128,"num_hidden_layers":1,"num_attention_heads":2,"num_key_value_heads":2,
"head_dim":32,"vocab_size":64,"rms_norm_eps":1e-05,"rope_theta":10000.0,
"tie_word_embeddings":true,"torch_dtype":"float32"}'

# model DIR [QFILL [QSHAPE]]: the base checkpoint, q_proj filled with QFILL (default pat) and
# declared with shape QSHAPE (default 64,64).
model() {
    local dir=$1 qfill=${2:-pat} qshape=${3:-64,64}
    local hdr='{"__metadata__":{"format":"pt"}' off=0 data="$dir/.data" name shape n fillk
    mkdir -p "$dir"
    : >"$data"
    while IFS='|' read -r name shape; do
        fillk=pat
        if [ "$name" = model.layers.0.self_attn.q_proj.weight ]; then
            fillk=$qfill
            shape=$qshape
        fi
        n=$((4 * ${shape/,/*}))
        hdr="$hdr,\"$name\":{\"dtype\":\"F32\",\"shape\":[$shape],\"data_offsets\":[$off,$((off + n))]}"
        fill "$fillk" "$n" >>"$data"
        off=$((off + n))
    done <<<"$TENSORS"
    hdr="$hdr}"
    st "$dir/model.safetensors" "$hdr" "$data"
    rm -f "$data"
    printf '%s\n' "$CONFIG" >"$dir/config.json"
}

# calib.bin for awq: input_ids I32 [2, 32], ids (7 i) mod 64
CH='{"input_ids":{"dtype":"I32","shape":[2,32],"data_offsets":[0,256]}}'
{ le64 ${#CH}; printf '%s' "$CH"; for i in $(seq 0 63); do printf "\\x$(printf %02x $((i * 7 % 64)))\\x00\\x00\\x00"; done; } >"$OUT/calib.bin"
model "$OUT/base" "${CQ_GEN_QFILL:-pat}" # CQ_GEN_QFILL: zero|const for degenerate groups
B="$OUT/base/model.safetensors"
HLEN=$(od -An -tu8 -N8 "$B" | tr -d ' ')
HDR=$(head -c $((8 + HLEN)) "$B" | tail -c "$HLEN")
DATA="$OUT/.basedata"
tail -c +$((9 + HLEN)) "$B" >"$DATA"

# one NAME HEADER [DATA]: a folder with config.json and a crafted model.safetensors.
one() {
    mkdir -p "$OUT/$1"
    cp "$OUT/base/config.json" "$OUT/$1/"
    st "$OUT/$1/model.safetensors" "$2" ${3:+"$3"}
}
T1='{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
EIGHT="$OUT/.eight"
head -c 8 "$PAT" >"$EIGHT"
MS='model\.safetensors'

# ---- safetensors container ----
mkdir -p "$OUT/empty_file" && cp "$OUT/base/config.json" "$OUT/empty_file/" && : >"$OUT/empty_file/model.safetensors"
case_line empty_file "$OUT/empty_file" 4 4 "$MS"
mkdir -p "$OUT/short_length" && printf '\x10\x00\x00' >"$OUT/short_length/model.safetensors"
case_line short_length "$OUT/short_length" 4 4 "$MS"
mkdir -p "$OUT/trunc_data" && head -c $((8 + HLEN + 1000)) "$B" >"$OUT/trunc_data/model.safetensors"
cp "$OUT/base/config.json" "$OUT/trunc_data/"
case_line trunc_data "$OUT/trunc_data" 4 4 "$MS"
mkdir -p "$OUT/trunc_header" && head -c $((8 + HLEN / 2)) "$B" >"$OUT/trunc_header/model.safetensors"
case_line trunc_header "$OUT/trunc_header" 4 4 "$MS"
mkdir -p "$OUT/hdr_past_end" && { le64 5000; printf '{}'; } >"$OUT/hdr_past_end/model.safetensors"
case_line hdr_past_end "$OUT/hdr_past_end" 4 4 "$MS"
mkdir -p "$OUT/hdr_200mb" && { le64 200000000; printf '{}      '; } >"$OUT/hdr_200mb/model.safetensors"
case_line hdr_200mb "$OUT/hdr_200mb" 4 4 "$MS"
mkdir -p "$OUT/hdr_2e64" && { printf '\xff\xff\xff\xff\xff\xff\xff\xff'; printf '{}'; } >"$OUT/hdr_2e64/model.safetensors"
case_line hdr_2e64 "$OUT/hdr_2e64" 4 4 "$MS"
one hdr_zero ''
case_line hdr_zero "$OUT/hdr_zero" 4 4 "$MS"
one not_json 'hello, world'
case_line not_json "$OUT/not_json" 4 4 "$MS"
one hdr_array '[1,2,3]'
case_line hdr_array "$OUT/hdr_array" 4 4 "$MS"
one bad_utf8 $'{"w\xff":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}' "$EIGHT"
case_line bad_utf8 "$OUT/bad_utf8" 4 4 "$MS"
one dtype_number '{"w":{"dtype":5,"shape":[2],"data_offsets":[0,8]}}' "$EIGHT"
case_line dtype_number "$OUT/dtype_number" 4 4 "'w'"
one shape_string '{"w":{"dtype":"F32","shape":"2","data_offsets":[0,8]}}' "$EIGHT"
case_line shape_string "$OUT/shape_string" 4 4 "'w'"
one offsets_string '{"w":{"dtype":"F32","shape":[2],"data_offsets":["0","8"]}}' "$EIGHT"
case_line offsets_string "$OUT/offsets_string" 4 4 "'w'"
one entry_not_object '{"w":[1,2]}' "$EIGHT"
case_line entry_not_object "$OUT/entry_not_object" 4 4 "'w'"
one unknown_dtype '{"w":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}}' "$EIGHT"
case_line unknown_dtype "$OUT/unknown_dtype" 4 4 "'w'"
one fp8_dtype '{"w":{"dtype":"F8_E4M3","shape":[8],"data_offsets":[0,8]}}' "$EIGHT"
case_line fp8_dtype "$OUT/fp8_dtype" 4 4 "'w'"
one neg_shape '{"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}' "$EIGHT"
case_line neg_shape "$OUT/neg_shape" 4 4 "'w'"
one float_shape '{"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,8]}}' "$EIGHT"
case_line float_shape "$OUT/float_shape" 4 4 "'w'"
one huge_shape '{"w":{"dtype":"F32","shape":[1e300],"data_offsets":[0,8]}}' "$EIGHT"
case_line huge_shape "$OUT/huge_shape" 4 4 "'w'"
one shape_2e63 '{"w":{"dtype":"F32","shape":[9223372036854775807],"data_offsets":[0,8]}}' "$EIGHT"
case_line shape_2e63 "$OUT/shape_2e63" 4 4 "'w'"
one shape_overflow '{"w":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}}' "$EIGHT"
case_line shape_overflow "$OUT/shape_overflow" 4 4 "'w'"
one shape_overflow_bytes '{"w":{"dtype":"F64","shape":[2305843009213693952,1],"data_offsets":[0,8]}}' "$EIGHT"
case_line shape_overflow_bytes "$OUT/shape_overflow_bytes" 4 4 "'w'"
one rank9 '{"w":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,2],"data_offsets":[0,8]}}' "$EIGHT"
case_line rank9 "$OUT/rank9" 4 4 "'w'"
one nbytes_mismatch '{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}' "$EIGHT"
case_line nbytes_mismatch "$OUT/nbytes_mismatch" 4 4 "'w'"
head -c 12 "$PAT" >"$PAT.12" && one overlap '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}' "$PAT.12"
case_line overlap "$OUT/overlap" 4 4 "$MS"
head -c 20 "$PAT" >"$PAT.20" && one gap '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}}' "$PAT.20"
case_line gap "$OUT/gap" 4 4 "$MS"
one offsets_out_of_range '{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"v":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}' "$EIGHT"
case_line offsets_out_of_range "$OUT/offsets_out_of_range" 4 4 "$MS"
one offsets_reversed '{"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}' "$EIGHT"
case_line offsets_reversed "$OUT/offsets_reversed" 4 4 "'w'"
one trailing_bytes "$T1" "$PAT.12"
case_line trailing_bytes "$OUT/trailing_bytes" 4 4 "$MS"
one dup_key '{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}' "$EIGHT"
case_line dup_key "$OUT/dup_key" 4 4 "'w'"
one dup_field '{"w":{"dtype":"F32","dtype":"F16","shape":[2],"data_offsets":[0,8]}}' "$EIGHT"
case_line dup_field "$OUT/dup_field" 4 4 "'w'"
one metadata_type '{"__metadata__":{"format":3},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}' "$EIGHT"
case_line metadata_type "$OUT/metadata_type" 4 4 "__metadata__"
one json_trailing "$T1 xx" "$EIGHT"
case_line json_trailing "$OUT/json_trailing" 4 4 "$MS"
one newline_name '{"a\u000ab":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}' "$EIGHT"
case_line newline_name "$OUT/newline_name" 0 4 "'a\\?b'.*control byte" 4 "embed_tokens.*missing" 4 "'a\\?b'.*control byte"

# ---- filesystem tricks ----
mkdir -p "$OUT/is_dir/model.safetensors"
case_line model_is_dir "$OUT/is_dir/model.safetensors" 3 3 "model\.safetensors"
mkdir -p "$OUT/loop" && ln -sf model.safetensors "$OUT/loop/model.safetensors"
case_line symlink_loop "$OUT/loop" 3 3 "$MS"
mkdir -p "$OUT/dangling" && ln -sf /nonexistent/x.safetensors "$OUT/dangling/model.safetensors"
case_line symlink_dangling "$OUT/dangling" 3 3 "$MS"
mkdir -p "$OUT/fifo" && mkfifo "$OUT/fifo/model.safetensors"
case_line fifo "$OUT/fifo/model.safetensors" 3 3 "$MS"

# ---- sharded folders ----
# shards DIR INDEX: the base model's tensors split over two shards and INDEX as the index.
SH1='model-00001-of-00002.safetensors'
SH2='model-00002-of-00002.safetensors'
shards() {
    mkdir -p "$1"
    cp "$OUT/base/config.json" "$1/"
    st "$1/$SH1" '{"model.embed_tokens.weight":{"dtype":"F32","shape":[64,64],"data_offsets":[0,16384]}}' "$PAT.16k"
    st "$1/$SH2" '{"model.norm.weight":{"dtype":"F32","shape":[64],"data_offsets":[0,256]}}' "$PAT.256"
    printf '%s' "$2" >"$1/model.safetensors.index.json"
}
head -c 16384 "$PAT" >"$PAT.16k"
head -c 256 "$PAT" >"$PAT.256"
IDXOK="{\"weight_map\":{\"model.embed_tokens.weight\":\"$SH1\",\"model.norm.weight\":\"$SH2\"}}"
IX='model\.safetensors\.index\.json'
shards "$OUT/idx_missing" "{\"weight_map\":{\"model.embed_tokens.weight\":\"$SH1\",\"model.norm.weight\":\"model-00003-of-00003.safetensors\"}}"
case_line idx_missing_shard "$OUT/idx_missing" 3 3 "$IX.*model-00003"
shards "$OUT/idx_dotdot" "{\"weight_map\":{\"model.embed_tokens.weight\":\"$SH1\",\"model.norm.weight\":\"../base/model.safetensors\"}}"
case_line idx_dotdot "$OUT/idx_dotdot" 4 4 "$IX.*not a plain file name"
# Shards may be symlinks to regular files anywhere (the HuggingFace cache layout
# snapshots/<rev>/<shard> -> ../../blobs/<sha>); links to non-regular files, dangling links and
# loops are refused (exit 3). A link to a whole model duplicates tensors (exit 4).
shards "$OUT/idx_symlink_out" "$IDXOK"
rm "$OUT/idx_symlink_out/$SH2" && ln -s "$OUT/base/model.safetensors" "$OUT/idx_symlink_out/$SH2"
case_line idx_symlink_dup "$OUT/idx_symlink_out" 4 4 "model\.embed_tokens\.weight' is in both"
HF="$OUT/hf/snapshots/0123abc"
mkdir -p "$OUT/hf/blobs" "$HF" && cp "$B" "$OUT/hf/blobs/9f86d08" && cp "$OUT/base/config.json" "$HF/"
ln -s ../../blobs/9f86d08 "$HF/model-00001-of-00001.safetensors"
{
    printf '{"metadata":{},"weight_map":{'
    sep=''
    while IFS='|' read -r name _; do printf '%s"%s":"model-00001-of-00001.safetensors"' "$sep" "$name"; sep=,; done <<<"$TENSORS"
    printf '}}'
} >"$HF/model.safetensors.index.json"
case_line idx_hf_cache "$HF" 0 0 ""
mkdir -p "$OUT/linked/sub" && mkfifo "$OUT/linked/fifo"
for kind in fifo devzero dir dangling loop; do
    shards "$OUT/idx_link_$kind" "$IDXOK"
    rm "$OUT/idx_link_$kind/$SH2"
    case $kind in
    fifo) tgt=../linked/fifo ;;
    devzero) tgt=/dev/zero ;;
    dir) tgt=../linked/sub ;;
    dangling) tgt=../linked/missing ;;
    loop) tgt=$SH2 ;;
    esac
    ln -s "$tgt" "$OUT/idx_link_$kind/$SH2"
    rx="$IX.*model-00002-of-00002\.safetensors.*not a regular file"
    case $kind in dangling | loop) rx="$IX.*model-00002-of-00002\.safetensors.*cannot be followed" ;; esac
    case_line "idx_link_$kind" "$OUT/idx_link_$kind" 3 3 "$rx"
done
shards "$OUT/idx_absolute" "{\"weight_map\":{\"model.embed_tokens.weight\":\"$SH1\",\"model.norm.weight\":\"/etc/passwd\"}}"
case_line idx_absolute "$OUT/idx_absolute" 4 4 "$IX.*not a plain file name"
shards "$OUT/idx_not_json" '{"weight_map": '
case_line idx_not_json "$OUT/idx_not_json" 4 4 "$IX"
shards "$OUT/idx_wrong_shard" "{\"weight_map\":{\"model.embed_tokens.weight\":\"$SH2\",\"model.norm.weight\":\"$SH2\"}}"
case_line idx_wrong_shard "$OUT/idx_wrong_shard" 4 4 "$IX.*model\.embed_tokens\.weight"
shards "$OUT/idx_unlisted" "{\"weight_map\":{\"model.embed_tokens.weight\":\"$SH1\"}}"
cp "$OUT/idx_unlisted/$SH1" "$OUT/idx_unlisted/model-00002-of-00002.safetensors.bak"
case_line idx_unlisted "$OUT/idx_unlisted" 0 0 "" 4 "missing"
shards "$OUT/idx_dup" "{\"weight_map\":{\"model.norm.weight\":\"$SH2\",\"model.norm.weight\":\"$SH1\",\"model.embed_tokens.weight\":\"$SH1\"}}"
case_line idx_dup_key "$OUT/idx_dup" 4 4 "$IX.*duplicate"
shards "$OUT/idx_empty" '{"weight_map":{}}'
case_line idx_empty "$OUT/idx_empty" 4 4 "$IX"

# ---- values and config ----
model "$OUT/nan" nan
case_line nan_weight "$OUT/nan" 0 5 "q_proj\.weight.*non-finite" 5 "layer 0 self_attn\.q_proj.*non-finite" 5 "layer 0 self_attn\.q_proj.*non-finite" 5 "q_proj\.weight.*non-finite"
model "$OUT/inf" inf
case_line inf_weight "$OUT/inf" 0 5 "q_proj\.weight.*non-finite" 5 "layer 0 self_attn\.q_proj.*non-finite" 5 "layer 0 self_attn\.q_proj.*non-finite" 5 "q_proj\.weight.*non-finite"
model "$OUT/shape_vs_config" pat 64,32
case_line shape_vs_config "$OUT/shape_vs_config" 0 4 "q_proj\.weight"
model "$OUT/config_broken"
printf '{"architectures": ["LlamaForCausalLM"], "hidden_size": 64,' >"$OUT/config_broken/config.json"
case_line config_broken "$OUT/config_broken" 4 4 "config\.json"
model "$OUT/config_array"
printf '[1, 2]' >"$OUT/config_array/config.json"
case_line config_not_object "$OUT/config_array" 4 4 "config\.json"
model "$OUT/config_types"
printf '{"architectures":"LlamaForCausalLM","hidden_size":"64"}' >"$OUT/config_types/config.json"
case_line config_wrong_types "$OUT/config_types" 0 4 "config\.json"
model "$OUT/config_wrong_arch"
printf '{"architectures":["BertForMaskedLM"],"model_type":"bert","hidden_size":64}' >"$OUT/config_wrong_arch/config.json"
case_line config_wrong_arch "$OUT/config_wrong_arch" 0 0 "" 4 "config\.json.*BertForMaskedLM"
model "$OUT/config_dir"
rm "$OUT/config_dir/config.json" && mkdir "$OUT/config_dir/config.json"
case_line config_is_dir "$OUT/config_dir" 3 3 "config\.json"
model "$OUT/tokenizer_broken"
printf '{"model": {"type": "BPE", "vocab": ' >"$OUT/tokenizer_broken/tokenizer.json"
case_line tokenizer_broken "$OUT/tokenizer_broken" 0 0 ""
model "$OUT/tokenizer_fifo"
mkfifo "$OUT/tokenizer_fifo/tokenizer.json"
case_line tokenizer_fifo "$OUT/tokenizer_fifo" 0 3 "tokenizer\.json.*not a regular file" 3 "" 3 "" 0 ""
model "$OUT/tokenizer_dir"
mkdir "$OUT/tokenizer_dir/tokenizer.json"
case_line tokenizer_is_dir "$OUT/tokenizer_dir" 0 3 "tokenizer\.json.*not a regular file" 3 "" 3 "" 0 ""

# ---- hostile calibration inputs for gptq and eval (on OUT/base, vocab 64) ----
CC="$OUT/calib_cases.txt"
: >"$CC"
C="$OUT/calib"
mkdir -p "$C"
# calib NAME HEADER DATA_FILE GPTQ_EXIT GPTQ_RX [EVAL_EXIT [EVAL_RX]]
calib() {
    st "$C/$1" "$2" "$3"
    echo "$1|$C/$1|$4|$5|${6:-$4}|${7:-$5}" >>"$CC"
}
ids() { for i in "$@"; do le64 "$i" | head -c 4; done; } # I32 little-endian (two's complement)
ids $(seq 0 63) >"$C/.ok"
ids $(seq 0 62) 64 >"$C/.oov"
ids -1 $(seq 1 63) >"$C/.neg"
CN='calib/'
calib calib_oov '{"input_ids":{"dtype":"I32","shape":[2,32],"data_offsets":[0,256]}}' "$C/.oov" 4 "${CN}calib_oov.*outside the vocabulary"
calib calib_negative '{"input_ids":{"dtype":"I32","shape":[2,32],"data_offsets":[0,256]}}' "$C/.neg" 4 "${CN}calib_negative"
calib calib_f32 '{"input_ids":{"dtype":"F32","shape":[2,32],"data_offsets":[0,256]}}' "$C/.ok" 4 "${CN}calib_f32"
calib calib_1d '{"input_ids":{"dtype":"I32","shape":[64],"data_offsets":[0,256]}}' "$C/.ok" 4 "${CN}calib_1d"
calib calib_no_rows '{"input_ids":{"dtype":"I32","shape":[0,32],"data_offsets":[0,0]}}' /dev/null 4 "${CN}calib_no_rows"
# one-token windows are valid GPTQ input; eval needs two tokens per window
calib calib_seqlen_1 '{"input_ids":{"dtype":"I32","shape":[64,1],"data_offsets":[0,256]}}' "$C/.ok" 0 "" 4 "${CN}calib_seqlen_1.*at least 2"
calib calib_no_ids '{"token_ids":{"dtype":"I32","shape":[2,32],"data_offsets":[0,256]}}' "$C/.ok" 4 "${CN}calib_no_ids"
calib calib_meta_type '{"__metadata__":{"seed":7},"input_ids":{"dtype":"I32","shape":[2,32],"data_offsets":[0,256]}}' "$C/.ok" 4 "${CN}calib_meta_type"
head -c 200 "$OUT/calib.bin" >"$C/calib_truncated"
echo "calib_truncated|$C/calib_truncated|4||4|" >>"$CC"
mkfifo "$C/calib_fifo"
echo "calib_fifo|$C/calib_fifo|3|calib_fifo.*not a regular file|3|calib_fifo.*not a regular file" >>"$CC"
mkdir "$C/calib_dir"
echo "calib_dir|$C/calib_dir|3|calib_dir|3|calib_dir" >>"$CC"
echo "calib_missing|$C/nonexistent.bin|3|nonexistent\.bin|3|nonexistent\.bin" >>"$CC"
# statistics files (docs/stats.md): q_proj's Hessian only (the rest falls back to RTN)
SM='"__metadata__":{"cquant_stats":"1","n_samples":"2"}'
QH='model.layers.0.self_attn.q_proj.hessian'
head -c 16384 "$PAT" >"$C/.h32"
# a symmetric positive definite H = I * 2 (64 x 64 F32)
for ((r = 0; r < 64; r++)); do for ((c = 0; c < 64; c++)); do
    if [ $r -eq $c ]; then printf '\x00\x00\x00\x40'; else printf '\x00\x00\x00\x00'; fi
done; done >"$C/.eye"
{ head -c 100 "$C/.eye"; printf '\x00\x00\xc0\x7f'; tail -c +105 "$C/.eye"; } >"$C/.eyenan"
calib stats_ok "{$SM,\"$QH\":{\"dtype\":\"F32\",\"shape\":[64,64],\"data_offsets\":[0,16384]}}" "$C/.eye" 0 "" 4 "stats_ok"
calib stats_version "{\"__metadata__\":{\"cquant_stats\":\"2\",\"n_samples\":\"2\"},\"$QH\":{\"dtype\":\"F32\",\"shape\":[64,64],\"data_offsets\":[0,16384]}}" "$C/.eye" 4 "${CN}stats_version.*version '2'" 4 "stats_version"
calib stats_samples "{\"__metadata__\":{\"cquant_stats\":\"1\",\"n_samples\":\"-3\"},\"$QH\":{\"dtype\":\"F32\",\"shape\":[64,64],\"data_offsets\":[0,16384]}}" "$C/.eye" 4 "${CN}stats_samples.*n_samples" 4 "stats_samples"
calib stats_not_square "{$SM,\"$QH\":{\"dtype\":\"F32\",\"shape\":[32,128],\"data_offsets\":[0,16384]}}" "$C/.eye" 4 "${CN}stats_not_square.*q_proj\.hessian" 4 "stats_not_square"
calib stats_i32 "{$SM,\"$QH\":{\"dtype\":\"I32\",\"shape\":[64,64],\"data_offsets\":[0,16384]}}" "$C/.eye" 4 "${CN}stats_i32.*q_proj\.hessian" 4 "stats_i32"
head -c 4096 "$C/.eye" >"$C/.eye32"
calib stats_wrong_dim "{$SM,\"$QH\":{\"dtype\":\"F32\",\"shape\":[32,32],\"data_offsets\":[0,4096]}}" "$C/.eye32" 4 "${CN}stats_wrong_dim.*q_proj\.hessian.*\\[64, 64\\]" 4 "stats_wrong_dim"
calib stats_nan "{$SM,\"$QH\":{\"dtype\":\"F32\",\"shape\":[64,64],\"data_offsets\":[0,16384]}}" "$C/.eyenan" 5 "${CN}stats_nan.*q_proj\.hessian.*non-finite value at \\[0, 25\\]" 4 "stats_nan"
rm -f "$C/.ok" "$C/.oov" "$C/.neg" "$C/.h32" "$C/.eye" "$C/.eyenan" "$C/.eye32"
rm -f "$PAT.12" "$PAT.20" "$PAT.16k" "$PAT.256" "$EIGHT" "$DATA"
