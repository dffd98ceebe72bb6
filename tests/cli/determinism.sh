# Determinism: the same input and options give byte-identical checkpoints across runs and across
# worker counts (--threads 1 and 2: tensors worked on at once; rtn loads no BLAS), for each
# layout, sym/asym, --mse and sharded output; then gptq, awq and eval across OpenBLAS threads
# and --threads (below).
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
echo "determinism: $i rtn option sets, OpenBLAS threads 1 and 2, --threads 1 and 2 (and 2 again for the first)"

# gptq and awq make BLAS calls (forward pass, Hessians, Cholesky, lazy updates, the AWQ loss):
# every file, by sha256, must match between (OPENBLAS_NUM_THREADS, --threads) = (1, 1) and
# (2, 3); the report too once its timings and command line are removed. The gptq options
# (8 bits, tiny damping) make the codes sensitive to the last bits of U: with LAPACK's
# dpotrf/dtrtri under OpenBLAS threads (before linalg/det.h) this run differed between 1 and 2.
digest() { # DIR: "sha256  name" of every file, the report normalized
    local f
    for f in "$1"/*; do
        if [ "$(basename "$f")" = cquant-report.json ]; then
            grep -v -E '"command_line"|"[a-z_]*(second|secs|time|wall)[a-z_]*"' "$f" | sha256sum |
                sed "s|-\$|report|"
        else
            (cd "$1" && sha256sum "$(basename "$f")")
        fi
    done
}
CAL="$CQ_SRC/data/calib-docs.txt"
GPTQ="gptq --samples 4 --seqlen 128 -b 8 -g 32 --act-order --damp 0.00001"
for cmd in "$GPTQ" "awq --calib-docs 8 --calib-block 256 --grid 4"; do
    ref=""
    for run in "1 1" "2 3"; do
        set -- $run
        rm -rf "$T/d"
        OPENBLAS_NUM_THREADS=$1 expect 0 "$CQ_BIN" -q $cmd --threads "$2" "$TINY" "$CAL" \
            -o "$T/d" ||
            continue
        d=$(digest "$T/d")
        [ "$(echo "$d" | wc -l)" -ge 6 ] || fail "${cmd%% *}: too few files"
        if [ -z "$ref" ]; then ref=$d; elif [ "$d" = "$ref" ]; then ok; else
            fail "${cmd%% *}: OPENBLAS_NUM_THREADS=$1 --threads $2 differs from 1/1"
            diff <(echo "$ref") <(echo "$d") >&2
        fi
    done
done
# eval: the perplexity numbers (every digit of the JSON summary but the timing)
ref=""
for th in 1 2; do
    OPENBLAS_NUM_THREADS=$th expect 0 "$CQ_BIN" eval --json --seqlen 256 --max-windows 4 "$TINY" \
        "$CAL" || continue
    d=$(grep -v '"seconds"' "$T/out")
    grep -q '"nll_sum"' "$T/out" || fail "eval: no nll_sum"
    if [ -z "$ref" ]; then ref=$d; elif [ "$d" = "$ref" ]; then ok; else
        fail "eval: OPENBLAS_NUM_THREADS=$th differs"
    fi
done
finish
