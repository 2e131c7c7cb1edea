"""Reachability gaps and the traffic cost of staying reachable, computed from a trace.

What it owns: two report figures that matter for long-lived connections through NATs, and
their text rendering (``netsim report`` shows them after the flows):

* **Reachability gaps** per host: intervals in which datagrams towards the host died at a NAT
  because its mapping was gone (drop reasons ``nat-expired`` and ``nat-no-mapping``, for
  example after an idle timeout or a rebinding). A gap *opens* at the first such drop while
  none is open and *closes* at the next datagram delivered to that host; a gap still open
  when the trace ends is reported as open and counted up to the end. The mapping itself may
  have died earlier, unseen: a gap measures what senders experienced, from the first failure
  to the restored path. The host behind a dead public endpoint is the one the mapping was
  created for (so a host that moved away still owns its old mappings). A *probe socket*,
  declared by the app event ``probe_socket`` (``host``, ``port``), is one whose mapping is
  meant to expire (a NAT-timeout probe): datagrams to it neither open nor close gaps; those
  that died at a NAT are counted as ``probe_drops``.
* **Pair costs**: the traffic between two hosts, both directions together (``a <-> b``,
  names sorted), as UDP payload bytes and datagrams per hour of the trace, in total and
  while *idle*. A host is busy within ``IDLE_GUARD_S`` after each of its own ``msg_sent``
  app events and within ``IDLE_GUARD_S`` before and after each of its own
  ``msg_received``; a pair is idle when neither of its hosts is busy (a host without app
  events, such as a server, is never busy). Idle traffic is what a protocol spends on
  keepalives, probes and reconnections while no message is being exchanged: its cost of
  staying reachable. ``idle_bytes_per_hour`` = idle bytes / idle hours. Add 28 bytes per
  datagram (IPv4 + UDP headers) for bytes on the wire.

Rules it keeps: hosts are named as in `netsim.trace_topology`; nothing but the events is
read; results are sorted by name so equal traces give equal reports.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from netsim.trace import TraceEvent
from netsim.trace_topology import Topology, packet_flows, receiver_of

__all__ = [
    "IDLE_GUARD_S",
    "NAT_DEATHS",
    "Gap",
    "HostGaps",
    "PairCost",
    "pair_costs",
    "reachability_gaps",
    "render_costs",
    "render_gaps",
]

NAT_DEATHS = ("nat-expired", "nat-no-mapping")
"""Drop reasons meaning: the destination's NAT mapping is gone."""
IDLE_GUARD_S = 10.0
"""How long around its own app message events a host counts as busy."""


@dataclass(frozen=True, slots=True)
class Gap:
    """One reachability gap of a host (times in virtual seconds)."""

    start_s: float
    end_s: float | None  # None: still open when the trace ended
    drops: int  # datagrams towards the host that died at a NAT during the gap

    def length_s(self, trace_end_s: float) -> float:
        """The gap's length; an open gap counts up to the end of the trace."""
        return (self.end_s if self.end_s is not None else trace_end_s) - self.start_s


@dataclass(frozen=True, slots=True)
class HostGaps:
    """Every reachability gap of one host."""

    host: str
    gaps: tuple[Gap, ...]
    trace_end_s: float
    probe_drops: int = 0  # datagrams to the host's probe sockets that died at a NAT

    @property
    def total_s(self) -> float:
        return sum(gap.length_s(self.trace_end_s) for gap in self.gaps)

    @property
    def longest_s(self) -> float:
        return max((gap.length_s(self.trace_end_s) for gap in self.gaps), default=0.0)

    @property
    def drops(self) -> int:
        return sum(gap.drops for gap in self.gaps)

    def to_mapping(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "gaps": len(self.gaps),
            "total_s": self.total_s,
            "longest_s": self.longest_s,
            "drops": self.drops,
            "probe_drops": self.probe_drops,
            "intervals": [
                {"start_s": gap.start_s, "end_s": gap.end_s, "drops": gap.drops}
                for gap in self.gaps
            ],
        }


@dataclass(frozen=True, slots=True)
class PairCost:
    """Traffic between two hosts (both directions), in total and while idle."""

    name: str
    span_s: float
    packets: int
    bytes: int
    idle_s: float
    idle_packets: int
    idle_bytes: int

    @property
    def bytes_per_hour(self) -> float | None:
        return self.bytes * 3600 / self.span_s if self.span_s > 0 else None

    @property
    def idle_bytes_per_hour(self) -> float | None:
        return self.idle_bytes * 3600 / self.idle_s if self.idle_s > 0 else None

    @property
    def idle_packets_per_hour(self) -> float | None:
        return self.idle_packets * 3600 / self.idle_s if self.idle_s > 0 else None

    def to_mapping(self) -> dict[str, Any]:
        return {
            "pair": self.name,
            "packets": self.packets,
            "bytes": self.bytes,
            "bytes_per_hour": self.bytes_per_hour,
            "idle_s": self.idle_s,
            "idle_packets": self.idle_packets,
            "idle_bytes": self.idle_bytes,
            "idle_bytes_per_hour": self.idle_bytes_per_hour,
            "idle_packets_per_hour": self.idle_packets_per_hour,
        }


@dataclass(slots=True)
class _OpenGaps:
    open: dict[str, tuple[float, int]] = field(default_factory=dict)  # host -> (start, drops)
    done: dict[str, list[Gap]] = field(default_factory=dict)
    probe_drops: dict[str, int] = field(default_factory=dict)

    def probe_died(self, host: str) -> None:
        self.probe_drops[host] = self.probe_drops.get(host, 0) + 1
        self.done.setdefault(host, [])

    def died(self, host: str, t: float) -> None:
        start, drops = self.open.get(host, (t, 0))
        self.open[host] = (start, drops + 1)
        self.done.setdefault(host, [])

    def delivered(self, host: str, t: float) -> None:
        if host in self.open:
            start, drops = self.open.pop(host)
            self.done[host].append(Gap(start, t, drops))


def reachability_gaps(events: Sequence[TraceEvent], trace_end_s: float) -> tuple[HostGaps, ...]:
    """Every host's reachability gaps (see the module docstring), sorted by host."""
    probes = {
        (str(e.fields.get("host")), str(e.fields.get("port")))
        for e in events
        if e.kind == "app" and e.fields.get("event") == "probe_socket"
    }
    topology = Topology()
    destination: dict[object, str] = {}  # datagram id -> dst endpoint
    gaps = _OpenGaps()
    for event in events:
        f = event.fields
        if event.kind == "send":
            destination[f.get("id")] = str(f.get("dst"))
        elif event.kind == "drop" and f.get("reason") in NAT_DEATHS:
            dst = destination.get(f.get("id"), "")
            host = topology.owner_of.get(dst) or topology.name(dst)
            port = topology.private_of.get(dst, "").rpartition(":")[2]
            if (host, port) in probes:
                gaps.probe_died(host)
            else:
                gaps.died(host, event.t)
        elif event.kind == "deliver":
            receiver = receiver_of(topology, "deliver", f)
            port = str(f.get("dst")).rpartition(":")[2]
            if receiver is not None and (receiver, port) not in probes:
                gaps.delivered(receiver, event.t)
        topology.observe(event)
    for host, (start, drops) in gaps.open.items():
        gaps.done[host].append(Gap(start, None, drops))
    return tuple(
        HostGaps(host, tuple(gaps.done[host]), trace_end_s, gaps.probe_drops.get(host, 0))
        for host in sorted(gaps.done)
    )


def busy_windows(events: Iterable[TraceEvent]) -> dict[str, list[tuple[float, float]]]:
    """Merged busy intervals of every host with app message events (sorted, disjoint)."""
    raw: dict[str, list[tuple[float, float]]] = {}
    for event in events:
        if event.kind != "app":
            continue
        name, host = event.fields.get("event"), str(event.fields.get("host"))
        if name == "msg_sent":
            raw.setdefault(host, []).append((event.t, event.t + IDLE_GUARD_S))
        elif name == "msg_received":
            raw.setdefault(host, []).append((event.t - IDLE_GUARD_S, event.t + IDLE_GUARD_S))
    return {host: _merge(windows) for host, windows in raw.items()}


def pair_costs(events: Sequence[TraceEvent], trace_end_s: float) -> tuple[PairCost, ...]:
    """Traffic per pair of hosts, in total and while idle (module docstring), sorted."""
    busy = busy_windows(events)
    flows = packet_flows(events)
    counts: dict[tuple[str, str], list[int]] = {}  # pair -> [packets, bytes, idle p, idle b]
    for event in events:
        if event.kind != "send":
            continue
        src, _, dst = flows[event.fields.get("id")].partition(" -> ")
        pair = (min(src, dst), max(src, dst))
        size = event.fields.get("size", 0)
        size = int(size) if isinstance(size, int | float) else 0
        row = counts.setdefault(pair, [0, 0, 0, 0])
        row[0], row[1] = row[0] + 1, row[1] + size
        if not (_inside(busy.get(src, []), event.t) or _inside(busy.get(dst, []), event.t)):
            row[2], row[3] = row[2] + 1, row[3] + size
    result = []
    for (a, b), (packets, size, idle_packets, idle_size) in sorted(counts.items()):
        both = _merge(busy.get(a, []) + busy.get(b, []))
        busy_s = sum(min(end, trace_end_s) - max(start, 0.0) for start, end in both)
        idle_s = max(0.0, trace_end_s - busy_s)
        result.append(
            PairCost(f"{a} <-> {b}", trace_end_s, packets, size, idle_s, idle_packets, idle_size)
        )
    return tuple(result)


def _merge(windows: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for start, end in sorted(windows):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _inside(windows: list[tuple[float, float]], t: float) -> bool:
    index = bisect.bisect_right(windows, (t, float("inf"))) - 1
    return index >= 0 and windows[index][0] <= t < windows[index][1]


def render_gaps(hosts: Sequence[HostGaps]) -> list[str]:
    """Text lines of the reachability-gap section."""
    lines = ["reachability gaps (datagrams towards a host died at its NAT: expired/no mapping)"]
    if not hosts:
        return [*lines, "  none"]
    for h in hosts:
        still = sum(gap.end_s is None for gap in h.gaps)
        text = (
            f"{len(h.gaps)} gap{'s' if len(h.gaps) != 1 else ''}, total {h.total_s:.1f}s, "
            f"longest {h.longest_s:.1f}s, {h.drops} datagrams lost"
            + (f", {still} open at the end" if still else "")
            if h.gaps
            else "no gaps"
        )
        if h.probe_drops:
            text += f" (+{h.probe_drops} to probe sockets, expected)"
        lines.append(f"  {h.host:<18} {text}")
    return lines


def render_costs(pairs: Sequence[PairCost]) -> list[str]:
    """Text lines of the pair-cost section (payload bytes; +28 B per datagram on the wire)."""
    lines = [f"traffic per pair (idle: no app message event within {IDLE_GUARD_S:g}s of either)"]
    rows = [("pair", "bytes/h", "idle time", "idle bytes/h", "idle datagrams/h")]
    for p in pairs:
        idle_share = p.idle_s / p.span_s if p.span_s > 0 else None
        rows.append(
            (
                p.name,
                _number(p.bytes_per_hour),
                "-" if idle_share is None else f"{idle_share * 100:.1f}%",
                _number(p.idle_bytes_per_hour),
                _number(p.idle_packets_per_hour),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [
            cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  " + "  ".join(cells))
    return lines


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}" if value >= 100 else f"{value:.1f}"
