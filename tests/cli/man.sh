# The committed man page equals `cquant --man` (generated from the command and option tables),
# so it cannot drift; it covers every command and every option of --help, and renders cleanly.
# Regenerate with: build/src/cquant --man > docs/cquant.1
. "$(dirname "$0")/lib.sh"
expect 0 "$CQ_BIN" --man
if cmp -s "$T/out" "$CQ_SRC/docs/cquant.1"; then ok; else
    fail "docs/cquant.1 differs from 'cquant --man' (regenerate it: cquant --man > docs/cquant.1)"
    diff "$CQ_SRC/docs/cquant.1" "$T/out" | head -20 >&2
fi
cp "$T/out" "$T/man.1"
expect 0 "$CQ_BIN" --help
for cmd in $(sed -n 's/^    \([a-z]\+\) .*/\1/p' "$T/out"); do
    grep -q "^\.SS $cmd$" "$T/man.1" && ok || fail "command $cmd not in the man page"
    [ "$cmd" = help ] && continue
    "$CQ_BIN" "$cmd" --help >"$T/h" 2>&1
    for opt in $(grep -oE -- '--[a-z][a-z-]*' "$T/h" | sort -u); do
        roff=$(printf '%s' "$opt" | sed 's/-/\\\\-/g')
        grep -q -- "\\\\fB$roff\\\\fR" "$T/man.1" && ok || fail "$cmd $opt not in the man page"
    done
done
if command -v groff >/dev/null; then
    groff -man -ww -z "$T/man.1" 2>"$T/groff.err"
    eq "$(wc -c <"$T/groff.err" | tr -d ' ')" 0 "groff warnings: $(head -3 "$T/groff.err")"
fi
finish
