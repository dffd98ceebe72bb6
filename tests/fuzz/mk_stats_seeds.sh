# Writes the hand-made seeds of tests/fuzz/corpus/stats/ into the current folder (bash).
# seed NAME HEADER DATA_HEX: safetensors file from a header and hex data bytes
le64() { local n=$1 i; for i in 0 1 2 3 4 5 6 7; do printf "\\x$(printf %02x $(((n >> (8 * i)) & 255)))"; done; }
seed() { { le64 ${#2}; printf '%s' "$2"; printf "$3"; } > "$1"; }
F32x4='\x00\x00\x80\x3f\x00\x00\x00\x3f\x00\x00\x00\x3f\x00\x00\x80\x3f'
F64x4='\x00\x00\x00\x00\x00\x00\xf0\x3f\x00\x00\x00\x00\x00\x00\xe0\x3f\x00\x00\x00\x00\x00\x00\xe0\x3f\x00\x00\x00\x00\x00\x00\xf0\x3f'
md() { echo "\"__metadata__\":{\"cquant_stats\":\"$1\",\"n_samples\":\"$2\"}"; }
H32='"l.a.hessian":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}'
H64='"l.b.hessian":{"dtype":"F64","shape":[2,2],"data_offsets":[16,48]}'
seed valid "{$(md 1 128),$H32,$H64}" "$F32x4$F64x4"
seed valid_extra "{$(md 1 8),$H32,\"l.a.weight\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[16,32]}}" "$F32x4$F32x4"
seed valid_tokens "{\"__metadata__\":{\"cquant_stats\":\"1\",\"n_samples\":\"4\",\"n_tokens\":\"2048\",\"seqlen\":\"512\",\"seed\":\"0\",\"source\":\"x\"},$H32}" "$F32x4"
seed version2 "{$(md 2 128),$H32}" "$F32x4"
seed samples_zero "{$(md 1 0),$H32}" "$F32x4"
seed samples_neg "{$(md 1 -1),$H32}" "$F32x4"
seed samples_text "{$(md 1 abc),$H32}" "$F32x4"
seed samples_exp "{$(md 1 1e3),$H32}" "$F32x4"
seed samples_huge "{$(md 1 2000000000000),$H32}" "$F32x4"
seed samples_missing "{\"__metadata__\":{\"cquant_stats\":\"1\"},$H32}" "$F32x4"
seed no_metadata "{$H32}" "$F32x4"
seed calib_ids '{"input_ids":{"dtype":"I32","shape":[1,4],"data_offsets":[0,16]}}' "$F32x4"
seed not_square "{$(md 1 1),\"l.a.hessian\":{\"dtype\":\"F32\",\"shape\":[1,4],\"data_offsets\":[0,16]}}" "$F32x4"
seed one_d "{$(md 1 1),\"l.a.hessian\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}" "$F32x4"
seed i32 "{$(md 1 1),\"l.a.hessian\":{\"dtype\":\"I32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}" "$F32x4"
seed bf16 "{$(md 1 1),\"l.a.hessian\":{\"dtype\":\"BF16\",\"shape\":[2,4],\"data_offsets\":[0,16]}}" "$F32x4"
seed empty_shape "{$(md 1 1),\"l.a.hessian\":{\"dtype\":\"F32\",\"shape\":[0,0],\"data_offsets\":[0,0]}}" ""
seed nan "{$(md 1 1),$H32}" '\x00\x00\x80\x3f\x00\x00\xc0\x7f\x00\x00\x00\x3f\x00\x00\x80\x3f'
seed inf64 "{$(md 1 1),\"l.b.hessian\":{\"dtype\":\"F64\",\"shape\":[2,2],\"data_offsets\":[0,32]}}" '\x00\x00\x00\x00\x00\x00\xf0\x7f\x00\x00\x00\x00\x00\x00\xe0\x3f\x00\x00\x00\x00\x00\x00\xe0\x3f\x00\x00\x00\x00\x00\x00\xf0\x3f'
seed hessian_name "{$(md 1 1),\".hessian\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}" "$F32x4"
seed newline_version "{\"__metadata__\":{\"cquant_stats\":\"1\\u000a2\",\"n_samples\":\"1\"},$H32}" "$F32x4"
