# Determinism: the same input and options give byte-identical checkpoints across runs and across
# worker counts (--threads 1 and 2: tensors worked on at once; rtn loads no BLAS), for each
# layout, sym/asym, --mse and sharded output.
# The report (cquant-report.json) holds timings and is excluded; everything else is compared.
. "$(dirname "$0")/lib.sh"

same() { # A B: same files, same bytes, report excepted
    local f n=0
    for f in "$1"/*; do
        [ "$(basename "$f")" = cquant-report.json ] && continue
        n=$((n + 1))
        cmp -s "$f" "$2/$(basename "$f")" || { echo "differs: $(basename "$f")" >&2; return 1; }
    done
    [ "$n" -gt 0 ] && [ "$(ls "$1" | wc -l)" -eq "$(ls "$2" | wc -l)" ]
}
i=0
while read -r opts; do
    i=$((i + 1))
    runs="1 2"
    [ "$i" -eq 1 ] && runs="1 2 2" # one set also checks run-to-run at the same thread count
    for th in $runs; do
        rm -rf "$T/o$th"
        expect 0 "$CQ_BIN" -q rtn --threads "$th" $opts "$TINY" -o "$T/o$th"
        [ -e "$T/first" ] || cp -r "$T/o$th" "$T/first"
        same "$T/first" "$T/o$th" && ok || fail "rtn $opts: --threads $th differs"
    done
    rm -rf "$T/first"
done <<'CASES'
-b 4 -g 128
-b 3 -g 64 --asym --mse
-b 4 -g 128 --asym -f awq
-b 8 -g -1 -f ct --max-shard-size 2MB
CASES
echo "determinism: $i option sets, --threads 1 and 2 (and 2 again for the first)"
finish
