#!/bin/sh
# run.sh CMAKE BUILD_DIR THIS_DIR CC: installs BUILD_DIR into a temporary
# prefix, then builds test/install/consumer.c against it through pkg-config
# and through find_package(mapalloc), and runs the programs without
# LD_LIBRARY_PATH (pkg-config's Libs and CMake record the library's
# directory in the program), each checking that its malloc is mapalloc's.
set -eu
cmake=$1 build=$2 here=$3 cc=$4
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mapalloc-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
set -x

"$cmake" --install "$build" --prefix "$prefix"
for f in lib/libmapalloc.so lib/libmapalloc.a include/mapalloc.h bin/mapalloc \
         lib/pkgconfig/mapalloc.pc lib/cmake/mapalloc/mapallocConfig.cmake \
         lib/cmake/mapalloc/mapallocConfigVersion.cmake \
         lib/cmake/mapalloc/mapallocTargets.cmake; do
    test -e "$prefix/$f"
done
soname=$(readelf -d "$prefix/lib/libmapalloc.so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
test -e "$prefix/lib/$soname"

# The installed launcher preloads the installed library.
preload=$("$prefix/bin/mapalloc" sh -c 'echo "$LD_PRELOAD"')
test "$preload" = "$prefix/lib/libmapalloc.so"
"$prefix/bin/mapalloc" true

# pkg-config: shared, then static.
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
pkg-config --exists --print-errors mapalloc
"$cc" -Wall -Werror $(pkg-config --cflags mapalloc) "$here/consumer.c" \
    -o "$tmp/consumer_pc" $(pkg-config --libs mapalloc)
unset LD_LIBRARY_PATH
"$tmp/consumer_pc"
deps=$(ldd "$tmp/consumer_pc")
case $deps in *"$prefix/lib/libmapalloc.so"*) ;; *) echo "ldd: $deps"; exit 1 ;; esac
# The same without the rpath: the loader does not find the library (what
# README's "Linking against an install" is about), unless told where.
"$cc" -Wall -Werror $(pkg-config --cflags mapalloc) "$here/consumer.c" \
    -o "$tmp/consumer_norpath" -L"$prefix/lib" -lmapalloc
deps=$(ldd "$tmp/consumer_norpath")
case $deps in
*"libmapalloc.so"*"not found"*)
    if "$tmp/consumer_norpath" 2>/dev/null; then
        echo "consumer_norpath ran though the loader cannot find libmapalloc.so"
        exit 1
    fi ;;
*) echo "note: a libmapalloc.so is installed where the loader looks: $deps" ;;
esac
LD_LIBRARY_PATH="$prefix/lib" "$tmp/consumer_norpath"
test "$(pkg-config --variable=rpath mapalloc)" = "-Wl,-rpath,$prefix/lib"
"$cc" -Wall -Werror $(pkg-config --cflags mapalloc) "$here/consumer.c" \
    -o "$tmp/consumer_pc_static" \
    $(pkg-config --static --libs mapalloc | sed 's/-lmapalloc/-l:libmapalloc.a/')
"$tmp/consumer_pc_static"

# find_package(mapalloc): mapalloc::mapalloc and mapalloc::mapalloc_static.
"$cmake" -S "$here/consumer" -B "$tmp/cbuild" -DCMAKE_C_COMPILER="$cc" \
    -DCMAKE_PREFIX_PATH="$prefix"
"$cmake" --build "$tmp/cbuild"
"$tmp/cbuild/consumer_shared"
"$tmp/cbuild/consumer_static"
echo "ok: install_and_consume"
