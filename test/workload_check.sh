#!/bin/sh
# workload_check.sh LAUNCHER PYTHON WORKLOAD: the workload prints the same
# under mapalloc (with --stats) as under the C library's malloc.
set -eu
launcher=$1 python=$2 workload=$3
export PYTHONMALLOC=malloc PYTHONHASHSEED=0
ref=$("$python" "$workload" 0.25)
got=$("$launcher" --stats "$python" "$workload" 0.25)
if [ "$ref" != "$got" ]; then
    printf 'FAIL: output differs under mapalloc\n--- glibc:\n%s\n--- mapalloc:\n%s\n' \
        "$ref" "$got" >&2
    exit 1
fi
printf '%s\n' "$got"
