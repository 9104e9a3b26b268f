#!/bin/sh
# check_shares.sh PROGRAM [VAR=value...]: runs PROGRAM (test/profile/
# shares.c) with the heap profiler writing to a temporary file, then asks
# `go tool pprof -top` for the live and the allocated profile: each of
# alloc_60, alloc_30 and alloc_10 must hold its true share of the bytes
# within 5 percentage points, and the total must be within 10% of the true
# total. The VAR=value pairs are added to the program's environment
# (LD_PRELOAD, MAPALLOC_PROFILE_RATE, ...).
set -u
prog=$1
shift
command -v go >/dev/null 2>&1 || {
    echo "FAIL: go not found: this test needs 'go tool pprof' (apt-get install golang-go)" >&2
    exit 1
}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
prof=$dir/shares.pb.gz
if ! env "$@" MAPALLOC_PROFILE="$prof" "$prog" >"$dir/out" 2>"$dir/err"; then
    echo "FAIL: $prog exited with status $?" >&2
    cat "$dir/err" >&2
    exit 1
fi
[ -s "$prof" ] || { echo "FAIL: no profile written to $prof" >&2; cat "$dir/err" >&2; exit 1; }
fails=0
for kind in alloc live; do
    index=inuse_space
    [ $kind = alloc ] && index=alloc_space
    if ! go tool pprof -top -unit=B -nodecount=200 -nodefraction=0 -sample_index=$index "$prof" >"$dir/top.$kind" 2>"$dir/pprof.err"; then
        echo "FAIL: go tool pprof could not read the profile:" >&2
        cat "$dir/pprof.err" >&2
        exit 1
    fi
    truth=$(grep "^TRUTH $kind " "$dir/out")
    [ -n "$truth" ] || { echo "FAIL: the program printed no TRUTH $kind line" >&2; exit 1; }
    echo "== $kind ($index): truth $truth"
    sed -n '/^Showing/,$p' "$dir/top.$kind" | head -n 8
    # total: "Showing nodes accounting for X, P% of TOTALB total"; flat: "NB ..."
    awk -v kind=$kind -v truth="$truth" '
        function bytes(s) { sub(/B$/, "", s); return s + 0 }
        BEGIN { split(truth, t, " "); want[1] = t[3]; want[2] = t[4]; want[3] = t[5]
                all = want[1] + want[2] + want[3]; name[1] = "alloc_60"; name[2] = "alloc_30"; name[3] = "alloc_10" }
        /^Showing nodes accounting for/ { for (i = 1; i <= NF; i++) if ($(i + 1) == "total") total = bytes($i) }
        { for (k = 1; k <= 3; k++) if ($NF == name[k] && NF >= 6) got[k] = bytes($1) }
        END {
            bad = 0
            if (total <= 0) { print "FAIL: " kind ": no total in pprof output"; exit 1 }
            err = (total - all) / all * 100
            printf "%s: total %d B, true %d B: %+.2f%%\n", kind, total, all, err
            if (err > 10 || err < -10) { print "FAIL: " kind ": total off by more than 10%"; bad = 1 }
            for (k = 1; k <= 3; k++) {
                share = got[k] / total * 100; true_share = want[k] / all * 100
                printf "%s: %s %.2f%% of the bytes, true %.2f%%\n", kind, name[k], share, true_share
                if (share - true_share > 5 || true_share - share > 5) {
                    print "FAIL: " kind ": " name[k] " share off by more than 5 points"; bad = 1
                }
            }
            exit bad
        }' "$dir/top.$kind" || fails=$((fails + 1))
done
[ $fails -eq 0 ] && echo "ok: shares" || exit 1
