#!/bin/bash
# preload_git: builds a git repository (30+ commits of generated files, a
# branch and a merge, a rename, git gc) and queries it (log --stat, log -p,
# diff, blame, fsck, rev-list, grep, archive, ...). Everything runs twice,
# plainly and under mapalloc, each in its own repository; with fixed dates
# and identities the two runs must print the same bytes, commit ids included.
# Usage: preload_git.sh /path/to/libmapalloc.so
set -euo pipefail
source "$(dirname "$0")/common.sh"
pl_init "${1:-}"
pl_require git awk
cd "$T"

# The whole scenario; run as `bash scenario.sh DIR` (the repository to make).
cat >scenario.sh <<'SCENARIO'
set -euo pipefail
export HOME="$1.home" GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL="$1.home/.gitconfig"
export GIT_AUTHOR_NAME="Map Alloc" GIT_AUTHOR_EMAIL="mapalloc@example.org"
export GIT_COMMITTER_NAME="Map Alloc" GIT_COMMITTER_EMAIL="mapalloc@example.org"
export GIT_PAGER=cat PAGER=cat GIT_TERMINAL_PROMPT=0 TZ=UTC LC_ALL=C
unset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE
mkdir -p "$HOME"
git config --global user.name "Map Alloc"
git config --global user.email "mapalloc@example.org"
git config --global init.defaultBranch main
git config --global gc.auto 0
git config --global core.autocrlf false
git config --global advice.detachedHead false
git config --global color.ui false

n=0
when() { # fixed, increasing dates
    n=$((n + 1))
    export GIT_AUTHOR_DATE="@$((1700000000 + n * 3600)) +0000"
    export GIT_COMMITTER_DATE="$GIT_AUTHOR_DATE"
}
# gen FILE SEED LINES: deterministic source-like text.
gen() {
    awk -v seed="$2" -v lines="$3" 'BEGIN {
        s = seed
        for (i = 1; i <= lines; i++) {
            s = (s * 1103515245 + 12345) % 2147483648
            if (s % 13 == 0) { printf "\n"; continue }
            printf "int f_%d_%d(int x) { return x * %d + %d; } /* %s */\n",
                   seed, i, s % 1000, int(s / 7) % 100, substr("lorem ipsum dolor sit amet consectetur", 1 + s % 20, 12)
        }
    }' >"$1"
}

git init -q "$1"
cd "$1"
mkdir -p src doc
for f in 0 1 2 3 4 5 6 7; do gen src/file$f.c $((f + 1)) 400; done
gen doc/notes.txt 99 200
when; git add -A; git commit -q -m "initial import"
for c in $(seq 1 20); do
    f=$((c % 8))
    # change a block of lines in one file, append to another
    awk -v c="$c" 'NR % 17 == c % 17 { $0 = $0 " // edit " c } { print }' \
        src/file$f.c >tmp && mv tmp src/file$f.c
    gen tmp $((c * 31)) $((20 + c)); cat tmp >>src/file$(((c + 3) % 8)).c; rm tmp
    if [ $((c % 6)) = 0 ]; then gen src/new$c.c $((c * 7)) 150; fi
    if [ "$c" = 9 ]; then git mv -k doc/notes.txt doc/NOTES; fi
    when; git add -A; git commit -q -m "change $c: edit file$f.c

Line two of the message for change $c."
    if [ "$c" = 10 ]; then git tag -a v1.0 -m "version 1.0"; fi
done
git checkout -q -b feature HEAD~5
for c in $(seq 1 6); do
    gen src/feature$c.c $((c * 101)) 120
    sed -i "s/return x/return x + $c/" src/file$((c % 3)).c
    when; git add -A; git commit -q -m "feature $c"
done
git checkout -q main
for c in $(seq 21 25); do
    gen src/file7.c $((c * 13)) 300
    when; git add -A; git commit -q -m "change $c: rewrite file7.c"
done
when; git merge -q --no-ff -X theirs -m "merge feature" feature
git branch -q topic HEAD~3
when; git commit -q --allow-empty -m "empty commit"
git gc -q --aggressive --prune=now

echo "== head"; git rev-parse HEAD HEAD^1 HEAD~1^2 v1.0 v1.0^{commit}
echo "== count"; git rev-list --count HEAD; git rev-list --count --all --objects
echo "== branches"; git branch -v --no-abbrev; git tag -n
echo "== log"; git log --stat --date=iso --format=fuller
echo "== log graph"; git log --graph --oneline --decorate --all
echo "== log patch"; git log -p -M --first-parent -n 12
echo "== diff"; git diff HEAD~10
echo "== diff stat"; git diff --stat=200 --summary -M HEAD~20 HEAD
echo "== word diff"; git diff --word-diff HEAD~4 HEAD -- src/file7.c | sed -n '1,400p'
echo "== blame"; git blame -M -C --date=iso src/file3.c
echo "== blame porcelain"; git blame --line-porcelain src/file1.c | git hash-object --stdin
echo "== fsck"; git fsck --full --strict --no-progress
echo "== ls-tree"; git ls-tree -r -l HEAD
echo "== grep"; git grep -n -e 'edit 1[0-9]' -e 'lorem' HEAD -- src | sed -n '1,300p'; git grep -c 'return x' HEAD
echo "== shortlog"; git shortlog -s -n --all
echo "== describe"; git describe --tags HEAD; git name-rev HEAD~7
echo "== archive"; git archive --format=tar HEAD | git hash-object --stdin
git archive --format=tar HEAD | tar tf - | sort
echo "== cat-file"; git cat-file --batch-all-objects --batch-check | sort | awk '{ print $1, $2 }' | git hash-object --stdin
echo "== merge-base"; git merge-base main feature; git merge-base --is-ancestor feature main && echo ancestor
echo "== rebase"
git checkout -q -b replay topic
n=200; when; git cherry-pick -X theirs feature~2 >/dev/null; git log --oneline -n 3
git checkout -q main
echo "== status"; git status --porcelain=v2 --branch
SCENARIO

pl_plain git bash scenario.sh "$T/plain"
pl_ma git bash scenario.sh "$T/ma"
pl_compare git
pl_check_stats git
grep -q '^== fsck' "$T/git.plain.out" || fail "git: scenario incomplete (test is broken)"
echo "preload_git: OK ($(wc -l <"$T/git.ma.out") lines identical)"
