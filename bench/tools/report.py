"""report.py - turns bench/run.sh's raw results.csv into results.md and charts.

Usage: python3 report.py --csv results.csv --machine machine.txt --out DIR
                         --allocators "mapalloc mimalloc ..."

Per workload and allocator it takes the median (and min-max) of the measured
rounds (round >= 1; round 0 is the warm-up), divides by the best median of
the row, and summarises each allocator by the geometric mean of those ratios
over the workloads that every allocator completed. Charts are drawn with
gnuplot when it is installed. A docs/bench/callgrind.md written by
bench/callgrind.sh is included at the end.
"""
import argparse
import csv
import math
import os
import shutil
import statistics
import subprocess
import sys

COLOURS = {"mapalloc": "#d62728", "mimalloc": "#1f77b4", "jemalloc": "#2ca02c",
           "tcmalloc": "#ff7f0e", "glibc": "#7f7f7f"}
CHART_CLIP = 4.0


def parse_result(text):
    out = {}
    for item in (text or "").split():
        if "=" in item:
            k, v = item.split("=", 1)
            out[k] = v
    return out


class Cell:
    """The measured rounds of one workload under one allocator."""

    def __init__(self):
        self.times, self.rss, self.cpu, self.flt, self.results = [], [], [], [], []
        self.status = "ok"

    def add(self, row):
        if row["status"] != "ok":
            if self.status == "ok":
                self.status = row["status"]
            return
        if row["time_s"]:
            self.times.append(float(row["time_s"]))
        if row["maxrss_kib"]:
            self.rss.append(float(row["maxrss_kib"]) / 1024.0)
        if row.get("cpu_s"):
            self.cpu.append(max(float(row["cpu_s"]), 0.001))
        if row.get("minflt"):
            self.flt.append(max(float(row["minflt"]), 1.0))
        self.results.append(parse_result(row["result"]))

    def values(self, metric):
        return {"time": self.times, "rss": self.rss, "cpu": self.cpu, "flt": self.flt}[metric]

    def ok(self):
        return self.status == "ok" and self.times

    def result_median(self, key):
        vals = [float(r[key]) for r in self.results if key in r]
        return statistics.median(vals) if vals else None


def load(path):
    cells, order = {}, []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if int(row["round"]) < 1:
                continue
            label = row["workload"]
            if label not in cells:
                cells[label] = {}
                order.append(label)
            cells[label].setdefault(row["allocator"], Cell()).add(row)
    return cells, order


def fmt_num(x):
    if x >= 100:
        return "%.0f" % x
    if x >= 10:
        return "%.1f" % x
    if x >= 1:
        return "%.2f" % x
    return "%.3f" % x


def ratios(row, allocators, metric):
    """median per allocator, and ratio to the best median (None = failed)"""
    med = {}
    for a in allocators:
        c = row.get(a)
        vals = c.values(metric) if c and c.ok() else []
        med[a] = statistics.median(vals) if vals else None
    good = [v for v in med.values() if v]
    best = min(good) if good else None
    return med, {a: (v / best if v and best else None) for a, v in med.items()}


def cell_text(c, metric, med, ratio, label):
    if c is None:
        return "-"
    if not c.ok():
        return "FAIL (%s)" % c.status
    vals = c.values(metric)
    if not vals:
        return "-"
    if metric == "time" and label == "redis":
        rps = c.result_median("rps")
        main = "%sk req/s" % fmt_num(rps / 1000.0) if rps else fmt_num(med)
    else:
        main = "%s (%s–%s)" % (fmt_num(med), fmt_num(min(vals)), fmt_num(max(vals)))
        if metric == "flt":
            main = "%.0f (%.0f–%.0f)" % (med, min(vals), max(vals))
    r = "×%.2f" % ratio
    return "%s %s" % (main, "**%s**" % r if ratio < 1.005 else r)


def geomeans(cells, order, allocators, metric):
    logs = {a: [] for a in allocators}
    used = []
    for label in order:
        _, rat = ratios(cells[label], allocators, metric)
        if all(rat[a] for a in allocators):
            used.append(label)
            for a in allocators:
                logs[a].append(math.log(rat[a]))
    return {a: (math.exp(sum(v) / len(v)) if v else None) for a, v in logs.items()}, used


def table(cells, order, allocators, metric):
    unit = {"time": "s", "rss": "MiB", "cpu": "s", "flt": "faults"}[metric]
    lines = ["| workload | " + " | ".join(allocators) + " |",
             "|---|" + "---|" * len(allocators)]
    for label in order:
        med, rat = ratios(cells[label], allocators, metric)
        row = [cell_text(cells[label].get(a), metric, med[a], rat[a], label) for a in allocators]
        lines.append("| %s | %s |" % (label, " | ".join(row)))
    gm, used = geomeans(cells, order, allocators, metric)
    lines.append("| **geomean of ratios** | " + " | ".join(
        ("**×%.2f**" % gm[a]) if gm[a] else "-" for a in allocators) + " |")
    skipped = [l for l in order if l not in used]
    note = ("Cells: median %s (min–max over the rounds) ×ratio to the best median of the row "
            "(bold: the best). The geometric mean is taken over the %d workloads every "
            "allocator completed" % (unit, len(used)))
    note += (" (left out: %s)." % ", ".join(skipped)) if skipped else "."
    return lines, note


def burst_table(cells, order, allocators):
    labels = [l for l in order if l.startswith("burst")]
    if not labels:
        return []
    keys = [("rss_before", "before"), ("rss_peak", "peak"), ("rss_free", "right after free"),
            ("rss_100ms", "after 100 ms"), ("rss_1s", "after 1 s"), ("rss_trim", "after malloc_trim")]
    out = []
    for label in labels:
        out += ["", "### %s: RSS (MiB) around a burst of allocations" % label, "",
                "| allocator | " + " | ".join(k[1] for k in keys) + " | back within 10% after | alloc+free time |",
                "|---|" + "---|" * (len(keys) + 2)]
        for a in allocators:
            c = cells[label].get(a)
            if c is None:
                continue
            if not c.ok():
                out.append("| %s | FAIL (%s) |%s" % (a, c.status, " |" * (len(keys) + 1)))
                continue
            vals = ["%.0f" % (c.result_median(k) / 1024.0) if c.result_median(k) is not None else "?"
                    for k, _ in keys]
            ret = [float(r["return_ms"]) for r in c.results if "return_ms" in r]
            never = sum(1 for v in ret if v < 0)
            if not ret:
                back = "?"
            elif never * 2 > len(ret):
                back = "not within 1 s"
            else:
                back = "%.0f ms" % statistics.median([v for v in ret if v >= 0])
            out.append("| %s | %s | %s | %s s |" % (a, " | ".join(vals), back,
                                                      fmt_num(statistics.median(c.times))))
    out += ["", "\"back within 10%\": the first time, polled every 5 ms for 1 s after the "
            "free, at which RSS was within 10% of the burst above the starting level; "
            "`malloc_trim(0)` is glibc's unless the allocator defines its own."]
    return out


def redis_table(cells, order, allocators):
    if "redis" not in order:
        return []
    out = ["", "### redis: throughput", "",
           "| allocator | requests/s (median) | min–max | server peak RSS (MiB) |",
           "|---|---|---|---|"]
    for a in allocators:
        c = cells["redis"].get(a)
        if c is None:
            continue
        if not c.ok():
            out.append("| %s | FAIL (%s) | | |" % (a, c.status))
            continue
        rps = [float(r["rps"]) for r in c.results if "rps" in r]
        out.append("| %s | %.0f | %.0f–%.0f | %s |" % (a, statistics.median(rps), min(rps), max(rps),
                                                        fmt_num(statistics.median(c.rss))))
    return out


def chart(cells, order, allocators, metric, outdir, workdir):
    if not shutil.which("gnuplot"):
        print("report: gnuplot missing, no charts", file=sys.stderr)
        return
    dat = os.path.join(workdir, "%s.dat" % metric)
    top = 1.0
    with open(dat, "w") as f:
        f.write("workload\t" + "\t".join(allocators) + "\n")
        for label in order:
            _, rat = ratios(cells[label], allocators, metric)
            f.write(label + "\t" + "\t".join(("%.4f" % rat[a]) if rat[a] else "?" for a in allocators) + "\n")
            top = max([top] + [v for v in rat.values() if v])
    ymax = min(top * 1.05, CHART_CLIP)
    title = {"time": "Time", "rss": "Peak RSS"}[metric]
    clip = " (bars clipped at %.0fx)" % CHART_CLIP if top > CHART_CLIP else ""
    colours = "\n".join("set linetype %d lc rgb '%s'" % (i + 1, COLOURS.get(a, "#000000"))
                        for i, a in enumerate(allocators))
    width = max(900, 60 * len(order) * max(1, len(allocators)) // 3)
    script = """
set terminal pngcairo size %d,560 noenhanced font 'sans,10'
set output '%s'
set title '%s: ratio to the best allocator per workload, lower is better%s'
set datafile separator '\\t'
set datafile missing '?'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.9 border -1
set boxwidth 0.9
set xtics rotate by -40 scale 0 nomirror
set grid ytics
set yrange [0:%.3f]
set key outside top center horizontal
set arrow from graph 0, first 1 to graph 1, first 1 nohead dt 2 lc rgb '#000000'
%s
plot for [i=2:%d] '%s' using i:xtic(1) title columnheader(i)
""" % (width, os.path.join(outdir, "%s.png" % metric), title, clip, ymax, colours,
       len(allocators) + 1, dat)
    gp = os.path.join(workdir, "%s.gp" % metric)
    with open(gp, "w") as f:
        f.write(script)
    r = subprocess.run(["gnuplot", gp], capture_output=True, text=True)
    if r.returncode != 0:
        print("report: gnuplot failed: %s" % r.stderr.strip(), file=sys.stderr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--csv", required=True)
    ap.add_argument("--machine", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--allocators", required=True)
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    allocators = args.allocators.split()
    cells, order = load(args.csv)
    workdir = args.workdir or os.path.dirname(os.path.abspath(args.csv))

    md = ["# mapalloc benchmarks", "",
          "Generated by `bench/run.sh` (see `bench/README.md`); raw rounds in `results.csv`.", "",
          "## Machine", "", "```"]
    with open(args.machine) as f:
        md += [l.rstrip("\n") for l in f]
    md += ["```", "",
           "Every workload ran under each allocator in turn, interleaved (A B C D E, A B C D E, "
           "...), after a warm-up round. Allocators are preloaded with `LD_PRELOAD`; glibc is "
           "the C library's own malloc (for redis-server, which Debian links with jemalloc, "
           "glibc's malloc is put back by `bench/tools/glibc-malloc.c`). Threaded workloads "
           "are named `name-Nt`; their work is fixed and divided between the N threads. "
           "Wall times include process start-up and exit.", ""]
    md += ["## Time", "", "![time](time.png)", ""]
    lines, note = table(cells, order, allocators, "time")
    md += lines + ["", note,
                   "For redis the cell shows the median throughput (requests/s over all "
                   "redis-benchmark tests); its ratio and its part of the geometric mean use the "
                   "time equivalent 1/throughput (the sum over the tests of requests / "
                   "(requests/s)). For burst the time is the allocation, writing and freeing "
                   "only (its sleeps excluded)."]
    md += redis_table(cells, order, allocators)
    md += ["", "## Peak RSS", "", "![rss](rss.png)", ""]
    lines, note = table(cells, order, allocators, "rss")
    md += lines + ["", note.replace("median MiB", "median peak RSS in MiB (ru_maxrss)") +
                   " For redis it is the server's peak RSS; for gcc the largest of the driver "
                   "and cc1."]
    md += ["", "## CPU time (user + system)", "",
           "Steadier than wall time on a shared machine; for threaded workloads it adds up the "
           "threads (time spent waiting is not counted, time spent spinning is).", ""]
    lines, note = table(cells, order, allocators, "cpu")
    md += lines + ["", note.replace("median s", "median CPU seconds (ru_utime + ru_stime)") +
                   " For redis it is the server's."]
    md += ["", "## Minor page faults", "",
           "Pages the kernel had to fault in (ru_minflt): the cost of memory purged and "
           "touched again, or touched for the first time.", ""]
    lines, note = table(cells, order, allocators, "flt")
    md += lines + ["", note]
    md += ["", "## Memory given back"] + burst_table(cells, order, allocators)
    cg = os.path.join(args.out, "callgrind.md")
    if os.path.exists(cg):
        with open(cg) as f:
            md += ["", f.read().rstrip("\n")]
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    for metric in ("time", "rss"):
        chart(cells, order, allocators, metric, args.out, workdir)


if __name__ == "__main__":
    main()
