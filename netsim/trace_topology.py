"""Who is where, as a trace tells it: host names for the endpoints in trace events.

What it owns: `Topology`, replayed from a trace's own ``op`` events (``add_host``,
``move_host``, ``add_nat``) and NAT ``mapping``/``rebind`` events, so that reports and plots
name hosts from the trace alone; `receiver_of`, the receiving host a ``deliver`` or ``drop``
event names; `packet_flows`, the flow (``"a -> b"``) of every datagram id.

Rules it keeps: a packet to a NAT's public endpoint is attributed to the host behind it: the
host at the mapping's private address, or, once that host moved away, the host the mapping
was made for (``nat:NAME`` when no mapping is known there); an address nobody holds stays an
address. Mappings are known from NAT ``mapping`` events and, for endpoints that moved without
one (a NAT ``rebind`` moves every mapping to a new port), from a datagram delivered with a
source other than the one it was sent from. Nothing here reads anything but events.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from netsim.trace import TraceEvent

__all__ = ["Topology", "packet_flows", "receiver_of"]


class Topology:
    """Who is at which address, replayed from ``op`` and ``nat`` trace events."""

    def __init__(self) -> None:
        self.host_at: dict[str, str] = {}  # ip -> host name (latest placement)
        self.address_of: dict[str, str] = {}  # host -> ip
        self.nat_at: dict[str, str] = {}  # public ip -> NAT name
        self.private_of: dict[str, str] = {}  # NAT public "ip:port" -> private "ip:port"
        self.owner_of: dict[str, str] = {}  # NAT public "ip:port" -> host it was made for
        self._sent_from: dict[object, str] = {}  # datagram id -> its sender's endpoint

    def observe(self, event: TraceEvent) -> None:
        """Update from one event (call it for every event, in order)."""
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
            self._learn(str(f.get("public")), str(f.get("private")))
        elif event.kind == "send":
            self._sent_from[f.get("id")] = str(f.get("src"))
        elif event.kind == "deliver" and not f.get("dup"):
            sent_from = self._sent_from.pop(f.get("id"), None)
            seen = str(f.get("src"))
            if sent_from is not None and seen != sent_from and seen not in self.private_of:
                self._learn(seen, sent_from)
        elif event.kind == "drop" and not f.get("dup"):
            self._sent_from.pop(f.get("id"), None)
        elif event.kind == "nat" and f.get("event") == "rebind":
            self.nat_at[str(f.get("public_ip"))] = str(f.get("nat"))

    def _learn(self, public: str, private: str) -> None:
        self.private_of[public] = private
        private_ip = private.rpartition(":")[0]
        if private_ip in self.host_at:
            self.owner_of[public] = self.host_at[private_ip]

    def name(self, endpoint: str) -> str:
        """The host (or ``nat:NAME``, or the address) behind an ``ip:port`` endpoint."""
        ip = endpoint.rpartition(":")[0]
        if ip in self.host_at:
            return self.host_at[ip]
        private = self.private_of.get(endpoint)
        if private is not None and private.rpartition(":")[0] in self.host_at:
            return self.host_at[private.rpartition(":")[0]]
        if endpoint in self.owner_of:
            return self.owner_of[endpoint]
        if ip in self.nat_at:
            return f"nat:{self.nat_at[ip]}"
        return ip


def receiver_of(topology: Topology, kind: str, fields: Mapping[str, object]) -> str | None:
    """The receiving host a ``deliver`` (its ``dst``) or ``drop`` (``down:``/``host:``) names."""
    if kind == "deliver" and "dst" in fields:
        return topology.name(str(fields["dst"]))
    where = str(fields.get("where", ""))
    if where.startswith(("down:", "host:")):
        return where.partition(":")[2]
    return None


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
