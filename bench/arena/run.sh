#!/bin/bash
# bench/arena/run.sh - the arena workload (arena.c): heaps against
# malloc/free, under mapalloc and under glibc. Writes docs/bench/arena.md.
#
#   bash bench/arena/run.sh
#
# Needs build/libmapalloc.so (make, or cmake --build build --target mapalloc).
# Builds two programs from arena.c into $BUILD/bench-arena/:
#   arena        linked with libmapalloc.so: ma_heap_ modes (destroy, reset,
#                fixed), and malloc/free that are mapalloc's
#   arena_glibc  -DARENA_MALLOC_ONLY, never loads libmapalloc.so: glibc's
#                malloc/free
# Each figure is the median of $REPS runs; each run makes $TOTAL objects in
# all, in requests of OBJECTS objects (for each OBJECTS in $SIZES).
#
# Environment: BUILD (default <root>/build), OUT (default
# <root>/docs/bench/arena.md), CC (gcc), REPS (3), TOTAL (5000000),
# SIZES ("100 1000 10000 100000"), SEED (1).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-$root/build}
out=${OUT:-$root/docs/bench/arena.md}
cc=${CC:-gcc}
reps=${REPS:-3}
total=${TOTAL:-5000000}
sizes=${SIZES:-"100 1000 10000 100000"}
seed=${SEED:-1}
lib=$build/libmapalloc.so
bin=$build/bench-arena

if [ ! -f "$lib" ]; then
    echo "run.sh: $lib is missing: build mapalloc first (make)" >&2
    exit 1
fi
mkdir -p "$bin" "$(dirname "$out")"
flags=(-O2 -g -Wall -Wextra -std=gnu11)
"$cc" "${flags[@]}" -I"$root/include" "$root/bench/arena/arena.c" -o "$bin/arena" \
    -L"$build" -lmapalloc -Wl,-rpath,"$build"
"$cc" "${flags[@]}" -DARENA_MALLOC_ONLY "$root/bench/arena/arena.c" -o "$bin/arena_glibc"

# runs PROGRAM ARGS...: its output lines, $reps of them.
runs() {
    for _ in $(seq "$reps"); do "$@"; done
}
# median: of the numbers on stdin, one per line.
median() {
    sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# variant name -> command
declare -A cmd=(
    [destroy]="$bin/arena destroy"
    [reset]="$bin/arena reset"
    [fixed]="$bin/arena fixed"
    [ma_malloc]="$bin/arena malloc"
    [glibc]="$bin/arena_glibc malloc"
)
variants="destroy reset fixed ma_malloc glibc"

rows=""
for objects in $sizes; do
    requests=$(( (total + objects - 1) / objects ))
    declare -A ns=() faults=()
    for v in $variants; do
        # output: arena MODE OBJECTS REQUESTS NS_PER_OBJECT FAULTS CHECKSUM
        lines=$(runs ${cmd[$v]} "$objects" "$requests" "$seed")
        ns[$v]=$(awk '{ print $5 }' <<<"$lines" | median)
        faults[$v]=$(awk '{ print $6 }' <<<"$lines" | median)
        echo "objects $objects, $v: ${ns[$v]} ns/object, ${faults[$v]} faults/request" >&2
    done
    rows+="| $objects | ${ns[destroy]} | ${ns[reset]} | ${ns[fixed]} | ${ns[ma_malloc]} | ${ns[glibc]}"
    rows+=" | $(ratio "${ns[ma_malloc]}" "${ns[destroy]}") | $(ratio "${ns[glibc]}" "${ns[destroy]}")"
    rows+=" | $(ratio "${ns[ma_malloc]}" "${ns[fixed]}") | $(ratio "${ns[glibc]}" "${ns[fixed]}")"
    rows+=" | ${faults[destroy]} / ${faults[reset]} / ${faults[fixed]} / ${faults[ma_malloc]} / ${faults[glibc]} |"$'\n'
done

command="bash bench/arena/run.sh"
for var in BUILD CC REPS TOTAL SIZES SEED; do
    if [ -n "${!var:-}" ]; then command="$var=\"${!var}\" $command"; fi
done
cpu=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$root" status --porcelain -- src include 2>/dev/null)" ]; then
    commit="$commit + uncommitted changes"
fi

cat >"$out" <<EOF
# Arena workload: heaps against malloc/free

Written by \`bench/arena/run.sh\` (workload: \`bench/arena/arena.c\`).

Each request allocates OBJECTS objects of 16-256 bytes (uniform; at least
24 for the links), links them into a list with a cross link per object,
writes every byte, walks the structure, then releases everything:

- **heap destroy**: \`ma_heap_new\` per request, \`ma_heap_malloc\` per object,
  one \`ma_heap_destroy\`;
- **heap reset**: one heap for the whole run, \`ma_heap_reset\` after each request;
- **fixed reset**: one \`ma_heap_new_in\` heap over a buffer mapped once,
  \`ma_heap_reset\` after each request;
- **mapalloc malloc**: \`malloc\` + \`free\` of every object, mapalloc's
  (program linked with \`libmapalloc.so\`);
- **glibc malloc**: the same program built without mapalloc.

Figures: nanoseconds per object (allocation, touching and release
included), median of $reps runs of $total objects each after one untimed
request. Ratios are malloc/free time over heap time: above 1, the heap is
faster. Faults: minor page faults per request (memory the kernel had to
give again).

| objects per request | heap destroy | heap reset | fixed reset | mapalloc malloc | glibc malloc | mapalloc / destroy | glibc / destroy | mapalloc / fixed | glibc / fixed | faults per request (destroy / reset / fixed / mapalloc / glibc) |
|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|
$rows
Command: \`$command\`

Machine: $cpu, $(nproc) CPUs, $(uname -sr), $(ldd --version 2>&1 | head -1),
$("$cc" --version | head -1); mapalloc $commit; $(date -u +%Y-%m-%d).
EOF
echo "run.sh: wrote $out" >&2
