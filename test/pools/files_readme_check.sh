#!/bin/sh
# files_readme_check.sh README EXAMPLE_C EXAMPLE_BIN: the ```c block that
# follows the "## Heaps in files" heading of README is EXAMPLE_C, byte for
# byte, and the program built from EXAMPLE_C stores its list in a heap file
# in one run and reads it back in the next (a new process, the file mapped
# wherever the kernel likes).
set -eu
readme=$1 src=$2 bin=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

awk '/^## Heaps in files/ { inside = 1; next }
     inside && !inblock && /^## / { exit }
     inside && !inblock && $0 == "```c" { inblock = 1; next }
     inblock && $0 == "```" { exit }
     inblock { print }' "$readme" >"$tmp/readme.c"
if [ ! -s "$tmp/readme.c" ]; then
    echo "files_readme_check: no \`\`\`c block after \"## Heaps in files\" in $readme" >&2
    exit 1
fi
if ! diff -u "$src" "$tmp/readme.c"; then
    echo "files_readme_check: $readme's heap-file example differs from $src" >&2
    exit 1
fi

printf 'stored 3 words in %s\n' "$tmp/words.heap" >"$tmp/want1"
printf '%s\n' three two one >"$tmp/want2"
"$bin" "$tmp/words.heap" >"$tmp/got1"
"$bin" "$tmp/words.heap" >"$tmp/got2"
"$bin" "$tmp/words.heap" >"$tmp/got3"
for run in 1 2 3; do
    want=$tmp/want2
    [ $run = 1 ] && want=$tmp/want1
    if ! diff -u "$want" "$tmp/got$run"; then
        echo "files_readme_check: run $run of $bin printed something else" >&2
        exit 1
    fi
done
echo "files_readme_check: README example matches $src, stores its list, reads it back twice"
