#!/usr/bin/env bash
# AWQ vs RTN quality on a model: quantize both (w4 g128 asym), unpack with `cquant dequant`, and
# print WikiText-2 perplexity (MODEL.md protocol, scripts/ppl.c) of each. Slow on 2 cores
# (about 10 minutes per perplexity for cq-llama-16m).
#   scripts/awq_quality.sh [MODEL_DIR] [CALIB_TXT] [CTX]
. "$(dirname "$0")/lib_bench.sh"
bench_init awq_quality
model=${1:-$root/../shared/models/cq-llama-16m}
calib=${2:-$root/../shared/text/calib-debian-docs.txt}
ctx=${3:-1024}
text=$root/../shared/text/wikitext-2-raw-v1.test.joined.txt
bin=$root/build/src/cquant
[ -x "$bin" ] || { echo "awq_quality: build first (missing $bin)" >&2; exit 2; }
bench_cc "$work/ppl" "$root/scripts/ppl.c"
"$bin" -q awq "$model" "$calib" -o "$work/awq" >/dev/null
"$bin" -q rtn --asym "$model" -o "$work/rtn" >/dev/null
for m in awq rtn; do
  "$bin" -q dequant "$work/$m" -o "$work/$m-dq" >/dev/null
  echo "$m: $("$work/ppl" "$work/$m-dq" "$text" "$ctx" 2>/dev/null)"
done
