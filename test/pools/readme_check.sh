#!/bin/sh
# readme_check.sh README EXAMPLE_C EXAMPLE_BIN: the ```c block that follows
# the "## Pools" heading of README is EXAMPLE_C, byte for byte, and the
# program built from EXAMPLE_C prints what it should.
set -eu
readme=$1 src=$2 bin=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

awk '/^## Pools/ { inpools = 1; next }
     inpools && !inblock && /^## / { exit }
     inpools && !inblock && $0 == "```c" { inblock = 1; next }
     inblock && $0 == "```" { exit }
     inblock { print }' "$readme" >"$tmp/readme.c"
if [ ! -s "$tmp/readme.c" ]; then
    echo "readme_check: no \`\`\`c block after \"## Pools\" in $readme" >&2
    exit 1
fi
if ! diff -u "$src" "$tmp/readme.c"; then
    echo "readme_check: $readme's pool example differs from $src" >&2
    exit 1
fi

printf '%s\n' one call frees them all 'inside buf: yes' >"$tmp/want"
"$bin" >"$tmp/got"
if ! diff -u "$tmp/want" "$tmp/got"; then
    echo "readme_check: $bin printed something else" >&2
    exit 1
fi
echo "readme_check: README example matches $src and runs"
