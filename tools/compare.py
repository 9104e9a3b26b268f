#!/usr/bin/env python3
"""Runs a command twice, with the C library's malloc and with mapalloc, and
shows side by side what a newcomer wants to see: that the output is the
same, the time (user + system) and peak RSS of each run, and a summary of
mapalloc's statistics (`make run` uses it).

usage: compare.py --lib build/libmapalloc.so [--stats=full] [--keep DIR] -- COMMAND [ARGS...]

Exit status: 0 when both runs succeed and print the same stdout; 1 when
they differ or one fails; 2 on a usage error.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time


def run(cmd, env, out_path, err_path):
    """Runs cmd; returns (exit status, user+sys seconds, peak RSS in KiB,
    wall seconds), from wait4 on this child alone."""
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        start = time.monotonic()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, wall


def mib(kib):
    return "%.1f MiB" % (kib / 1024.0)


def human(n):
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return ("%d %s" % (n, unit)) if unit == "bytes" else ("%.1f %s" % (n, unit))
        n /= 1024.0
    return str(n)


def read_reports(directory):
    """Each report file of the directory: (header, {key: value}, lines)."""
    reports = []
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name), encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
        header, figures = "", {}
        for line in lines:
            if line.startswith("mapalloc: statistics of process "):
                header = line[len("mapalloc: statistics of "):]
                continue
            key, sep, value = line[len("mapalloc: "):].rpartition(": ")
            if sep and value.isdigit():
                figures[key] = int(value)
        reports.append((header, figures, lines))
    return reports


def summary(header, fig):
    g = fig.get
    return [
        "%s:" % header,
        "  %s blocks allocated (%s), %s still in use at exit (%s)" % (
            format(g("blocks allocated", 0), ","), human(g("bytes allocated", 0)),
            format(g("blocks in use", 0), ","), human(g("bytes in use", 0))),
        "  at most %s in pages and large blocks; %s mapped at most, %s still committed at exit" % (
            human(g("peak bytes in pages and large blocks", 0)),
            human(g("os mapped peak bytes", 0)), human(g("os committed bytes", 0))),
        "  system calls: %d mmap, %d munmap, %d madvise, %d mremap; %d thread heap(s)" % (
            g("os mmap calls", 0), g("os munmap calls", 0), g("os madvise calls", 0),
            g("os mremap calls", 0), g("thread heaps", 0)),
    ]


def main():
    ap = argparse.ArgumentParser(usage=__doc__.split("\n\n")[1])
    ap.add_argument("--lib", required=True, help="libmapalloc.so to preload")
    ap.add_argument("--stats", choices=["full"], help="also print the report with its class table")
    ap.add_argument("--keep", help="keep the runs' outputs and reports in this directory")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        ap.error("no command given")
    lib = os.path.abspath(args.lib)
    if not os.path.exists(lib):
        ap.error("library not found: %s (build it first: make)" % lib)

    work = args.keep or tempfile.mkdtemp(prefix="mapalloc-compare.")
    os.makedirs(os.path.join(work, "reports"), exist_ok=True)
    base = {k: v for k, v in os.environ.items()
            if k != "LD_PRELOAD" and not k.startswith("MAPALLOC_")}
    ours = dict(base, LD_PRELOAD=lib,
                MAPALLOC_SHOW_STATS="2" if args.stats else "1",
                MAPALLOC_STATS_FILE=os.path.join(work, "reports", "stats.%n.%p"))
    print("running twice: %s" % " ".join(cmd))
    print("  1. with the C library's malloc")
    print("  2. with mapalloc: LD_PRELOAD=%s" % os.path.relpath(lib))
    sys.stdout.flush()
    results = {}
    for label, env in (("glibc", base), ("mapalloc", ours)):
        out, err = (os.path.join(work, "%s.%s" % (label, s)) for s in ("out", "err"))
        results[label] = run(cmd, env, out, err)
    ok = True
    for label in ("glibc", "mapalloc"):
        status = results[label][0]
        if status != 0:
            ok = False
            print("FAIL: the run with %s exited with status %d; its stderr ends:" % (label, status))
            with open(os.path.join(work, label + ".err"), errors="replace") as f:
                print("".join(f.readlines()[-20:]), end="")
    with open(os.path.join(work, "glibc.out"), "rb") as f:
        plain = f.read()
    with open(os.path.join(work, "mapalloc.out"), "rb") as f:
        mine = f.read()
    if plain == mine:
        print("\noutput: %d lines, %d bytes, the same in both runs" % (plain.count(b"\n"), len(plain)))
    else:
        ok = False
        print("\nFAIL: the output differs under mapalloc (%d vs %d bytes); first differing line:"
              % (len(plain), len(mine)))
        a, b = plain.splitlines(), mine.splitlines()
        for i in range(max(len(a), len(b))):
            if i >= len(a) or i >= len(b) or a[i] != b[i]:
                print("  glibc:    %r" % (a[i] if i < len(a) else b"(end)"))
                print("  mapalloc: %r" % (b[i] if i < len(b) else b"(end)"))
                break
    g, m = results["glibc"], results["mapalloc"]
    print("\n%-22s %12s %12s %8s" % ("", "glibc", "mapalloc", "ratio"))
    print("%-22s %10.2f s %10.2f s %8.2f" % ("time (user + sys)", g[1], m[1], m[1] / g[1] if g[1] else 0))
    print("%-22s %10.2f s %10.2f s %8.2f" % ("wall time", g[3], m[3], m[3] / g[3] if g[3] else 0))
    print("%-22s %12s %12s %8.2f" % ("peak RSS", mib(g[2]), mib(m[2]), m[2] / g[2] if g[2] else 0))
    print("(one run each: expect a few percent of noise)")
    reports = read_reports(os.path.join(work, "reports"))
    print("\nmapalloc's statistics, %d report(s), one per process that exited:" % len(reports))
    if not reports:
        ok = False
        print("FAIL: no report: did the program run with mapalloc?")
    for header, figures, lines in reports:
        print("\n".join(summary(header, figures)))
        if args.stats:
            print("\n".join("  " + line for line in lines))
    if not args.stats:
        print("(every figure: build/mapalloc --stats COMMAND; a line per size class too: make run STATS=full)")
    if args.keep:
        print("outputs and reports kept in %s" % work)
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
