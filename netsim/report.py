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
  ``msg_received`` of an id; ``retransmissions`` = ``retransmit`` events. Also per host and
  counts of every other event name.

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

from netsim.trace import TraceError, TraceEvent

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


@dataclass(frozen=True, slots=True)
class HostAppCounts:
    sent: int = 0
    received: int = 0
    retransmissions: int = 0


@dataclass(frozen=True, slots=True)
class AppSummary:
    sent: int
    received: int
    duplicates: int
    retransmissions: int
    latency: Percentiles
    hosts: Mapping[str, HostAppCounts]
    other_events: Mapping[str, int]

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
                    }
                    for name, c in self.app.hosts.items()
                },
                "other_events": dict(self.app.other_events),
            },
        }


class Topology:
    """Who is at which address, replayed from ``op`` and ``nat`` trace events."""

    def __init__(self) -> None:
        self.host_at: dict[str, str] = {}  # ip -> host name (latest placement)
        self.address_of: dict[str, str] = {}  # host -> ip
        self.nat_at: dict[str, str] = {}  # public ip -> NAT name
        self.private_of: dict[str, str] = {}  # NAT public "ip:port" -> private "ip:port"

    def observe(self, event: TraceEvent) -> None:
        f = event.fields
        if event.kind == "op" and f.get("op") in ("add_host", "move_host"):
            host, address = str(f.get("host")), str(f.get("address"))
            old = self.address_of.get(host)
            if old is not None and self.host_at.get(old) == host:
                del self.host_at[old]
            self.host_at[address], self.address_of[host] = host, address
        elif event.kind == "op" and f.get("op") == "add_nat":
            self.nat_at[str(f.get("public_ip"))] = str(f.get("name"))
        elif event.kind == "nat" and f.get("event") == "mapping":
            self.private_of[str(f.get("public"))] = str(f.get("private"))
        elif event.kind == "nat" and f.get("event") == "rebind":
            self.nat_at[str(f.get("public_ip"))] = str(f.get("nat"))

    def name(self, endpoint: str) -> str:
        """The host (or ``nat:NAME``, or the address) behind an ``ip:port`` endpoint."""
        ip = endpoint.rpartition(":")[0]
        if ip in self.host_at:
            return self.host_at[ip]
        private = self.private_of.get(endpoint)
        if private is not None and private.rpartition(":")[0] in self.host_at:
            return self.host_at[private.rpartition(":")[0]]
        if ip in self.nat_at:
            return f"nat:{self.nat_at[ip]}"
        return ip


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
    )


def receiver_of(topology: Topology, kind: str, fields: Mapping[str, object]) -> str | None:
    """The receiving host a ``deliver`` (its ``dst``) or ``drop`` (``down:``/``host:``) names."""
    if kind == "deliver" and "dst" in fields:
        return topology.name(str(fields["dst"]))
    where = str(fields.get("where", ""))
    if where.startswith(("down:", "host:")):
        return where.partition(":")[2]
    return None


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


def packet_flows(events: Iterable[TraceEvent]) -> dict[object, str]:
    """The flow name (``"a -> b"``) of every datagram id, labelled as `summarize` does."""
    topology = Topology()
    flows: dict[object, tuple[str, str]] = {}
    for event in events:
        f = event.fields
        if event.kind == "send":
            flows[f.get("id")] = (topology.name(str(f["src"])), topology.name(str(f["dst"])))
        elif event.kind in ("deliver", "drop") and f.get("id") in flows:
            receiver = receiver_of(topology, event.kind, f)
            if receiver is not None:
                flows[f.get("id")] = (flows[f.get("id")][0], receiver)
        topology.observe(event)
    return {packet: f"{src} -> {dst}" for packet, (src, dst) in flows.items()}


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
                self.received_at[message] = event.t
        elif name == "retransmit":
            counts["retransmissions"] += 1
            self.retransmissions += 1
        else:
            self.other[name] += 1

    def summary(self) -> AppSummary:
        delivered = [m for m in self.sent_at if m in self.received_at]
        latency = Percentiles.of(self.received_at[m] - self.sent_at[m] for m in delivered)
        hosts = {
            name: HostAppCounts(c["sent"], c["received"], c["retransmissions"])
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
        )


def render_json(summary: Summary, header: Mapping[str, object] | None = None) -> str:
    """The summary (and optional run facts such as scenario, seed, hash) as one JSON object."""
    return json.dumps({**(header or {}), **summary.to_mapping()}, sort_keys=False)


def render_text(summary: Summary, title: str | None = None) -> str:
    """A human-readable report: flows, drops by place, NATs, app figures."""
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
        lines.append(
            f"  {name:<18} sent {c.sent}, received {c.received}, "
            f"retransmissions {c.retransmissions}"
        )
    if a.other_events:
        lines.append(f"  other events: {_reasons(a.other_events)}")
    return "\n".join(lines)


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
