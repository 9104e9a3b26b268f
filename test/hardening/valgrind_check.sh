#!/bin/sh
# valgrind_check.sh VALGRIND PROGRAM - memcheck must report, in PROGRAM
# (vg_misuse.c, linked with libmapalloc.so), the read after free and the
# leak of 100 bytes (112: memcheck sees the usable size), and nothing about
# uninitialised values (realloc of never-written blocks). Exit 77 (skipped)
# without valgrind.
vg=$1
prog=$2
if [ -z "$vg" ] || ! command -v "$vg" >/dev/null 2>&1; then
    echo "valgrind not found: skipped"
    exit 77
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$vg" --soname-synonyms=somalloc=NONE --leak-check=full --num-callers=20 \
    "$prog" >"$out" 2>&1
cat "$out"
fail=0
expect() {
    if ! grep -q -- "$1" "$out"; then
        echo "FAIL: memcheck's output lacks: $1"
        fail=1
    fi
}
expect "Invalid read of size 1"
expect "is 32 bytes inside a block of size 64 free'd"
expect "definitely lost: 112 bytes in 1 blocks"
expect "main (vg_misuse.c:"
# the reallocs of never-written blocks are correct: nothing about them
if grep -q "uninitialised" "$out"; then
    echo "FAIL: memcheck saw mapalloc read uninitialised bytes of a block"
    fail=1
fi
# memcheck did not replace malloc: the blocks came from mapalloc
if grep -q "vgpreload_memcheck.*malloc\|malloc (in .*vgpreload_memcheck" "$out"; then
    echo "FAIL: memcheck's own malloc ran, not mapalloc's"
    fail=1
fi
[ $fail = 0 ] && echo "memcheck reported both misuses"
exit $fail
