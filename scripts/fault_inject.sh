#!/usr/bin/env bash
# Fault injection for cquant's output handling: rtn, gptq and awq (docs/reliability.md
# "Fault injection").
#
#   scripts/fault_inject.sh [-n TRIALS] [-c "rtn gptq awq"] [-b CQ_BIN] [-m MODEL]
#                           [-s SLOW_MODEL] [-S SEED] [-r REFERENCE_RUNS] [-k KEEP_DIR]
#
# 1. kill -9 trials, TRIALS per command (default 40, so 120): each run is killed at a uniform
#    random time in [0, 1.2 x an uninterrupted run). Then:
#    - the destination is absent or holds exactly the reference's files (sha256 of every file
#      but the report, which has timings), never anything partial;
#    - when absent, the next run finishes with the reference's bytes: in odd trials a plain run
#      (it must remove the killed run's stale temporary), in even trials `--resume` (gptq
#      continues after the last finished layer; rtn and awq keep no state and start over);
#    - afterwards no temporary of ours is left, while a foreign stale temporary
#      (`other.cquant-tmp`, lockless, as a killed run of another output leaves it) survives.
#    Every fourth rtn trial runs with --no-sync (commit by rename alone).
# 2. SIGTERM and SIGINT at a random time once the run writes, per command: exit 130 and one
#    stderr line; nothing at OUT; rtn and awq leave no temporary; gptq keeps its state (as
#    documented) and `--resume` then gives the reference's bytes. Also a double SIGINT (the
#    second one exits at once): exit 130, nothing at OUT (gptq: nothing, or its state when the
#    first signal had already ended the run).
# 3. Write failures, per command, each exit 3 with one error line and nothing left:
#    `ulimit -f` (EFBIG); an injected ENOSPC after a random number of bytes and an injected
#    fsync EIO (LD_PRELOAD shim tests/fault/write_fault_shim.c, built here with cc); with
#    mount(8) (root): a 2 MiB tmpfs (refused up front by the free-space check), a 9 MiB tmpfs
#    filled by dd while the run writes (ENOSPC mid-write), the tmpfs remounted read-only; and a
#    read-only destination folder (chmod 555; skipped as root, who ignores it).
# awq (with --grid 4, to keep trials short) and gptq run with --threads 1 and
# OPENBLAS_NUM_THREADS=1 (a resumed gptq run matches an uninterrupted one for the same BLAS thread
# count; docs/cli.md) on a generated calib.bin of 2 x 32 ids. Exit status 0 when every check
# passed. Needs bash, coreutils, sha256sum, awk, cc (for the shim; without it those checks are
# skipped).
set -u
TRIALS=40
CMDS="rtn gptq awq"
BIN=${CQ_BIN:-}
SRC=$(cd "$(dirname "$0")/.." && pwd)
MODEL=$SRC/data/models/cq-llama-tiny
SLOW=${CQ_SHARED:-$SRC/../shared}/models/cq-llama-16m
KEEP=
SEED=
REFRUNS=2
while getopts "n:c:b:m:s:S:r:k:" o; do
    case $o in
    n) TRIALS=$OPTARG ;;
    c) CMDS=$OPTARG ;;
    b) BIN=$OPTARG ;;
    m) MODEL=$OPTARG ;;
    s) SLOW=$OPTARG ;;
    S) SEED=$OPTARG ;;
    r) REFRUNS=$OPTARG ;;
    k) KEEP=$OPTARG ;;
    *) exit 2 ;;
    esac
done
[ -n "$BIN" ] || BIN=$SRC/build/src/cquant
[ -x "$BIN" ] || { echo "fault_inject: no cquant binary at '$BIN' (-b)" >&2; exit 2; }
[ -f "$MODEL/config.json" ] || { echo "fault_inject: no model at '$MODEL' (-m)" >&2; exit 2; }
[ -f "$SLOW/config.json" ] || SLOW=$MODEL
[ -n "$SEED" ] || SEED=$$
RANDOM=$SEED
echo "fault_inject: seed $SEED (-S to repeat), $TRIALS kill trials per command: $CMDS"
export OPENBLAS_NUM_THREADS=1
# the shim is not built with ASan: let an ASan cquant start with it preloaded
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0

W=$(mktemp -d "${TMPDIR:-/tmp}/cqfault.XXXXXX")
MNT=$W/mnt
cleanup() {
    mountpoint -q "$MNT" 2>/dev/null && umount "$MNT"
    chmod -R u+w "$W" 2>/dev/null
    if [ -n "$KEEP" ]; then cp -r "$W" "$KEEP"; fi
    rm -rf "$W"
}
trap cleanup EXIT
FAILS=0
PASSES=0
fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }
pass() { PASSES=$((PASSES + 1)); }
now() { date +%s.%N; }
rnd() { awk -v d="$1" -v r=$RANDOM 'BEGIN{printf "%.4f", d * r / 32768}'; } # uniform [0, d)

# calib.bin: input_ids I32 [2, 32], ids (37 i + 11) mod 8192
CAL=$W/calib.bin
CH='{"input_ids":{"dtype":"I32","shape":[2,32],"data_offsets":[0,256]}}'
{
    for i in 0 1 2 3 4 5 6 7; do printf "\\x$(printf %02x $(((${#CH} >> (8 * i)) & 255)))"; done
    printf '%s' "$CH"
    for i in $(seq 0 63); do
        v=$(((37 * i + 11) % 8192))
        printf "\\x$(printf %02x $((v & 255)))\\x$(printf %02x $((v >> 8)))\\x00\\x00"
    done
} >"$CAL"

# argv CMD MODEL: the arguments of one run (without -o)
argv() {
    case $1 in
    rtn) ARGS=(-q rtn "$2") ;;
    gptq) ARGS=(-q gptq --threads 1 "$2" "$CAL") ;;
    awq) ARGS=(-q awq --threads 1 --grid 4 "$2" "$CAL") ;;
    esac
}
# digest DIR: "sha256  name" of every file but the report, sorted
digest() { (cd "$1" && find . -type f ! -name cquant-report.json -print0 | sort -z | xargs -0 sha256sum); }
# ours DIR: temporaries of our outputs in DIR (the foreign other.* excluded)
ours() { ls -a "$1" | grep -E '\.cquant-(tmp|old)' | grep -v '^other\.' || true; }

declare -A DUR REF
for c in $CMDS; do
    argv "$c" "$MODEL"
    d=0
    for ((r = 1; r <= REFRUNS; r++)); do # the longest: one cold run would bias the kill times
        rm -rf "$W/ref.$c"
        t0=$(now)
        "$BIN" "${ARGS[@]}" -o "$W/ref.$c" >/dev/null 2>"$W/err" ||
            { echo "fault_inject: reference $c run failed: $(head -1 "$W/err")" >&2; exit 1; }
        d=$(awk -v a="$t0" -v b="$(now)" -v d="$d" 'BEGIN{x = b - a; printf "%.3f", (x > d ? x : d)}')
    done
    DUR[$c]=$d
    digest "$W/ref.$c" >"$W/ref.$c.sha"
done

# ---- 1. kill -9 at random points, then a plain run or --resume ----
D=$W/k
mkdir -p "$D/other.cquant-tmp"
echo "a foreign run's stale temporary" >"$D/other.cquant-tmp/keep"
TOTAL=0
for c in $CMDS; do
    argv "$c" "$MODEL"
    before=0 after=0 resumed=0 state=0 plain=0
    for ((i = 1; i <= TRIALS; i++)); do
        TOTAL=$((TOTAL + 1))
        rm -rf "$D/o" "$D"/o.cquant-*
        delay=$(rnd "$(awk -v d="${DUR[$c]}" 'BEGIN{print 1.2 * d}')")
        # every fourth killed rtn run commits without fsync (--no-sync): the rename alone must
        # still be the only way the destination appears
        nosync=()
        [ "$c" = rtn ] && [ $((i % 4)) = 0 ] && nosync=(--no-sync)
        "$BIN" "${ARGS[@]}" "${nosync[@]}" -o "$D/o" >/dev/null 2>&1 &
        pid=$!
        sleep "$delay"
        kill -9 "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        if [ -e "$D/o" ]; then
            after=$((after + 1))
            digest "$D/o" | cmp -s - "$W/ref.$c.sha" ||
                fail "$c trial $i (kill at ${delay}s): the destination exists but differs from the reference"
            pass
            continue
        fi
        before=$((before + 1))
        extra=()
        if ((i % 2 == 0)); then
            extra=(--resume)
            resumed=$((resumed + 1))
            [ -f "$D/o.cquant-tmp/.cquant-gptq/state.json" ] && state=$((state + 1))
        else
            plain=$((plain + 1))
        fi
        if ! "$BIN" "${ARGS[@]}" "${extra[@]}" -o "$D/o" >/dev/null 2>"$W/err"; then
            fail "$c trial $i (kill at ${delay}s): the ${extra[*]:-plain} run after it failed: $(head -1 "$W/err")"
            continue
        fi
        digest "$D/o" | cmp -s - "$W/ref.$c.sha" ||
            fail "$c trial $i (kill at ${delay}s): the ${extra[*]:-plain} run after it differs from the reference"
        [ -z "$(ours "$D")" ] || fail "$c trial $i: temporary left: $(ours "$D")"
        [ -f "$D/other.cquant-tmp/keep" ] || fail "$c trial $i: a foreign temporary was removed"
        pass
    done
    echo "$c kill -9: $TRIALS trials (run ${DUR[$c]}s): $after after the commit (complete," \
        "identical); $before before it, then $plain plain reruns and $resumed --resume runs" \
        "($state with gptq layer state); failures so far (listed above): $FAILS"
done

# ---- 2. SIGTERM / SIGINT at a random time once the run writes ----
for c in $CMDS; do
    argv "$c" "$SLOW"
    [ "$c" = rtn ] && ARGS=(-q rtn --mse -b 3 -g 32 "$SLOW") # rtn is too fast otherwise
    for sig in TERM INT INTx2; do
        rm -rf "$W/s" "$W"/s.cquant-*
        "$BIN" "${ARGS[@]}" -o "$W/s" >/dev/null 2>"$W/err" &
        pid=$!
        for _ in $(seq 1 1000); do # wait for the temporary folder: the run is writing
            [ -d "$W/s.cquant-tmp" ] && break
            sleep 0.01
        done
        sleep "$(rnd 0.3)"
        if [ $sig = INTx2 ]; then
            kill -s INT "$pid" && sleep 0.01 && kill -s INT "$pid" 2>/dev/null
        else
            kill -s "$sig" "$pid"
        fi
        wait "$pid"
        rc=$?
        if [ -d "$W/s" ]; then
            echo "$c SIG$sig: the run finished before the signal; not checked"
            continue
        fi
        [ "$rc" -eq 130 ] || fail "$c SIG$sig: exit $rc (want 130): $(head -1 "$W/err")"
        [ "$(wc -l <"$W/err")" -le 1 ] || fail "$c SIG$sig: more than one stderr line"
        left=$(ls -a "$W" | grep -E '^s(\.|$)' | tr '\n' ' ')
        if [ "$c" = gptq ]; then
            # documented: an interrupted gptq run keeps its state for --resume (a second SIGINT
            # removes it, unless the first one had already finished the run's exit)
            if [ -n "$left" ] && [ "$left" != "s.cquant-tmp " ]; then fail "$c SIG$sig: left $left"; fi
            if [ -d "$W/s.cquant-tmp" ]; then
                if "$BIN" "${ARGS[@]}" --resume -o "$W/s" >/dev/null 2>"$W/err"; then
                    [ "$SLOW" = "$MODEL" ] && { digest "$W/s" | cmp -s - "$W/ref.$c.sha" ||
                        fail "$c SIG$sig: the resumed run differs from the reference"; }
                else
                    fail "$c SIG$sig: --resume failed: $(head -1 "$W/err")"
                fi
            fi
            if [ -n "$left" ]; then
                echo "$c SIG$sig at a random time: exit $rc, nothing at OUT, state kept, --resume completes"
            else
                echo "$c SIG$sig at a random time: exit $rc, nothing left"
            fi
        else
            [ -z "$left" ] || fail "$c SIG$sig: left $left"
            echo "$c SIG$sig at a random time: exit $rc, nothing left"
        fi
        pass
    done
done

# ---- 3. write failures ----
# expect_io NAME OUTDIR: the last run ($rc, $W/err) was a clean I/O error with nothing left
expect_io() {
    [ "$rc" -eq 3 ] || fail "$1: exit $rc (want 3): $(head -1 "$W/err")"
    [ "$(wc -l <"$W/err")" -eq 1 ] && grep -q '^cquant: error: ' "$W/err" || fail "$1: stderr not one error line"
    local parent left
    parent=$(dirname "$2")
    left=$(ls -a "$parent" 2>/dev/null | grep -E "^$(basename "$2")(\.|$)" | tr '\n' ' ')
    [ -z "$left" ] || fail "$1: left $left"
    pass
    echo "$1: $(head -1 "$W/err")"
    rm -rf "$2" # a run that wrongly succeeded must not fail the next check too
}
SHIM=$W/shim.so
${CC:-cc} -shared -fPIC -O1 -o "$SHIM" "$SRC/tests/fault/write_fault_shim.c" -ldl 2>"$W/err" || {
    echo "shim checks skipped: cannot build tests/fault/write_fault_shim.c: $(head -1 "$W/err")"
    SHIM=
}
mkdir -p "$MNT"
MOUNT=0
mount -t tmpfs -o size=2m tmpfs "$MNT" 2>/dev/null && umount "$MNT" && MOUNT=1
for c in $CMDS; do
    argv "$c" "$MODEL"
    (ulimit -f 200 && exec "$BIN" "${ARGS[@]}" -o "$W/f") >/dev/null 2>"$W/err"
    rc=$?
    expect_io "$c: file size limit (ulimit -f, EFBIG)" "$W/f"
    if [ -n "$SHIM" ]; then
        # below the shard's size: it goes through pwrite (copied tokenizer files use stdio,
        # which the shim does not see)
        size=$(cat "$W/ref.$c"/*.safetensors | wc -c)
        limit=$(awk -v s="$size" -v r=$RANDOM 'BEGIN{printf "%d", s * r / 32768}')
        CQ_FAULT_WRITE_LIMIT=$limit LD_PRELOAD=$SHIM "$BIN" "${ARGS[@]}" -o "$W/f" >/dev/null 2>"$W/err"
        rc=$?
        expect_io "$c: injected ENOSPC after $limit of the shards' $size bytes" "$W/f"
        CQ_FAULT_FSYNC_EIO=1 LD_PRELOAD=$SHIM "$BIN" "${ARGS[@]}" -o "$W/f" >/dev/null 2>"$W/err"
        rc=$?
        expect_io "$c: injected fsync EIO" "$W/f"
    fi
    if [ $MOUNT = 1 ]; then
        mount -t tmpfs -o size=2m tmpfs "$MNT"
        "$BIN" "${ARGS[@]}" -o "$MNT/o" >/dev/null 2>"$W/err"
        rc=$?
        expect_io "$c: full filesystem (2 MiB tmpfs, refused up front)" "$MNT/o"
        umount "$MNT"
        # big enough for the up-front check; filled while the run writes: ENOSPC mid-write
        mount -t tmpfs -o size=9m tmpfs "$MNT"
        "$BIN" "${ARGS[@]}" -o "$MNT/o" >/dev/null 2>"$W/err" &
        pid=$!
        for _ in $(seq 1 1000); do
            [ -d "$MNT/o.cquant-tmp" ] && break
            sleep 0.005
        done
        dd if=/dev/zero of="$MNT/filler" bs=64k 2>/dev/null
        wait "$pid"
        rc=$?
        rm -f "$MNT/filler"
        if [ "$rc" -eq 0 ]; then
            echo "$c: ENOSPC mid-write: the run finished before the filesystem filled; not checked"
            rm -rf "$MNT/o"
        else
            expect_io "$c: full filesystem during the write (tmpfs, ENOSPC)" "$MNT/o"
        fi
        mount -o remount,ro "$MNT"
        "$BIN" "${ARGS[@]}" -o "$MNT/o" >/dev/null 2>"$W/err"
        rc=$?
        expect_io "$c: read-only destination (tmpfs remounted ro)" "$MNT/o"
        umount "$MNT"
    fi
    if [ "$(id -u)" -ne 0 ]; then
        mkdir -p "$W/ro" && chmod 555 "$W/ro"
        "$BIN" "${ARGS[@]}" -o "$W/ro/o" >/dev/null 2>"$W/err"
        rc=$?
        expect_io "$c: read-only destination folder (chmod 555)" "$W/ro/o"
        chmod 755 "$W/ro"
    fi
done
[ $MOUNT = 1 ] || echo "tmpfs checks skipped: mount not permitted here"

echo "fault_inject: $TOTAL kill -9 trials; $PASSES checks passed, $FAILS failed"
[ "$FAILS" -eq 0 ]
