#!/bin/bash
# preload_stats: mapalloc's exit report (MAPALLOC_SHOW_STATS=1) proves that
# the memory came from mapalloc:
#  - python3 on workload.py: "blocks allocated" > 100000, "os mmap calls" > 0;
#  - bash -c 'exit 0' prints the report too, and so does coreutils' sort,
#    which closes stderr before the library's destructor runs;
#  - each process prints its own report, headed with its id and name;
#    MAPALLOC_STATS_FILE=DIR/stats.%n.%p puts each in a file of its own;
#  - MAPALLOC_SHOW_STATS=1 prints no line per size class, 2 does.
#  (dash's `sh -c 'exit 0'` leaves through _exit(), which runs no destructor:
#  no report there, by design.)
# Report lines, on stderr: "mapalloc: blocks allocated: <N>",
# "mapalloc: bytes allocated: <N>", "mapalloc: os mmap calls: <N>".
# Usage: preload_stats.sh /path/to/libmapalloc.so
set -euo pipefail
source "$(dirname "$0")/common.sh"
pl_init "${1:-}"
PY=$(pl_python)
pl_require bash
pl_require sort
export PYTHONMALLOC=malloc PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1
cd "$T"

# Without MAPALLOC_SHOW_STATS, no report.
pl_ma_quiet() {
    local rc=0
    env LD_PRELOAD="$LIB" timeout -k 5 "$PRELOAD_RUN_TIMEOUT" "$@" \
        >"$T/quiet.out" 2>"$T/quiet.err" || rc=$?
    [ "$rc" -eq 0 ] || { cat "$T/quiet.err" >&2; fail "quiet run exit status $rc: $*"; }
    if grep -q '^mapalloc: blocks allocated:' "$T/quiet.err"; then
        fail "report printed without MAPALLOC_SHOW_STATS=1: $*"
    fi
}

# Each report line must be exactly "mapalloc: <key>: <decimal>".
check_format() {
    local err=$1 key n bad
    for key in "blocks allocated" "bytes allocated" "os mmap calls"; do
        n=$(grep -c "^mapalloc: $key:" "$err" || true)
        [ "$n" -ge 1 ] || { tail -n 40 "$err" >&2; fail "no line 'mapalloc: $key: <N>' in $err"; }
        bad=$(grep "^mapalloc: $key:" "$err" | grep -Ev "^mapalloc: $key: [0-9]+$" || true)
        [ -z "$bad" ] || fail "malformed report line(s): $bad"
    done
}

# 1. python3 on the workload.
pl_ma python "$PY" "$PRELOAD_DIR/workload.py"
check_format "$T/python.ma.err"
blocks=$(pl_stat_max "$T/python.ma.err" "blocks allocated")
bytes=$(pl_stat_max "$T/python.ma.err" "bytes allocated")
mmaps=$(pl_stat_max "$T/python.ma.err" "os mmap calls")
echo "python3: blocks allocated $blocks, bytes allocated $bytes, os mmap calls $mmaps"
[ "$blocks" -gt 100000 ] || fail "python3: mapalloc: blocks allocated: $blocks, expected > 100000"
[ "$mmaps" -gt 0 ] || fail "python3: mapalloc: os mmap calls: $mmaps, expected > 0"
[ "$bytes" -ge "$blocks" ] || fail "python3: bytes allocated $bytes < blocks allocated $blocks"

# 2. The smallest program: bash -c 'exit 0' (bash ends with exit()).
pl_ma bash bash -c 'exit 0'
if ! grep -q '^mapalloc: blocks allocated:' "$T/bash.ma.err"; then
    fail "bash -c 'exit 0' under mapalloc printed no report"
fi
check_format "$T/bash.ma.err"
[ ! -s "$T/bash.ma.out" ] || fail "bash: the report went to stdout"
echo "bash -c 'exit 0': $(grep '^mapalloc: blocks allocated:' "$T/bash.ma.err" | head -n 1)"

# 3. coreutils close stdout and stderr at exit (close_stdout), before the
# library's destructor: the report must still reach the original stderr.
printf 'b\na\nc\n' >"$T/sort.in"
pl_ma sort sort "$T/sort.in"
grep -q '^mapalloc: blocks allocated:' "$T/sort.ma.err" ||
    fail "sort (closes stderr at exit) under mapalloc printed no report"
check_format "$T/sort.ma.err"

# 4. One report per process, named; with MAPALLOC_STATS_FILE, one file
# each (%n: the name, %p: the id), nothing on stderr.
mkdir "$T/reports"
printf 'b\na\nc\n' | env LD_PRELOAD="$LIB" MAPALLOC_SHOW_STATS=1 \
    MAPALLOC_STATS_FILE="$T/reports/stats.%n.%p" \
    bash -c 'sort | cat; true' >"$T/files.out" 2>"$T/files.err"
[ "$(cat "$T/files.out")" = "$(printf 'a\nb\nc')" ] || fail "sort | cat under mapalloc: wrong output"
if grep -q '^mapalloc:' "$T/files.err"; then
    cat "$T/files.err" >&2
    fail "MAPALLOC_STATS_FILE set, but a report went to stderr"
fi
n=0
for f in "$T"/reports/stats.*; do
    [ -f "$f" ] || continue
    n=$((n + 1))
    base=${f##*/stats.}           # NAME.PID
    name=${base%.*} pid=${base##*.}
    head=$(head -n 1 "$f")
    [ "$head" = "mapalloc: statistics of process $pid ($name)" ] ||
        fail "$f: report headed '$head', expected process $pid ($name)"
    [ "$(grep -c '^mapalloc: statistics of process' "$f")" = 1 ] || fail "$f: not one report"
    check_format "$f"
done
ls "$T/reports"
for name in bash sort cat; do
    ls "$T"/reports/stats."$name".* >/dev/null 2>&1 || fail "no report file of $name: $(ls "$T/reports")"
done
echo "MAPALLOC_STATS_FILE: $n reports, one file per process"

# 5. MAPALLOC_SHOW_STATS=1: the report alone; 2: and a line per size class.
for level in 1 2; do
    env LD_PRELOAD="$LIB" MAPALLOC_SHOW_STATS=$level "$PY" -c 'print(len([str(i) for i in range(9999)]))' \
        >"$T/level.out" 2>"$T/level$level.err"
    check_format "$T/level$level.err"
done
! grep -q '^mapalloc: class  block-size' "$T/level1.err" || fail "MAPALLOC_SHOW_STATS=1 printed the class table"
grep -q '^mapalloc: class  block-size' "$T/level2.err" || fail "MAPALLOC_SHOW_STATS=2 printed no class table"
grep -Eq '^mapalloc: +[0-9]+ +[0-9]+ +[0-9]+ +[0-9]+ +[0-9]+$' "$T/level2.err" ||
    fail "MAPALLOC_SHOW_STATS=2: no line per class"

# 6. The variable off: silence.
pl_ma_quiet sh -c 'exit 0'
pl_ma_quiet "$PY" -c 'print(sum(range(1000)))'

echo "preload_stats: OK"
