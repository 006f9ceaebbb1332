"""plots.py - the benchmarks' charts, as PNG files beside their reports.

The report scripts call these functions with the figures they have just
put in their tables (report.py, preload_report.py, drain_report.py,
multinode_report.py), so a chart is redrawn by the same command that
computes its figures, from the same numbers.  Each function writes one
PNG into the directory it is given and returns its file name, for the
report to link; or, when its data is missing (a case skipped, an older
data file, no matplotlib), prints one line on stderr saying which chart
and why, and returns None.  Nothing here raises for want of data.

matplotlib is Debian's (python3-matplotlib, deploy/install-deps.sh), so
the scripts run /usr/bin/python3; the Agg backend draws without a
display.
"""
import os
import sys

DPI = 100          # ~800x450 px at the sizes below: 40-120 KB a chart
_plt = None        # matplotlib.pyplot, once imported
_why_not = None    # why it could not be, once tried

DSM = "#1f77b4"    # dsm, in every chart
OTHER = "#ff7f0e"  # what it is compared with: kernel swap, TCP
FLOORS = ("#2ca02c", "#9467bd")


def skip(name, why):
    print(f"plots: skipped {name}: {why}", file=sys.stderr)
    return None


def pyplot():
    """matplotlib.pyplot on the Agg backend, or None (and _why_not)."""
    global _plt, _why_not
    if _plt is None and _why_not is None:
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
            _plt = plt
        except ImportError as e:
            _why_not = (f"no matplotlib for {sys.executable} ({e}); "
                        "apt-get install python3-matplotlib "
                        "(deploy/install-deps.sh)")
    return _plt


def _figure(name, nrows=1, ncols=1, size=(8, 4.5)):
    """(plt, fig, axes) for chart name, or None after saying why not."""
    plt = pyplot()
    if plt is None:
        return skip(name, _why_not)
    fig, axes = plt.subplots(nrows, ncols, figsize=size, dpi=DPI)
    return plt, fig, axes


def _save(plt, fig, outdir, name):
    fig.tight_layout()
    fig.savefig(os.path.join(outdir, name), dpi=DPI)
    plt.close(fig)
    return name


def _log_scale(axis):
    """A log axis labelled 1, 2, 5, 10, 20, 50...: latencies read as
    numbers, not powers of ten."""
    import matplotlib.ticker as ticker
    axis.set_major_locator(ticker.LogLocator(subs=(1, 2, 5)))
    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(ticker.NullFormatter())


def _label_bars(ax, bars, fmt):
    for b in bars:
        h = b.get_height()
        if h > 0:
            ax.annotate(fmt.format(h), (b.get_x() + b.get_width() / 2, h),
                        ha="center", va="bottom", fontsize=8,
                        xytext=(0, 2), textcoords="offset points")


# ---- bench/run.sh ----------------------------------------------------------

def _cdf(ax, curves, colors, xlabel):
    for (label, pct, us), color in zip(curves, colors):
        ax.plot(us, pct, label=label, color=color, drawstyle="steps-post")
    ax.set_xscale("log")
    _log_scale(ax.xaxis)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("percentile")
    ax.set_ylim(0, 100)
    ax.set_yticks([0, 25, 50, 75, 90, 100])
    ax.grid(True, which="both", alpha=0.3)


def latency_cdf(outdir, curves, title, floor=None, name="latency-cdf.png"):
    """CDFs of fault latency.  curves: [(label, pct list, µs list)], the
    first being dsm's own; a curve with no points is left out.  floor:
    (label, µs) drawn as a vertical line, or None."""
    curves = [c for c in curves if c[1] and c[2]]
    if not curves:
        return skip(name, "no latency CDF in the data (dsm-bench-latency "
                    "prints one since issue 17; older runs have p50/p99 "
                    "only)")
    got = _figure(name)
    if not got:
        return None
    plt, fig, ax = got
    _cdf(ax, curves, [DSM, OTHER] + list(FLOORS), "latency, µs (log scale)")
    if floor and floor[1]:
        ax.axvline(floor[1], color="grey", linestyle=":", label=floor[0])
    ax.legend(loc="lower right", fontsize=9)
    ax.set_title(title, fontsize=11)
    return _save(plt, fig, outdir, name)


def swap_ratios(outdir, bars, title, name="swap.png"):
    """dsm/swap throughput ratio per workload with its target.
    bars: [(label, ratio or None, target)]."""
    bars = [b for b in bars if b[1] is not None]
    if not bars:
        return skip(name, "no workload ran under both dsm and kernel swap "
                    "(swap baseline skipped?)")
    got = _figure(name)
    if not got:
        return None
    plt, fig, ax = got
    x = range(len(bars))
    drawn = ax.bar(x, [b[1] for b in bars], width=0.55, color=DSM,
                   label="dsm / kernel swap")
    _label_bars(ax, drawn, "{:.2f}x")
    for i, (_, _, target) in enumerate(bars):
        ax.hlines(target, i - 0.38, i + 0.38, colors="#d62728",
                  linestyles="--", label="target (issue 12)" if i == 0 else None)
    ax.axhline(1, color="grey", linewidth=0.8)
    ax.set_xticks(list(x), [b[0] for b in bars])
    ax.set_ylabel("throughput ratio (above 1: dsm faster)")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=9)
    ax.set_title(title, fontsize=11)
    return _save(plt, fig, outdir, name)


def servers(outdir, panels, title, name="servers.png"):
    """Throughput of one client over 1, 2 and 3 servers.
    panels: [(workload label, unit, [(nservers, value or None)])]."""
    panels = [p for p in panels if any(v is not None for _, v in p[2])]
    if not panels:
        return skip(name, "no run over 1, 2 and 3 servers in the data")
    got = _figure(name, 1, len(panels), size=(4 * len(panels), 4))
    if not got:
        return None
    plt, fig, axes = got
    axes = axes if len(panels) > 1 else [axes]
    for ax, (label, unit, points) in zip(axes, panels):
        points = [(n, v) for n, v in points if v is not None]
        drawn = ax.bar([str(n) for n, _ in points], [v for _, v in points],
                       width=0.55, color=DSM)
        _label_bars(ax, drawn, "{:.2f}" if max(v for _, v in points) < 10
                    else "{:.0f}")
        ax.set_xlabel("servers (regions striped over them)")
        ax.set_ylabel(unit)
        ax.set_title(label, fontsize=10)
        ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle(title, fontsize=11)
    return _save(plt, fig, outdir, name)


# ---- bench/preload.sh -------------------------------------------------------

def preload_slowdown(outdir, progs, title, name="preload-slowdown.png"):
    """Slowdown against the plain run at each fraction of the working set,
    dsm against kernel swap, one panel per program.  progs: [(program,
    [(fraction %, dsm slowdown or None, swap slowdown or None, swap
    note)])]; a note ("OOM") is written where swap has no bar."""
    progs = [p for p in progs if any(d or s for _, d, s, _ in p[1])]
    if not progs:
        return skip(name, "no program ran at a fraction of its working set")
    cols = min(3, len(progs))
    rows = (len(progs) + cols - 1) // cols
    got = _figure(name, rows, cols, size=(3.6 * cols, 3.2 * rows))
    if not got:
        return None
    plt, fig, axes = got
    flat = list(axes.flat) if hasattr(axes, "flat") else [axes]
    for ax, (prog, cases) in zip(flat, progs):
        # each panel its own scale: xz's 150x would flatten python's 1.5x
        top = max(max(d or 1, s or 1) for _, d, s, _ in cases)
        x = range(len(cases))
        for bars in (ax.bar([i - 0.2 for i in x],
                            [d or 0 for _, d, _, _ in cases], width=0.4,
                            color=DSM, label="dsm-run"),
                     ax.bar([i + 0.2 for i in x],
                            [s or 0 for _, _, s, _ in cases], width=0.4,
                            color=OTHER, label="kernel swap")):
            _label_bars(ax, bars, "{:.1f}")
        for i, (_, d, s, note) in enumerate(cases):
            if s is None and note:
                ax.annotate(note, (i + 0.2, 0.5), ha="center", va="bottom",
                            fontsize=8, rotation=90, color="#d62728")
        ax.axhline(1, color="grey", linewidth=0.8)
        ax.set_yscale("log")
        _log_scale(ax.yaxis)
        ax.set_ylim(0.4, top * 3)
        ax.set_xticks(list(x), [f"{f}%" for f, _, _, _ in cases])
        ax.set_title(prog, fontsize=10)
        ax.grid(True, axis="y", which="both", alpha=0.3)
    for ax in flat[len(progs):]:
        ax.set_visible(False)
    flat[0].set_ylabel("slowdown vs all memory local")
    flat[0].legend(fontsize=8, loc="upper right")
    fig.suptitle(title, fontsize=11)
    return _save(plt, fig, outdir, name)


# ---- bench/multinode.sh -----------------------------------------------------

def rdma_tcp(outdir, times, rates, cdfs, title, name="multinode.png"):
    """RDMA against TCP.  times: [(label, rdma µs, tcp µs)] (lower is
    better); rates: [(label, rdma, tcp, unit)] (higher is better); cdfs:
    [(label, pct, µs)] of the remote fault over each transport, if the
    data has them."""
    times = [t for t in times if t[1] is not None or t[2] is not None]
    rates = [r for r in rates if r[1] is not None or r[2] is not None]
    cdfs = [c for c in cdfs if c[1] and c[2]]
    if not times and not rates:
        return skip(name, "no RDMA or TCP case in the data")
    widths = [3] + ([1] if rates else []) + ([2] if cdfs else [])
    plt = pyplot()
    if plt is None:
        return skip(name, _why_not)
    fig, axes = plt.subplots(1, len(widths), figsize=(12, 4.8), dpi=DPI,
                             gridspec_kw={"width_ratios": widths})
    axes = list(axes) if len(widths) > 1 else [axes]
    ax = axes.pop(0)
    y = range(len(times))
    # top to bottom once the axis is inverted: RDMA above TCP, as listed
    ax.barh([i - 0.2 for i in y], [t[1] or 0 for t in times], height=0.4,
            color=DSM, label="RDMA")
    ax.barh([i + 0.2 for i in y], [t[2] or 0 for t in times], height=0.4,
            color=OTHER, label="TCP")
    ax.set_yticks(list(y), [t[0] for t in times], fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    _log_scale(ax.xaxis)
    ax.set_xlabel("µs (log scale; lower is better)")
    ax.grid(True, axis="x", which="both", alpha=0.3)
    ax.legend(fontsize=8)
    if rates:
        ax = axes.pop(0)
        label, r, t, unit = rates[0]
        drawn = ax.bar(["RDMA", "TCP"], [r or 0, t or 0],
                       color=[DSM, OTHER], width=0.6)
        _label_bars(ax, drawn, "{:.1f}")
        ax.set_ylabel(unit)
        ax.set_title(label, fontsize=9)
        ax.grid(True, axis="y", alpha=0.3)
    if cdfs:
        ax = axes.pop(0)
        _cdf(ax, cdfs, (DSM, OTHER), "remote fault, µs (log scale)")
        ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(title, fontsize=11)
    return _save(plt, fig, outdir, name)


# ---- bench/drain.sh ---------------------------------------------------------

def drain_timeline(outdir, reps, title, name="drain.png"):
    """Each run's drain over time: MiB left on the drained server (as the
    registry has it from the server's heartbeats, once a second), and the
    client's access latency (p50, p99) per window.  reps: [(rep, drain
    seconds, [(t s, MiB left)], [(t s, p50 µs, p99 µs)])], t from the
    drain's start."""
    reps = [r for r in reps if r[2] or r[3]]
    if not reps:
        return skip(name, "no timeline in the data (bench/drain.sh keeps "
                    "one since issue 17)")
    got = _figure(name, 2, 1, size=(8, 6))
    if not got:
        return None
    plt, fig, (left, lat) = got
    shades = plt.get_cmap("tab10")
    for k, (rep, secs, used, ticks) in enumerate(reps):
        color = shades(k)
        if used:
            # a figure holds until the next heartbeat brings another
            left.plot([t for t, _ in used], [m for _, m in used],
                      color=color, label=f"run {rep}", drawstyle="steps-post")
        if ticks:
            lat.plot([t for t, _, _ in ticks], [p99 for _, _, p99 in ticks],
                     color=color, label=f"run {rep} p99")
            lat.plot([t for t, _, _ in ticks], [p50 for _, p50, _ in ticks],
                     color=color, linestyle=":", label=f"run {rep} p50")
        if secs:
            for ax in (left, lat):
                ax.axvline(secs, color=color, linestyle="--", linewidth=0.8)
    for ax in (left, lat):
        ax.axvline(0, color="grey", linewidth=0.8)
        ax.grid(True, which="both", alpha=0.3)
    left.set_ylabel("MiB on the drained server\n(its heartbeats)")
    left.set_ylim(bottom=0)
    left.legend(fontsize=8)
    lat.set_yscale("log")
    _log_scale(lat.yaxis)
    lat.set_ylabel("client access latency,\nµs (log scale)")
    lat.set_xlabel("seconds from `dsmctl drain` (dashed: it returned)")
    lat.legend(fontsize=7, ncol=len(reps))
    left.set_title(title, fontsize=11)
    return _save(plt, fig, outdir, name)
