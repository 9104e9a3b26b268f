#!/usr/bin/env bash
# bench/callgrind.sh - instructions per malloc+free pair and per cross-thread
# free, counted by callgrind, for each allocator.
#
#   bash bench/callgrind.sh
#
# Builds bench/callgrind/pairs.c and xfree.c and runs each under
# `valgrind --tool=callgrind` with the allocator preloaded. Only the measured
# function is collected (--toggle-collect), so start-up, the warm-up and the
# other thread are excluded, and of that only the instructions executed
# outside the test program itself (in the allocator, libc, ld.so) count.
# Counts are deterministic, so one run each is enough. Prints a table, writes docs/bench/callgrind.md and puts
# it at the end of docs/bench/results.md (replacing an older one).
#
# Environment: ALLOCATORS (default: all that are installed), PAIRS (1000000),
# XROUNDS (1000 rounds of 1000 cross-thread frees).
set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BENCH_BUILD:-$ROOT/build/bench-run}
BIN=$BUILD/bin
OUT=$BUILD/callgrind
DOCS=$ROOT/docs/bench
LIBDIR=/usr/lib/x86_64-linux-gnu
PAIRS=${PAIRS:-1000000}
XROUNDS=${XROUNDS:-1000}
ALLOCATORS=${ALLOCATORS:-mapalloc mimalloc jemalloc tcmalloc glibc}

log() { printf '[callgrind] %s\n' "$*" >&2; }

command -v valgrind >/dev/null || { log "valgrind is missing (apt-get install valgrind)"; exit 1; }
mkdir -p "$BIN" "$OUT" "$DOCS"
gcc -O2 -g -Wall -Wextra -o "$BIN/cg-pairs" "$ROOT/bench/callgrind/pairs.c" || exit 1
gcc -O2 -g -Wall -Wextra -pthread -o "$BIN/cg-xfree" "$ROOT/bench/callgrind/xfree.c" || exit 1
if [ ! -f "$ROOT/build/libmapalloc.so" ] && [ -f "$ROOT/Makefile" ]; then
    log "building mapalloc"
    make -C "$ROOT" >"$OUT/make.log" 2>&1 || log "make failed (see $OUT/make.log)"
fi

lib_of() {
    case "$1" in
    mapalloc) echo "$ROOT/build/libmapalloc.so" ;;
    mimalloc) echo "$LIBDIR/libmimalloc.so.2" ;;
    jemalloc) echo "$LIBDIR/libjemalloc.so.2" ;;
    tcmalloc) echo "$LIBDIR/libtcmalloc_minimal.so.4" ;;
    glibc) echo "" ;;
    esac
}

# ir NAME LIB FUNCTION command...: instructions executed while FUNCTION is
# on the stack, outside the command's own binary
ir() {
    local name=$1 lib=$2 fn=$3
    shift 3
    local f=$OUT/$name.$fn.out
    rm -f "$f"
    if ! env ${lib:+LD_PRELOAD=$lib} valgrind --tool=callgrind --toggle-collect="$fn" \
        --callgrind-out-file="$f" "$@" >"$OUT/$name.$fn.log" 2>&1; then
        echo ""
        return
    fi
    # all collected instructions minus those of the test program's own code
    # (compiled with -g, so even its inlined lines name bench/callgrind/)
    callgrind_annotate --auto=no --threshold=100 "$f" 2>/dev/null | awk -v self="[$1]" '
        /PROGRAM TOTALS/ { gsub(",", "", $1); total = $1; seen = 1; next }
        /^ *[0-9][0-9,]* / && ($NF == self || index($0, "bench/callgrind/") > 0) {
            gsub(",", "", $1); own += $1 }
        END { if (seen) printf "%d\n", total - own }'
}

# per OP_COUNT TOTAL: TOTAL / OP_COUNT, or FAIL
per() {
    if [ -z "$2" ]; then echo FAIL; return; fi
    awk -v n="$1" -v t="$2" 'BEGIN { printf "%.1f", t / n }'
}

nx=$((XROUNDS * 1000))

rows=""
for a in $ALLOCATORS; do
    lib=$(lib_of "$a")
    if [ -n "$lib" ] && [ ! -f "$lib" ]; then
        log "$a: $lib missing, skipped"
        continue
    fi
    log "$a"
    p=$(per "$PAIRS" "$(ir "$a" "$lib" measure_pairs "$BIN/cg-pairs" "$PAIRS")")
    f=$(per "$nx" "$(ir "$a" "$lib" measure_remote_free "$BIN/cg-xfree" "$XROUNDS" free)")
    m=$(per "$nx" "$(ir "$a" "$lib" measure_producer_malloc "$BIN/cg-xfree" "$XROUNDS" malloc)")
    rows="$rows$a $p $f $m
"
done

# ratio column text: "value (×ratio to the smallest)"
table=$(printf '%s' "$rows" | awk '
    { a[NR] = $1; for (k = 2; k <= 4; k++) { v[NR, k] = $k
        if ($k != "FAIL" && (best[k] == "" || $k + 0 < best[k])) best[k] = $k + 0 } }
    END { for (i = 1; i <= NR; i++) {
        line = "| " a[i]
        for (k = 2; k <= 4; k++) {
            if (v[i, k] == "FAIL") line = line " | FAIL"
            else line = line sprintf(" | %s (×%.2f)", v[i, k], best[k] > 0 ? v[i, k] / best[k] : 1)
        }
        print line " |" } }')

{
    echo "## Instructions per operation (callgrind)"
    echo
    echo "Counted by \`bash bench/callgrind.sh\` ($(valgrind --version), $(date -u '+%Y-%m-%d')):"
    echo "instructions executed per operation outside the test program (in the allocator,"
    echo "and in libc or ld.so where it calls them, PLT stubs included), counted only while"
    echo "the measured function runs. Lower is better; in brackets the ratio to the lowest."
    echo
    echo "| allocator | malloc+free pair, 16..128 B ($PAIRS after a warm-up) | free of a block another thread allocated | malloc in the producer (reclaims those frees) |"
    echo "|---|---|---|---|"
    echo "$table"
    echo
    echo "The cross-thread test: a producer thread allocates 1000 blocks of 16..128 B, a"
    echo "consumer thread frees them, $XROUNDS rounds; both threads live throughout."
    echo "Instruction counts are not times: atomics, cache misses and system calls cost"
    echo "more than one instruction, and valgrind runs the threads one at a time."
} >"$DOCS/callgrind.md"

if [ -f "$DOCS/results.md" ]; then
    # the callgrind section is always the last one of results.md
    awk '/^## Instructions per operation \(callgrind\)/ { exit } { print }' "$DOCS/results.md" \
        >"$OUT/results.md.tmp"
    sed -i -e :a -e '/^\n*$/{$d;N;ba' -e '}' "$OUT/results.md.tmp"
    { cat "$OUT/results.md.tmp"; echo; cat "$DOCS/callgrind.md"; } >"$DOCS/results.md"
fi
cat "$DOCS/callgrind.md"
