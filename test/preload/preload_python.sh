#!/bin/bash
# preload_python: python3 (every object a malloc block: PYTHONMALLOC=malloc)
# runs workload.py (json, re, collections, sqlite3, difflib, decimal, 4
# threads, subprocesses) plainly and under mapalloc; stdouts must match.
# Usage: preload_python.sh /path/to/libmapalloc.so
set -euo pipefail
source "$(dirname "$0")/common.sh"
pl_init "${1:-}"
PY=$(pl_python)
export PYTHONMALLOC=malloc PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1
cd "$T"
pl_both python "$PY" "$PRELOAD_DIR/workload.py"
echo "preload_python: OK ($(wc -l <"$T/python.ma.out") lines identical)"
