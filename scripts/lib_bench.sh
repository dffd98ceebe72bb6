# Helpers for the scripts that build a small C driver against build/'s core library and compare
# it with a PyTorch-CPU reference (sourced, not run: `. "$(dirname "$0")/lib_bench.sh"`).
# After bench_init NAME: root (repo root), lib (build/src/libcquant_core.a, checked), work (a
# temporary folder removed at exit), cblas_inc (OpenBLAS's cblas.h folder), py (/usr/bin/python3).
set -euo pipefail

bench_init() {
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    lib=$root/build/src/libcquant_core.a
    [ -f "$lib" ] || { echo "$1: build first (missing $lib)" >&2; exit 2; }
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    cblas_inc=$(dirname "$(find /usr/include -name cblas.h -path '*openblas*' | head -1)")
    py=/usr/bin/python3
}

# bench_cc OUT SRC [CFLAGS...]: compile SRC (default flags -O2) and link it against the library.
bench_cc() {
    local out=$1 src=$2
    shift 2
    [ $# -gt 0 ] || set -- -O2
    cc "$@" -D_GNU_SOURCE -I "$root/include" -I "$root/tests" -I "$cblas_inc" "$src" "$lib" \
        -llapacke -lopenblas -lcjson -lz -lm -lpthread -o "$out"
}

# bench_build NAME: scripts/NAME.c compiled into bin=$work/NAME.
bench_build() {
    bin=$work/$1
    bench_cc "$bin" "$root/scripts/$1.c"
}

# The CPU's model name, for the header line of a result.
bench_cpu() {
    grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs
}

# bench_header "k=v ...": the run's parameters with the CPU, then the cquant section's title.
bench_header() {
    echo "$1 cpu=\"$(bench_cpu)\""
    echo "== cquant (f32, OpenBLAS sgemm)"
}

# True (with a header line naming the version) when $py has torch; otherwise says how to get it.
bench_have_torch() {
    if "$py" -c 'import torch' 2>/dev/null; then
        echo "== pytorch $("$py" -c 'import torch; print(torch.__version__)') (f32, CPU)"
        return 0
    fi
    echo "== pytorch: not installed (apt-get install python3-torch)"
    return 1
}
