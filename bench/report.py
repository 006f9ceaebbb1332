#!/usr/bin/env python3
"""report.py - turn bench/run.sh's raw runs into the markdown report.

Input: one JSON line per run, {"case": NAME, "rep": R, "result": {...}} or
{"case": NAME, "rep": R, "failed": STATUS}.  Every figure printed is the
median over the runs of its case; ratios are taken between medians.
With --plots DIR it also draws the charts of those figures into DIR
(plots.py) and links them below their tables; to redraw the charts of
kept results: report.py RESULTS.jsonl ... --plots DIR >/dev/null.
"""
import argparse
import datetime
import json
import statistics
import sys

import plots

PATTERNS = [
    ("seq", "seq read"),
    ("uniform", "uniform random read"),
    ("zipf", "zipf random read"),
    ("rmw", "uniform read-modify-write"),
]
# issue 12's targets for dsm/swap, per pattern
SWAP_TARGETS = {"seq": 4.0, "zipf": 1.5, "uniform": 1.5, "rmw": 1.3}
# dsm-bench-latency's paths, dsm's own first
LAT_PATHS = [
    ("remote_fault", "remote fault through libdsm (prefetch off)"),
    ("tcp_rtt", "TCP round trip, 1-page READ on a raw socket"),
    ("uffd_local", "userfaultfd fault + UFFDIO_COPY, local"),
]


def load(path):
    """case -> list of result dicts; case -> number of failed runs."""
    runs, failed = {}, {}
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line)
            if "failed" in r:
                failed[r["case"]] = failed.get(r["case"], 0) + 1
            else:
                runs.setdefault(r["case"], []).append(r["result"])
    return runs, failed


def med(runs, case, key):
    vals = [r[key] for r in runs.get(case, []) if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def fmt(v, digits=1, unit=""):
    return "-" if v is None else f"{v:,.{digits}f}{unit}"


def scaled(v, m):
    return None if v is None else v * m


def med_points(runs, case, key):
    """The median over the runs of each point of a list-valued figure
    (a CDF), or None if no run has it."""
    cols = [r[key] for r in runs.get(case, []) if r.get(key)]
    if not cols or len({len(c) for c in cols}) != 1:
        return None
    return [statistics.median(p) for p in zip(*cols)]


def speed(runs, case, pattern):
    """The headline figure: GB/s for seq (higher is better), us/op for
    random patterns (lower is better); plus throughput for the ratio."""
    if pattern == "seq":
        mbs = med(runs, case, "mb_per_s")
        return (fmt(scaled(mbs, 1e-3), 2, " GB/s"), mbs)
    us = med(runs, case, "us_per_op")
    return (fmt(us, 1, " µs/op"), med(runs, case, "ops_per_s"))


def swap_ratio(runs, pat):
    """dsm's throughput over kernel swap's for one pattern, or None."""
    d_tp = speed(runs, f"dsm-{pat}", pat)[1]
    s_tp = speed(runs, f"swap-{pat}", pat)[1]
    return d_tp / s_tp if d_tp and s_tp else None


def chart(name, alt):
    """The markdown lines linking a chart plots.py drew, if it drew it."""
    return [f"![{alt}]({name})", ""] if name else []


def workload_table(runs, a):
    out = [f"## Working set {a.size}, local budget {a.budget} (1/8)", "",
           "| workload | dsm | kernel swap | dsm/swap |",
           "|---|---|---|---|"]
    for pat, label in PATTERNS:
        d_txt = speed(runs, f"dsm-{pat}", pat)[0]
        s_txt = speed(runs, f"swap-{pat}", pat)[0]
        if a.swap_skip:
            s_txt = "skipped"
        out.append(f"| {label} | {d_txt} | {s_txt} | "
                   f"{fmt(swap_ratio(runs, pat), 2, 'x')} |")
    h_txt, h_tp = speed(runs, "huge-seq", "seq")
    if h_tp:
        s_txt, s_tp = speed(runs, "swap-seq", "seq")
        out.append(f"| seq read, the region on 2 MiB pages (huge-seq) | "
                   f"{h_txt} | {'skipped' if a.swap_skip else s_txt} | "
                   f"{fmt(h_tp / s_tp if s_tp else None, 2, 'x')} |")
    out += ["", "dsm/swap is a throughput ratio (bytes/s for seq, ops/s "
            "otherwise): above 1 dsm is faster.", ""]
    if a.plots:
        out += chart(plots.swap_ratios(
            a.plots, [(label, swap_ratio(runs, pat), SWAP_TARGETS[pat])
                      for pat, label in PATTERNS],
            f"dsm against kernel swap, {a.size} working set, "
            f"{a.budget} local", a.prefix + "swap.png"),
            "dsm/swap per workload, with issue 12's targets")
    return out


def policy_table(runs):
    out = ["## Zipf (θ=0.99): victim policy", "",
           "| pager | µs/op | missing faults | pages fetched | faults per op "
           "| pages evicted |", "|---|---|---|---|---|---|"]
    for case, label in (("dsm-zipf", "dsm, 2Q"), ("dsm-fifo-zipf", "dsm, FIFO"),
                        ("swap-zipf", "kernel swap")):
        if case not in runs:
            continue
        ops = med(runs, case, "ops")
        faults = med(runs, case, "missing_faults")
        if faults is None:
            faults = med(runs, case, "major_faults")  # kernel's count
        per_op = faults / ops if faults is not None and ops else None
        out.append(f"| {label} | {fmt(med(runs, case, 'us_per_op'))} "
                   f"| {fmt(faults, 0)} | {fmt(med(runs, case, 'pages_fetched'), 0)} "
                   f"| {fmt(per_op, 3)} | {fmt(med(runs, case, 'pages_evicted'), 0)} |")
    out += ["", "For kernel swap the fault column is major faults "
            "(pages read back from swap).", ""]
    return out


def servers_case(pat, n):
    return f"dsm-{pat}" if n == 1 else f"srv{n}-{pat}"


def servers_chart(runs, a):
    def points(pat, scale):
        return [(n, scaled(speed(runs, servers_case(pat, n), pat)[1], scale))
                for n in (1, 2, 3)]

    return chart(plots.servers(
        a.plots, [("seq read", "GB/s", points("seq", 1e-3)),
                  ("uniform random read", "thousand reads/s",
                   points("uniform", 1e-3))],
        "One client over 1, 2 and 3 servers on this machine",
        a.prefix + "servers.png"), "throughput over 1, 2 and 3 servers")


def servers_table(runs, a):
    """One client over 1, 2 and 3 servers (regions striped over them)."""
    out = ["## One client over 1, 2 and 3 servers", "",
           "| servers | seq read | vs 1 | uniform random read | vs 1 |",
           "|---|---|---|---|---|"]
    base = {p: speed(runs, f"dsm-{p}", p)[1] for p in ("seq", "uniform")}
    for n in (1, 2, 3):
        cells = []
        for pat in ("seq", "uniform"):
            txt, tp = speed(runs, servers_case(pat, n), pat)
            rel = fmt(tp / base[pat], 2, "x") if tp and base[pat] else "-"
            cells += [txt, rel]
        out.append(f"| {n} | " + " | ".join(cells) + " |")
    out += ["", "Regions are striped over the servers in 1 MiB stripes; "
            "all servers share this machine's two cores and loopback, so "
            "this shows the cost of spreading, not the gain of more "
            "machines.", ""]
    return out + (servers_chart(runs, a) if a.plots else [])


def detail_table(runs):
    # (key, column, digits, scale)
    keys = [("fill_seconds", "fill s", 1, 1), ("seconds", "timed s", 2, 1),
            ("missing_faults", "faults", 0, 1), ("wp_faults", "WP faults", 0, 1),
            ("pages_fetched", "fetched", 0, 1),
            ("pages_prefetched", "prefetched", 0, 1),
            ("prefetch_used", "prefetch used", 0, 1),
            ("pages_evicted", "evicted", 0, 1),
            ("pages_written_back", "written back", 0, 1),
            ("major_faults", "major faults", 0, 1),
            ("cgroup_peak", "cgroup peak MiB", 0, 1 / 2**20)]
    out = ["## Details (timed phase; medians)", "",
           "| case | " + " | ".join(k[1] for k in keys) +
           " | lib fault p50/p99 µs |",
           "|---|" + "---|" * (len(keys) + 1)]
    order = [f"{kind}-{pat}" for pat, _ in PATTERNS
             for kind in ("dsm", "huge", "small", "probe", "dsm-fifo", "srv2",
                          "srv3", "swap")]
    for case in [c for c in order if c in runs]:
        cells = [fmt(scaled(med(runs, case, k), m), d) for k, _, d, m in keys]
        p50, p99 = med(runs, case, "fault_p50_ns"), med(runs, case, "fault_p99_ns")
        lib = f"{fmt(scaled(p50, 1e-3))} / {fmt(scaled(p99, 1e-3))}" \
            if p50 is not None else "-"
        out.append(f"| {case} | " + " | ".join(cells) + f" | {lib} |")
    out += ["", "Counters cover the timed phase only; the library's fault "
            "latency percentiles cover the whole run, fill included.", ""]
    return out


def latency_table(runs, a):
    def row(label, key):
        return (f"| {label} | {fmt(med(runs, 'latency', key + '_p50_us'))} "
                f"| {fmt(med(runs, 'latency', key + '_p99_us'))} |")

    ratio = med(runs, "latency", "ratio_remote_vs_sum")
    out = ["## Fault latency (4 KiB pages)", "",
           "| path | p50 µs | p99 µs |", "|---|---|---|",
           row("remote fault through libdsm (prefetch off)", "remote_fault"),
           row("userfaultfd fault + UFFDIO_COPY, local", "uffd_local"),
           row("TCP round trip, 1-page READ on a raw socket", "tcp_rtt"),
           row("libdsm's own fault service time (dsm_stats)", "lib_fault"),
           "",
           f"remote fault p50 / (TCP p50 + userfaultfd p50) = "
           f"**{fmt(ratio, 2)}** (1.0 would mean libdsm adds nothing "
           "to the two unavoidable costs).", ""]
    out += random_floor_lines(runs, a)
    if a.plots:
        pct = med_points(runs, "latency", "cdf_pct")
        tcp, uffd = (med(runs, "latency", k + "_p50_us")
                     for k in ("tcp_rtt", "uffd_local"))
        out += chart(plots.latency_cdf(
            a.plots, [(label, pct, med_points(runs, "latency", key + "_cdf_us"))
                      for key, label in LAT_PATHS],
            "Fault latency, 4 KiB pages: dsm and the floors under it",
            ("TCP p50 + userfaultfd p50", tcp + uffd if tcp and uffd else None),
            a.prefix + "latency-cdf.png"),
            "fault latency CDFs: dsm's remote fault, TCP round trip, "
            "userfaultfd fault")
    return out


def random_floor_lines(runs, a):
    """What a uniform miss costs beyond the remote-fault probe's, set
    beside what the machine alone charges for the larger shape."""
    big, small = (med(runs, "floor", k) for k in ("random_us", "random_small_us"))
    us, rem = med(runs, "dsm-uniform", "us_per_op"), \
        med(runs, "latency", "remote_fault_p50_us")
    faults = med(runs, "dsm-uniform", "missing_faults")
    if not big or not small:
        return []
    out = [f"A page installed at a random place, read once and dropped "
           f"later, with no fault and no network (`dsm-bench-floor`): "
           f"**{big:.1f} µs** in {a.size} under a 1/8 budget (the uniform "
           f"case's shape), **{small:.1f} µs** in the remote-fault probe's "
           "64 MiB under 4 MiB."]
    try:
        ops = int(a.ops)
    except ValueError:
        ops = 0
    if us and rem and faults and ops:
        miss = us * ops / faults
        out[-1] += (f" A uniform miss cost {miss:.1f} µs "
                    f"({us:.1f} µs/op over {faults / ops:.3f} faults an "
                    f"op), {miss - rem:+.1f} µs from the probe's fault; "
                    f"the larger shape alone costs the machine "
                    f"{big - small:+.1f} µs a page.")
    probe = med(runs, "probe-uniform", "us_per_op")
    if probe and rem:
        out[-1] += (f" The same uniform read in the probe's shape "
                    f"(`probe-uniform`, 64 MiB under 4 MiB) took "
                    f"{probe:.1f} µs an access, {probe / rem:.2f} of the "
                    f"probe's fault.")
    return out + [""]


def floors_table(runs):
    tcp, copy = med(runs, "floor", "tcp_gbps"), med(runs, "floor", "copy_gbps")
    inst = med(runs, "floor", "install_gbps")
    drop, huge = med(runs, "floor", "drop_gbps"), med(runs, "floor", "huge_gbps")
    seq = scaled(med(runs, "dsm-seq", "mb_per_s"), 1e-3)
    hseq = scaled(med(runs, "huge-seq", "mb_per_s"), 1e-3)
    low = min(tcp, copy) if tcp and copy else None
    out = ["## Streaming floors (same run, no dsm code)", "",
           "| floor | GB/s |", "|---|---|",
           f"| loopback TCP, 1 MiB writes from one warm buffer | {fmt(tcp, 2)} |",
           f"| UFFDIO_COPY of 256-page runs into memory never touched | {fmt(copy, 2)} |",
           f"| the same into a 1/8 window, dropped and refilled, each page read once (install) | {fmt(inst, 2)} |",
           f"| install without the reads (drop) | {fmt(drop, 2)} |",
           f"| install on 2 MiB hugetlb pages, each read (huge) | "
           f"{fmt(huge, 2) if huge else 'no huge pages reserved'} |",
           f"| dsm sequential read | {fmt(seq, 2)} |",
           f"| dsm sequential read, the region on 2 MiB pages (huge-seq) | "
           f"{fmt(hseq, 2) if hseq else 'not run (no huge pages reserved)'} |",
           "",
           f"dsm sequential / the lower of the first two floors = "
           f"**{fmt(seq / low if seq and low else None, 2)}** (issue 12's "
           "target); on 2 MiB pages "
           f"**{fmt(hseq / low if hseq and low else None, 2)}**."]
    if inst and copy:
        extra = 4096 / (inst * 1e3) - 4096 / (copy * 1e3)
        out += ["", f"dsm sequential / the install floor = "
                f"**{fmt(seq / inst if seq else None, 2)}**. The install "
                "floor adds what the copy floor leaves out: dropping pages "
                "to stay in a budget, and the first read of each newly "
                f"mapped page; here they cost {extra:.1f} µs a page more "
                "than the copy alone. Any design that maps 4 KiB pages "
                "pays them, kernel swap too."]
    if inst and drop:
        reads = 4096 / (inst * 1e3) - 4096 / (drop * 1e3)
        out += ["", f"Of that, the first reads are {reads:.1f} µs a page "
                "(install against drop): on this VM a page newly mapped "
                "costs the hypervisor a fill of its own page tables at its "
                "first touch."]
        if huge:
            out += [f"Mapped 2 MiB at a time the same bytes install at "
                    f"{huge / inst:.1f}x the 4 KiB rate: the lever a "
                    "region on huge pages pulls (`huge-seq` above; "
                    "docs/design.md, \"Regions on huge pages\")."]
    return out + [""]


def pages_table(runs, a):
    out = ["## The server's pool: hugetlb against 4 KiB pages", ""]
    if a.huge_note:
        return out + [f"Not measured: {a.huge_note}; every server ran on "
                      "4 KiB pages.", ""]
    out += ["| workload | hugetlb pages | 4 KiB pages | hugetlb/4 KiB |",
            "|---|---|---|---|"]
    for pat, label in PATTERNS[:2]:
        h_txt, h_tp = speed(runs, f"dsm-{pat}", pat)
        s_txt, s_tp = speed(runs, f"small-{pat}", pat)
        ratio = fmt(h_tp / s_tp, 2, "x") if h_tp and s_tp else "-"
        out.append(f"| {label} | {h_txt} | {s_txt} | {ratio} |")
    return out + ["", "Throughput ratio: above 1 the hugetlb pool is faster.",
                  ""]


SYSCALLS_SHOWN = ("read", "writev", "write", "ioctl", "poll", "epoll_wait",
                  "sched_yield", "process_madvise", "madvise")


def syscalls_table(runs):
    fill = runs.get("syscalls-fill", [None])[0]
    if not fill:
        return []
    out = ["## System calls per 1,000 pages (timed phase)", "",
           "| workload | side | pages | total | " +
           " | ".join(SYSCALLS_SHOWN) + " |",
           "|---|---|---|---|" + "---|" * len(SYSCALLS_SHOWN)]
    for pat, label in PATTERNS:
        got = runs.get(f"syscalls-{pat}", [None])[0]
        run = runs.get(f"sc-{pat}", [None])[0]
        if not got or not run:
            continue
        pages = sum(run.get(k) or 0 for k in (
            "pages_fetched", "pages_written_back", "pages_zero_filled"))
        for side in ("client", "server"):
            c = {k: v - fill[side].get(k, 0) for k, v in got[side].items()}
            per = (lambda n: fmt(n * 1000 / pages, 0)) if pages else \
                (lambda n: "-")
            out.append(f"| {label} | {side} | {pages:,} | "
                       f"{per(sum(max(v, 0) for v in c.values()))} | " +
                       " | ".join(per(max(c.get(k, 0), 0))
                                  for k in SYSCALLS_SHOWN) + " |")
    return out + ["", "Counted with `strace -c -f` over one extra run per "
                  "workload (client) and attached to its server, minus a "
                  "run that only fills the buffer; pages are those fetched, "
                  "written back and zero-filled in the timed phase. strace "
                  "slows the run; only the counts are used.", ""]


def check(label, value, target, better_low, note=""):
    if value is None:
        return f"| {label} | - | {target} | not measured |"
    ok = value <= target if better_low else value >= target
    cmp = "≤" if better_low else "≥"
    return (f"| {label} | {value:.2f} | {cmp} {target} | "
            f"{'**met**' if ok else '**missed**'}{note} |")


def targets_table(runs, a):
    """Issue 12's targets, from this run's figures."""
    tcp, copy = med(runs, "floor", "tcp_gbps"), med(runs, "floor", "copy_gbps")
    seq = scaled(med(runs, "dsm-seq", "mb_per_s"), 1e-3)
    rem = med(runs, "latency", "remote_fault_p50_us")
    tcp_rtt = med(runs, "latency", "tcp_rtt_p50_us")
    uffd = med(runs, "latency", "uffd_local_p50_us")
    floor_sum = tcp_rtt + uffd if tcp_rtt and uffd else None
    out = ["## Targets (issue 12), this run", "",
           "| what | value | target | |", "|---|---|---|---|"]
    low = min(tcp, copy) if tcp and copy else None
    out.append(check("sequential / lower streaming floor",
                     seq / low if seq and low else None, 0.5, False))
    hseq = scaled(med(runs, "huge-seq", "mb_per_s"), 1e-3)
    out.append(check("sequential on 2 MiB pages (DSM_ALLOC_HUGE) / lower "
                     "streaming floor",
                     hseq / low if hseq and low else None, 0.5, False))
    out.append(check("remote fault p50 / (TCP RTT p50 + uffd fault p50)",
                     med(runs, "latency", "ratio_remote_vs_sum"), 1.1, True))
    probe = med(runs, "probe-uniform", "us_per_op")
    for pat, label in (("uniform", "uniform random"),
                       ("rmw", "read-modify-write")):
        us = med(runs, f"dsm-{pat}", "us_per_op")
        note = ""
        if pat == "uniform" and probe and rem:
            note = (f" (in the probe's own shape, 64 MiB under 4 MiB: "
                    f"{probe / rem:.2f})")
        out.append(check(f"{label} µs/op / remote fault p50",
                         us / rem if us and rem else None, 1.25, True, note))
    for pat, label in PATTERNS:
        note = ""
        s_us = med(runs, f"swap-{pat}", "us_per_op")
        if pat in ("uniform", "rmw") and s_us and floor_sum and \
                floor_sum * 1.5 > s_us:
            note = (f" (the round-trip floor, {floor_sum:.1f} µs, is within "
                    f"1.5x of swap's {s_us:.1f} µs/op: the floor targets "
                    "above are the ones that must hold)")
        out.append(check(f"dsm/swap, {label}", swap_ratio(runs, pat),
                         SWAP_TARGETS[pat], False, note))
    return out + [""]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("jsonl")
    for opt in ("--size", "--budget", "--reps", "--ops", "--machine"):
        p.add_argument(opt, required=True)
    p.add_argument("--swap-skip", default="")
    p.add_argument("--huge-note", default="")
    p.add_argument("--placement", default="",
                   help="where the servers ran, for the header")
    p.add_argument("--plots", metavar="DIR",
                   help="draw the charts into DIR and link them")
    p.add_argument("--prefix", default="latest-",
                   help="of the charts' file names (default latest-)")
    p.add_argument("--short", action="store_true",
                   help="bench/run.sh --short made the runs")
    a = p.parse_args()
    runs, failed = load(a.jsonl)

    out = ["# dsm benchmark", "",
           f"- date: {datetime.datetime.now().strftime('%Y-%m-%d %H:%M %Z').strip()}",
           f"- machine: {a.machine}",
           f"- {a.reps} runs per case, medians; random patterns: "
           f"{a.ops} accesses per run; server and client on loopback"
           + (f"; {a.placement}" if a.placement else ""),
           "- kernel swap: same program on plain memory in a memory cgroup "
           f"limited to {a.budget}, swap file on local disk"
           + (f" - **SKIPPED: {a.swap_skip}**" if a.swap_skip else ""),
           ""]
    if a.short:
        out[-1:-1] = ["- **short mode** (`bench/run.sh --short`, as CI runs "
                      "it): small runs that show the report and its charts "
                      "work; their figures are not to be quoted"]
    out += targets_table(runs, a)
    out += workload_table(runs, a)
    out += floors_table(runs)
    out += latency_table(runs, a)
    out += pages_table(runs, a)
    out += policy_table(runs)
    out += syscalls_table(runs)
    out += servers_table(runs, a)
    out += detail_table(runs)
    if failed:
        out += ["## FAILED runs", ""]
        out += [f"- {c}: {n} run(s) failed (crash, wrong data read back "
                f"or could not start; the run's output says which)"
                for c, n in sorted(failed.items())]
        out.append("")
    sys.stdout.write("\n".join(out))


if __name__ == "__main__":
    main()
