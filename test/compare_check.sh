#!/bin/sh
# compare_check.sh PYTHON LIBRARY: tools/compare.py (make run) passes a
# program that prints the same under mapalloc, showing time, RSS and a
# statistics summary; and fails one whose output differs, and one that
# fails.
set -u
python=$1 lib=$2
compare="$(dirname "$0")/../tools/compare.py"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

out=$("$python" "$compare" --lib "$lib" -- "$python" -c 'print(len([str(i) for i in range(99999)]))')
rc=$?
printf '%s\n' "$out"
[ $rc -eq 0 ] || fail "same output: exit status $rc"
for want in "the same in both runs" "time (user + sys)" "peak RSS" "blocks allocated" \
            "(python3):"; do
    case $out in *"$want"*) ;; *) fail "same output: no '$want'" ;; esac
done
out=$("$python" "$compare" --lib "$lib" --stats=full -- "$python" -c 'print(1)')
case $out in *"mapalloc: class  block-size"*) ;; *) fail "--stats=full: no class table" ;; esac

out=$("$python" "$compare" --lib "$lib" -- "$python" -c 'import os; print(os.environ.get("LD_PRELOAD", ""))')
rc=$?
[ $rc -eq 1 ] || fail "different output: exit status $rc, want 1"
case $out in *"output differs under mapalloc"*) ;; *) fail "different output not reported: $out" ;; esac

out=$("$python" "$compare" --lib "$lib" -- "$python" -c 'import sys; sys.exit(3)')
rc=$?
[ $rc -eq 1 ] || fail "failing program: exit status $rc, want 1"
case $out in *"exited with status 3"*) ;; *) fail "failing program not reported: $out" ;; esac

[ $fails -eq 0 ] && echo "ok: compare.py" || exit 1
