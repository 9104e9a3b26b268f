# common.sh - helpers shared by the preload tests (sourced, not run).
#
# Each test runs a real program twice, once plainly and once under
# LD_PRELOAD=<libmapalloc.so> with MAPALLOC_SHOW_STATS=1, and compares the
# two stdouts byte for byte. The preloaded run's stderr must hold mapalloc's
# exit report, proving the memory came from mapalloc.
#
# Exit codes: 0 pass, 1 fail, 77 skip (a program the test needs is missing).

set -euo pipefail

PRELOAD_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# Per-run wall-clock limit, so that a deadlock is reported as such.
PRELOAD_RUN_TIMEOUT=${PRELOAD_RUN_TIMEOUT:-60}

# Keep the programs' output independent of the environment.
export LC_ALL=C LANG=C TZ=UTC
unset LD_PRELOAD MAPALLOC_SHOW_STATS 2>/dev/null || true

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

skip() {
    echo "SKIP: $*" >&2
    exit 77
}

# pl_init LIB: check the library, make the temp dir $T (removed at exit).
pl_init() {
    if [ $# -lt 1 ] || [ -z "${1:-}" ]; then
        fail "usage: $0 /path/to/libmapalloc.so"
    fi
    [ -f "$1" ] || fail "library not found: $1 (build the mapalloc target first)"
    LIB=$(readlink -f "$1")
    T=$(mktemp -d "${TMPDIR:-/tmp}/mapalloc-preload.XXXXXX")
    if [ "${PRELOAD_KEEP:-0}" = 1 ]; then  # keep the files, for debugging
        trap 'echo "kept $T" >&2' EXIT
    else
        trap 'rm -rf "$T"' EXIT
    fi
}

# pl_require PROG...: skip (77) unless every program is installed.
pl_require() {
    local p
    for p in "$@"; do
        command -v "$p" >/dev/null 2>&1 || skip "$p is not installed"
    done
}

# _pl_exec MODE NAME CMD...: runs CMD with stdout to $T/NAME.MODE.out and
# stderr to $T/NAME.MODE.err; MODE is plain or ma (under mapalloc). Fails
# on a non-zero exit (a crash included) or a timeout.
_pl_exec() {
    local mode=$1 name=$2 rc=0
    shift 2
    local out="$T/$name.$mode.out" err="$T/$name.$mode.err"
    if [ "$mode" = ma ]; then
        timeout -k 5 "$PRELOAD_RUN_TIMEOUT" \
            env LD_PRELOAD="$LIB" MAPALLOC_SHOW_STATS=1 "$@" >"$out" 2>"$err" || rc=$?
    else
        timeout -k 5 "$PRELOAD_RUN_TIMEOUT" "$@" >"$out" 2>"$err" || rc=$?
    fi
    if [ "$rc" -ne 0 ]; then
        echo "--- stderr of '$*' ($mode), last 40 lines:" >&2
        tail -n 40 "$err" >&2 || true
        case $rc in
        124 | 137) fail "$name ($mode): timed out after ${PRELOAD_RUN_TIMEOUT}s: $*" ;;
        *) if [ "$rc" -gt 128 ]; then
               fail "$name ($mode): exit status $rc (= killed by signal $((rc - 128)), if a shell reported it): $*"
           fi
           fail "$name ($mode): exit status $rc: $*" ;;
        esac
    fi
}

# pl_plain NAME CMD... / pl_ma NAME CMD...: run without / with mapalloc.
pl_plain() { _pl_exec plain "$@"; }
pl_ma() { _pl_exec ma "$@"; }

# pl_compare NAME: the two stdouts of NAME must be byte-identical.
pl_compare() {
    local a="$T/$1.plain.out" b="$T/$1.ma.out"
    if ! cmp -s "$a" "$b"; then
        echo "--- diff of stdout: plain vs mapalloc (first 60 lines):" >&2
        diff -u "$a" "$b" | head -n 60 >&2 || true
        fail "$1: stdout differs under mapalloc ($(wc -c <"$a") vs $(wc -c <"$b") bytes)"
    fi
    [ -s "$a" ] || fail "$1: the program printed nothing (test is broken)"
}

# pl_both NAME CMD...: run plainly and under mapalloc, compare, check stats.
pl_both() {
    local name=$1
    pl_plain "$@"
    pl_ma "$@"
    pl_compare "$name"
    pl_check_stats "$name"
}

# pl_stat_max FILE KEY: the largest value of the report line
# "mapalloc: KEY: <N>" in FILE (each process that exits prints a report);
# prints nothing if there is no such line.
pl_stat_max() {
    awk -v key="mapalloc: $2:" '
        index($0, key) == 1 {
            v = substr($0, length(key) + 1)
            sub(/^ +/, "", v)
            if (v ~ /^[0-9]+$/) { found = 1; if (v + 0 > max) max = v + 0 }
        }
        END { if (found) printf "%.0f\n", max }' "$1"
}

# pl_check_stats NAME [MIN_BLOCKS]: the mapalloc run of NAME printed at least
# one exit report with blocks allocated >= MIN_BLOCKS (default 1), bytes
# allocated > 0 and os mmap calls > 0.
pl_check_stats() {
    local err="$T/$1.ma.err" min=${2:-1} blocks bytes mmaps
    # For developing these scripts against another allocator only.
    if [ "${PRELOAD_DEV_NO_STATS:-0}" = 1 ]; then
        echo "$1: statistics not checked (PRELOAD_DEV_NO_STATS=1)"
        return 0
    fi
    blocks=$(pl_stat_max "$err" "blocks allocated")
    bytes=$(pl_stat_max "$err" "bytes allocated")
    mmaps=$(pl_stat_max "$err" "os mmap calls")
    if [ -z "$blocks" ] || [ -z "$bytes" ] || [ -z "$mmaps" ]; then
        echo "--- stderr of the mapalloc run (last 40 lines):" >&2
        tail -n 40 "$err" >&2 || true
        fail "$1: no complete mapalloc statistics report on stderr (blocks='$blocks' bytes='$bytes' mmap='$mmaps'); was $LIB preloaded?"
    fi
    [ "$blocks" -ge "$min" ] || fail "$1: mapalloc: blocks allocated: $blocks, expected >= $min"
    [ "$bytes" -gt 0 ] || fail "$1: mapalloc: bytes allocated: $bytes, expected > 0"
    [ "$mmaps" -gt 0 ] || fail "$1: mapalloc: os mmap calls: $mmaps, expected > 0"
    echo "$1: mapalloc report: max blocks allocated $blocks, bytes allocated $bytes, os mmap calls $mmaps"
}

# pl_check_reports NAME MIN: the mapalloc run of NAME printed at least MIN
# reports (one per process that exited).
pl_check_reports() {
    local n
    [ "${PRELOAD_DEV_NO_STATS:-0}" = 1 ] && return 0
    n=$(grep -c '^mapalloc: blocks allocated:' "$T/$1.ma.err" || true)
    [ "$n" -ge "$2" ] || fail "$1: $n mapalloc report(s) on stderr, expected >= $2 (one per process)"
    echo "$1: $n mapalloc reports"
}

# pl_python: the Python 3 interpreter to test, Debian's first.
pl_python() {
    if [ -x /usr/bin/python3 ]; then
        echo /usr/bin/python3
    elif command -v python3 >/dev/null 2>&1; then
        command -v python3
    else
        skip "python3 is not installed"
    fi
}
