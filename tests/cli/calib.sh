# cquant calib: jsonl and gzip inputs (by magic bytes, not name), concat mode, metadata, and
# hostile inputs -> one-line errors with the documented exit codes and nothing at -o.
. "$(dirname "$0")/lib.sh"

# one_line_error FILE: stderr is exactly one "cquant: error: ..." line naming FILE
one_line_error() {
    eq "$(wc -l <"$T/err")" 1 "one line on stderr for $1"
    has "$T/err" "^cquant: error: .*$1" "the error names $1"
}
nothing_at() { eq "$(ls -a "$T" | grep -c "^$1")" 0 "nothing at -o (or beside it) for $1"; }

python_free_text() { # documents separated by blank lines, a few hundred tokens in all
    for i in $(seq 1 40); do
        printf 'Document %d talks about packages, compilers and the kernel.\nIt has two lines.\n\n' "$i"
    done
}
python_free_text >"$T/docs.txt"

# random from plain text vs the same text gzipped under a name without .gz, and as jsonl.gz:
# the same ids (the jsonl holds the whole text as one "text")
expect 0 "$CQ_BIN" -q calib --json --samples 5 --seqlen 32 --seed 3 "$TINY" "$T/docs.txt" -o "$T/a.bin"
eq "$(json_num "$T/out" n)" 5 "random: n"
eq "$(json_num "$T/out" seqlen)" 32 "random: seqlen"
has "$T/out" '"mode":[[:space:]]*"random"' "random: mode"
gzip -c "$T/docs.txt" >"$T/docs.dat"
expect 0 "$CQ_BIN" -q calib --samples 5 --seqlen 32 --seed 3 "$TINY" "$T/docs.dat" -o "$T/b.bin"
cmp -s <(tail -c 640 "$T/a.bin") <(tail -c 640 "$T/b.bin") && ok || fail "gzip (by magic) gives other ids"
# the jsonl text is the file with its trailing newline: JSON-escape it by hand
{ printf '{"text": "'; sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' "$T/docs.txt" | awk '{printf "%s\\n", $0}'; printf '"}\n'; } >"$T/docs.jsonl"
gzip -c "$T/docs.jsonl" >"$T/docs.jsonl.gz"
expect 0 "$CQ_BIN" -q calib --samples 5 --seqlen 32 --seed 3 "$TINY" "$T/docs.jsonl.gz" -o "$T/c.bin"
cmp -s <(tail -c 640 "$T/a.bin") <(tail -c 640 "$T/c.bin") && ok || fail "jsonl.gz gives other ids"
# metadata: sources with sha256 of the bytes on disk, the tokenizer hash, seed, bos
has "$T/c.bin" "\"sha256\\\\\":\\\\\"$(sha256sum "$T/docs.jsonl.gz" | cut -c1-64)" "sources: sha256 of the file"
has "$T/c.bin" "\"tokenizer_hash\":\"$(sha256sum "$TINY/tokenizer.json" | cut -c1-64)\"" "tokenizer hash"
has "$T/c.bin" '"seed":"3"' "seed in metadata"
has "$T/c.bin" '"bos":"false"' "random: no BOS by default"

# concat: 40 documents of about 20 tokens, block 64 -> floor(total / 64) blocks, each a BOS-led run
expect 0 "$CQ_BIN" -q calib --json --mode concat --seqlen 64 "$TINY" "$T/docs.txt" -o "$T/k.bin"
has "$T/out" '"mode":[[:space:]]*"concat"' "concat: mode"
has "$T/out" '"bos":[[:space:]]*true' "concat: BOS per document"
n=$(json_num "$T/out" n)
[ "$n" -ge 5 ] && [ "$n" -le 20 ] && ok || fail "concat: $n blocks of 64 from 40 short documents"
expect 0 "$CQ_BIN" -q calib --json --mode concat "$TINY" "$T/docs.txt" -o "$T/k2.bin"
eq "$(json_num "$T/out" seqlen)" 512 "concat: default block 512"

# default seqlen: the model's max_position_embeddings (2048) when the text is long enough
need_shared
expect 0 "$CQ_BIN" -q calib --json --samples 2 "$TINY" "$SHARED/text/tinyshakespeare.txt" -o "$T/d.bin"
eq "$(json_num "$T/out" seqlen)" 2048 "random: default seqlen"

# hostile inputs: exit 4 (bad input), one line naming the file, nothing at -o
: >"$T/empty.txt"
expect 4 "$CQ_BIN" calib "$TINY" "$T/empty.txt" -o "$T/o1.bin" && one_line_error "empty.txt"
has "$T/err" "empty" "empty: says so"
nothing_at o1.bin
printf '\037\213not deflate at all' >"$T/bad.gz"
expect 4 "$CQ_BIN" calib "$TINY" "$T/bad.gz" -o "$T/o2.bin" && one_line_error "bad.gz"
has "$T/err" "bad gzip" "bad gzip: says so"
nothing_at o2.bin
head -c $(( $(wc -c <"$T/docs.dat") / 2 )) "$T/docs.dat" >"$T/cut.dat"
expect 4 "$CQ_BIN" calib "$TINY" "$T/cut.dat" -o "$T/o3.bin" && one_line_error "cut.dat"
has "$T/err" "truncated" "truncated gzip: says so"
nothing_at o3.bin
printf 'a few words only\n' >"$T/short.txt"
expect 4 "$CQ_BIN" calib "$TINY" "$T/short.txt" -o "$T/o4.bin" && one_line_error "short.txt"
has "$T/err" "too little text" "too little text: says so"
nothing_at o4.bin
expect 4 "$CQ_BIN" calib --mode concat "$TINY" "$T/short.txt" -o "$T/o5.bin" && one_line_error "short.txt"
has "$T/err" "too little text" "concat: too little text"
nothing_at o5.bin
printf '{"text": "fine"}\n{"content": "no text key"}\n' >"$T/bad.jsonl"
expect 4 "$CQ_BIN" calib "$TINY" "$T/bad.jsonl" -o "$T/o6.bin" && one_line_error "bad.jsonl:2"
nothing_at o6.bin
# I/O (3), usage (2), existing output (7, untouched)
expect 3 "$CQ_BIN" calib "$TINY" "$T/missing.txt" -o "$T/o7.bin" && has "$T/err" "missing.txt" "missing file named"
nothing_at o7.bin
expect 2 "$CQ_BIN" calib "$TINY" "$T/docs.txt"
has "$T/err" "-o FILE" "missing -o"
expect 2 "$CQ_BIN" calib --seqlen 1 "$TINY" "$T/docs.txt" -o "$T/o8.bin"
expect 2 "$CQ_BIN" calib --mode sliding "$TINY" "$T/docs.txt" -o "$T/o8.bin"
nothing_at o8.bin
echo keep >"$T/exists.bin"
expect 7 "$CQ_BIN" calib --seqlen 32 "$TINY" "$T/docs.txt" -o "$T/exists.bin" && has "$T/err" "--force" "exists: suggests --force"
eq "$(cat "$T/exists.bin")" "keep" "exists: untouched"
expect 0 "$CQ_BIN" -q calib --force --seqlen 32 "$TINY" "$T/docs.txt" -o "$T/exists.bin"
eq "$(ls -a "$T" | grep -c 'exists\.bin\.tmp')" 0 "--force: no temporary left"
finish
