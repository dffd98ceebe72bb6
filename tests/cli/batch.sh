# cquant batch: 6 rtn jobs (cq-llama-tiny from the repo, stories260K and cq-llama-16m's config
# via CQ_SHARED) with one broken input: 5 outputs, 1 failure with its error line, exit 8;
# the rerun skips the 5; without --keep-going the batch stops at the failure; changed options
# or a changed input byte make a job stale (it fails with exit 7 until --force); --jobs 3 gives
# the same results; manifest errors are exit 4 naming the manifest and the job.
. "$(dirname "$0")/lib.sh"
need_shared
S="$SHARED/models/stories260K/hf"
printf 'this is not a safetensors file' >"$T/broken.safetensors"
cp -r "$TINY" "$T/tinycopy"

manifest() { # $1: options of job tiny-w4 (to make it stale)
    cat <<JSON
{"jobs": [
  {"name": "tiny-w4", "model": "$TINY", "method": "rtn", "options": {$1}, "output": "res/tiny-w4"},
  {"name": "broken", "model": "broken.safetensors", "method": "rtn", "output": "res/broken"},
  {"name": "tiny-w8-row", "model": "$TINY", "method": "rtn", "options": {"bits": 8, "group": -1}, "output": "res/tiny-w8"},
  {"name": "tiny-awq-asym", "model": "$TINY", "method": "rtn", "options": {"sym": false, "format": "awq", "exclude": ["*.down_proj"]}, "output": "res/tiny-awq"},
  {"name": "stories-g32", "model": "$S", "method": "rtn", "args": ["--group", "32"], "output": "res/stories", "eval": "$SHARED/text/wikitext-2-raw-v1-test.txt"},
  {"name": "copy-w3", "model": "tinycopy", "method": "rtn", "options": {"bits": 3, "mse": true, "group_size": 64}, "output": "res/copy-w3"}
]}
JSON
}
manifest '"bits": 4, "group": 128' >"$T/m.json"
count() { grep -c "\"status\":[[:space:]]*\"$1\"" "$T/out"; }

expect 8 "$CQ_BIN" batch --keep-going --json "$T/m.json"
eq "$(count ok)" 5 "first run: 5 ok"
eq "$(count failed)" 1 "first run: 1 failed"
has "$T/out" "\"error\":[[:space:]]*\"'$T/broken.safetensors': " "the failure's error line names the input"
has "$T/out" '"exit_code":[[:space:]]*4,' "the failure's exit code"
has "$T/out" '"ok":[[:space:]]*false' "summary ok false"
has "$T/out" '"perplexity":[[:space:]]*null' "perplexity null (the eval text does not exist)"
has "$T/out" '"perplexity_note":[[:space:]]*"cquant eval failed"' "perplexity note: eval failed"
has "$T/err" "^cquant: error: batch: 1 of 6 jobs failed, 0 not run$" "one error line"
for o in tiny-w4 tiny-w8 tiny-awq stories copy-w3; do
    [ -f "$T/res/$o/cquant-report.json" ] && ok || fail "output $o missing"
done
[ ! -e "$T/res/broken" ] && ok || fail "the failed job left an output"
has "$T/res/tiny-awq/config.json" '"quant_method":[[:space:]]*"awq"' "options reach the job"
has "$T/res/copy-w3/cquant-report.json" '"group_size":[[:space:]]*64' "group_size alias"

# rerun: the 5 finished jobs are skipped (and say where their report is)
expect 8 "$CQ_BIN" batch --keep-going --json --jobs 3 "$T/m.json"
eq "$(count skipped)" 5 "rerun: 5 skipped"
eq "$(count failed)" 1 "rerun: broken still fails"
has "$T/out" "\"report\":[[:space:]]*\"$T/res/tiny-w8/cquant-report.json\"" "skipped job's report"

# without --keep-going: stops at the failure (job 2); the rest are not run
rm -rf "$T/res"
expect 8 "$CQ_BIN" batch --json "$T/m.json"
eq "$(count ok)" 1 "stop at first failure: 1 ok"
eq "$(count not_run)" 4 "stop at first failure: 4 not run"
[ ! -e "$T/res/tiny-w8" ] && ok || fail "a job ran after the failure"

# text summary
expect 8 "$CQ_BIN" -q batch -k "$T/m.json"
has "$T/out" "^broken +failed +4 " "text row of the failure"
has "$T/out" "^6 jobs: 4 ok, 1 failed, 1 skipped, 0 not run$" "text totals"

# stale: other options, or a changed input byte -> exit 7 for that job until --force
manifest '"bits": 4, "group": 64' >"$T/m2.json"
printf '\x01' | dd of="$T/tinycopy/model.safetensors" bs=1 seek=$(($(stat -c %s "$T/tinycopy/model.safetensors") - 3)) conv=notrunc 2>/dev/null
expect 8 "$CQ_BIN" batch -k --json "$T/m2.json"
eq "$(count failed)" 3 "stale jobs fail"
eq "$(grep -c '"exit_code":[[:space:]]*7,' "$T/out")" 2 "stale outputs: exit 7"
has "$T/out" '"note":[[:space:]]*"output exists but was made with other options' "stale options noted"
has "$T/out" "\"note\":[[:space:]]*\"input '$T/tinycopy/model.safetensors' changed" "changed input noted"
expect 8 "$CQ_BIN" batch -k --force --json "$T/m2.json"
eq "$(count ok)" 2 "--force reruns the stale jobs"
has "$T/res/tiny-w4/cquant-report.json" '"group_size":[[:space:]]*64' "replaced with the new options"
expect 8 "$CQ_BIN" batch -k --json "$T/m2.json"
eq "$(count skipped)" 5 "after --force the jobs are done"

# manifest errors: exit 4, naming the manifest and the job
printf '{"jobs": [{"name": "x", "model": "m", "method": "rtn", "ouput": "o"}]}' >"$T/bad1.json"
expect 4 "$CQ_BIN" batch "$T/bad1.json" && has "$T/err" "bad1.json': jobs\[0\]: unknown key 'ouput'" "unknown key"
printf '{"jobs": [{"name": "x", "model": "m", "method": "rtn", "output": "o"}, {"name": "y", "model": "m", "method": "rtn", "output": "o"}]}' >"$T/bad2.json"
expect 4 "$CQ_BIN" batch "$T/bad2.json" && has "$T/err" "jobs 'x' and 'y' write the same output" "duplicate output"
printf '{"jobs": [{"name": "x", "model": "m", "method": "foo", "output": "o"}]}' >"$T/bad3.json"
expect 4 "$CQ_BIN" batch "$T/bad3.json" && has "$T/err" "job 'x': method 'foo' is not rtn, gptq or awq" "bad method"
printf '{"jobs": [{"name": "x", "model": "m", "method": "rtn", "output": "o", "options": {"json": true}}]}' >"$T/bad4.json"
expect 4 "$CQ_BIN" batch "$T/bad4.json" && has "$T/err" "option 'json' is set by batch" "reserved option"
printf '[' >"$T/bad5.json"
expect 4 "$CQ_BIN" batch "$T/bad5.json"
expect 3 "$CQ_BIN" batch "$T/none.json"
expect 2 "$CQ_BIN" batch --jobs 0 "$T/m.json"
finish
