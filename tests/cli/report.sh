# cquant report: two rtn runs of cq-llama-tiny compared as text, --json and --html; folders
# stand for their report; errors (invalid file: exit 4, missing: 3, bad --sort: 2, existing
# --html without --force: 7) are one line naming the file; mismatched layers are reported.
# The numbers themselves are checked in tests/unit/test_report_compare.c and test_report_html.c.
. "$(dirname "$0")/lib.sh"

expect 0 "$CQ_BIN" -q rtn --bits 4 --group 128 "$TINY" -o "$T/a"
expect 0 "$CQ_BIN" -q rtn --bits 8 --group -1 "$TINY" -o "$T/b"
A="$T/a/cquant-report.json"
expect 0 "$CQ_BIN" report "$A" "$T/b" --top 5
has "$T/out" "^cquant report: 2 reports, 28 layers$" "header"
has "$T/out" "^worst 5 layers by rel_frobenius_error" "worst table"
eq "$(sed -n '/^worst 5/,/^$/p' "$T/out" | grep -c '^model\.layers\.')" 5 "--top 5 rows"
has "$T/out" "^rel_frobenius_error +[0-9.e-]+ +[0-9.e-]+ +-[0-9.e-]+ +0\.0" "totals: w8 error is a small fraction of w4's"
eq "$(sed -n '/^per layer/,$p' "$T/out" | grep -c '^model\.layers\.')" 28 "every layer listed"
grep -q ' $' "$T/out" && fail "trailing spaces in the text" || ok

# --json: the compare tree; its totals equal the reports' own totals
expect 0 "$CQ_BIN" report --json "$T/a" "$T/b"
has "$T/out" '"schema":[[:space:]]*"cquant-compare/1"' "json schema"
has "$T/out" '"ok":[[:space:]]*true' "json ok"
tot_a=$(sed -n '/"totals"/,$p' "$A" | json_num /dev/stdin rel_frobenius_error)
has "$T/out" "\"rel_frobenius_error\":[[:space:]]*\[$tot_a, " "json totals carry report A's total"

# --html: one file, atomic, refuses to replace without --force
expect 0 "$CQ_BIN" -q report "$T/a" "$T/b" --html "$T/r.html"
has "$T/r.html" "^<!DOCTYPE html>" "html written"
eq "$(grep -c '<svg ' "$T/r.html")" 8 "two charts per shown field (4 fields)"
grep -q '<script' "$T/r.html" && fail "script in the page" || ok
expect 7 "$CQ_BIN" -q report "$T/a" "$T/b" --html "$T/r.html"
expect 0 "$CQ_BIN" -q report "$T/a" "$T/b" --html "$T/r.html" --force
ls "$T" | grep -q 'cquant-tmp' && fail "temporary file left" || ok

# errors: one line naming the file
printf '{"schema": "cquant-report/1", "layers": [{"name": 3}]}' >"$T/bad.json"
expect 4 "$CQ_BIN" report "$A" "$T/bad.json" && has "$T/err" "^cquant: error: '$T/bad.json': layers\[0\] has no \"name\"" "invalid report named"
eq "$(wc -l <"$T/err" | tr -d ' ')" 1 "one error line"
printf '{"schema": "other/1"}' >"$T/other.json"
expect 4 "$CQ_BIN" report "$T/other.json" && has "$T/err" "other.json': not a cquant report" "foreign JSON"
head -c 100 "$TINY/model.safetensors" >"$T/garbage.json"
expect 4 "$CQ_BIN" report "$T/garbage.json" && has "$T/err" "garbage.json" "binary garbage named"
expect 3 "$CQ_BIN" report "$T/missing.json" && has "$T/err" "missing.json" "missing file named"
expect 2 "$CQ_BIN" report --sort nope "$A" && has "$T/err" "'nope'" "unknown sort key"
expect 2 "$CQ_BIN" report
expect 4 "$CQ_BIN" report --json "$T/bad.json" && has "$T/out" '"ok":[[:space:]]*false' "json failure object"

# different models: layers matched by name, the rest reported (not an error)
need_shared
expect 0 "$CQ_BIN" -q rtn --group 32 "$SHARED/models/stories260K/hf" -o "$T/s"
expect 0 "$CQ_BIN" report "$T/a" "$T/s" --sort name
has "$T/out" "^mismatches \(" "mismatches listed"
has "$T/out" "^  \.\.\. 27 more \(see --json\)" "long mismatch list cut"
expect 0 "$CQ_BIN" report --json "$T/a" "$T/s"
eq "$(grep -c '"detail":[[:space:]]*"only in B (missing in A)"' "$T/out")" 7 "stories' block 4 only in B"
has "$T/out" '"kind":[[:space:]]*"status"' "quantized in one, skipped in the other"
finish
