# Helpers for tests/cli/*.sh (sourced; not a test itself).
# Env: CQ_BIN (the cquant binary), CQ_SHARED (../shared), CQ_SRC (repo root).
set -u
: "${CQ_BIN:?CQ_BIN is not set}"
: "${CQ_SRC:?CQ_SRC is not set}"
TINY="$CQ_SRC/data/models/cq-llama-tiny"
T=$(mktemp -d "${TMPDIR:-/tmp}/cqcli.XXXXXX")
trap 'rm -rf "$T"' EXIT
FAILS=0
CHECKS=0

fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }
ok() { CHECKS=$((CHECKS + 1)); }

# need_shared: sets SHARED, or exits: failing when CI=true, passing with a note otherwise.
need_shared() {
    SHARED="${CQ_SHARED:-$CQ_SRC/../shared}"
    if [ ! -f "$SHARED/models/cq-llama-16m/config.json" ]; then
        if [ "${CI:-}" = "true" ]; then
            echo "FAIL: shared folder '$SHARED' is missing and CI=true" >&2
            exit 1
        fi
        echo "note: shared folder '$SHARED' missing: model checks not run"
        exit 0
    fi
}

# expect CODE CMD...: run CMD, capture stdout/stderr in $T/out $T/err, check the exit code.
expect() {
    local want=$1
    shift
    "$@" >"$T/out" 2>"$T/err"
    local got=$?
    if [ "$got" -ne "$want" ]; then
        fail "exit $got (want $want): $*"
        sed 's/^/  stderr: /' "$T/err" | head -5 >&2
        return 1
    fi
    ok
    return 0
}

# has FILE REGEX WHAT
has() {
    if grep -Eq -- "$2" "$1"; then ok; else fail "$3: /$2/ not in $1"; head -20 "$1" | sed 's/^/  | /' >&2; fi
}

# json_num FILE KEY: the first numeric value of "KEY": in a cJSON-printed file
json_num() { grep -Eo "\"$2\":[[:space:]]*-?[0-9.e+-]+" "$1" | head -1 | sed -E 's/.*:[[:space:]]*//'; }

# eq GOT WANT WHAT
eq() { if [ "$1" = "$2" ]; then ok; else fail "$3: got '$1', want '$2'"; fi; }

finish() {
    echo "$CHECKS passed, $FAILS failed"
    [ "$FAILS" -eq 0 ]
    exit $?
}
