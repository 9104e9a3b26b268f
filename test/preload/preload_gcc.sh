#!/bin/bash
# preload_gcc: gcc -O2 compiles a generated 3.4 MB C file (1000 functions
# with switch statements and arithmetic, a 300000-entry table, 15000
# strings) and links it into a program, plainly and under mapalloc (gcc,
# cc1, as, collect2 and ld all inherit LD_PRELOAD). The object files and
# executables must be byte-identical, and so must the size/nm/objdump
# listings and the program's output.
# Usage: preload_gcc.sh /path/to/libmapalloc.so
set -euo pipefail
source "$(dirname "$0")/common.sh"
pl_init "${1:-}"
pl_require gcc awk size nm objdump readelf sha256sum
cd "$T"

awk -v nf=1000 -v n=300000 'BEGIN {
    s = 12345
    printf "#include <stdint.h>\n\n"
    printf "struct rec { int64_t a, b; double d; char name[16]; };\n\n"
    for (f = 0; f < nf; f++) {
        printf "int64_t fn%d(int64_t x, int64_t y, struct rec *r)\n{\n", f
        printf "    int64_t acc = x ^ %d;\n", f
        printf "    switch (y & 7) {\n"
        for (c = 0; c < 8; c++) {
            s = (s * 1103515245 + 12345) % 2147483648
            op = s % 4
            if (op == 0) e = sprintf("acc = acc * %d + %d", s % 97 + 1, s % 1013)
            else if (op == 1) e = sprintf("acc ^= (acc >> %d) + r->a * %d", s % 13 + 1, s % 31)
            else if (op == 2) e = sprintf("r->d = r->d * 1.%d + (double)acc / %d.0", s % 9, s % 7 + 1)
            else e = sprintf("r->b += acc %% %d; r->name[%d] = (char)acc", s % 251 + 1, s % 16)
            printf "    case %d: %s; break;\n", c, e
        }
        printf "    default: acc = -acc;\n    }\n"
        printf "    return acc + r->a + (int64_t)r->d;\n}\n\n"
    }
    printf "typedef int64_t (*fn_t)(int64_t, int64_t, struct rec *);\n"
    printf "const fn_t fns[%d] = {\n", nf
    for (f = 0; f < nf; f++) printf "fn%d,%s", f, (f % 10 == 9 ? "\n" : " ")
    printf "};\nconst int nfns = %d;\n", nf
    printf "const int table[%d] = {\n", n
    for (i = 0; i < n; i++) {
        s = (s * 1103515245 + 12345) % 2147483648
        printf "%d,%s", s % 100000, (i % 16 == 15 ? "\n" : " ")
    }
    printf "};\nconst int ntable = %d;\n", n
    printf "const char *const strs[] = {\n"
    for (i = 0; i < n / 20; i++)
        printf "\"string number %d of the table, padded to be longer\",\n", i
    printf "};\nconst int nstrs = %d;\n", n / 20
}' >big.c

cat >main.c <<'EOF_MAIN'
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rec { int64_t a, b; double d; char name[16]; };
typedef int64_t (*fn_t)(int64_t, int64_t, struct rec *);
extern const fn_t fns[];
extern const int nfns, table[], ntable, nstrs;
extern const char *const strs[];

int main(void)
{
    struct rec r;
    memset(&r, 0, sizeof r);
    r.a = 3;
    uint64_t h = 1469598103934665603u;
    for (int round = 0; round < 20; round++)
        for (int i = 0; i < nfns; i++) {
            int64_t v = fns[i](table[(i * 31 + round) % ntable], i + round, &r);
            h = (h ^ (uint64_t)v) * 1099511628211u;
        }
    size_t total = 0;
    char *buf = NULL;
    for (int i = 0; i < nstrs; i++) {   /* a realloc'd string */
        size_t l = strlen(strs[i]);
        buf = realloc(buf, total + l + 1);
        if (!buf) return 2;
        memcpy(buf + total, strs[i], l + 1);
        total += l;
    }
    printf("hash %016" PRIx64 " b %" PRId64 " d %.6g\n", h, r.b, r.d);
    printf("strings %zu bytes, last: %s\n", total, buf + total - 20);
    free(buf);
    return 0;
}
EOF_MAIN

# 1. The compilation alone: gcc, cc1 and as under mapalloc. cc1 makes
# millions of malloc calls here (about 3.7 million measured with glibc).
mkdir plain ma
cp big.c main.c plain/
cp big.c main.c ma/
CC=(gcc -O2 -frandom-seed=mapalloc -c big.c -o big.o)
pl_plain cc env -C plain "${CC[@]}"
pl_ma cc env -C ma "${CC[@]}"
cmp plain/big.o ma/big.o || fail "gcc: big.o differs under mapalloc"
pl_check_stats cc 1000000
pl_check_reports cc 3

# 2. Link, run, and list the results: collect2, ld, size, nm, objdump,
# readelf and the program itself under mapalloc.
cat >build.sh <<'EOF_BUILD'
set -euo pipefail
cd "$1"
gcc -O2 -frandom-seed=mapalloc -o prog main.c big.o
echo "== size"; size big.o prog
echo "== nm"; nm big.o | sha256sum; nm -S --size-sort big.o | tail -n 20
echo "== objdump"; objdump -d big.o | sha256sum; objdump -d big.o | sed -n '1,60p'
echo "== objdump prog"; objdump -d --no-show-raw-insn prog | sha256sum
echo "== readelf"; readelf -S -W big.o | sed -n '1,40p'
echo "== run"; ./prog
EOF_BUILD

pl_plain gcc bash build.sh plain
pl_ma gcc bash build.sh ma
pl_compare gcc
cmp plain/prog ma/prog || fail "gcc: the linked program differs under mapalloc"
pl_check_stats gcc
pl_check_reports gcc 8
echo "preload_gcc: OK ($(wc -c <big.c) bytes of C; big.o, prog and listings identical)"
