"""The packet path of the virtual network: routing, NAT traversal, the core's checks, the scheduler.

What this module owns: :class:`Router`, which carries every datagram from the
sender's up link through the core to the receiving socket in virtual time,
counts it and records its fate (``send``, ``deliver``, ``drop`` and ``nat``
trace events); :class:`RoutingTables`, what it routes by; and the routing hook
types :class:`PacketInfo` and :data:`PacketFilter`. The topology itself (adding
and moving hosts and NATs, partitions, filters) is managed by
:class:`netsim.network.Network`, the only writer of the tables, which also
re-exports the hook types.

Packet path. Every stage is evaluated at the virtual time the datagram reaches
it::

    sendto (t0)  -> src host's up link      transmit(data, t0) -> arrival t1 (per copy)
    core (t1)    -> src NAT outbound        (skipped for direct routes, below)
                 -> route the destination   (public host / NAT public IP / none: no-route)
                 -> partition, filters      (PacketInfo carries public src and dst)
                 -> dst NAT inbound         (nat-no-mapping / nat-expired / nat-filtered)
                 -> dst host's down link    transmit(data, t1) -> arrival t2 (per copy)
    socket (t2)  -> host still at that address? (else no-route) -> socket on the port?
                    (else port-unreachable) -> receive buffer room? (else rcvbuf) -> queued

Addressing. Public hosts and NATs share one public address space (each address
used once). A host behind a NAT has a private address, unique among the hosts
behind that NAT only. A packet from a host behind NAT ``N`` to the private
address of another host behind ``N`` (or to itself) is routed directly, without
NAT translation (no hairpinning needed); it still crosses the sender's up and
the receiver's down link. Private addresses are unreachable from anywhere else
(no-route). A packet to a NAT's public address is translated by the NAT to a
private destination; from behind that same NAT this is a hairpin (out through
the NAT and back in, subject to its filtering).

Partitions work on *sides* of the core: a public host is its own side, all
hosts behind a NAT share the NAT's side. ``partition(["client"], ["server"])``
drops (``partition``) any packet between sides in different groups; sides not
named are unaffected; traffic routed directly behind one NAT is never affected.
Host names are resolved to sides when ``partition`` is called.

Scheduler. One task (:meth:`Router.run`, started by
:func:`netsim.network.open_network` in a nursery it owns) keeps a heap of
``(time, sequence, stage, packet)``: ties in time are broken by insertion order,
so processing order is a pure function of the program. It sleeps in a cancel
scope whose deadline is the earliest entry; scheduling an earlier entry just
moves that deadline (no extra task, no extra wake-up). The scheduler calls
:attr:`Router.on_progress` after handling due events and never spawns tasks, so
observing progress cannot change a run.

Rules kept here: the Router never changes the topology, it only reads the
tables (the partition and filters in force when a packet crosses the core
decide its fate); nothing iterates over hash-ordered sets; the only randomness
is that of the link directions and NATs it calls.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from netsim.models import DropReason, LinkDirection
from netsim.nat import Nat
from netsim.socket import Address, Host
from netsim.trace import Recorder

__all__ = ["PacketFilter", "PacketInfo", "Router", "RoutingTables"]


@dataclass(frozen=True, slots=True)
class PacketInfo:
    """What a :data:`PacketFilter` sees of a datagram crossing the core.

    Attributes:
        id: the datagram id (as in the trace; copies share it).
        src: public source (after the sender's NAT; private on direct routes).
        dst: destination as addressed by the sender (before the receiver's NAT).
        size: payload bytes.
        sent_at: virtual time of ``sendto``.
    """

    id: int
    src: Address
    dst: Address
    size: int
    sent_at: float


PacketFilter = Callable[[PacketInfo, float], DropReason | None]
"""Routing hook: ``fn(info, now)`` returns a DropReason to drop the packet, None to pass."""


@dataclass(slots=True)
class RoutingTables:
    """What the :class:`Router` routes by; :class:`~netsim.network.Network` keeps it current.

    Attributes:
        nats: every NAT by name.
        public: the public address space: address -> public host or NAT.
        private: hosts behind NATs: (NAT name, private address) -> host.
        sides: partition groups: side (public host or NAT name) -> group index;
            empty when there is no partition.
        filters: routing hooks in installation order.
    """

    nats: dict[str, Nat] = field(default_factory=dict)
    public: dict[str, Host | Nat] = field(default_factory=dict)
    private: dict[tuple[str, str], Host] = field(default_factory=dict)
    sides: dict[str, int] = field(default_factory=dict)
    filters: list[PacketFilter] = field(default_factory=list)


def _fmt(address: Address) -> str:
    return f"{address[0]}:{address[1]}"


@dataclass(slots=True)
class _Packet:
    """One copy of a datagram in flight (mutable: later stages fill the routing fields)."""

    id: int
    data: bytes
    src_host: str
    src_nat: str | None
    src: Address
    dst: Address
    sent_at: float
    dup: bool = False
    corrupt: bool = False
    seen_src: Address = ("", 0)
    dst_host: Host | None = None
    dst_key: tuple[str | None, str] = (None, "")
    final_dst: Address = ("", 0)


Stage = Callable[[_Packet, float], None]


class PacketCounters:
    """Network-wide datagram counters, read by ``Network.statistics``."""

    __slots__ = ("bytes_delivered", "bytes_sent", "corrupted", "delivered", "drops", "dup", "sent")

    def __init__(self) -> None:
        self.sent = self.delivered = self.bytes_sent = self.bytes_delivered = 0
        self.dup = self.corrupted = 0
        self.drops: dict[DropReason, int] = {}


class Router:
    """Moves datagrams along their path in virtual time (see the module docstring).

    Args:
        tables: the topology to route by (read at each packet, never written).
        recorder: where to record datagram fates (None: nothing).

    Attributes:
        on_progress: optional ``fn(now)`` called by :meth:`run` after it handles
            the events due at ``now``.
        counters: the network-wide datagram counters.
    """

    def __init__(self, tables: RoutingTables, recorder: Recorder | None) -> None:
        self.on_progress: Callable[[float], None] | None = None
        self.counters = PacketCounters()
        self._tables = tables
        self._recorder = recorder
        self._heap: list[tuple[float, int, Stage, _Packet]] = []
        self._sequence = itertools.count()
        self._packet_ids = itertools.count(1)
        self._wait_scope: trio.CancelScope | None = None

    # -- packet path ----------------------------------------------------------

    def send(self, host: Host, src: Address, data: bytes, dst: Address) -> None:
        """Stage 1 (in the sending task, at the send time): the up link.

        This is the ``send`` function the network gives every :class:`Host`.
        """
        now = trio.current_time()
        packet_id = next(self._packet_ids)
        c = self.counters
        c.sent += 1
        c.bytes_sent += len(data)
        rec = self._recorder
        if rec is not None:
            rec.record(now, "send", id=packet_id, src=_fmt(src), dst=_fmt(dst), size=len(data))
        packet = _Packet(packet_id, data, host.name, host._nat, src, dst, now)
        self._transmit(host._up, "up:" + host.name, packet, now, self._cross_core)

    def _transmit(
        self, link: LinkDirection, where: str, packet: _Packet, now: float, stage: Stage
    ) -> None:
        verdict = link.transmit(packet.data, now)
        if verdict.dropped is not None:
            self._drop(packet, now, verdict.dropped, where)
            return
        for index, delivery in enumerate(verdict.deliveries):
            copy = packet if index == 0 else dataclasses.replace(packet)
            copy.data = delivery.data
            copy.dup = copy.dup or delivery.duplicate
            copy.corrupt = copy.corrupt or delivery.corrupted
            self._schedule(delivery.at, stage, copy)

    def _cross_core(self, packet: _Packet, now: float) -> None:
        """Stage 2 (at arrival from the up link): NATs, routing, partition, filters."""
        src_nat = packet.src_nat
        target: Host | Nat | None = None
        if src_nat is not None:
            target = self._tables.private.get((src_nat, packet.dst[0]))
        if target is not None:  # direct route between hosts behind the same NAT
            packet.seen_src = packet.src
            src_side = dst_side = target.name
        else:
            packet.seen_src = packet.src
            if src_nat is not None:
                packet.seen_src = self._outbound(self._tables.nats[src_nat], packet, now)
            src_side = src_nat or packet.src_host
            target = self._tables.public.get(packet.dst[0])
            if target is None:
                self._drop(packet, now, DropReason.NO_ROUTE, "net")
                return
            dst_side = target.name
        reason = self._core_verdict(packet, now, src_side, dst_side)
        if reason is not None:
            self._drop(packet, now, reason, "net")
            return
        if isinstance(target, Nat):
            host = self._inbound(target, packet, now)
            if host is None:
                return
        else:
            host = target
            packet.final_dst = packet.dst
        packet.dst_host = host
        packet.dst_key = (host._nat, host._address)
        self._transmit(host._down, "down:" + host.name, packet, now, self._arrive)

    def _core_verdict(
        self, packet: _Packet, now: float, src_side: str, dst_side: str
    ) -> DropReason | None:
        sides = self._tables.sides
        if sides and src_side != dst_side:
            src_group, dst_group = sides.get(src_side), sides.get(dst_side)
            if src_group is not None and dst_group is not None and src_group != dst_group:
                return DropReason.PARTITION
        if self._tables.filters:
            info = PacketInfo(
                packet.id, packet.seen_src, packet.dst, len(packet.data), packet.sent_at
            )
            for fn in self._tables.filters:
                reason = fn(info, now)
                if reason is not None:
                    return reason
        return None

    def _outbound(self, nat: Nat, packet: _Packet, now: float) -> Address:
        if self._recorder is None:
            return nat.outbound(packet.src, packet.dst, now)
        before = nat.statistics()
        public = nat.outbound(packet.src, packet.dst, now)
        after = nat.statistics()
        if after.expired != before.expired:
            count = after.expired - before.expired
            self._record(now, "nat", nat=nat.name, event="expired", count=count)
        if after.mappings_created != before.mappings_created:
            self._record(
                now,
                "nat",
                nat=nat.name,
                event="mapping",
                private=_fmt(packet.src),
                public=_fmt(public),
            )
        return public

    def _inbound(self, nat: Nat, packet: _Packet, now: float) -> Host | None:
        result = nat.inbound(packet.dst, packet.seen_src, now)
        if isinstance(result, DropReason):
            if result is DropReason.NAT_EXPIRED:
                self._record(now, "nat", nat=nat.name, event="expired", public=_fmt(packet.dst))
            self._drop(packet, now, result, "nat:" + nat.name)
            return None
        host = self._tables.private.get((nat.name, result[0]))
        if host is None:
            self._drop(packet, now, DropReason.NO_ROUTE, "net")
            return None
        packet.final_dst = result
        return host

    def _arrive(self, packet: _Packet, now: float) -> None:
        """Stage 3 (at arrival from the down link): the receiving socket."""
        host = packet.dst_host
        assert host is not None
        if (host._nat, host._address) != packet.dst_key:
            self._drop(packet, now, DropReason.NO_ROUTE, "net")
            return
        sock = host._listener(packet.final_dst)
        if sock is None:
            self._drop(packet, now, DropReason.PORT_UNREACHABLE, "host:" + host.name)
            return
        if not sock.enqueue(packet.data, packet.seen_src):
            self._drop(packet, now, DropReason.RCVBUF, "host:" + host.name)
            return
        c = self.counters
        c.delivered += 1
        c.bytes_delivered += len(packet.data)
        c.dup += packet.dup
        c.corrupted += packet.corrupt
        rec = self._recorder
        if rec is not None:
            fields: dict[str, object] = {
                "id": packet.id,
                "src": _fmt(packet.seen_src),
                "dst": _fmt(packet.final_dst),
                "size": len(packet.data),
                "delay": now - packet.sent_at,
            }
            if packet.dup:
                fields["dup"] = True
            if packet.corrupt:
                fields["corrupt"] = True
            rec.record(now, "deliver", **fields)

    def _drop(self, packet: _Packet, now: float, reason: DropReason, where: str) -> None:
        drops = self.counters.drops
        drops[reason] = drops.get(reason, 0) + 1
        rec = self._recorder
        if rec is not None:
            fields: dict[str, object] = {"id": packet.id, "reason": reason.value, "where": where}
            if packet.dup:
                fields["dup"] = True
            if packet.corrupt:
                fields["corrupt"] = True
            rec.record(now, "drop", **fields)

    # -- scheduler ------------------------------------------------------------

    def _schedule(self, at: float, stage: Stage, packet: _Packet) -> None:
        heapq.heappush(self._heap, (at, next(self._sequence), stage, packet))
        scope = self._wait_scope
        if scope is not None and at < scope.deadline:
            scope.deadline = at

    async def run(self) -> None:
        """Run the scheduler until cancelled (the network's one scheduler task)."""
        heap = self._heap
        while True:
            now = trio.current_time()
            if heap and heap[0][0] <= now:
                while heap and heap[0][0] <= now:
                    at, _, stage, packet = heapq.heappop(heap)
                    stage(packet, at)
                if self.on_progress is not None:
                    self.on_progress(now)
            with trio.CancelScope(deadline=heap[0][0] if heap else math.inf) as scope:
                self._wait_scope = scope
                try:
                    await trio.sleep_forever()
                finally:
                    self._wait_scope = None

    def _record(self, t: float, kind: str, **fields: object) -> None:
        if self._recorder is not None:
            self._recorder.record(t, kind, **fields)
