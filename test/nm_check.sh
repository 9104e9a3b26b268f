#!/bin/sh
# nm_check.sh NM LIBRARY: fails if LIBRARY needs any of the C library's
# allocator entry points (or sbrk/brk) from elsewhere.
set -eu
nm=$1 lib=$2
forbidden='malloc free calloc realloc memalign posix_memalign aligned_alloc sbrk brk'

undef=$("$nm" -D --undefined-only "$lib") || { echo "nm failed on $lib" >&2; exit 1; }
bad=
for sym in $(printf '%s\n' "$undef" | awk '{ sub(/@.*/, "", $NF); print $NF }'); do
    for f in $forbidden; do
        [ "$sym" = "$f" ] && bad="$bad $sym"
    done
done
if [ -n "$bad" ]; then
    echo "FAIL: $lib imports:$bad" >&2
    exit 1
fi
echo "ok: $lib imports none of: $forbidden"
