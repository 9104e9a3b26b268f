#!/bin/bash
# bench/fileheap/run.sh - heaps in files: mapalloc's file heap against
# Boost.Interprocess's managed_mapped_file and against mapalloc's own
# malloc, the same workload (workload.h) in 1, 2 and 4 processes.
#
#   bash bench/fileheap/run.sh
#
# Needs build/libmapalloc_ma.a (make) and, for the Boost column,
# /usr/include/boost (apt-get install -y libboost-dev); without it that
# column says "-". Each figure is the best (STAT=best, the default) or the
# median (STAT=median) of $REPS runs: ns per operation (an allocation or a
# free) in each process, the slowest process's time; "Mops/s" counts all
# processes together. The allocators take turns, run by run. Best of N
# because the machine may be shared: the best run is the least disturbed.
#
# Environment: BUILD (<root>/build), OPS (operations per process, 1000000),
# REPS (5), STAT (best), PROCS ("1 2 4"), MIXES ("small mixed"), DIR (where the heap
# files go: /tmp), OLD_MA_LIB (optional: a libmapalloc_ma.a of another
# commit, whose ma_heap_new_in is measured beside this one's).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-$root/build}
ops=${OPS:-1000000}
reps=${REPS:-5}
stat=${STAT:-best}
procs_list=${PROCS:-"1 2 4"}
mixes=${MIXES:-"small mixed"}
dir=${DIR:-/tmp}
bin=$build/bench-fileheap
lib=$build/libmapalloc_ma.a

[ -f "$lib" ] || { echo "run.sh: $lib is missing: build mapalloc first (make)" >&2; exit 1; }
mkdir -p "$bin"
flags=(-O2 -g -Wall -Wextra)
gcc "${flags[@]}" -std=gnu11 -I"$root/include" "$root/bench/fileheap/fileheap.c" "$lib" -lpthread \
    -o "$bin/fileheap"
have_boost=0
if [ -f /usr/include/boost/interprocess/managed_mapped_file.hpp ] && command -v g++ >/dev/null; then
    g++ "${flags[@]}" -I"$root/bench/fileheap" "$root/bench/fileheap/boost.cpp" -lpthread -lrt \
        -o "$bin/boost" && have_boost=1
fi
if [ -n "${OLD_MA_LIB:-}" ]; then
    gcc "${flags[@]}" -std=gnu11 -DFIXED_ONLY -I"$root/include" "$root/bench/fileheap/fileheap.c" \
        "$OLD_MA_LIB" -lpthread -o "$bin/fileheap_old"
fi

# pick NS MOPS: the best or the median (by ns) of the "ns mops" lines on stdin
pick() {
    if [ "$stat" = median ]; then sort -n | sed -n "$(((reps + 1) / 2))p"; else sort -n | head -1; fi
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-") print "-"; else printf "%.2f", a / b }'; }
# one run of "$@" (which prints: name procs mix ns mops), as "ns mops"
one() { "$@" | awk '{print $4, $5}'; }

echo "bench/fileheap: $ops operations per process, $stat of $reps runs, ns per operation"
echo "(lower is better; Mops/s = all processes together; the allocators take turns, run by run)"
echo
echo "| mix | processes | mapalloc malloc | file heap (ma_heap_open) | Boost managed_mapped_file | file / malloc | Boost / file |"
echo "|---|---|---|---|---|---|---|"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for mix in $mixes; do
    for p in $procs_list; do
        : >"$tmp/m"; : >"$tmp/f"; echo "- -" >"$tmp/b"
        [ "$have_boost" = 1 ] && : >"$tmp/b"
        for _ in $(seq "$reps"); do
            one "$bin/fileheap" malloc "$p" "$ops" "$mix" >>"$tmp/m"
            one "$bin/fileheap" file "$p" "$ops" "$mix" "$dir/fileheap.bench.$$" >>"$tmp/f"
            [ "$have_boost" = 1 ] && one "$bin/boost" "$p" "$ops" "$mix" "$dir/boost.bench.$$" >>"$tmp/b"
        done
        read -r m_ns m_mops < <(pick <"$tmp/m")
        read -r f_ns f_mops < <(pick <"$tmp/f")
        read -r b_ns b_mops < <(pick <"$tmp/b")
        echo "| $mix | $p | $m_ns ($m_mops Mops/s) | $f_ns ($f_mops Mops/s) | $b_ns ($b_mops Mops/s) | $(ratio "$f_ns" "$m_ns") | $(ratio "$b_ns" "$f_ns") |"
    done
done
echo
echo "One process, the heap's other sources (ns per operation):"
echo
echo "| mix | ma_heap_open(NULL) | ma_heap_new_in | ma_heap_new_in, old engine |"
echo "|---|---|---|---|"
for mix in $mixes; do
    : >"$tmp/s"; : >"$tmp/x"; echo "- -" >"$tmp/o"
    [ -n "${OLD_MA_LIB:-}" ] && : >"$tmp/o"
    for _ in $(seq "$reps"); do
        one "$bin/fileheap" shared 1 "$ops" "$mix" >>"$tmp/s"
        one "$bin/fileheap" fixed 1 "$ops" "$mix" >>"$tmp/x"
        [ -n "${OLD_MA_LIB:-}" ] && one "$bin/fileheap_old" fixed 1 "$ops" "$mix" >>"$tmp/o"
    done
    read -r s_ns _ < <(pick <"$tmp/s")
    read -r x_ns _ < <(pick <"$tmp/x")
    read -r o_ns _ < <(pick <"$tmp/o")
    echo "| $mix | $s_ns | $x_ns | $o_ns |"
done
