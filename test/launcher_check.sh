#!/bin/sh
# launcher_check.sh LAUNCHER LIBRARY: the launcher's usage errors, --help,
# LD_PRELOAD handling (prepends, keeps what was there), --stats and --profile.
set -u
launcher=$1 lib=$2
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

out=$("$launcher" 2>&1) && fail "no program: exit status 0"
case $out in *"no program given"*) ;; *) fail "no program: message: $out" ;; esac
"$launcher" --bogus true 2>/dev/null && fail "unknown option accepted"
out=$("$launcher" --help) || fail "--help: exit status $?"
case $out in "usage: mapalloc"*) ;; *) fail "--help: $out" ;; esac

# Compare with the real file: build/libmapalloc.so is a link to it.
want=$(readlink -f "$lib")
got=$(LD_PRELOAD= "$launcher" sh -c 'echo "$LD_PRELOAD"')
[ "$(readlink -f "$got")" = "$want" ] || fail "LD_PRELOAD='$got', want $lib"
got=$(LD_PRELOAD=/nonexistent/keep.so "$launcher" sh -c 'echo "$LD_PRELOAD"' 2>/dev/null)
case $got in *:/nonexistent/keep.so) ;; *) fail "existing LD_PRELOAD lost: '$got'" ;; esac
got=$("$launcher" --stats sh -c 'echo "$MAPALLOC_SHOW_STATS"' 2>/dev/null)
[ "$got" = 1 ] || fail "--stats: MAPALLOC_SHOW_STATS='$got'"
got=$("$launcher" --profile /tmp/x.%p.pb.gz sh -c 'echo "$MAPALLOC_PROFILE"' 2>/dev/null)
[ "$got" = /tmp/x.%p.pb.gz ] || fail "--profile: MAPALLOC_PROFILE='$got'"
got=$("$launcher" --profile=rel.heap --stats sh -c 'echo "$MAPALLOC_PROFILE $MAPALLOC_SHOW_STATS"' 2>/dev/null)
[ "$got" = "rel.heap 1" ] || fail "--profile=FILE --stats: '$got'"
out=$("$launcher" --profile 2>&1) && fail "--profile without a file: exit status 0"
case $out in *"--profile needs a file name"*) ;; *) fail "--profile without a file: message: $out" ;; esac
"$launcher" --help | grep -q -- "--profile FILE" || fail "--help does not mention --profile"
got=$("$launcher" --stats=full sh -c 'echo "$MAPALLOC_SHOW_STATS"' 2>/dev/null)
[ "$got" = 2 ] || fail "--stats=full: MAPALLOC_SHOW_STATS='$got'"
got=$(MAPALLOC_SHOW_STATS=0 "$launcher" --stats-file=/tmp/x.%p sh -c 'echo "$MAPALLOC_SHOW_STATS $MAPALLOC_STATS_FILE"' 2>/dev/null)
[ "$got" = "1 /tmp/x.%p" ] || fail "--stats-file: '$got'"
got=$("$launcher" --stats=full --stats-file=/tmp/y sh -c 'echo "$MAPALLOC_SHOW_STATS $MAPALLOC_STATS_FILE"' 2>/dev/null)
[ "$got" = "2 /tmp/y" ] || fail "--stats=full --stats-file: '$got'"
# The report itself, into a file named by process id.
dir=$(mktemp -d "${TMPDIR:-/tmp}/mapalloc-launcher.XXXXXX")
# (bash: dash leaves through _exit, which runs no destructor, so no report)
if command -v bash >/dev/null 2>&1; then
    "$launcher" --stats-file="$dir/r.%p" bash -c 'echo $$ >"$1"' bash "$dir/pid"
    pid=$(cat "$dir/pid")
    first=$(head -n 1 "$dir/r.$pid" 2>/dev/null)
    [ "$first" = "mapalloc: statistics of process $pid (bash)" ] ||
        fail "--stats-file: no report in $dir/r.$pid: $(ls "$dir")"
fi
rm -rf "$dir"
"$launcher" sh -c 'exit 3'; [ $? -eq 3 ] || fail "exit status not passed on"
"$launcher" true || fail "'true' under the launcher"

[ $fails -eq 0 ] && echo "ok: launcher" || exit 1
