#!/usr/bin/env bash
# bench/run.sh - mapalloc side by side with mimalloc, jemalloc, tcmalloc and
# glibc on our own workloads and on real programs.
#
#   bash bench/run.sh            full run (about 40 minutes on 2 cores at THREADS="1 2 4"; longer at the default 1-8)
#   QUICK=1 bash bench/run.sh    small scales, threads 2 only (about 5 minutes)
#
# Every workload runs under every allocator in turn, interleaved (A B C D E,
# A B C D E, ...): one warm-up round, then ROUNDS measured rounds. Wall time
# and peak RSS come from bench/tools/runstat. Writes docs/bench/results.csv
# (raw), docs/bench/results.md and docs/bench/{time,rss}.png.
#
# Environment (all optional):
#   QUICK=1            small scales and threads "2"
#   ALLOCATORS="..."   subset of: mapalloc mimalloc jemalloc tcmalloc glibc,
#                      and mapalloc-secure (mapalloc with MAPALLOC_SECURE=1)
#                      and mapalloc-profile (with the heap profiler on at its
#                      default rate, a profile written at each exit), which
#                      run only when named here
#   WORKLOADS="..."    subset of workload names (larson ... redis gcc)
#   THREADS="1 2 4 8"  thread counts for the threaded workloads
#   WIDE_THREADS="1 2 4 8 16"  thread counts for the thread-generation and
#                      producer/consumer ones (QUICK: 2)
#   ROUNDS=3 WARMUP=1  measured and warm-up rounds
#   TIMEOUT=seconds    per run (default 120, QUICK 30); a run past it is FAIL
#   NO_INSTALL=1       never call apt-get
#   BENCH_BUILD=dir    where binaries and logs go (default build/bench-run)
#   BENCH_OUT=dir      where results go (default docs/bench)
set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
BUILD=${BENCH_BUILD:-$ROOT/build/bench-run}
DOCS=${BENCH_OUT:-$ROOT/docs/bench}
LIBDIR=/usr/lib/x86_64-linux-gnu

case "${QUICK:-0}" in 1|y|yes|true|on) QUICK=1 ;; *) QUICK=0 ;; esac
if [ "$QUICK" = 1 ]; then
    THREADS=${THREADS:-2}
    WIDE_THREADS=${WIDE_THREADS:-$THREADS}
    TIMEOUT=${TIMEOUT:-30}
else
    THREADS=${THREADS:-1 2 4 8}
    WIDE_THREADS=${WIDE_THREADS:-1 2 4 8 16}
    TIMEOUT=${TIMEOUT:-120}
fi
ROUNDS=${ROUNDS:-3}
WARMUP=${WARMUP:-1}
ALL_ALLOCATORS="mapalloc mimalloc jemalloc tcmalloc glibc"
KNOWN_ALLOCATORS="$ALL_ALLOCATORS mapalloc-secure mapalloc-profile"
ALLOCATORS=${ALLOCATORS:-$ALL_ALLOCATORS}

log() { printf '[bench] %s\n' "$*" >&2; }
warn() { printf '[bench] WARNING: %s\n' "$*" >&2; }

# ---- workloads: name, threaded?, QUICK scale, full scale -----------------
# Scales are calibrated to about 0.1 s (QUICK) and 1-2 s (full) under glibc
# with one thread; see bench/README.md for what each one reproduces.
# threaded: yes (THREADS), wide (WIDE_THREADS: up to 16), no.
WORKLOAD_TABLE="
larson        yes  8    80
xmalloc       wide 2    10
cache-scratch yes  8    80
cache-thrash  yes  8    80
mstress       wide 5    50
tgen          wide 1    6
alloc-test    yes  1    12
sh6bench      yes  2    16
sh8bench      wide 2    16
prodcons      wide 1    4
glibc-simple  no   1    12
glibc-thread  yes  1    12
malloc-large  no   1    20
realloc       no   1    16
burst         no   256  1024
pybench       no   1    12
sqlite        no   1    20
redis         no   5000 50000
gcc           no   1    20
clang         no   1    20
ghostscript   no   1    3
ruby          no   1    3
lua           no   1    3
"

# ---- dependencies --------------------------------------------------------

PACKAGES="libmimalloc2.0 libjemalloc2 libtcmalloc-minimal4 redis-server redis-tools gnuplot-nox
          clang ghostscript ruby lua5.4"

missing_packages() {
    local p out=""
    for p in $PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || out="$out $p"
    done
    # gnuplot (with X) is as good as gnuplot-nox
    case "$out" in *gnuplot-nox*) command -v gnuplot >/dev/null && out=${out/ gnuplot-nox/} ;; esac
    echo "$out"
}

install_deps() {
    local need
    need=$(missing_packages)
    [ -z "$need" ] && return 0
    if [ "${NO_INSTALL:-0}" = 1 ]; then
        warn "missing packages:$need (NO_INSTALL=1, not installing)"
        return 0
    fi
    local sudo=""
    if [ "$(id -u)" != 0 ]; then
        if command -v sudo >/dev/null; then sudo="sudo -n"; else
            warn "missing packages:$need and not root: install them by hand"
            return 0
        fi
    fi
    log "installing:$need"
    # shellcheck disable=SC2086
    if ! DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y $need >"$BUILD/apt.log" 2>&1; then
        log "install failed; running apt-get update first"
        # shellcheck disable=SC2086
        DEBIAN_FRONTEND=noninteractive $sudo apt-get update >>"$BUILD/apt.log" 2>&1
        # shellcheck disable=SC2086
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y $need >>"$BUILD/apt.log" 2>&1 ||
            warn "apt-get install failed (see $BUILD/apt.log); continuing with what is there"
    fi
    # Debian starts the packaged redis-server as a service; we run our own
    if command -v systemctl >/dev/null && systemctl is-active --quiet redis-server 2>/dev/null; then
        $sudo systemctl stop redis-server >/dev/null 2>&1 || true
    fi
}

# ---- building ------------------------------------------------------------

CFLAGS=(-O2 -std=c11 -Wall -Wextra -pthread)

# cc OUT SRC [flags...]: compile when OUT is older than SRC or the headers
cc() {
    local out=$1 src=$2
    shift 2
    local dep
    if [ -x "$out" ]; then
        local stale=0
        for dep in "$src" "$BENCH"/workloads/*.h; do [ "$dep" -nt "$out" ] && stale=1; done
        [ $stale = 0 ] && return 0
    fi
    gcc "$@" -o "$out" "$src" || { warn "failed to build $out"; return 1; }
}

build_tools() {
    mkdir -p "$BUILD/bin" "$BUILD/logs" "$BUILD/data" "$BUILD/tmp"
    cc "$BUILD/bin/runstat" "$BENCH/tools/runstat.c" -O2 -Wall -Wextra || exit 1
    cc "$BUILD/bin/libglibc-malloc.so" "$BENCH/tools/glibc-malloc.c" \
        -O2 -Wall -shared -fPIC -fvisibility=hidden -ldl || exit 1
    local f
    for f in "$BENCH"/workloads/*.c; do
        cc "$BUILD/bin/$(basename "$f" .c)" "$f" "${CFLAGS[@]}"
    done
}

MAPALLOC_SO=$ROOT/build/libmapalloc.so

build_mapalloc() {
    [ -f "$MAPALLOC_SO" ] && return 0
    if [ -f "$ROOT/Makefile" ]; then
        log "build/libmapalloc.so is missing: running make -C $ROOT"
        make -C "$ROOT" >"$BUILD/logs/make.log" 2>&1 || warn "make failed (see $BUILD/logs/make.log)"
    fi
    [ -f "$MAPALLOC_SO" ] || warn "build/libmapalloc.so is missing: mapalloc is skipped"
}

# ---- allocators ----------------------------------------------------------

# lib_of ALLOCATOR [program]: the library to preload ("" = none)
lib_of() {
    case "$1" in
    mapalloc | mapalloc-secure | mapalloc-profile) echo "$MAPALLOC_SO" ;;
    mimalloc) echo "$LIBDIR/libmimalloc.so.2" ;;
    jemalloc) echo "$LIBDIR/libjemalloc.so.2" ;;
    tcmalloc) echo "$LIBDIR/libtcmalloc_minimal.so.4" ;;
    glibc)
        # redis-server is linked with jemalloc: put glibc's malloc back
        if [ "${2:-}" = redis ]; then echo "$BUILD/bin/libglibc-malloc.so"; else echo ""; fi ;;
    esac
}

select_allocators() {
    local a lib ok=""
    for a in $ALLOCATORS; do
        case " $KNOWN_ALLOCATORS " in *" $a "*) ;; *) warn "unknown allocator $a"; continue ;; esac
        lib=$(lib_of "$a")
        if [ -n "$lib" ] && [ ! -f "$lib" ]; then
            warn "$a: $lib not found, skipped"
            continue
        fi
        ok="$ok $a"
    done
    ALLOCATORS=${ok# }
    [ -n "$ALLOCATORS" ] || { warn "no allocator to run"; exit 1; }
}

# ---- one run -------------------------------------------------------------

CSV=$DOCS/results.csv

# field KEY LINE: the value of KEY=value in LINE
field() {
    local k=$1 line=$2
    case " $line " in *" $k="*) ;; *) echo ""; return ;; esac
    line=" $line "
    line=${line#* "$k"=}
    echo "${line%% *}"
}

# record WORKLOAD THREADS ALLOC ROUND STATUS TIME_S RSS_KIB WALL_S CPU_S MINFLT RESULT
record() {
    printf '%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,"%s"\n' "$@" >>"$CSV"
}

# run_cmd LABEL ALLOC ROUND LIB -- command...: runs under runstat and sets
# RUN_STATUS, RUN_WALL, RUN_RSS, RUN_CPU (user + sys), RUN_FLT (minor page
# faults), RUN_RESULT (the RESULT line, if any)
run_cmd() {
    local label=$1 alloc=$2 round=$3 lib=$4
    shift 5
    local base=$BUILD/logs/$label.$alloc.$round
    "$BUILD/bin/runstat" -o "$base.stat" -t "$TIMEOUT" -p "$lib" -- "$@" \
        >"$base.out" 2>"$base.err" </dev/null
    local st
    st=$(cat "$base.stat" 2>/dev/null)
    RUN_STATUS=$(field status "$st")
    RUN_WALL=$(field elapsed_s "$st")
    RUN_RSS=$(field maxrss_kib "$st")
    stat_cpu "$st"
    RUN_RESULT=$(grep '^RESULT ' "$base.out" | tail -n 1 | sed 's/^RESULT //')
    [ -n "$RUN_STATUS" ] || RUN_STATUS=fail
}

# stat_cpu STATLINE: RUN_CPU and RUN_FLT from a runstat line
stat_cpu() {
    local u s
    u=$(field user_s "$1")
    s=$(field sys_s "$1")
    RUN_CPU=""
    [ -n "$u" ] && [ -n "$s" ] && RUN_CPU=$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.3f", u + s }')
    RUN_FLT=$(field minflt "$1")
}

# run_workload NAME THREADS SCALE ALLOC ROUND
run_workload() {
    local name=$1 t=$2 scale=$3 alloc=$4 round=$5
    local label lib time
    label=$(label_of "$name" "$t")
    [ "$t" = 0 ] && t=1
    lib=$(lib_of "$alloc" "$name")
    if [ "$alloc" = mapalloc-secure ]; then export MAPALLOC_SECURE=1; else unset MAPALLOC_SECURE; fi
    # every process of the run writes its profile at exit; they are removed after
    rm -rf "$BUILD/tmp/profiles"
    if [ "$alloc" = mapalloc-profile ]; then
        mkdir -p "$BUILD/tmp/profiles"
        export MAPALLOC_PROFILE="$BUILD/tmp/profiles/%p.pb.gz"
    else
        unset MAPALLOC_PROFILE
    fi
    case "$name" in
    pybench)
        PYTHONMALLOC=malloc run_cmd "$label" "$alloc" "$round" "$lib" -- \
            "$PYTHON" "$BENCH/programs/pybench.py" "$scale" ;;
    sqlite)
        run_cmd "$label" "$alloc" "$round" "$lib" -- \
            sqlite3 :memory: ".read $BUILD/data/sqlite-$scale.sql" ;;
    gcc | clang)
        rm -f "$BUILD/tmp/big.o"
        run_cmd "$label" "$alloc" "$round" "$lib" -- \
            "$name" -O2 -w -c "$BUILD/data/big-$scale.c" -o "$BUILD/tmp/big.o"
        [ "$RUN_STATUS" = ok ] && [ -s "$BUILD/tmp/big.o" ] && RUN_RESULT="object=$(stat -c %s "$BUILD/tmp/big.o")" ;;
    ghostscript)
        run_cmd "$label" "$alloc" "$round" "$lib" -- \
            gs -q -dNOPAUSE -dBATCH -dSAFER -sDEVICE=ppmraw -r72 -sOutputFile="$BUILD/tmp/page-%d.ppm" \
            "$BUILD/data/doc-$scale.ps"
        [ "$RUN_STATUS" = ok ] && [ -s "$BUILD/tmp/page-1.ppm" ] &&
            RUN_RESULT="pages=$(find "$BUILD/tmp" -name 'page-*.ppm' | wc -l) page1=$(cksum <"$BUILD/tmp/page-1.ppm" | cut -d' ' -f1)"
        rm -f "$BUILD"/tmp/page-*.ppm ;;
    ruby)
        run_cmd "$label" "$alloc" "$round" "$lib" -- ruby "$BENCH/programs/rbbench.rb" "$scale" ;;
    lua)
        run_cmd "$label" "$alloc" "$round" "$lib" -- lua5.4 "$BENCH/programs/luabench.lua" "$scale" ;;
    redis)
        run_redis "$scale" "$alloc" "$round" "$lib" ;;
    *)
        run_cmd "$label" "$alloc" "$round" "$lib" -- "$BUILD/bin/$name" "$t" "$scale" ;;
    esac
    # a run that exits 0 without its RESULT line did not do its work
    [ "$RUN_STATUS" = ok ] && [ -z "$RUN_RESULT" ] && RUN_STATUS=fail
    time=$RUN_WALL
    local own
    own=$(field time_s "$RUN_RESULT")
    [ -n "$own" ] && time=$own
    [ "$RUN_STATUS" = ok ] || time=""
    [ "$RUN_STATUS" = ok ] || { RUN_CPU=""; RUN_FLT=""; }
    record "$label" "$t" "$alloc" "$round" "$RUN_STATUS" "$time" "$RUN_RSS" "$RUN_WALL" "$RUN_CPU" \
        "$RUN_FLT" "$RUN_RESULT"
}

# median_time LABEL ALLOC: the median time of the measured rounds so far
median_time() {
    awk -F, -v l="$1" -v a="$2" '$1 == l && $3 == a && $4 >= 1 && $6 != "" { print $6 }' "$CSV" |
        sort -g | awk '{ v[NR] = $1 } END { print NR ? v[int((NR + 1) / 2)] : 0 }'
}

# label_of NAME THREADS: the row name in the tables (threads 0: not threaded)
label_of() {
    if [ "$2" = 0 ]; then echo "$1"; else echo "$1-$2t"; fi
}

# ---- redis ---------------------------------------------------------------

REDIS_TESTS=set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,spop

free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# pin server and client to different cores when there are two or more
pin() {
    if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
        taskset -c "$1" "${@:2}"
    else
        "${@:2}"
    fi
}

# run_redis REQUESTS ALLOC ROUND LIB: redis-server under ALLOC, driven by
# redis-benchmark; time = sum over the tests of requests / (requests/s)
run_redis() {
    local n=$1 alloc=$2 round=$3 lib=$4
    local base=$BUILD/logs/redis.$alloc.$round port srv
    RUN_STATUS=fail RUN_WALL="" RUN_RSS="" RUN_CPU="" RUN_FLT="" RUN_RESULT=""
    if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
        echo "redis-server or redis-benchmark missing" >"$base.err"
        return
    fi
    port=$(free_port)
    rm -f "$base.stat"
    pin 0 "$BUILD/bin/runstat" -o "$base.stat" -t $((TIMEOUT + 30)) -p "$lib" -- \
        redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
        --daemonize no --protected-mode no --loglevel warning \
        >"$base.err" 2>&1 </dev/null &
    srv=$!
    for _ in $(seq 100); do
        redis-cli -p "$port" ping 2>/dev/null </dev/null | grep -q PONG && break
        kill -0 "$srv" 2>/dev/null || break
        sleep 0.05
    done
    if redis-cli -p "$port" ping 2>/dev/null </dev/null | grep -q PONG; then
        pin 1 timeout "$TIMEOUT" redis-benchmark -p "$port" -q -n "$n" -r 100000 -d 64 -P 4 \
            -c 50 -t "$REDIS_TESTS" 2>>"$base.err" </dev/null | tr '\r' '\n' >"$base.out"
        redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 </dev/null
    fi
    # the server must go away; runstat kills it at its own timeout anyway
    for _ in $(seq 100); do kill -0 "$srv" 2>/dev/null || break; sleep 0.1; done
    kill "$srv" 2>/dev/null
    wait "$srv" 2>/dev/null
    local st
    st=$(cat "$base.stat" 2>/dev/null)
    RUN_RSS=$(field maxrss_kib "$st")
    stat_cpu "$st"
    local tests secs rps got
    tests=$(echo "$REDIS_TESTS" | tr ',' '\n' | wc -l)
    read -r got secs < <(awk -v n="$n" '/requests per second/ {
            for (i = 1; i <= NF; i++) if ($(i+1) == "requests") { c++; s += n / $i } }
        END { printf "%d %.6f\n", c, s }' "$base.out")
    if [ "$got" = "$tests" ] && [ "$(field status "$st")" = ok ]; then
        RUN_STATUS=ok
        RUN_WALL=$secs
        rps=$(awk -v n="$n" -v k="$tests" -v s="$secs" 'BEGIN { printf "%.0f", n * k / s }')
        RUN_RESULT="rps=$rps requests=$((n * tests)) time_s=$secs"
    else
        RUN_STATUS=$( [ "$(field status "$st")" = timeout ] && echo timeout || echo fail )
        echo "redis: $got of $tests tests reported; server: $st" >>"$base.err"
    fi
}

# ---- the plan ------------------------------------------------------------

want() {
    [ -z "${WORKLOADS:-}" ] && return 0
    case " $WORKLOADS " in *" $1 "*) return 0 ;; esac
    return 1
}

# prints "name threads scale" per configuration, in run order
plan() {
    local name threaded qs fs scale t
    echo "$WORKLOAD_TABLE" | while read -r name threaded qs fs; do
        [ -n "$name" ] || continue
        want "$name" || continue
        if [ "$QUICK" = 1 ]; then scale=$qs; else scale=$fs; fi
        if [ "$threaded" = yes ]; then
            for t in $THREADS; do echo "$name $t $scale"; done
        elif [ "$threaded" = wide ]; then
            for t in $WIDE_THREADS; do echo "$name $t $scale"; done
        else
            echo "$name 0 $scale"
        fi
    done
}

prepare_inputs() {
    local name t scale
    while read -r name t scale; do
        case "$name" in
        sqlite) [ -s "$BUILD/data/sqlite-$scale.sql" ] ||
            "$PYTHON" "$BENCH/programs/gen_sql.py" "$scale" >"$BUILD/data/sqlite-$scale.sql" ;;
        gcc | clang) [ -s "$BUILD/data/big-$scale.c" ] ||
            "$PYTHON" "$BENCH/programs/gen_c.py" "$scale" >"$BUILD/data/big-$scale.c" ;;
        ghostscript) [ -s "$BUILD/data/doc-$scale.ps" ] ||
            "$PYTHON" "$BENCH/programs/gen_ps.py" "$scale" >"$BUILD/data/doc-$scale.ps" ;;
        esac
    done < <(plan)
}

program_available() {
    case "$1" in
    pybench) [ -n "$PYTHON" ] ;;
    sqlite) command -v sqlite3 >/dev/null ;;
    redis) command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null ;;
    gcc | clang) command -v "$1" >/dev/null ;;
    ghostscript) command -v gs >/dev/null ;;
    ruby) command -v ruby >/dev/null ;;
    lua) command -v lua5.4 >/dev/null ;;
    *) [ -x "$BUILD/bin/$1" ] ;;
    esac
}

machine_info() {
    local f=$DOCS/machine.txt v
    {
        echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
        echo "mode: $([ "$QUICK" = 1 ] && echo QUICK || echo full), $WARMUP warm-up + $ROUNDS measured rounds, threads: $THREADS (wide: $WIDE_THREADS)"
        echo "cpus: $(nproc) x $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
        echo "memory: $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
        echo "kernel: $(uname -sr)"
        echo "glibc: $(getconf GNU_LIBC_VERSION 2>/dev/null | sed 's/glibc //')"
        echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
        for v in libmimalloc2.0 libjemalloc2 libtcmalloc-minimal4 redis-server sqlite3 gcc clang-14 ghostscript ruby3.1 lua5.4; do
            echo "$v: $(dpkg-query -W -f='${Version}' "$v" 2>/dev/null || echo '?')"
        done
        echo "python3: $("$PYTHON" -c 'import platform; print(platform.python_version())' 2>/dev/null)"
        v=$(sed -n 's/^#define MAPALLOC_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\).*/\2/p' \
            "$ROOT/include/mapalloc.h" 2>/dev/null | paste -sd.)
        echo "mapalloc: ${v:-?} $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '(no commit)')$(
            [ -f "$MAPALLOC_SO" ] || echo ' (not built: skipped)')"
        echo "allocators: $ALLOCATORS"
    } >"$f"
}

main() {
    mkdir -p "$BUILD" "$DOCS"
    install_deps
    PYTHON=$(command -v /usr/bin/python3 || command -v python3 || true)
    [ -n "$PYTHON" ] || warn "python3 missing: pybench, redis and the report need it"
    build_tools
    build_mapalloc
    select_allocators
    prepare_inputs
    machine_info
    log "allocators: $ALLOCATORS; $([ "$QUICK" = 1 ] && echo QUICK || echo full) run, threads: $THREADS"
    echo "workload,threads,allocator,round,status,time_s,maxrss_kib,wall_s,cpu_s,minflt,result" >"$CSV"

    local start=$SECONDS name t scale alloc round warm rounds line label
    while read -r name t scale <&3; do
        label=$(label_of "$name" "$t")
        if ! program_available "$name"; then
            warn "$name: not available, skipped"
            continue
        fi
        warm=$WARMUP rounds=$ROUNDS
        # burst sleeps 1 s per run and has no cache to warm: no warm-up in QUICK
        [ "$QUICK" = 1 ] && [ "$name" = burst ] && warm=0
        declare -A failed=()
        line=""
        for ((round = 1 - warm; round <= rounds; round++)); do
            for alloc in $ALLOCATORS; do
                if [ -n "${failed[$alloc]:-}" ]; then
                    record "$label" "$([ "$t" = 0 ] && echo 1 || echo "$t")" "$alloc" "$round" \
                        "${failed[$alloc]}" "" "" "" "" "" "skipped after a failure"
                    continue
                fi
                run_workload "$name" "$t" "$scale" "$alloc" "$round"
                [ "$RUN_STATUS" = ok ] || failed[$alloc]=$RUN_STATUS
            done
        done
        for alloc in $ALLOCATORS; do
            if [ -n "${failed[$alloc]:-}" ]; then
                line="$line $alloc=FAIL(${failed[$alloc]})"
            else
                line="$line $alloc=$(printf '%.3fs' "$(median_time "$label" "$alloc")")"
            fi
        done
        unset failed
        log "$(printf '%-18s' "$label")$line (medians)"
    done 3< <(plan)
    log "runs took $((SECONDS - start)) s"

    "$PYTHON" "$BENCH/tools/report.py" --csv "$CSV" --machine "$DOCS/machine.txt" \
        --out "$DOCS" --allocators "$ALLOCATORS" --workdir "$BUILD" || warn "report failed"
    log "wrote $DOCS/results.md, results.csv, time.png, rss.png"
}

main "$@"
