#!/bin/sh
# layer_check.sh CC NM OBJDUMP ROOT [HAVE_VALGRIND] - the layer rule of
# src/README.md, checked against the code.
#
# README's layer table lists the files bottom up: a file may use (call, or
# read a variable of) only files in earlier rows. Its "Calls up" table lists
# the written exceptions (caller or `any`, callee, names or `any`), and its
# "Inline helpers" table what each static inline function of src/*.h
# (internal.h and the headers it includes: checked.h, fastpath.h) calls in a
# .c file (those calls count in the files that use the helper).
#
# Each src/*.c is compiled here at -O0 with MA_DEBUG=1, so that no call is
# inlined or folded away, and `nm` gives what it defines and uses; a stub
# that takes the address of every inline helper of src/*.h gives, through
# `objdump -dr`, what each helper calls. The check fails on:
#   - a use of a file in a later row that is not a written exception;
#   - a written exception that nothing uses any more (make README true);
#   - a helper's call that the helper table does not list, or a row there
#     that no longer holds;
#   - a src/*.c missing from the layer table, or a row naming no file.
# Then it checks that it can fail: the same objects against a copy of
# README without the `heap.c` -> `free.c` exception must fail.
set -u
cc=$1 nm=$2 objdump=$3 root=$4 have_vg=${5:-0}
readme=$root/src/README.md
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mapalloc-layers.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

flags="-std=gnu11 -O0 -DMA_DEBUG=1 -DMA_HAVE_VALGRIND=$have_vg -fvisibility=hidden
       -I$root/include -I$root/src -w"

# ---- Compile: one object per file, and the headers' helpers --------------
mkdir -p "$tmp/o"
for f in "$root"/src/*.c; do
    printf '%s\n' "$f"
done | xargs -P "$(nproc 2>/dev/null || echo 2)" -I{} sh -c \
    'b=$(basename "$1" .c); '"$cc"' '"$(echo $flags)"' -c "$1" -o "$2/o/$b.o" 2>"$2/o/$b.err" ||
     { cat "$2/o/$b.err"; exit 1; }' sh {} "$tmp" || { echo "FAIL: a file does not compile"; exit 1; }

helpers=$(sed -n 's/^static inline [^(]*[ *]\(ma_[a-z0-9_]*\)(.*/\1/p' "$root"/src/*.h)
[ -n "$helpers" ] || { echo "FAIL: no static inline helper found in src/*.h"; exit 1; }
{
    echo '#include "internal.h"'
    echo 'void *const layer_check_helpers[] = {'
    for h in $helpers; do echo "    (void *)$h,"; done
    echo '};'
} >"$tmp/helpers.c"
$cc $flags -c "$tmp/helpers.c" -o "$tmp/helpers.o" || { echo "FAIL: the helpers' stub"; exit 1; }

# defs: "file symbol type" for every global definition; uses: "file symbol".
for o in "$tmp"/o/*.o; do
    b=$(basename "$o" .o)
    "$nm" -g --defined-only "$o" | awk -v f="$b.c" 'NF == 3 { print f, $3, $2 }'
done >"$tmp/defs"
for o in "$tmp"/o/*.o; do
    b=$(basename "$o" .o)
    "$nm" -u "$o" | awk -v f="$b.c" '{ print f, $NF }'
done >"$tmp/uses"
# calls: "helper symbol" for each relocation inside a helper's code.
"$objdump" -dr --no-show-raw-insn "$tmp/helpers.o" | awk '
    /^[0-9a-f]+ <[^>]+>:$/ { fn = $2; gsub(/[<>:]/, "", fn); next }
    /R_X86_64_/ { s = $NF; sub(/[-+]0x[0-9a-f]+$/, "", s); if (fn != "") print fn, s }' |
    sort -u >"$tmp/calls"
[ -s "$tmp/defs" ] && [ -s "$tmp/uses" ] || { echo "FAIL: nm found nothing"; exit 1; }

# ---- The check, against a README -----------------------------------------
# check README: prints what is wrong and the summary; returns 1 on a problem.
check() {
    awk -v readme="$1" -v srcdir="$root/src" -v nhelpers="$(echo $helpers | wc -w)" '
    function strip(s) { gsub(/`/, "", s); gsub(/^ +| +$/, "", s); return s }
    # cells of a table row, in cell[1..n]
    function cells(line,   n, i, parts) {
        n = split(line, parts, "|")
        for (i = 2; i < n; i++) cell[i - 1] = strip(parts[i])
        return n - 2
    }
    function problem(msg) { print "FAIL: " msg; bad = 1 }
    BEGIN {
        while ((getline line < readme) > 0) {
            if (line ~ /^\| *file *\| *layer *\|/) { table = "layers"; continue }
            if (line ~ /^\| *caller *\| *callee *\|/) { table = "calls"; continue }
            if (line ~ /^\| *helper *\| *calls *\|/) { table = "helpers"; continue }
            if (line !~ /^\|/) { table = ""; continue }
            if (line ~ /^\|[- |]+$/) continue
            n = cells(line)
            if (table == "layers") {
                rank[cell[1]] = ++rows
                name[rows] = cell[1]
            } else if (table == "calls") {
                ncalls++
                c_from[ncalls] = cell[1]; c_to[ncalls] = cell[2]
                k = split(cell[3], list, /, */)
                for (i = 1; i <= k; i++) {
                    allowed[cell[1] SUBSEP cell[2] SUBSEP list[i]] = 1
                    listed[ncalls, i] = list[i]
                }
                c_count[ncalls] = k
            } else if (table == "helpers") {
                k = split(cell[2], list, /, */)
                for (i = 1; i <= k; i++) helper_row[cell[1] SUBSEP list[i]] = 1
            }
        }
        if (rows == 0) problem(readme ": no layer table (| file | layer | owns |)")
        for (i = 1; i <= rows; i++) {
            f = name[i]
            if (f != "internal.h" && system("test -f " srcdir "/" f) != 0)
                problem("the layer table names " f ", which is not in src/")
        }
    }
    FILENAME ~ /defs$/ { def[$2] = $1; type[$2] = $3; if (!($1 in rank)) missing[$1] = 1; next }
    FILENAME ~ /uses$/ {
        if (!($2 in def) || def[$2] == $1) next
        from = $1; to = def[$2]; sym = $2
        uses++
        if (!(from in rank) || !(to in rank)) next
        if (rank[to] < rank[from]) next
        up++
        if ((from SUBSEP to SUBSEP sym) in allowed) used[from SUBSEP to SUBSEP sym] = 1
        else if (("any" SUBSEP to SUBSEP sym) in allowed) used["any" SUBSEP to SUBSEP sym] = 1
        else if ((from SUBSEP to SUBSEP "any") in allowed) used[from SUBSEP to SUBSEP "any"] = 1
        else if (("any" SUBSEP to SUBSEP "any") in allowed) used["any" SUBSEP to SUBSEP "any"] = 1
        else problem(from " uses " sym " of " to ", a later row of the layer table, and src/README.md does not list it under \"Calls up\"")
        next
    }
    FILENAME ~ /calls$/ {
        if (!($2 in def) || type[$2] !~ /[Tt]/) next
        helper_calls++
        if ((($1 SUBSEP $2) in helper_row)) helper_seen[$1 SUBSEP $2] = 1
        else problem("inline helper " $1 " calls " $2 " (" def[$2] "), which src/README.md'"'"'s \"Inline helpers\" table does not list")
        next
    }
    END {
        for (f in missing) problem(f " is not in the layer table of src/README.md")
        for (i = 1; i <= ncalls; i++)
            for (j = 1; j <= c_count[i]; j++)
                if (!((c_from[i] SUBSEP c_to[i] SUBSEP listed[i, j]) in used))
                    problem("written exception " c_from[i] " -> " c_to[i] " " listed[i, j] " is no longer used: remove it from src/README.md")
        for (key in helper_row)
            if (!(key in helper_seen)) {
                split(key, kv, SUBSEP)
                problem("inline helper " kv[1] " no longer calls " kv[2] ": remove it from src/README.md")
            }
        if (!bad)
            printf "layer_check: %d rows; %d uses across files, %d of them of a later row, each a written exception; %d calls out of the inline helpers (%d of them), each listed\n", rows, uses, up, helper_calls, nhelpers
        exit bad
    }' "$tmp/defs" "$tmp/uses" "$tmp/calls"
}

check "$readme" || exit 1

# ---- It can fail ---------------------------------------------------------
grep -v '^| `heap.c` | `free.c` |' "$readme" >"$tmp/README-without.md"
if cmp -s "$readme" "$tmp/README-without.md"; then
    echo "FAIL: self-test: src/README.md has no heap.c -> free.c row to take out"
    exit 1
fi
if out=$(check "$tmp/README-without.md"); then
    echo "FAIL: self-test: the check passed without the heap.c -> free.c exception"
    exit 1
fi
case $out in
*"heap.c uses ma_free_local of free.c"*) echo "ok: without the heap.c -> free.c row the check fails" ;;
*) printf 'FAIL: self-test: unexpected output:\n%s\n' "$out"; exit 1 ;;
esac
