#!/usr/bin/env bash
# AWQ vs RTN quality on a model: quantize both (w4 g128 asym), unpack with `cquant dequant`, and
# print WikiText-2 perplexity (MODEL.md protocol, scripts/ppl.c) of each. Slow on 2 cores
# (about 10 minutes per perplexity for cq-llama-16m).
#   scripts/awq_quality.sh [MODEL_DIR] [CALIB_TXT] [CTX]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
model=${1:-$root/../shared/models/cq-llama-16m}
calib=${2:-$root/../shared/text/calib-debian-docs.txt}
ctx=${3:-1024}
text=$root/../shared/text/wikitext-2-raw-v1.test.joined.txt
bin=$root/build/src/cquant
lib=$root/build/src/libcquant_core.a
[ -x "$bin" ] && [ -f "$lib" ] || { echo "awq_quality: build first" >&2; exit 2; }
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
cblas_inc=$(dirname "$(find /usr/include -name cblas.h -path '*openblas*' | head -1)")
cc -O2 -D_GNU_SOURCE -I "$root/include" -I "$cblas_inc" "$root/scripts/ppl.c" "$lib" \
  -llapacke -lopenblas -lcjson -lz -lm -lpthread -o "$t/ppl"
"$bin" -q awq "$model" "$calib" -o "$t/awq" >/dev/null
"$bin" -q rtn --asym "$model" -o "$t/rtn" >/dev/null
for m in awq rtn; do
  "$bin" -q dequant "$t/$m" -o "$t/$m-dq" >/dev/null
  echo "$m: $("$t/ppl" "$t/$m-dq" "$text" "$ctx" 2>/dev/null)"
done
