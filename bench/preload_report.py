#!/usr/bin/env python3
"""Markdown report of bench/preload.sh's runs (see bench/README.md).

preload_report.py CHURN_TSV RUNS_TSV --reps N --churn-reps N --churn-ops N
                  --took SECONDS --machine TEXT [--plots DIR]
CHURN_TSV: threads mode rep seconds ns_per_op
RUNS_TSV:  prog frac mode rep seconds peak_bytes pages_fetched pages_evicted
(seconds FAILED, WRONG or OOM for a run that failed, gave different
output or was OOM-killed; a figure not kept is -).
With --plots DIR it also draws the slowdown chart (plots.py) into DIR
and links it below its table.
"""
import argparse
import datetime
import statistics
from collections import defaultdict

import plots

WORKLOAD = {
    "sort": "`LC_ALL=C sort -S 2G` of a generated file of random-keyed lines",
    "python": "`python3`: 1 MiB bytearrays, a sorted list of 2M floats, a "
              "dict of 1M strings, all checksummed",
    "redis": "`redis-server` loaded with 300 KB values, each read back "
             "twice in random order",
    "xz": "`xz -6 -T1` of {xz_mb} MB of generated text",
    "node": "`node` building 20 arrays of 500,000 small objects and "
            "summing them (V8's heap)",
    "java": "`java -Xmx1g -XX:+UseG1GC` filling and summing 64 arrays "
            "of 8 MB (the Java heap)",
    "go": "a Go program (cgo) keeping 400 MiB of slices in a map live, "
          "and building and freeing 100 MiB heaps with "
          "debug.FreeOSMemory (tests/programs/gochurn)",
    "small": "`small_threads`: 4 threads each building 800,000 nodes of "
             "24-200 bytes, churning and checking them (the C library's "
             "per-thread arenas)",
}
FAR = {
    "sort": "its line buffer (one malloc of about the input's size)",
    "python": "the bytearrays and the list's and dict's arrays, and also "
              "the small objects: pymalloc takes them from 1 MiB anonymous "
              "mmaps",
    "redis": "the values only (each >= 128 KiB); keys, dict and small "
             "buffers are local",
    "xz": "the match finder's hash chains and tree and the dictionary "
          "buffer (each >= 128 KiB)",
    "node": "the heap: V8 reserves it PROT_NONE and commits pages with "
            "mprotect, each commit far memory at its address",
    "java": "the Java heap: reserved, committed with mmap(MAP_FIXED), "
            "each commit far memory at its address",
    "go": "the Go heap: its arenas reserved and committed through the C "
          "library; pages Go gives back with raw madvise are taken as "
          "zeros at their next touch",
    "small": "every block, from the shim's slabs (`--threshold 16`); "
             "without it all would stay in the C library's arenas",
}


def med(xs):
    return statistics.median(xs) if xs else None


def mib(b):
    return "%d" % round(b / 2**20)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("churn")
    ap.add_argument("runs")
    ap.add_argument("--reps", type=int, required=True)
    ap.add_argument("--churn-reps", type=int, required=True)
    ap.add_argument("--churn-ops", type=int, required=True)
    ap.add_argument("--took", type=int, required=True)
    ap.add_argument("--machine", required=True)
    ap.add_argument("--xz-mb", type=int, default=1)
    ap.add_argument("--plots", metavar="DIR",
                    help="draw the slowdown chart into DIR and link it")
    a = ap.parse_args()

    out = []
    p = out.append
    now = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    p("# The preload shim: overhead and slowdown against kernel swap\n")
    p("`sudo bench/preload.sh`, %s; %s; the run took %d s (%.1f min). "
      "Medians of %d interleaved runs per case (%d for the overhead)."
      % (now, a.machine, a.took, a.took / 60, a.reps, a.churn_reps))
    p("")

    # ---- overhead
    churn = defaultdict(list)
    pairs = defaultdict(dict)   # (threads, rep) -> {mode: ns}
    with open(a.churn) as f:
        for line in f:
            t, mode, rep, secs, ns = line.rstrip("\n").split("\t")
            churn[(int(t), mode)].append(float(ns))
            pairs[(int(t), int(rep))][mode] = float(ns)
    p("## Overhead below the threshold\n")
    p("`dsm-bench-alloc-churn --ops %d`: malloc/calloc/realloc/free of "
      "16 B - 8 KiB blocks (log-uniform) over 4096 slots per thread, first "
      "and last byte of each written and read; one 1 MiB block first, so "
      "under the shim it is connected to the server (`DSM_REQUIRE=1`, and "
      "its stats show an arena). Plain and shim runs alternate, side by "
      "side in pairs. Target: shim within 3%% of plain, judged on the "
      "median of the pairs' ratios: this machine switches between a fast "
      "and a slow mode for minutes at a time (the same plain run took "
      "92-96 or 118-149 ns/op on 2026-12-07), and the two runs of a pair "
      "are nearly always in the same mode, where the medians of each side "
      "may come from different ones.\n" % a.churn_ops)
    p("| threads | plain ns/op | shim ns/op | shim / plain, medians | "
      "shim / plain, pairs' median | within 3% |")
    p("|---|---|---|---|---|---|")
    for t in sorted({k[0] for k in churn}):
        pl, sh = med(churn.get((t, "plain"), [])), med(churn.get((t, "shim"), []))
        pr = med([m["shim"] / m["plain"] for (tt, _), m in pairs.items()
                  if tt == t and "shim" in m and "plain" in m])
        if pl is None or sh is None or pr is None:
            p("| %d | %s | %s | FAILED | | |" % (t, pl, sh))
            continue
        p("| %d | %.1f | %.1f | %.3f | %.3f | %s |"
          % (t, pl, sh, sh / pl, pr, "yes" if pr <= 1.03 else "**no**"))
    p("")
    spread = []
    for (t, mode), xs in sorted(churn.items()):
        spread.append("%d thread(s) %s: %s" % (
            t, mode, ", ".join("%.1f" % x for x in xs)))
    p("Every run, ns/op: " + "; ".join(spread) + ".\n")

    # ---- programs
    runs = defaultdict(list)      # (prog, frac, mode) -> [row]
    bad = defaultdict(int)
    oom = defaultdict(int)        # swap runs the kernel's OOM killer ended
    progs = []
    with open(a.runs) as f:
        for line in f:
            prog, frac, mode, rep, secs, peak, fetched, evicted = \
                line.rstrip("\n").split("\t")
            if prog not in progs:
                progs.append(prog)
            key = (prog, int(frac) if frac else None, mode)
            if secs == "OOM":
                oom[key] += 1
                continue
            if secs in ("FAILED", "WRONG"):
                bad[key] += 1
                continue
            # "-": not kept (the untimed run that measures W)
            runs[key].append(dict(rep=int(rep),
                                  secs=None if secs == "-" else float(secs),
                                  peak=None if peak == "-" else int(peak),
                                  fetched=fetched, evicted=evicted))
    fracs = sorted({k[1] for d in (runs, bad, oom) for k in d
                    if k[1] is not None})

    p("## Real programs\n")
    p("W is the working set: the memory cgroup's peak over an untimed plain "
      "run (anonymous memory plus any page cache the run caused; the "
      "input file is read into the cache beforehand, outside the cgroup). "
      "Each case gets a fraction of W as local memory: under dsm as "
      "`dsm-run --local-mem`, under kernel swap as the cgroup's "
      "`memory.limit_in_bytes`, with a swap file on. Outputs are checked "
      "against the plain run's (sha256); a mismatch fails the script.\n")
    p("| program | workload | W MiB | plain s | far memory under the shim |")
    p("|---|---|---|---|---|")
    W = {}
    for prog in progs:
        w0 = [r for r in runs.get((prog, None, "plain"), []) if r["rep"] == 0]
        W[prog] = w0[0]["peak"] if w0 else None
        timed = [r["secs"] for r in runs.get((prog, None, "plain"), [])
                 if r["rep"] > 0]
        p("| %s | %s | %s | %s | %s |" % (
            prog, WORKLOAD.get(prog, prog).format(xz_mb=a.xz_mb),
            mib(W[prog]) if W[prog] else "?",
            "%.2f" % med(timed) if timed else "FAILED", FAR.get(prog, "")))
    p("")
    p("Slowdown = median wall time / median plain time (1.00 = as fast as "
      "with all the memory it wants). `swap / dsm` above 1: dsm is faster. "
      "Local peak is the cgroup's peak during the run: under dsm it is the "
      "budget plus everything the shim leaves local (small allocations, "
      "libdsm's own bookkeeping), which the budget does not limit; under "
      "swap it is capped by the limit.\n")
    p("| program | local memory | dsm | kernel swap | swap / dsm | "
      "dsm local peak MiB | swap local peak MiB | dsm pages fetched |")
    p("|---|---|---|---|---|---|---|---|")
    chart = []   # (prog, [(frac, dsm slowdown, swap slowdown, note)])
    for prog in progs:
        plain = [r["secs"] for r in runs.get((prog, None, "plain"), [])
                 if r["rep"] > 0]
        base = med(plain)
        chart.append((prog, []))
        for fr in fracs:
            cells = []
            meds = {}
            for mode in ("dsm", "swap"):
                rs = runs.get((prog, fr, mode), [])
                n_oom = oom.get((prog, fr, mode), 0)
                if bad.get((prog, fr, mode)) or not base:
                    cells.append("FAILED")
                    continue
                if not rs:
                    cells.append("OOM-killed" if n_oom else "FAILED")
                    continue
                meds[mode] = med([r["secs"] for r in rs])
                cells.append("%.2fx" % (meds[mode] / base) +
                             (" (%d of %d OOM-killed)" % (n_oom, n_oom + len(rs))
                              if n_oom else ""))
            ratio = ("%.2f" % (meds["swap"] / meds["dsm"])
                     if len(meds) == 2 else "-")
            chart[-1][1].append((fr, *(
                meds[m] / base if m in meds else None
                for m in ("dsm", "swap")), cells[1].split(" (")[0]))
            dpk = [r["peak"] for r in runs.get((prog, fr, "dsm"), [])
                   if r["peak"] is not None]
            spk = [r["peak"] for r in runs.get((prog, fr, "swap"), [])
                   if r["peak"] is not None]
            fet = [int(r["fetched"]) for r in runs.get((prog, fr, "dsm"), [])
                   if r["fetched"] not in ("-", "")]
            p("| %s | %d%% (%s MiB) | %s | %s | %s | %s | %s | %s |" % (
                prog, fr, mib(W[prog] * fr / 100) if W[prog] else "?",
                cells[0], cells[1], ratio,
                mib(med(dpk)) if dpk else "-", mib(med(spk)) if spk else "-",
                "{:,}".format(int(med(fet))) if fet else "-"))
    p("")
    if a.plots:
        png = plots.preload_slowdown(
            a.plots, chart, "Slowdown with 25/50/100% of the working set "
            "local: dsm-run against kernel swap", "preload-slowdown.png")
        if png:
            p("![slowdown per program, dsm-run against kernel swap](%s)\n"
              % png)
    p("Every run, seconds (plain, then dsm / swap per fraction):\n")
    for prog in progs:
        parts = ["plain " + ", ".join(
            "%.2f" % r["secs"] for r in runs.get((prog, None, "plain"), [])
            if r["rep"] > 0)]
        for fr in fracs:
            for mode in ("dsm", "swap"):
                cell = ["%.2f" % r["secs"] for r in runs.get((prog, fr, mode), [])]
                cell += ["OOM-killed"] * oom.get((prog, fr, mode), 0)
                cell += ["FAILED"] * bad.get((prog, fr, mode), 0)
                parts.append("%s %d%% %s" % (mode, fr, ", ".join(cell)))
        p("- %s: %s" % (prog, "; ".join(parts)))
    p("")
    if oom:
        p("OOM-killed: the kernel's OOM killer ended the program in its "
          "memory cgroup (swap could not keep up with the limit): " +
          ", ".join("%s %s%% x%d" % (k[0], k[1], n) for k, n in oom.items()) +
          ". Those runs have no time; a median over the others is marked.")
        p("")
    if bad:
        p("**Failed runs**: " + ", ".join(
            "%s %s%% %s x%d" % (k[0], k[1], k[2], n) for k, n in bad.items()))
        p("")
    print("\n".join(out))


if __name__ == "__main__":
    main()
