#!/usr/bin/env bash
# Reference AWQ / AWQ+GPTQ perplexities of cq-llama-16m (scripts/ref/awq_pipeline.py) for
# comparison with `cquant awq`: the same calibration ids, the same WikiText ids.
#   scripts/ref/awq_gpu.sh prep   # on the CPU host, from the repo root, after a build:
#                                 # writes .device/ (git-ignored): the model and the ids
#   scripts/ref/awq_gpu.sh run    # on the GPU machine (carry .device): JSON lines into $OUT
# Each run prints one JSON line per layer (ratios, losses, clip) and a last line with ppl@1024.
set -euo pipefail
D=.device
case "${1:-}" in
prep)
  mkdir -p $D
  [ -d $D/cq-llama-16m ] || cp -r ../shared/models/cq-llama-16m $D/
  c=build/src/cquant
  $c -q calib --force --mode concat -o $D/awq-concat.bin $D/cq-llama-16m ../shared/text/calib-debian-docs.txt
  $c -q calib --force --mode split -n 32 -o $D/awq-split32.bin $D/cq-llama-16m ../shared/text/calib-debian-docs.txt
  # the whole WikiText stream (384,593 tokens) minus its last token: one "random" window that can
  # only start at 0; the @1024 windows are the same (the tail is dropped either way)
  $c -q calib --force --mode random -n 1 --seqlen 384592 -o $D/wiki-ids.bin $D/cq-llama-16m ../shared/text/wikitext-2-raw-v1.test.joined.txt
  ls -la $D ;;
run)
  OUT=${OUT:-.}
  for c in concat split32; do
    python3 scripts/ref/awq_pipeline.py $D/cq-llama-16m $D/awq-$c.bin $D/wiki-ids.bin --device cuda \
      > "$OUT/awq-$c.jsonl"
    python3 scripts/ref/awq_pipeline.py $D/cq-llama-16m $D/awq-$c.bin $D/wiki-ids.bin --device cuda \
      --then-gptq > "$OUT/awqgptq-$c.jsonl"
  done
  tail -n1 "$OUT"/*.jsonl ;;
*) echo "usage: $0 prep|run" >&2; exit 2 ;;
esac
