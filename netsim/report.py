"""Reports: the figures of a simulation trace, as text or JSON (plots live in netsim.plot).

What it owns: reading trace events (see `netsim.trace`) into a `Summary` and rendering it.

Figures, exactly:

* **Flows** (one direction of traffic between two hosts, ``"client -> server"``): ``packets``
  sent; ``delivered`` (packets with at least one copy queued on a socket); ``lost`` (packets
  whose every copy was dropped); ``in_flight`` (neither yet when the trace ends);
  ``loss = lost / (delivered + lost)``; ``drops`` counts drop events (copies) by reason;
  ``duplicates`` and ``corrupted`` count delivered extra/bit-flipped copies; ``delay`` is over
  each delivered packet's first copy (the trace's ``deliver.delay``).
* **Places**: drop events by ``where`` (``up:HOST``, ``down:HOST``, ``nat:NAME``, ``net``,
  ``host:HOST``) and reason: the per-link-direction view.
* **NATs**: mapping, expiry and rebind events per NAT.
* **App** (``app`` events): ``sent`` = distinct ids with ``msg_sent``; ``received`` = distinct
  sent ids with ``msg_received``; ``delivery_ratio = received / sent``; ``latency`` = first
  ``msg_received`` time minus first ``msg_sent`` time per id; ``duplicates`` = repeated
  ``msg_received`` of an id; ``retransmissions`` = ``retransmit`` events (an event may carry
  ``count``, e.g. a total taken from a protocol's statistics; default 1). Per host: sent,
  received, retransmissions and the latency of the messages that host received. ``status``
  events are not counted: the last one of each host is shown as it is (its scalar fields,
  e.g. a learned timeout). Counts of every other event name.
* **Reachability gaps** per host and **traffic per pair** of hosts, in total and while idle
  (`netsim.reachability`).

Percentiles use the nearest-rank method: ``pN`` is the smallest sample with at least N % of the
samples at or below it (always an observed value, so hand-checked figures are exact).

Hosts are named from the trace's own ``op`` events (``add_host``, ``move_host``, ``add_nat``) and
NAT ``mapping`` events, so a report needs nothing but the trace.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from netsim.reachability import (
    HostGaps,
    PairCost,
    pair_costs,
    reachability_gaps,
    render_costs,
    render_gaps,
)
from netsim.trace import TraceError, TraceEvent
from netsim.trace_topology import Topology, packet_flows, receiver_of

__all__ = [
    "PERCENTILES",
    "AppSummary",
    "FlowSummary",
    "HostAppCounts",
    "Percentiles",
    "Summary",
    "Topology",
    "packet_flows",
    "receiver_of",
    "render_json",
    "render_text",
    "summarize",
]

PERCENTILES = (50, 90, 99)


@dataclass(frozen=True, slots=True)
class Percentiles:
    """Nearest-rank percentiles of a sample (seconds); all None when there is no sample."""

    count: int
    p50: float | None
    p90: float | None
    p99: float | None
    max: float | None

    @classmethod
    def of(cls, samples: Iterable[float]) -> Percentiles:
        ordered = sorted(samples)
        if not ordered:
            return cls(0, None, None, None, None)
        n = len(ordered)
        p50, p90, p99 = (ordered[max(math.ceil(p / 100 * n), 1) - 1] for p in PERCENTILES)
        return cls(n, p50, p90, p99, ordered[-1])

    def to_mapping(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "p50_s": self.p50,
            "p90_s": self.p90,
            "p99_s": self.p99,
            "max_s": self.max,
        }

    def render_ms(self) -> str:
        if self.p50 is None:
            return "-"
        values = (self.p50, self.p90, self.p99, self.max)
        return "/".join(f"{value * 1000:.1f}" for value in values if value is not None) + " ms"


@dataclass(frozen=True, slots=True)
class FlowSummary:
    """One direction of traffic between two hosts."""

    name: str
    packets: int
    bytes: int
    delivered: int
    lost: int
    in_flight: int
    duplicates: int
    corrupted: int
    drops: Mapping[str, int]
    delay: Percentiles

    @property
    def loss(self) -> float | None:
        decided = self.delivered + self.lost
        return self.lost / decided if decided else None


NO_SAMPLES = Percentiles(0, None, None, None, None)


@dataclass(frozen=True, slots=True)
class HostAppCounts:
    sent: int = 0
    received: int = 0
    retransmissions: int = 0
    latency: Percentiles = NO_SAMPLES  # of the messages this host received first


Scalar = str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class AppSummary:
    sent: int
    received: int
    duplicates: int
    retransmissions: int
    latency: Percentiles
    hosts: Mapping[str, HostAppCounts]
    other_events: Mapping[str, int]
    status: Mapping[str, Mapping[str, Scalar]] = field(default_factory=dict)

    @property
    def delivery_ratio(self) -> float | None:
        return self.received / self.sent if self.sent else None


@dataclass(frozen=True, slots=True)
class Summary:
    """Everything `netsim report` shows."""

    events: int
    end_s: float
    flows: tuple[FlowSummary, ...]
    places: Mapping[str, Mapping[str, int]]
    nats: Mapping[str, Mapping[str, int]]
    app: AppSummary
    ended_by: str | None = None
    gaps: tuple[HostGaps, ...] = ()
    pairs: tuple[PairCost, ...] = ()

    def to_mapping(self) -> dict[str, Any]:
        """JSON-friendly form (what ``--json`` prints); times in seconds, ratios in [0, 1]."""
        return {
            "events": self.events,
            "end_s": self.end_s,
            "ended_by": self.ended_by,
            "flows": [
                {
                    "name": f.name,
                    "packets": f.packets,
                    "bytes": f.bytes,
                    "delivered": f.delivered,
                    "lost": f.lost,
                    "in_flight": f.in_flight,
                    "loss": f.loss,
                    "duplicates": f.duplicates,
                    "corrupted": f.corrupted,
                    "drops": dict(f.drops),
                    "delay": f.delay.to_mapping(),
                }
                for f in self.flows
            ],
            "drops_by_place": {where: dict(reasons) for where, reasons in self.places.items()},
            "nats": {name: dict(counts) for name, counts in self.nats.items()},
            "messages": {
                "sent": self.app.sent,
                "received": self.app.received,
                "delivery_ratio": self.app.delivery_ratio,
                "duplicates": self.app.duplicates,
                "retransmissions": self.app.retransmissions,
                "latency": self.app.latency.to_mapping(),
                "hosts": {
                    name: {
                        "sent": c.sent,
                        "received": c.received,
                        "retransmissions": c.retransmissions,
                        "latency": c.latency.to_mapping(),
                    }
                    for name, c in self.app.hosts.items()
                },
                "other_events": dict(self.app.other_events),
                "status": {host: dict(fields) for host, fields in self.app.status.items()},
            },
            "reachability_gaps": [hosts.to_mapping() for hosts in self.gaps],
            "pairs": [pair.to_mapping() for pair in self.pairs],
        }


@dataclass(slots=True)
class _Packet:
    flow: tuple[str, str]
    size: int
    dst: str
    delivered: bool = False
    dropped: bool = False
    delay_s: float | None = None


@dataclass(slots=True)
class _FlowCounts:
    packets: int = 0
    bytes: int = 0
    duplicates: int = 0
    corrupted: int = 0
    drops: Counter[str] = field(default_factory=Counter)


def summarize(events: Iterable[TraceEvent]) -> Summary:
    """Compute the report figures of a trace's events (see the module docstring)."""
    events = list(events)
    topology = Topology()
    packets: dict[int, _Packet] = {}
    flows: dict[tuple[str, str], _FlowCounts] = {}
    places: dict[str, Counter[str]] = {}
    nats: dict[str, Counter[str]] = {}
    app = _AppCollector()
    count, end_s, ended_by = 0, 0.0, None
    for event in events:
        count, end_s = count + 1, max(end_s, event.t)
        kind, f = event.kind, event.fields
        if kind == "send":
            flow = (topology.name(str(f["src"])), topology.name(str(f["dst"])))
            packet = packets[int(_num(f["id"]))] = _Packet(
                flow, int(_num(f["size"])), str(f["dst"])
            )
            counts = flows.setdefault(flow, _FlowCounts())
            counts.packets += 1
            counts.bytes += packet.size
        elif kind in ("deliver", "drop") and int(_num(f.get("id", -1))) in packets:
            packet = packets[int(_num(f["id"]))]
            _settle_destination(packet, topology, flows, kind, f)
            counts = flows[packet.flow]
            if kind == "deliver":
                counts.duplicates += bool(f.get("dup"))
                counts.corrupted += bool(f.get("corrupt"))
                if not packet.delivered:
                    packet.delivered, packet.delay_s = True, _num(f.get("delay", 0.0))
            else:
                reason, where = str(f.get("reason")), str(f.get("where"))
                counts.drops[reason] += 1
                places.setdefault(where, Counter())[reason] += 1
                packet.dropped = packet.dropped or not f.get("dup")
        elif kind == "nat":
            nats.setdefault(str(f.get("nat")), Counter())[str(f.get("event"))] += 1
        elif kind == "app":
            app.observe(event)
        elif kind == "end":
            ended_by = str(f.get("reason"))
        topology.observe(event)
    return Summary(
        count,
        end_s,
        _flow_summaries(flows, packets),
        _sorted(places),
        _sorted(nats),
        app.summary(),
        ended_by,
        reachability_gaps(events, end_s),
        pair_costs(events, end_s),
    )


def _settle_destination(
    packet: _Packet,
    topology: Topology,
    flows: dict[tuple[str, str], _FlowCounts],
    kind: str,
    fields: Mapping[str, object],
) -> None:
    """Re-label a packet sent to a not-yet-known endpoint once its fate names the receiver."""
    receiver = receiver_of(topology, kind, fields)
    if receiver is None or receiver == packet.flow[1]:
        return
    old, new = flows[packet.flow], flows.setdefault((packet.flow[0], receiver), _FlowCounts())
    old.packets, old.bytes = old.packets - 1, old.bytes - packet.size
    new.packets, new.bytes = new.packets + 1, new.bytes + packet.size
    packet.flow = (packet.flow[0], receiver)


def _flow_summaries(
    flows: Mapping[tuple[str, str], _FlowCounts], packets: Mapping[int, _Packet]
) -> tuple[FlowSummary, ...]:
    by_flow: dict[tuple[str, str], list[_Packet]] = {key: [] for key in flows}
    for packet in packets.values():
        by_flow[packet.flow].append(packet)
    result = []
    for key in sorted(flows):
        counts, members = flows[key], by_flow[key]
        if counts.packets == 0:
            continue
        delivered = sum(p.delivered for p in members)
        lost = sum(p.dropped and not p.delivered for p in members)
        delays = [p.delay_s for p in members if p.delay_s is not None]
        result.append(
            FlowSummary(
                f"{key[0]} -> {key[1]}",
                counts.packets,
                counts.bytes,
                delivered,
                lost,
                counts.packets - delivered - lost,
                counts.duplicates,
                counts.corrupted,
                dict(sorted(counts.drops.items())),
                Percentiles.of(delays),
            )
        )
    return tuple(result)


class _AppCollector:
    def __init__(self) -> None:
        self.sent_at: dict[str, float] = {}
        self.received_at: dict[str, float] = {}
        self.duplicates = self.retransmissions = 0
        self.hosts: dict[str, Counter[str]] = {}
        self.received_by: dict[str, str] = {}  # message id -> host that received it first
        self.status: dict[str, dict[str, Scalar]] = {}
        self.other: Counter[str] = Counter()

    def observe(self, event: TraceEvent) -> None:
        f = event.fields
        name, host = str(f.get("event")), str(f.get("host"))
        counts = self.hosts.setdefault(host, Counter())
        message = str(f.get("id"))
        if name == "msg_sent":
            counts["sent"] += 1
            self.sent_at.setdefault(message, event.t)
        elif name == "msg_received":
            counts["received"] += 1
            if message in self.received_at:
                self.duplicates += 1
            else:
                self.received_at[message], self.received_by[message] = event.t, host
        elif name == "retransmit":
            count = int(_num(f.get("count", 1)))
            counts["retransmissions"] += count
            self.retransmissions += count
        elif name == "status":
            self.status[host] = {
                key: value
                for key, value in f.items()
                if key not in ("host", "event") and isinstance(value, Scalar)
            }
        else:
            self.other[name] += 1

    def summary(self) -> AppSummary:
        delivered = [m for m in self.sent_at if m in self.received_at]
        latency = Percentiles.of(self.received_at[m] - self.sent_at[m] for m in delivered)
        per_host: dict[str, list[float]] = {}
        for m in delivered:
            per_host.setdefault(self.received_by[m], []).append(
                self.received_at[m] - self.sent_at[m]
            )
        hosts = {
            name: HostAppCounts(
                c["sent"],
                c["received"],
                c["retransmissions"],
                Percentiles.of(per_host.get(name, [])),
            )
            for name, c in sorted(self.hosts.items())
        }
        return AppSummary(
            len(self.sent_at),
            len(delivered),
            self.duplicates,
            self.retransmissions,
            latency,
            hosts,
            dict(sorted(self.other.items())),
            dict(sorted(self.status.items())),
        )


def render_json(summary: Summary, header: Mapping[str, object] | None = None) -> str:
    """The summary (and optional run facts such as scenario, seed, hash) as one JSON object."""
    return json.dumps({**(header or {}), **summary.to_mapping()}, sort_keys=False)


def render_text(summary: Summary, title: str | None = None) -> str:
    """A human-readable report: flows, drops by place, NATs, reachability, traffic per pair,
    app figures, host status."""
    lines = [title] if title else []
    ended = f", ended by {summary.ended_by}" if summary.ended_by else ""
    lines.append(f"{summary.events} events over {summary.end_s:g}s virtual{ended}")
    lines += ["", "flows (one direction between two hosts)"]
    rows = [("flow", "packets", "delivered", "loss", "in flight", "delay p50/p90/p99/max", "drops")]
    for f in summary.flows:
        rows.append(
            (
                f.name,
                str(f.packets),
                str(f.delivered),
                _percent(f.loss),
                str(f.in_flight),
                f.delay.render_ms(),
                _reasons(f.drops),
            )
        )
    lines += _table(rows)
    if summary.places:
        lines += ["", "drops by place"]
        lines += [f"  {where:<18} {_reasons(reasons)}" for where, reasons in summary.places.items()]
    if summary.nats:
        lines += ["", "NAT events"]
        lines += [f"  {name:<18} {_reasons(counts)}" for name, counts in summary.nats.items()]
    lines += ["", *render_gaps(summary.gaps)]
    if summary.pairs:
        lines += ["", *render_costs(summary.pairs)]
    a = summary.app
    lines += ["", "app"]
    lines.append(
        f"  messages sent {a.sent}, received {a.received}, delivery "
        f"{_percent(a.delivery_ratio)}, duplicates {a.duplicates}, "
        f"retransmissions {a.retransmissions}"
    )
    lines.append(f"  latency p50/p90/p99/max {a.latency.render_ms()} ({a.latency.count} messages)")
    for name, c in a.hosts.items():
        if not (c.sent or c.received or c.retransmissions):
            continue  # a host with only other events
        latency = f", latency {c.latency.render_ms()}" if c.latency.count else ""
        lines.append(
            f"  {name:<18} sent {c.sent}, received {c.received}, "
            f"retransmissions {c.retransmissions}{latency}"
        )
    if a.other_events:
        lines.append(f"  other events: {_reasons(a.other_events)}")
    if a.status:
        lines += ["", "status (the last status event of each host)"]
        for name, fields in a.status.items():
            shown = ", ".join(f"{key} {_scalar(value)}" for key, value in fields.items())
            lines.append(f"  {name:<18} {shown or '-'}")
    return "\n".join(lines)


def _scalar(value: Scalar) -> str:
    if value is None:
        return "-"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out = []
    for row in rows:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:-1], widths[1:-1], strict=True)]
        out.append(("  " + "  ".join([*cells, row[-1]])).rstrip())
    return out


def _percent(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio * 100:.2f}%"


def _reasons(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{reason} {count}" for reason, count in counts.items()) or "-"


def _sorted(table: Mapping[str, Counter[str]]) -> dict[str, dict[str, int]]:
    return {key: dict(sorted(table[key].items())) for key in sorted(table)}


def _num(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TraceError(f"expected a number in the trace, got {value!r}")
    return float(value)
