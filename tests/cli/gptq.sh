# cquant gptq on the embedded tiny model: resume after a kill (the test hook and a real random
# kill -9) gives the bytes of an uninterrupted run; --offload-dir gives the same bytes; a resume
# with other options is refused; refusals leave nothing behind.
source "$(dirname "$0")/lib.sh"
need_shared
CAL="$T/calib.txt"
head -c 40000 "$SHARED/text/calib-debian-docs.txt" >"$CAL"
ARGS=(--samples 8 --seqlen 128 --asym)
same() { # same DIR_A DIR_B: model and configs byte-identical
    for f in model.safetensors config.json quantize_config.json; do
        if cmp -s "$1/$f" "$2/$f"; then ok; else fail "$f differs between $1 and $2"; fi
    done
}

# the uninterrupted run
expect 0 "$CQ_BIN" -q gptq "${ARGS[@]}" "$TINY" "$CAL" -o "$T/full" && ok
[ -d "$T/full/.cquant-gptq" ] && fail "resume state left in the output" || ok
has "$T/full/cquant-report.json" '"gptq_loss"' "report has gptq_loss"
has "$T/full/cquant-report.json" '"rtn_loss"' "report has rtn_loss"
has "$T/full/cquant-report.json" '"damp_used"' "report has damp_used"
has "$T/full/cquant-report.json" '"rel_output_error"' "report has rel_output_error"

# killed by the hook after layer index 1 (of 4): exit 137, only the temporary folder exists
CQ_TEST_DIE_AFTER_LAYER=1 "$CQ_BIN" -q gptq "${ARGS[@]}" "$TINY" "$CAL" -o "$T/k1" 2>"$T/err"
eq "$?" 137 "hook exit code"
[ -e "$T/k1" ] && fail "output exists after the kill" || ok
[ -f "$T/k1.cquant-tmp/.cquant-gptq/state.json" ] && ok || fail "no resume state"
has "$T/k1.cquant-tmp/.cquant-gptq/state.json" '"done_layers":[[:space:]]*2' "state after layer 2"
# a resume with other options is refused and keeps the state
expect 2 "$CQ_BIN" -q gptq "${ARGS[@]}" --damp 0.02 --resume "$TINY" "$CAL" -o "$T/k1"
has "$T/err" "cannot resume" "refusal names the reason"
[ -f "$T/k1.cquant-tmp/.cquant-gptq/state.json" ] || fail "refused resume lost the state"
# the real resume: the same bytes
expect 0 "$CQ_BIN" gptq "${ARGS[@]}" --resume "$TINY" "$CAL" -o "$T/k1"
has "$T/err" "resuming after layer 2 of 4" "resume message"
has "$T/err" "layer 3/4" "layer 3 ran"
grep -q "layer 2/4" "$T/err" && fail "layer 2 ran again" || ok
same "$T/full" "$T/k1"
n=$(grep -c '"gptq_loss"' "$T/k1/cquant-report.json")
eq "$n" 28 "report entries after resume"

# killed by the hook before any layer finished: resume starts over, same bytes
CQ_TEST_DIE_AFTER_LAYER=3 "$CQ_BIN" -q gptq "${ARGS[@]}" "$TINY" "$CAL" -o "$T/k3" 2>/dev/null
eq "$?" 137 "hook exit code (last layer)"
expect 0 "$CQ_BIN" -q gptq "${ARGS[@]}" --resume "$TINY" "$CAL" -o "$T/k3"
same "$T/full" "$T/k3"

# a real kill -9 at a random moment, then --resume (repeated until it finishes)
"$CQ_BIN" -q gptq "${ARGS[@]}" "$TINY" "$CAL" -o "$T/rk" >/dev/null 2>&1 &
pid=$!
sleep "0.$((RANDOM % 9 + 1))"
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
if [ ! -d "$T/rk" ]; then
    expect 0 "$CQ_BIN" -q gptq "${ARGS[@]}" --resume "$TINY" "$CAL" -o "$T/rk"
fi
same "$T/full" "$T/rk"

# activations in a mapped file: same bytes
mkdir "$T/off"
expect 0 "$CQ_BIN" -q gptq "${ARGS[@]}" --offload-dir "$T/off" "$TINY" "$CAL" -o "$T/offl"
same "$T/full" "$T/offl"
[ -z "$(ls -A "$T/off")" ] && ok || fail "offload file left behind"

# refusals: existing output, bad calibration file, missing CALIB
expect 7 "$CQ_BIN" -q gptq "${ARGS[@]}" "$TINY" "$CAL" -o "$T/full"
printf 'x' >"$T/short.txt"
expect 4 "$CQ_BIN" -q gptq "${ARGS[@]}" "$TINY" "$T/short.txt" -o "$T/bad"
[ -e "$T/bad" ] && fail "output after a refused calibration" || ok
expect 2 "$CQ_BIN" -q gptq "$TINY"
finish
