#!/usr/bin/env bash
# Fault injection for cquant's output handling (docs/reliability.md "Fault injection").
#
#   scripts/fault_inject.sh [-n TRIALS] [-a AWQ_TRIALS] [-b CQ_BIN] [-m MODEL] [-s SLOW_MODEL]
#                           [-k KEEP_DIR]
#
# 1. kill -9 at random points of `rtn` runs (TRIALS, default 100; every other one with --no-sync)
#    and of `awq` runs (AWQ_TRIALS,
#    default TRIALS/10 and at least 3; calibration: a generated calib.bin of 2 x 32 ids): the destination is either
#    absent or byte-identical to a reference run; a later run cleans the stale temporary folder
#    (and only its own: a sibling run's temporary survives) and produces identical bytes.
# 2. SIGTERM and SIGINT mid-run (a slow run: --mse on SLOW_MODEL): exit 130, nothing left.
# 3. Write failures: a file-size limit (ulimit -f: write fails with EFBIG), a full filesystem
#    (small tmpfs: refused up front by the free-space check; and filled during the run: ENOSPC
#    mid-write), a read-only destination (tmpfs remounted read-only; root ignores chmod 555):
#    exit 3, one error line, nothing left. The tmpfs checks need mount(8) (root); without it
#    they are reported as skipped.
# Exit status: 0 when every check passed. Needs bash, coreutils, and cmp.
set -u
TRIALS=100
BIN=${CQ_BIN:-}
SRC=$(cd "$(dirname "$0")/.." && pwd)
MODEL=$SRC/data/models/cq-llama-tiny
SLOW=${CQ_SHARED:-$SRC/../shared}/models/cq-llama-16m
KEEP=
AW=
while getopts "n:a:b:m:s:k:" o; do
    case $o in
    n) TRIALS=$OPTARG ;;
    a) AW=$OPTARG ;;
    b) BIN=$OPTARG ;;
    m) MODEL=$OPTARG ;;
    s) SLOW=$OPTARG ;;
    k) KEEP=$OPTARG ;;
    *) exit 2 ;;
    esac
done
[ -n "$BIN" ] || BIN=$SRC/build/src/cquant
[ -x "$BIN" ] || { echo "fault_inject: no cquant binary at '$BIN' (-b)" >&2; exit 2; }
[ -f "$MODEL/config.json" ] || { echo "fault_inject: no model at '$MODEL' (-m)" >&2; exit 2; }
[ -f "$SLOW/config.json" ] || SLOW=$MODEL

W=$(mktemp -d "${TMPDIR:-/tmp}/cqfault.XXXXXX")
MNT=$W/mnt
cleanup() {
    mountpoint -q "$MNT" 2>/dev/null && umount "$MNT"
    if [ -n "$KEEP" ]; then cp -r "$W" "$KEEP"; fi
    rm -rf "$W"
}
trap cleanup EXIT
FAILS=0
PASSES=0
fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }
pass() { PASSES=$((PASSES + 1)); }

# same A B: the outputs hold the same files with the same bytes (the report has timings: skip)
same() {
    local f
    for f in "$1"/*; do
        [ "$(basename "$f")" = cquant-report.json ] && continue
        cmp -s "$f" "$2/$(basename "$f")" || return 1
    done
    [ "$(ls "$1" | wc -l)" -eq "$(ls "$2" | wc -l)" ]
}
# leftovers DIR: temporaries of ours in DIR
leftovers() { ls -a "$1" | grep -E '\.cquant-(tmp|old)' | grep -v '^other\.' || true; }
now() { date +%s.%N; }

# ---- reference run and its duration (the longest of 3: one cold run would bias the kills) ----
DUR=0
for r in 1 2 3; do
    rm -rf "$W/ref"
    t0=$(now)
    "$BIN" -q rtn "$MODEL" -o "$W/ref" >/dev/null || { echo "fault_inject: reference run failed" >&2; exit 1; }
    t1=$(now)
    DUR=$(awk -v a="$t0" -v b="$t1" -v d="$DUR" 'BEGIN{x = b - a; printf "%.3f", (x > d ? x : d)}')
done

# ---- 1. kill -9 at random points ----
D=$W/k
mkdir -p "$D/other.cquant-tmp"
echo "a sibling run's temporary" >"$D/other.cquant-tmp/keep"
absent=0 complete=0
for ((i = 1; i <= TRIALS; i++)); do
    rm -rf "$D/o"
    # uniform in [0, 1.2 * duration): some kills land after the commit
    delay=$(awk -v d="$DUR" -v r=$RANDOM 'BEGIN{printf "%.4f", 1.2 * d * r / 32768}')
    # every other killed run commits without fsync (--no-sync): the rename alone must still
    # be the only way the destination appears
    nosync=(); [ $((i % 2)) = 0 ] && nosync=(--no-sync)
    "$BIN" -q rtn "${nosync[@]}" "$MODEL" -o "$D/o" >/dev/null 2>&1 &
    pid=$!
    sleep "$delay"
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    if [ -e "$D/o" ]; then
        same "$D/o" "$W/ref" && complete=$((complete + 1)) ||
            fail "trial $i (kill after ${delay}s): destination exists but differs from the reference"
        continue
    fi
    absent=$((absent + 1))
    # a later run finds the stale temporary (lock free), removes it and finishes
    if ! "$BIN" -q rtn "$MODEL" -o "$D/o" >/dev/null 2>"$W/err"; then
        fail "trial $i: the run after a kill failed: $(head -1 "$W/err")"
        continue
    fi
    same "$D/o" "$W/ref" || fail "trial $i: the run after a kill differs from the reference"
    [ -z "$(leftovers "$D")" ] || fail "trial $i: stale temporary left: $(leftovers "$D")"
    [ -f "$D/other.cquant-tmp/keep" ] || fail "trial $i: another output's temporary was removed"
    pass
done
echo "kill -9: $TRIALS trials (run ${DUR}s): $absent killed before the commit (then rerun: clean," \
    "identical), $complete after (complete, identical); failures so far: $FAILS"

# ---- 1b. kill -9 during `awq` (a tenth of the trials, at least 3): same rules ----
[ -n "$AW" ] || AW=$((TRIALS / 10 > 3 ? TRIALS / 10 : 3))
CAL=$W/calib.bin
CH='{"input_ids":{"dtype":"I32","shape":[2,32],"data_offsets":[0,256]}}'
{
    for i in 0 1 2 3 4 5 6 7; do printf "\\x$(printf %02x $(((${#CH} >> (8 * i)) & 255)))"; done
    printf '%s' "$CH"
    for i in $(seq 0 63); do printf "\\x$(printf %02x $((i * 7 % 64)))\\x00\\x00\\x00"; done
} >"$CAL"
if "$BIN" -q awq "$MODEL" "$CAL" -o "$W/aref" >/dev/null 2>"$W/err"; then
    t0=$(now)
    rm -rf "$W/aref" && "$BIN" -q awq "$MODEL" "$CAL" -o "$W/aref" >/dev/null
    ADUR=$(awk -v a="$t0" -v b="$(now)" 'BEGIN{printf "%.3f", b - a}')
    aabsent=0
    for ((i = 1; i <= AW; i++)); do
        rm -rf "$D/a"
        delay=$(awk -v d="$ADUR" -v r=$RANDOM 'BEGIN{printf "%.4f", 1.2 * d * r / 32768}')
        "$BIN" -q awq "$MODEL" "$CAL" -o "$D/a" >/dev/null 2>&1 &
        pid=$!
        sleep "$delay"
        kill -9 "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        if [ -e "$D/a" ]; then
            same "$D/a" "$W/aref" || fail "awq trial $i: destination exists but differs"
            continue
        fi
        aabsent=$((aabsent + 1))
        "$BIN" -q awq "$MODEL" "$CAL" -o "$D/a" >/dev/null 2>"$W/err" ||
            fail "awq trial $i: the run after a kill failed: $(head -1 "$W/err")"
        same "$D/a" "$W/aref" || fail "awq trial $i: the run after a kill differs"
        [ -z "$(leftovers "$D")" ] || fail "awq trial $i: stale temporary left: $(leftovers "$D")"
        pass
    done
    echo "awq kill -9: $AW trials (run ${ADUR}s): $aabsent before the commit; failures so far: $FAILS"
else
    echo "awq kill -9: skipped ($(head -1 "$W/err"))"
fi

# ---- 2. SIGTERM / SIGINT mid-run ----
for sig in TERM INT; do
    rm -rf "$W/s"*
    "$BIN" -q rtn --mse -b 3 -g 32 "$SLOW" -o "$W/s" >/dev/null 2>"$W/err" &
    pid=$!
    for _ in $(seq 1 500); do # wait for the temporary folder: the run is writing
        [ -d "$W/s.cquant-tmp" ] && break
        sleep 0.01
    done
    kill -s "$sig" "$pid"
    wait "$pid"
    rc=$?
    if [ -d "$W/s" ]; then
        echo "SIG$sig: the run had finished before the signal (model too fast); not checked"
        continue
    fi
    [ "$rc" -eq 130 ] || fail "SIG$sig: exit $rc (want 130): $(head -1 "$W/err")"
    [ "$(wc -l <"$W/err")" -le 1 ] || fail "SIG$sig: more than one stderr line"
    [ -z "$(ls -a "$W" | grep -E '^s(\.|$)')" ] || fail "SIG$sig: left $(ls -a "$W" | grep -E '^s(\.|$)')"
    pass
    echo "SIG$sig mid-run: exit $rc, nothing left"
done

# ---- 3. write failures ----
# expect_io NAME OUTDIR: the last run ($rc, $W/err) was a clean I/O error with nothing left
expect_io() {
    [ "$rc" -eq 3 ] || fail "$1: exit $rc (want 3): $(head -1 "$W/err")"
    [ "$(wc -l <"$W/err")" -eq 1 ] && grep -q '^cquant: error: ' "$W/err" || fail "$1: stderr not one error line"
    local parent
    parent=$(dirname "$2")
    [ -z "$(ls -a "$parent" 2>/dev/null | grep -E "^$(basename "$2")(\.|$)")" ] ||
        fail "$1: left $(ls -a "$parent" | grep -E "^$(basename "$2")(\.|$)")"
    pass
    echo "$1: $(head -1 "$W/err")"
}
(ulimit -f 200 && exec "$BIN" -q rtn "$MODEL" -o "$W/f") >/dev/null 2>"$W/err"
rc=$?
expect_io "file size limit (ulimit -f, EFBIG)" "$W/f"

mkdir -p "$MNT"
if mount -t tmpfs -o size=2m tmpfs "$MNT" 2>/dev/null; then
    "$BIN" -q rtn "$MODEL" -o "$MNT/o" >/dev/null 2>"$W/err"
    rc=$?
    expect_io "full filesystem (2 MiB tmpfs, refused up front)" "$MNT/o"
    umount "$MNT"
    # big enough for the up-front check; filled while the run writes: ENOSPC mid-write
    mount -t tmpfs -o size=9m tmpfs "$MNT"
    "$BIN" -q rtn "$MODEL" -o "$MNT/o" >/dev/null 2>"$W/err" &
    pid=$!
    for _ in $(seq 1 500); do
        [ -d "$MNT/o.cquant-tmp" ] && break
        sleep 0.005
    done
    dd if=/dev/zero of="$MNT/filler" bs=64k 2>/dev/null
    wait "$pid"
    rc=$?
    rm -f "$MNT/filler"
    if [ "$rc" -eq 0 ]; then
        echo "ENOSPC mid-write: the run finished before the filesystem filled; not checked"
        rm -rf "$MNT/o"
    else
        expect_io "full filesystem during the write (ENOSPC)" "$MNT/o"
    fi
    mount -o remount,ro "$MNT"
    "$BIN" -q rtn "$MODEL" -o "$MNT/o" >/dev/null 2>"$W/err"
    rc=$?
    expect_io "read-only destination (tmpfs remounted ro)" "$MNT/o"
    umount "$MNT"
else
    echo "tmpfs checks skipped: mount not permitted here (full filesystem, read-only destination)"
fi

echo "fault_inject: $PASSES checks passed, $FAILS failed"
[ "$FAILS" -eq 0 ]
