"""Plots of a simulation trace (``netsim report --plot out.png``), drawn with matplotlib.

What it owns: turning trace events into one PNG with

* a **time-sequence graph** per busy flow (tcptrace style): x is virtual time, y the flow's
  cumulative bytes sent; each datagram is a grey dot when sent, a green dot when delivered, a
  purple ``+`` for an extra (duplicate) copy and an ``x`` coloured by drop reason where it died;
* a **latency plot**: each app message's latency (``msg_sent`` -> ``msg_received``) against the
  time it was sent, and the latency CDF beside it, one line per receiving host when there are
  several (at most ``MAX_CDF_HOSTS``); both use a log scale when latencies span more than two
  orders of magnitude;
* **reachability gaps** (`netsim.reachability`) shaded on the time-sequence graph of every
  flow towards the host they belong to.

Rules it keeps: matplotlib is optional (extra ``plot``) and imported only when drawing, with the
headless Agg backend; when it is missing, `PlotUnavailable` carries one line saying how to get
it. Plotting reads events only; it never changes a trace.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netsim.reachability import reachability_gaps
from netsim.trace import TraceEvent
from netsim.trace_topology import packet_flows

MAX_FLOWS = 4  # time-sequence panels: the busiest flows
MAX_CDF_HOSTS = 6  # latency CDF lines, one per receiving host
LOG_SPREAD = 100.0  # log scale when max / min latency exceeds this
REASON_COLOURS = (
    "tab:red",
    "tab:orange",
    "tab:brown",
    "tab:pink",
    "tab:olive",
    "tab:cyan",
    "tab:blue",
    "black",
)


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed; `str()` is one line saying how to install it."""


@dataclass(slots=True)
class FlowSeries:
    """Points of one flow's time-sequence graph (times in s, y in cumulative bytes)."""

    name: str
    sent: list[tuple[float, float]] = field(default_factory=list)
    delivered: list[tuple[float, float]] = field(default_factory=list)
    duplicates: list[tuple[float, float]] = field(default_factory=list)
    dropped: dict[str, list[tuple[float, float]]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PlotData:
    flows: tuple[FlowSeries, ...]
    latencies: tuple[tuple[float, float], ...]  # (sent at s, latency s)
    latency_by_host: dict[str, list[float]] = field(default_factory=dict)  # receiver -> s
    gaps: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # host -> spans


def collect(events: Sequence[TraceEvent]) -> PlotData:
    """Gather the plotted points from trace events (flows named as in `netsim.report`)."""
    names = packet_flows(events)
    flows: dict[str, FlowSeries] = {}
    packets: dict[object, tuple[FlowSeries, float]] = {}
    sent_at: dict[str, float] = {}
    latencies: list[tuple[float, float]] = []
    by_host: dict[str, list[float]] = {}
    for event in events:
        f = event.fields
        if event.kind == "send":
            series = flows.setdefault(names[f.get("id")], FlowSeries(names[f.get("id")]))
            size = f.get("size", 0)
            y = (series.sent[-1][1] if series.sent else 0.0) + (
                size if isinstance(size, int | float) else 0
            )
            series.sent.append((event.t, y))
            packets[f.get("id")] = (series, y)
        elif event.kind in ("deliver", "drop") and f.get("id") in packets:
            series, y = packets[f.get("id")]
            if event.kind == "drop":
                series.dropped.setdefault(str(f.get("reason")), []).append((event.t, y))
            elif f.get("dup"):
                series.duplicates.append((event.t, y))
            else:
                series.delivered.append((event.t, y))
        elif event.kind == "app" and f.get("event") == "msg_sent":
            sent_at.setdefault(str(f.get("id")), event.t)
        elif event.kind == "app" and f.get("event") == "msg_received":
            message = str(f.get("id"))
            if message in sent_at:
                latencies.append((sent_at[message], event.t - sent_at.pop(message)))
                by_host.setdefault(str(f.get("host")), []).append(latencies[-1][1])
    busiest = sorted(flows.values(), key=lambda s: (-len(s.sent), s.name))[:MAX_FLOWS]
    end_s = max((event.t for event in events), default=0.0)
    gaps = {
        host.host: [(gap.start_s, gap.start_s + gap.length_s(end_s)) for gap in host.gaps]
        for host in reachability_gaps(events, end_s)
    }
    return PlotData(
        tuple(sorted(busiest, key=lambda s: s.name)),
        tuple(latencies),
        dict(sorted(by_host.items())),
        gaps,
    )


def plot_trace(events: Sequence[TraceEvent], path: Path, *, title: str = "") -> None:
    """Draw the time-sequence and latency plots of ``events`` into the PNG file ``path``.

    Raises:
        PlotUnavailable: matplotlib is not installed.
        OSError: the file cannot be written.
    """
    plt = _pyplot()
    data = collect(events)
    rows = max(len(data.flows), 1) + 1
    figure = plt.figure(figsize=(11, 2.4 * rows + 0.6), layout="constrained")
    grid = figure.add_gridspec(rows, 2)
    if title:
        figure.suptitle(title)
    reasons = sorted({reason for s in data.flows for reason in s.dropped})
    colours = {r: REASON_COLOURS[i % len(REASON_COLOURS)] for i, r in enumerate(reasons)}
    for row, series in enumerate(data.flows):
        axis = figure.add_subplot(grid[row, :])
        receiver = series.name.partition(" -> ")[2]
        for number, (start, end) in enumerate(data.gaps.get(receiver, [])):
            label = "reachability gap" if number == 0 else None
            axis.axvspan(start, max(end, start + 1e-3), color="tab:red", alpha=0.15, label=label)
        _draw_flow(axis, series, colours)
    if not data.flows:
        axis = figure.add_subplot(grid[0, :])
        axis.text(0.5, 0.5, "no packets in this trace", ha="center", va="center")
    _draw_latency(
        figure.add_subplot(grid[rows - 1, 0]), figure.add_subplot(grid[rows - 1, 1]), data
    )
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise PlotUnavailable(
            "--plot needs matplotlib: pip install 'udpim[plot]' (or pip install matplotlib)"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _draw_flow(axis: Any, series: FlowSeries, colours: dict[str, str]) -> None:
    axis.set_title(f"time-sequence: {series.name}", loc="left", fontsize="medium")
    _scatter(axis, series.sent, marker=".", color="lightgrey", label="sent", size=10)
    _scatter(axis, series.delivered, marker=".", color="tab:green", label="delivered", size=10)
    _scatter(axis, series.duplicates, marker="+", color="tab:purple", label="duplicate", size=30)
    for reason, points in sorted(series.dropped.items()):
        _scatter(axis, points, marker="x", color=colours[reason], label=f"drop: {reason}", size=30)
    axis.set_xlabel("virtual time (s)")
    axis.set_ylabel("bytes sent")
    axis.legend(loc="upper left", fontsize="small", ncols=3)


def _draw_latency(over_time: Any, cdf: Any, data: PlotData) -> None:
    over_time.set_title("message latency", loc="left", fontsize="medium")
    cdf.set_title("latency CDF", loc="left", fontsize="medium")
    latencies = data.latencies
    if not latencies:
        for axis in (over_time, cdf):
            axis.text(0.5, 0.5, "no app messages", ha="center", va="center")
        return
    over_time.scatter([t for t, _ in latencies], [v * 1000 for _, v in latencies], s=6)
    over_time.set_xlabel("sent at, virtual time (s)")
    over_time.set_ylabel("latency (ms)")
    lines = {"all messages": [v for _, v in latencies]}
    if 1 < len(data.latency_by_host) <= MAX_CDF_HOSTS:
        lines = {f"to {host}": values for host, values in data.latency_by_host.items()}
    for label, values in lines.items():
        ordered = sorted(v * 1000 for v in values)
        fractions = [(i + 1) / len(ordered) for i in range(len(ordered))]
        cdf.step(ordered, fractions, where="post", label=label)
    if len(lines) > 1:
        cdf.legend(loc="best", fontsize="small")
    positive = [v for _, v in latencies if v > 0]
    if positive and max(positive) > LOG_SPREAD * min(positive):
        over_time.set_yscale("log")
        cdf.set_xscale("log")
    cdf.set_xlabel("latency (ms)")
    cdf.set_ylabel("fraction of messages")
    cdf.set_ylim(0, 1.02)


def _scatter(
    axis: Any,
    points: Sequence[tuple[float, float]],
    *,
    marker: str,
    color: str,
    label: str,
    size: float,
) -> None:
    if points:
        axis.scatter(
            [t for t, _ in points],
            [y for _, y in points],
            marker=marker,
            color=color,
            label=label,
            s=size,
            linewidths=1,
        )
