# Failures leave nothing at -o (no partial folder, no temp folder) and map to their exit codes.
. "$(dirname "$0")/lib.sh"

leftovers() { ls -a "$T" | grep -E '^(o|o\.cquant-.*)$' || true; }

# truncated model: bad input (4), nothing written
mkdir "$T/trunc" && cp "$TINY/config.json" "$T/trunc/"
head -c 1000000 "$TINY/model.safetensors" >"$T/trunc/model.safetensors"
expect 4 "$CQ_BIN" rtn "$T/trunc" -o "$T/o" && has "$T/err" "^cquant: error: .*model\.safetensors" "truncated: names the file"
eq "$(leftovers)" "" "truncated: nothing at -o"
# missing model: I/O (3)
expect 3 "$CQ_BIN" rtn "$T/nope" -o "$T/o"
eq "$(leftovers)" "" "missing: nothing at -o"
# existing output: 7 without --force, untouched; replaced with --force
mkdir "$T/o" && echo keep >"$T/o/marker"
expect 7 "$CQ_BIN" rtn "$TINY" -o "$T/o" && has "$T/err" "--force" "exists: suggests --force"
[ -f "$T/o/marker" ] && ok || fail "exists: output was touched"
expect 0 "$CQ_BIN" -q rtn --force "$TINY" -o "$T/o"
[ ! -e "$T/o/marker" ] && [ -f "$T/o/model.safetensors" ] && ok || fail "--force did not replace"
eq "$(ls -a "$T" | grep -c cquant-)" 0 "--force: no temp or old folder left"
# the default output name is beside the input, and is not overwritten either
cp -r "$TINY" "$T/m"
expect 0 "$CQ_BIN" -q rtn "$T/m" && eq "$(cat "$T/out")" "$T/m-rtn-w4g128" "default output name"
expect 7 "$CQ_BIN" -q rtn "$T/m"
# an already quantized input is refused (4)
expect 4 "$CQ_BIN" rtn "$T/m-rtn-w4g128" -o "$T/qq" && has "$T/err" "already quantized" "requantize refused"
# --report FILE outside the folder; refuses to replace FILE without --force
expect 0 "$CQ_BIN" -q rtn "$TINY" -o "$T/r1" --report "$T/rep.json"
has "$T/rep.json" '"schema":[[:space:]]*"cquant-report/1"' "--report FILE written"
[ ! -e "$T/r1/cquant-report.json" ] && ok || fail "--report FILE also wrote the default report"
# dequant of a float checkpoint is bad input
expect 4 "$CQ_BIN" dequant "$TINY" -o "$T/dq" && has "$T/err" "not quantized" "dequant float input"
[ ! -e "$T/dq" ] && ok || fail "dequant failure left output"
expect 0 "$CQ_BIN" -q rtn "$TINY" -o "$T/a/b/c" && [ -f "$T/a/b/c/model.safetensors" ] && ok || fail "missing parents of -o are created"
finish
