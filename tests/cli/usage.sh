# Usage errors exit 2 with one error line plus a pointer to --help; --help works for every
# command both ways; --version; option spellings (--bits 4, --bits=4, -b4, --) parse alike.
. "$(dirname "$0")/lib.sh"

one_error_line() { # the error is exactly one "cquant: error:" line, then the help pointer
    eq "$(grep -c '^cquant: error: ' "$T/err")" 1 "one error line for: $1"
    has "$T/err" "^see 'cquant( [a-z]+)? --help'$" "help pointer for: $1"
    eq "$(wc -l <"$T/err" | tr -d ' ')" 2 "two stderr lines for: $1"
    eq "$(wc -c <"$T/out" | tr -d ' ')" 0 "nothing on stdout for: $1"
}

for args in "rtn --bits 5 $TINY" "rtn --bits=x $TINY" "rtn --group 0 $TINY" "rtn --group" \
    "rtn --group 12x $TINY" "rtn --nope $TINY" "rtn" "rtn a b" "rtn --format foo $TINY" \
    "rtn --format awq --bits 3 $TINY" "rtn --max-shard-size 5XB $TINY" "rtn --sym=1 $TINY" \
    "inspect" "dequant" "dequant --dtype f8 x" "frobnicate" "--frob" "help frobnicate" \
    "rtn --bits 99999999999999999999 $TINY"; do
    # shellcheck disable=SC2086
    expect 2 "$CQ_BIN" $args && one_error_line "$args"
done
expect 2 "$CQ_BIN" # no command: the overview goes to stderr
has "$T/err" "^usage: cquant" "overview on stderr without a command"

for cmd in inspect rtn dequant; do
    expect 0 "$CQ_BIN" "$cmd" --help && has "$T/out" "^usage: cquant $cmd" "$cmd --help"
    has "$T/out" "--json" "$cmd --help lists --json"
    expect 0 "$CQ_BIN" help "$cmd" && has "$T/out" "^usage: cquant $cmd" "help $cmd"
done
expect 0 "$CQ_BIN" rtn --help && has "$T/out" "--bits 2\|3\|4\|8 .*\(default 4\)" "rtn help shows the default"
expect 0 "$CQ_BIN" --help && has "$T/out" "^    rtn " "overview lists rtn"
has "$T/out" "130 interrupted" "overview lists exit codes"
expect 0 "$CQ_BIN" --version && has "$T/out" "^cquant [0-9]+\.[0-9]+\.[0-9]+$" "--version"

# Every spelling parses (the run then fails on the missing model: exit 3, not a usage error);
# the parsed values themselves are checked in tests/unit/test_opts.c.
for spelling in "--bits 8" "--bits=8" "-b8" "-b 8" "-qb8"; do
    # shellcheck disable=SC2086
    expect 3 "$CQ_BIN" rtn $spelling --group -1 -o "$T/never" -- "$T/missing"
done
# -q: silent stderr on success; --json: one JSON object on stdout
expect 0 "$CQ_BIN" -q rtn "$TINY" -o "$T/q1" && eq "$(wc -c <"$T/err" | tr -d ' ')" 0 "-q is silent"
expect 0 "$CQ_BIN" rtn --json -q "$TINY" -o "$T/q2" && has "$T/out" '"ok":[[:space:]]*true' "--json ok"
eq "$(json_num "$T/out" quantized)" 28 "--json: 28 quantized Linears in cq-llama-tiny"
finish
