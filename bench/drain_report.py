#!/usr/bin/env python3
"""drain_report.py - bench/drain.sh's report: what a drain costs.

drain_report.py JSONL [--plots DIR]

JSONL: a first line {"meta": {"reps", "size_mib", "local", "threads"[,
"tick_s", "note"]}}, then one line per run:
  {"rep", "dsmctl_s", "moved_mib", "move_ms", "before_p50_us",
   "before_p99_us", "during_p50_us", "during_p99_us"[, "left", "ticks"]}
"left" is the drained server's MiB over time, [[s from the drain's
start, MiB], ...]; "ticks" the client's access latency per tick, [[s,
p50 µs, p99 µs], ...].  Prints the markdown report (medians over the
runs); with --plots DIR it also draws the timeline chart (plots.py) into
DIR and links it.  bench/drain.sh keeps JSONL as
bench/results/drain.jsonl.
"""
import argparse
import json
import statistics

import plots

# the columns of the report's raw lines, in order
RAW = ["rep", "dsmctl_s", "moved_mib", "move_ms", "before_p50_us",
       "before_p99_us", "during_p50_us", "during_p99_us"]


def load(path):
    meta, reps = {}, []
    with open(path) as f:
        for line in f:
            if line.strip():
                d = json.loads(line)
                if "meta" in d:
                    meta = d["meta"]
                else:
                    reps.append(d)
    return meta, reps


def table(meta, reps):
    def med(key):
        return statistics.median(r[key] for r in reps)

    secs, mib, ms = med("dsmctl_s"), med("moved_mib"), med("move_ms")
    gib = mib / 1024
    out = [f"# Drain cost ({len(reps)} runs, medians)", "",
           f"One client, {meta.get('size_mib', '?')} MiB over 3 servers, "
           f"local budget {meta.get('local', '?')}, "
           f"{meta.get('threads', '?')} threads of checked random reads and "
           "writes; the server holding the most is drained.", ""]
    if meta.get("note"):
        out += [meta["note"], ""]
    out += ["| | median |", "|---|---|",
            f"| moved by the client | {mib:.0f} MiB |",
            f"| client's move time | {ms / 1000:.2f} s "
            f"({ms / 1000 / gib:.2f} s per GiB) |",
            f"| `dsmctl drain`, start to \"drained\" | {secs:.2f} s "
            f"({secs / gib:.2f} s per GiB) |",
            f"| access p50 before / during | {med('before_p50_us'):.0f} / "
            f"{med('during_p50_us'):.0f} µs |",
            f"| access p99 before / during | {med('before_p99_us'):.0f} / "
            f"{med('during_p99_us'):.0f} µs "
            f"({med('during_p99_us') / max(med('before_p99_us'), 1):.2f}x) |",
            "", "raw: rep, dsmctl seconds, MiB moved, move ms, p50/p99 "
            "before, p50/p99 during"]
    out += ["    " + " ".join(f"{r[k]:g}" for k in RAW) for r in reps]
    return out


def chart(meta, reps, outdir):
    name = plots.drain_timeline(
        outdir, [(r["rep"], r["dsmctl_s"], r.get("left") or [],
                  r.get("ticks") or []) for r in reps],
        f"Draining a server under a client of {meta.get('size_mib', '?')} "
        f"MiB, {meta.get('threads', '?')} threads", "drain.png")
    return ["", f"![drain progress and access latency over time]({name})"] \
        if name else []


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("jsonl")
    ap.add_argument("--plots", metavar="DIR",
                    help="draw the chart into DIR and link it")
    a = ap.parse_args()
    meta, reps = load(a.jsonl)
    if not reps:
        raise SystemExit(f"drain_report: no runs in {a.jsonl}")
    out = table(meta, reps)
    if a.plots:
        out += chart(meta, reps, a.plots)
    print("\n".join(out))


if __name__ == "__main__":
    main()
