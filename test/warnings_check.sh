#!/bin/sh
# warnings_check.sh CMAKE SOURCE_DIR BUILD_DIR CC [BUILD_TYPE]: a fresh
# configure of SOURCE_DIR with CC and -Werror, building the library targets
# only.
set -eu
cmake=$1 src=$2 dir=$3 cc=$4 type=${5:-RelWithDebInfo}
rm -rf "$dir"
set -x
"$cmake" -S "$src" -B "$dir" -DCMAKE_C_COMPILER="$cc" -DCMAKE_C_FLAGS=-Werror \
    -DCMAKE_BUILD_TYPE="$type" -DBUILD_TESTING=OFF >"$dir.configure.log" 2>&1 || { cat "$dir.configure.log"; exit 1; }
"$cmake" --build "$dir" --target mapalloc mapalloc_ma -j 2
