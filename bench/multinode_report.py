#!/usr/bin/env python3
"""multinode_report.py - bench/multinode.sh's report: RDMA against TCP.

multinode_report.py JSONL [--plots DIR]

JSONL: a first line {"meta": {"date", "reps", "size"[, "note"]}}, then one
line per run, the program's JSON with "case" added ("lat-rdma",
"seq-tcp", "pingpong-rdma", ...).  Prints the markdown report (medians
over the runs of each case); with --plots DIR it also draws the chart
(plots.py) into DIR and links it.  bench/multinode.sh keeps JSONL as
bench/results/multinode.jsonl, so the report and the chart can be made
again without the guests.
"""
import argparse
import json
import statistics

import plots

# (case, key, label): the figures where lower is better, in µs
TIMES = [
    ("lat", "remote_fault_p50_us", "remote fault p50 µs (prefetch off)"),
    ("lat", "remote_fault_p99_us", "remote fault p99 µs"),
    ("lat", "lib_fault_p50_us", "libdsm fault service p50 µs"),
    ("pingpong", "us_per_handoff",
     "shared: ownership handoff between two processes, µs"),
    ("lock1", "us_per_lock", "shared: dsm_lock + dsm_unlock uncontended, µs"),
    ("lock2", "us_per_lock",
     "shared: the same, 2 processes contending, µs each"),
    ("readers2", "write_us_per_page",
     "shared: write invalidating 2 readers' copies, µs per page"),
    ("readers2", "read_us_per_page",
     "shared: read by each of 2 readers, µs per page"),
]
# the chart's shorter names for the same rows
SHORT = ["remote fault p50", "remote fault p99", "libdsm fault service p50",
         "ownership handoff", "lock, uncontended", "lock, 2 contending",
         "write invalidating 2 copies", "read by each of 2 readers"]


def load(path):
    meta, runs = {}, {}
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            d = json.loads(line)
            if "meta" in d:
                meta = d["meta"]
            else:
                runs.setdefault(d["case"], []).append(d)
    return meta, runs


def med(runs, case, key):
    v = [r[key] for r in runs.get(case, []) if r.get(key) is not None]
    return statistics.median(v) if v else None


def med_points(runs, case, key):
    """The median over the runs of each point of a list (a CDF)."""
    cols = [r[key] for r in runs.get(case, []) if r.get(key)]
    if not cols or len({len(c) for c in cols}) != 1:
        return None
    return [statistics.median(p) for p in zip(*cols)]


def f(v, d=1):
    return "-" if v is None else f"{v:,.{d}f}"


def table(meta, runs):
    size = meta.get("size", "?")
    out = ["# RDMA against TCP across two soft-RoCE guests", "",
           f"- date: {meta.get('date', '?')}",
           f"- {meta.get('reps', '?')} runs per case, medians; qemu TCG "
           "guests (Linux 6.1, rdma_rxe), server in guest 1, client in "
           "guest 2",
           "- **software figures**: emulated CPUs and an emulated NIC; they "
           "compare the two transports on the same machines, never hardware"]
    if meta.get("note"):
        out.append(f"- {meta['note']}")
    out += ["", "| | RDMA | TCP |", "|---|---|---|"]
    for case, key, label in TIMES[:3]:
        out.append(f"| {label} | {f(med(runs, case + '-rdma', key))} "
                   f"| {f(med(runs, case + '-tcp', key))} |")
    out.append(f"| sequential read of {size}, budget 1/8, MB/s | "
               f"{f(med(runs, 'seq-rdma', 'mb_per_s'))} | "
               f"{f(med(runs, 'seq-tcp', 'mb_per_s'))} |")
    for case, key, label in TIMES[3:]:
        out.append(f"| {label} | {f(med(runs, case + '-rdma', key))} "
                   f"| {f(med(runs, case + '-tcp', key))} |")
    return out + [""]


def chart(meta, runs, outdir):
    pct = {tr: med_points(runs, "lat-" + tr, "cdf_pct")
           for tr in ("rdma", "tcp")}
    name = plots.rdma_tcp(
        outdir,
        [(short, med(runs, case + "-rdma", key), med(runs, case + "-tcp", key))
         for short, (case, key, _) in zip(SHORT, TIMES)],
        [(f"sequential read of {meta.get('size', '?')}",
          med(runs, "seq-rdma", "mb_per_s"), med(runs, "seq-tcp", "mb_per_s"),
          "MB/s (higher is better)")],
        [(f"remote fault over {tr.upper()}", pct[tr],
          med_points(runs, "lat-" + tr, "remote_fault_cdf_us"))
         for tr in ("rdma", "tcp")],
        "RDMA against TCP between two qemu guests (soft-RoCE: software "
        "figures)", "multinode.png")
    return [f"![RDMA against TCP]({name})", ""] if name else []


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("jsonl")
    ap.add_argument("--plots", metavar="DIR",
                    help="draw the chart into DIR and link it")
    a = ap.parse_args()
    meta, runs = load(a.jsonl)
    out = table(meta, runs)
    if a.plots:
        out += chart(meta, runs, a.plots)
    print("\n".join(out))


if __name__ == "__main__":
    main()
