#!/usr/bin/env bash
# End-to-end GPTQ speed and memory, in one invocation:
#  1. cq-llama-16m, w4g128 asym, true-sequential: `cquant gptq` against the PyTorch-CPU
#     sequential pipeline (scripts/ref/gptq_pipeline.py, eval skipped), same calibration ids
#     (the first N_SEQ windows of CALIB cut to SEQLEN tokens), same thread count; wall time and
#     peak RSS (/usr/bin/time) of each.
#  2. A synthetic model with Llama-7B layer shapes (hidden 4096, intermediate 11008, 32 heads,
#     vocab 32000, random BF16 weights) and SYN_LAYERS layers: measured peak RSS against
#     `cquant gptq --plan`, then the plan for 32 layers and 128 x 2048 calibration tokens.
# Usage: scripts/bench_gptq_e2e.sh [N_SEQ] [SEQLEN] [THREADS]     (defaults 32 512 nproc)
# Env: CALIB (default /work/calib-16m-ref.bin: safetensors input_ids [n, >= SEQLEN]),
#      SHARED (default ../shared), SYN_LAYERS (2), SYN_SEQ (4), SYN_SEQLEN (512), SKIP_SYN=1.
# Needs build/ (cmake --build build) and /usr/bin/python3 with torch (Debian python3-torch).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-32} S=${2:-512} threads=${3:-$(nproc)}
shared=${SHARED:-$root/../shared}
calib=${CALIB:-/work/calib-16m-ref.bin}
model="$shared/models/cq-llama-16m"
bin="$root/build/src/cquant"
lib="$root/build/src/libcquant_core.a"
[ -x "$bin" ] && [ -f "$lib" ] || { echo "bench_gptq_e2e: build first" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OPENBLAS_NUM_THREADS=$threads OMP_NUM_THREADS=$threads
echo "threads=$threads nproc=$(nproc) cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) (the machine is shared: timings vary)"

# the calibration slice both pipelines read
/usr/bin/python3 - "$calib" "$work/calib.bin" "$n" "$S" <<'EOF'
import json, struct, sys
src, dst, n, S = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
b = open(src, "rb").read()
hl = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + hl])
t = h["input_ids"]
assert t["dtype"] == "I32", "need I32 input_ids"
rows, cols = t["shape"]
assert n <= rows and S <= cols, f"calib has {rows} x {cols}"
o = 8 + hl + t["data_offsets"][0]
data = b"".join(b[o + 4 * r * cols:o + 4 * (r * cols + S)] for r in range(n))
hdr = json.dumps({"__metadata__": {"mode": "random", "seed": "0"},
                  "input_ids": {"dtype": "I32", "shape": [n, S],
                                "data_offsets": [0, len(data)]}}).encode()
hdr += b" " * (-len(hdr) % 8)
open(dst, "wb").write(struct.pack("<Q", len(hdr)) + hdr + data)
EOF

echo "== cq-llama-16m, w4g128 asym, true-sequential, calibration $n x $S tokens"
/usr/bin/time -f "cquant_wall_s=%e cquant_peak_rss_kb=%M" "$bin" -q gptq --asym \
  --threads "$threads" "$model" "$work/calib.bin" -o "$work/cq" 2>"$work/cq.time"
cat "$work/cq.time"
/usr/bin/time -f "torch_wall_s=%e torch_peak_rss_kb=%M" /usr/bin/python3 \
  "$root/scripts/ref/gptq_pipeline.py" "$model" "$work/calib.bin" "$work/calib.bin" \
  --method gptq --bits 4 --group 128 --threads "$threads" --seqlens "" \
  >"$work/pt.out" 2>"$work/pt.time"
grep -E "quant_seconds" "$work/pt.out" | sed 's/^/torch: /'
tail -1 "$work/pt.time"
c=$(sed -n 's/.*cquant_wall_s=\([0-9.]*\).*/\1/p' "$work/cq.time")
p=$(sed -n 's/.*torch_wall_s=\([0-9.]*\).*/\1/p' "$work/pt.time")
awk -v c="$c" -v p="$p" 'BEGIN { printf "speedup_vs_torch=%.2f (wall, whole process)\n", p / c }'

[ "${SKIP_SYN:-0}" = 1 ] && exit 0
L=${SYN_LAYERS:-2} sn=${SYN_SEQ:-4} sS=${SYN_SEQLEN:-512}
echo "== synthetic Llama-7B shapes, $L layers, calibration $sn x $sS tokens"
cc -O2 -std=c11 -D_GNU_SOURCE -I"$root/include" -I/usr/include/x86_64-linux-gnu/openblas-pthread \
  "$root/scripts/bench/synth_llama.c" "$lib" -llapacke -lopenblas -lcjson -lz -lpthread -lm \
  -o "$work/synth_llama"
"$work/synth_llama" "$work/syn" "$L" 4096 11008 32 32 32000 "$sn" "$sS"
"$bin" gptq --plan "$work/syn" "$work/syn/calib.bin"
/usr/bin/time -f "syn_wall_s=%e syn_peak_rss_kb=%M" "$bin" gptq --threads "$threads" \
  "$work/syn" "$work/syn/calib.bin" -o "$work/synq" 2>&1 | grep -E "planned|layer|syn_"
rm -rf "$work/synq"
echo "== the plan at full scale (32 layers, 128 x 2048 calibration), same shapes"
"$work/synth_llama" "$work/syn32" 1 4096 11008 32 32 32000 128 2048 >/dev/null
sed -i 's/"num_hidden_layers": 1/"num_hidden_layers": 32/' "$work/syn32/config.json"
"$bin" gptq --plan "$work/syn32" "$work/syn32/calib.bin"
"$bin" gptq --plan --offload-dir "$work" "$work/syn32" "$work/syn32/calib.bin"
