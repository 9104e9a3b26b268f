#!/bin/sh
# run.sh SRC BUILD CLANG [SECONDS] - builds fuzz_alloc.c with clang
# (-fsanitize=fuzzer,address) against mapalloc's ma_ sources (override.c
# left out) into BUILD, then runs it for SECONDS (20) in all: the first
# part in the default mode, the rest with MAPALLOC_SECURE=1 MAPALLOC_DEBUG=1.
# Fixed seeds, no corpus kept; each run's output in BUILD/<mode>.log. Exit
# 77 (skipped) without clang or libFuzzer.
set -u
src=$1
build=$2
clang=${3:-clang}
seconds=${4:-20}
if ! command -v "$clang" >/dev/null 2>&1; then
    echo "clang not found: skipped"
    exit 77
fi
mkdir -p "$build"
probe="$build/probe.c"
printf '#include <stdint.h>\n#include <stddef.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' >"$probe"
if ! "$clang" -fsanitize=fuzzer,address "$probe" -o "$build/probe" >/dev/null 2>&1; then
    echo "clang -fsanitize=fuzzer does not link (libclang-rt-dev missing?): skipped"
    exit 77
fi
sources=$(ls "$src"/src/*.c | grep -v '/override\.c$')
# The allocator's own flags (CMakeLists.txt), then the sanitizers.
"$clang" -std=gnu11 -O1 -g -Wall -Wextra -fno-omit-frame-pointer \
    -fsanitize=fuzzer,address -fvisibility=hidden -fno-builtin-malloc \
    -fno-builtin-calloc -fno-builtin-realloc -fno-builtin-free \
    -DMA_DEBUG=1 -I"$src/include" -I"$src/src" \
    "$src/test/fuzz/fuzz_alloc.c" $sources -lpthread -o "$build/fuzz_alloc" || exit 1
first=$((seconds * 3 / 5))
rest=$((seconds - first))
export ASAN_OPTIONS=detect_leaks=0
# run SEED SECONDS NAME: the fuzzer's whole output goes to $build/NAME.log,
# its last lines to stdout; returns the fuzzer's exit status (a pipe into
# tail would return tail's, and /bin/sh has no pipefail). The callers turn
# any failure into exit 1: libFuzzer reports a crash with status 77, which
# ctest would take for "skipped" (SKIP_RETURN_CODE).
run() {
    log="$build/$3.log"
    # -rss_limit_mb: blocks of up to 4 MiB in 64 slots, plus ASan's shadow
    status=0
    "$build/fuzz_alloc" -seed="$1" -max_total_time="$2" -rss_limit_mb=4096 \
        -max_len=2048 -len_control=0 -print_final_stats=1 -artifact_prefix="$build/" \
        >"$log" 2>&1 || status=$?
    tail -n 25 "$log"
    echo "(fuzz_alloc exit status $status; whole output in $log)"
    return $status
}
# First, that this script sees a crash: the target aborts on its first
# input when told to, and that run must fail.
echo "== a crash must fail the test (FUZZ_ALLOC_MUST_CRASH=1)"
if (export FUZZ_ALLOC_MUST_CRASH=1; run 3 1 must_crash >/dev/null); then
    echo "FAIL: fuzz_alloc aborted on purpose but its run reported success"
    exit 1
fi
grep -q 'FUZZ_ALLOC_MUST_CRASH=1' "$build/must_crash.log" || {
    echo "FAIL: the forced crash did not happen; see $build/must_crash.log"
    exit 1
}
echo "ok: the forced crash failed its run"
echo "== default mode, ${first} s"
run 1 "$first" default || exit 1
echo "== MAPALLOC_SECURE=1 MAPALLOC_DEBUG=1, ${rest} s"
(export MAPALLOC_SECURE=1 MAPALLOC_DEBUG=1; run 2 "$rest" checked) || exit 1
