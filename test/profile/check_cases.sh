#!/bin/sh
# check_cases.sh CASE PROGRAM [PRELOAD_LIB]: runs test/profile/cases.c's
# program for CASE under the heap profiler (with PRELOAD_LIB in LD_PRELOAD
# when given) and checks its output, its stderr and the profiles it wrote,
# reading them back with `go tool pprof` (and google-pprof for the legacy
# text format). CASE: exact, huge, dump, unwritable, badopts, off, fork,
# interval, churn, threads, readme (PROGRAM: examples/heap_demo.c's).
set -u
case_=$1 prog=$2 lib=${3:-}
fails=0
fail() { echo "FAIL: $case_: $*" >&2; fails=$((fails + 1)); }
need() {
    command -v "$1" >/dev/null 2>&1 || {
        echo "FAIL: $case_: $1 not found: this test needs it ($2)" >&2
        exit 1
    }
}
need go "apt-get install golang-go"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

# run VAR=value... -- args...: the program, stdout in $dir/out, stderr in $dir/err
run() {
    vars=""
    while [ "$1" != "--" ]; do vars="$vars $1"; shift; done
    shift
    # shellcheck disable=SC2086
    env ${lib:+LD_PRELOAD=$lib} $vars "$prog" "$@" >"$dir/out" 2>"$dir/err"
    status=$?
    [ $status -eq 0 ] || { fail "exit status $status"; cat "$dir/err" >&2; }
    [ "$case_" = readme ] || grep -q '^done$' "$dir/out" || fail "the program did not finish (no 'done')"
}

# top FILE [INDEX]: go tool pprof -top in bytes (or counts), every node, into $dir/top
top() {
    if ! go tool pprof -top -unit=B -nodecount=100000 -nodefraction=0 ${2:+-sample_index=$2} "$1" \
            >"$dir/top" 2>"$dir/pprof.err"; then
        fail "go tool pprof cannot read $1 ($2)"
        cat "$dir/pprof.err" >&2
        return 1
    fi
}

# flat FUNCTION: its flat value in $dir/top, 0 when it is not listed
# (printf "%.0f": awk prints big numbers as 2.5e+09 otherwise)
flat() { awk -v f="$1" '$NF == f && NF >= 6 { v = $1; sub(/B$/, "", v); printf "%.0f\n", v; found = 1 } END { if (!found) print 0 }' "$dir/top"; }
total() { awk '/^Showing nodes accounting for/ { for (i = 1; i <= NF; i++) if ($(i + 1) == "total") { v = $i; sub(/B$/, "", v); printf "%.0f\n", v } }' "$dir/top"; }

case $case_ in
exact)   # rate 1: every block is sampled and stands for its own size
    run MAPALLOC_PROFILE="$dir/p.pb.gz" MAPALLOC_PROFILE_RATE=1 -- exact
    n=$(grep -c '^EXPECT ' "$dir/out")
    [ "$n" -ge 15 ] || fail "only $n EXPECT lines"
    grep '^EXPECT ' "$dir/out" | while read -r _ fn index want; do
        top "$dir/p.pb.gz" "$index" || exit 1
        got=$(flat "$fn")
        echo "$fn $index: $got (want $want)"
        [ "$got" = "$want" ] || { echo "FAIL: exact: $fn $index is $got, want $want" >&2; exit 1; }
    done || fails=$((fails + 1))
    ;;
huge)    # a rate of 2^40: 1 MB is (almost surely) not sampled at all
    run MAPALLOC_PROFILE="$dir/p.pb.gz" MAPALLOC_PROFILE_RATE=1099511627776 -- small
    top "$dir/p.pb.gz" alloc_space && [ "$(total)" = 0 ] || fail "total $(total), want 0"
    ;;
dump)    # ma_profile_dump from the program, to good and bad paths
    run MAPALLOC_PROFILE="$dir/exit.pb.gz" MAPALLOC_PROFILE_RATE=65536 -- dump "$dir"
    for want in "DUMPED (null) rc=0 errno=0" "DUMPED $dir/api.pb.gz rc=0 errno=0" \
                "DUMPED $dir/api.heap rc=0 errno=0" "DUMPED /nonexistent-dir/api.pb.gz rc=-1 errno=2"; do
        grep -qxF "$want" "$dir/out" || fail "no line '$want'"
    done
    grep -qF "mapalloc: warning: cannot write the heap profile /nonexistent-dir/api.pb.gz: no such file or directory (ENOENT)" \
        "$dir/err" || { fail "no warning for the unwritable file"; cat "$dir/err" >&2; }
    for f in exit.pb.gz api.pb.gz; do
        top "$dir/$f" alloc_space && [ "$(flat site_malloc)" -gt 0 ] || fail "$f: no site_malloc"
    done
    head -n 1 "$dir/api.heap" | grep -q '^heap profile: ' || fail "api.heap: not the legacy format"
    grep -q '^MAPPED_LIBRARIES:' "$dir/api.heap" || fail "api.heap: no MAPPED_LIBRARIES"
    # (its blocks are all live: pprof then sees one pair of values, objects and space)
    top "$dir/api.heap" && [ "$(flat site_malloc)" -gt 0 ] || fail "api.heap: go tool pprof sees no site_malloc"
    need google-pprof "apt-get install google-perftools"
    google-pprof --text --alloc_space "$prog" "$dir/api.heap" >"$dir/gp" 2>"$dir/gp.err" ||
        { fail "google-pprof cannot read api.heap"; cat "$dir/gp.err" >&2; }
    grep -q 'site_malloc' "$dir/gp" || { fail "google-pprof: no site_malloc"; cat "$dir/gp" >&2; }
    ;;
unwritable)  # the exit profile cannot be written: a warning, nothing else
    run MAPALLOC_PROFILE=/nonexistent-dir/p.%p.pb.gz -- small
    grep -qE '^mapalloc: warning: cannot write the heap profile /nonexistent-dir/p\.[0-9]+\.pb\.gz: no such file or directory \(ENOENT\)$' \
        "$dir/err" || { fail "no warning naming the file"; cat "$dir/err" >&2; }
    ;;
badopts)  # bad values: a warning each, and the defaults
    for v in abc 0 -3 1099511627777; do
        run MAPALLOC_PROFILE="$dir/p.pb.gz" MAPALLOC_PROFILE_RATE=$v -- small
        grep -qxF "mapalloc: warning: ignoring MAPALLOC_PROFILE_RATE=$v (expected an integer from 1 to 1099511627776); using 524288" \
            "$dir/err" || { fail "rate $v: no warning"; cat "$dir/err" >&2; }
        go tool pprof -raw "$dir/p.pb.gz" 2>/dev/null | grep -q '^Period: 524288$' || fail "rate $v: the profile's period is not 524288"
    done
    run MAPALLOC_PROFILE="$dir/p.pb.gz" MAPALLOC_PROFILE_INTERVAL_MB=x -- small
    grep -qxF "mapalloc: warning: ignoring MAPALLOC_PROFILE_INTERVAL_MB=x (expected an integer from 0 to 1048576); using 0" \
        "$dir/err" || { fail "interval x: no warning"; cat "$dir/err" >&2; }
    [ -s "$dir/p.pb.gz" ] || fail "interval x: no profile"
    ;;
off)     # no MAPALLOC_PROFILE: ma_profile_dump says ENOTSUP
    run -- off
    grep -qxF "OFF rc=-1 enotsup=1" "$dir/out" || fail "ma_profile_dump when off: $(grep OFF "$dir/out")"
    ;;
fork)    # children write their own profiles (%p); nothing hangs
    run MAPALLOC_PROFILE="$dir/fork.%p.pb.gz" MAPALLOC_PROFILE_RATE=4096 -- fork
    grep -qxF "FORKS failed=0" "$dir/out" || fail "$(grep FORKS "$dir/out")"
    n=0 children=0
    for f in "$dir"/fork.*.pb.gz; do
        n=$((n + 1))
        top "$f" alloc_space || continue
        [ "$(flat child_site)" -gt 0 ] && children=$((children + 1))
    done
    [ $n -eq 21 ] || fail "$n profiles, want 21 (parent and 20 children)"
    [ $children -eq 20 ] || fail "$children profiles with child_site, want 20"
    ;;
interval) # a dump every 8 MiB of live growth, numbered
    run MAPALLOC_PROFILE="$dir/grow.pb.gz" MAPALLOC_PROFILE_INTERVAL_MB=8 MAPALLOC_PROFILE_RATE=65536 -- grow
    last=0 k=1
    while [ -e "$dir/grow.pb.gz.$k" ]; do
        top "$dir/grow.pb.gz.$k" inuse_space || break
        t=$(total)
        echo "grow.pb.gz.$k: $t bytes live"
        # (each sample's bytes are rounded in the file: allow a KiB)
        [ "$t" -ge $((last + 8 * 1048576 - 1024)) ] || fail "dump $k: $t bytes live, not 8 MiB more than $last"
        last=$t k=$((k + 1))
    done
    k=$((k - 1))
    # 64 MiB of growth: 8 dumps expected; the estimates may miss one
    [ $k -ge 6 ] && [ $k -le 9 ] || fail "$k interval dumps, want 6 to 9"
    [ -s "$dir/grow.pb.gz" ] || fail "no profile at exit"
    ;;
threads)  # threads allocate and free each other's blocks while one dumps
    # (under TSan, ten times slower, fewer rounds)
    rounds=200000
    case $prog in *tsan*) rounds=20000 ;; esac
    run MAPALLOC_PROFILE="$dir/exit.pb.gz" MAPALLOC_PROFILE_RATE=1024 \
        TSAN_OPTIONS="halt_on_error=1 exitcode=66" -- threads "$dir/t.pb.gz" $rounds
    top "$dir/t.pb.gz" alloc_space && [ "$(total)" -gt 0 ] || fail "the dumped profile is empty"
    top "$dir/exit.pb.gz" alloc_space || fail "no profile at exit"
    ;;
churn)   # pages that empty and go at each free: allocated bytes within 10%
    run MAPALLOC_PROFILE="$dir/p.pb.gz" MAPALLOC_PROFILE_RATE=65536 -- churn
    want=$(awk '/^TOTAL site_churn alloc_space/ { print $4 }' "$dir/out")
    top "$dir/p.pb.gz" alloc_space || exit 1
    got=$(flat site_churn)
    echo "site_churn alloc_space: $got, true $want"
    awk -v g="$got" -v w="$want" 'BEGIN { d = (g - w) / w; exit !(d < 0.1 && d > -0.1) }' ||
        fail "site_churn: $got bytes allocated, true $want: more than 10% off"
    ;;
readme)   # the README's example: examples/heap_demo.c
    run MAPALLOC_PROFILE="$dir/heap.pb.gz" -- 
    top "$dir/heap.pb.gz" inuse_space && [ "$(awk '/flat%/ { getline; print $NF; exit }' "$dir/top")" = cache_insert ] ||
        { fail "cache_insert does not hold the most memory"; cat "$dir/top" >&2; }
    top "$dir/heap.pb.gz" alloc_space && [ "$(awk '/flat%/ { getline; print $NF; exit }' "$dir/top")" = handle_request ] ||
        { fail "handle_request does not allocate the most"; cat "$dir/top" >&2; }
    ;;
*)
    echo "usage: check_cases.sh exact|huge|dump|unwritable|badopts|off|fork|interval|churn|threads|readme PROGRAM [LIB]" >&2
    exit 2
    ;;
esac
[ $fails -eq 0 ] && echo "ok: $case_" || exit 1
