"""The virtual network: hosts, links, NATs and the packet scheduler under Trio.

What this module owns: topology (hosts with an up and a down
:class:`~netsim.models.LinkDirection` each, NATs, public and private address
spaces), routing, timeline operations, the scheduler task that moves datagrams
along their path in virtual time, and recording each datagram's fate.

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

Scheduler. One task, started by :func:`open_network` in a nursery it owns,
keeps a heap of ``(time, sequence, stage, packet)``: ties in time are broken by
insertion order, so processing order is a pure function of the program. It
sleeps in a cancel scope whose deadline is the earliest entry; scheduling an
earlier entry just moves that deadline (no extra task, no extra wake-up). The
scheduler calls :attr:`Network.on_progress` after handling due events and never
spawns tasks, so observing progress cannot change a run.

Determinism: each link direction draws from ``derive_rng(seed, "link", host,
"up"|"down")``, each NAT from ``derive_rng(seed, "nat", name)``, ephemeral ports
from ``derive_rng(seed, "ports", host)``; :func:`open_network` pins Trio's task
scheduling with :func:`netsim.determinism.deterministic_scheduling` while open;
nothing iterates over hash-ordered sets.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import math
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

import trio

from netsim.determinism import deterministic_scheduling
from netsim.models import DropReason, LinkDirection, LinkProfile, LinkStatistics, derive_rng
from netsim.nat import Nat, NatConfig, NatStatistics
from netsim.socket import Address, Host
from netsim.trace import Recorder

__all__ = [
    "Address",
    "Host",
    "Network",
    "NetworkStatistics",
    "PacketFilter",
    "PacketInfo",
    "open_network",
]


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


@dataclass(frozen=True, slots=True)
class NetworkStatistics:
    """Counters of a network since it was opened.

    Attributes:
        packets_sent: datagrams handed to the network by sockets.
        packets_delivered: copies queued on a receiving socket.
        bytes_sent: payload bytes sent.
        bytes_delivered: payload bytes delivered.
        duplicated: delivered copies that were link duplicates.
        corrupted: delivered copies with a flipped bit.
        drops: dropped copies by reason, wherever they died.
        links: per link direction statistics, keyed ``"<host>.up"``/``"<host>.down"``.
        nats: per NAT statistics, keyed by NAT name.
    """

    packets_sent: int
    packets_delivered: int
    bytes_sent: int
    bytes_delivered: int
    duplicated: int
    corrupted: int
    drops: Mapping[DropReason, int]
    links: Mapping[str, LinkStatistics]
    nats: Mapping[str, NatStatistics]

    @property
    def packets_dropped(self) -> int:
        """Total dropped copies."""
        return sum(self.drops.values())


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


class _Counters:
    __slots__ = ("bytes_delivered", "bytes_sent", "corrupted", "delivered", "drops", "dup", "sent")

    def __init__(self) -> None:
        self.sent = self.delivered = self.bytes_sent = self.bytes_delivered = 0
        self.dup = self.corrupted = 0
        self.drops: dict[DropReason, int] = {}


class Network:
    """A virtual network; obtain one from :func:`open_network`.

    All methods take effect at the current virtual time
    (``trio.current_time()``) and must be called from inside the Trio run.

    Attributes:
        seed: the seed every random stream of this network derives from.
        on_progress: optional ``fn(now)`` called by the scheduler task after it
            handles the events due at ``now`` (only when packets are in flight;
            must not block or start tasks).
    """

    def __init__(self, seed: int, *, recorder: Recorder | None = None) -> None:
        self.seed = seed
        self.on_progress: Callable[[float], None] | None = None
        self._recorder = recorder
        self._hosts: dict[str, Host] = {}
        self._nats: dict[str, Nat] = {}
        self._public: dict[str, Host | Nat] = {}
        self._private: dict[tuple[str, str], Host] = {}
        self._sides: dict[str, int] = {}
        self._filters: list[PacketFilter] = []
        self._heap: list[tuple[float, int, Stage, _Packet]] = []
        self._sequence = itertools.count()
        self._packet_ids = itertools.count(1)
        self._wait_scope: trio.CancelScope | None = None
        self._counters = _Counters()

    # -- topology -----------------------------------------------------------

    def add_nat(self, name: str, public_ip: str, config: NatConfig = NatConfig()) -> Nat:  # noqa: B008
        """Add a NAT with a public address.

        Args:
            name: unique among NATs and hosts.
            public_ip: its address in the public space.
            config: mapping/filtering behaviour and timeouts.

        Returns:
            The :class:`~netsim.nat.Nat` (for ``mappings()``/``statistics()``).

        Raises:
            ValueError: duplicate name or public address.
        """
        self._check_new_name(name)
        self._check_public_free(public_ip)
        nat = Nat(name, public_ip, config, derive_rng(self.seed, "nat", name))
        self._nats[name] = nat
        self._public[public_ip] = nat
        self._op("add_nat", name=name, public_ip=public_ip, config=config.to_mapping())
        return nat

    def add_host(
        self,
        name: str,
        address: str,
        *,
        up: LinkProfile = LinkProfile(),  # noqa: B008
        down: LinkProfile = LinkProfile(),  # noqa: B008
        nat: str | None = None,
    ) -> Host:
        """Add a host with its access links.

        Args:
            name: unique among hosts and NATs.
            address: public address, or private address if ``nat`` is given.
            up: profile of the host -> network direction.
            down: profile of the network -> host direction.
            nat: name of the NAT the host sits behind, or None.

        Returns:
            The new :class:`Host`.

        Raises:
            ValueError: duplicate name/address or unknown NAT.
        """
        self._check_new_name(name)
        self._claim_address(name, address, nat)
        links = (
            LinkDirection(up, derive_rng(self.seed, "link", name, "up")),
            LinkDirection(down, derive_rng(self.seed, "link", name, "down")),
        )
        host = Host(
            name,
            address,
            nat,
            links=links,
            port_rng=derive_rng(self.seed, "ports", name),
            send=self._send,
        )
        self._hosts[name] = host
        self._place(host)
        self._op(
            "add_host",
            host=name,
            address=address,
            nat=nat,
            up=up.to_mapping(),
            down=down.to_mapping(),
        )
        return host

    def host(self, name: str) -> Host:
        """Return the host called ``name`` (KeyError if unknown)."""
        return self._hosts[name]

    def nat(self, name: str) -> Nat:
        """Return the NAT called ``name`` (KeyError if unknown)."""
        return self._nats[name]

    @property
    def hosts(self) -> tuple[Host, ...]:
        """All hosts in creation order."""
        return tuple(self._hosts.values())

    # -- timeline operations --------------------------------------------------

    def set_link(
        self, host: str, *, up: LinkProfile | None = None, down: LinkProfile | None = None
    ) -> None:
        """Change a host's link profiles now; queues and burst state carry over.

        Raises:
            KeyError: unknown host.
        """
        target = self._hosts[host]
        if up is not None:
            target._up.set_profile(up)
        if down is not None:
            target._down.set_profile(down)
        self._op(
            "set_link",
            host=host,
            up=None if up is None else up.to_mapping(),
            down=None if down is None else down.to_mapping(),
        )

    def move_host(self, host: str, address: str, *, nat: str | None = None) -> None:
        """Move a host to another network (e.g. Wi-Fi -> cellular) now.

        The host gets ``address`` (behind ``nat`` if given, else public). Its
        sockets keep their ports; datagrams in flight to the old address are
        dropped (``no-route``) when they arrive.

        Raises:
            KeyError: unknown host.
            ValueError: address taken or unknown NAT.
        """
        target = self._hosts[host]
        old_key = (target._nat, target._address)
        if old_key == (nat, address):
            return
        self._claim_address(host, address, nat)
        if target._nat is None:
            del self._public[target._address]
        else:
            del self._private[(target._nat, target._address)]
        target._address, target._nat = address, nat
        self._place(target)
        self._op("move_host", host=host, address=address, nat=nat)

    def rebind_nat(self, name: str, new_public_ip: str | None = None) -> None:
        """Make a NAT move every live mapping to a new external port (and address).

        Raises:
            KeyError: unknown NAT.
            ValueError: ``new_public_ip`` already used by another host or NAT.
        """
        nat = self._nats[name]
        old_ip = nat.public_ip
        if new_public_ip is not None and new_public_ip != old_ip:
            self._check_public_free(new_public_ip)
        nat.rebind(trio.current_time(), new_public_ip)
        if nat.public_ip != old_ip:
            del self._public[old_ip]
            self._public[nat.public_ip] = nat
        self._record(trio.current_time(), "nat", nat=name, event="rebind", public_ip=nat.public_ip)

    def partition(self, *groups: Iterable[str]) -> None:
        """Split the core: packets between sides in different groups are dropped.

        Replaces any previous partition. Each group lists host or NAT names; a
        host behind a NAT stands for its NAT's side (see module docstring).

        Raises:
            KeyError: unknown name.
            ValueError: one side placed in two groups.
        """
        sides: dict[str, int] = {}
        listed: list[list[str]] = []
        for index, group in enumerate(groups):
            names = list(group)
            listed.append(names)
            for name in names:
                side = self._side_of_name(name)
                if sides.setdefault(side, index) != index:
                    raise ValueError(f"{name!r} (side {side!r}) is in two partition groups")
        self._sides = sides
        self._op("partition", groups=listed)

    def heal(self) -> None:
        """Remove the partition."""
        self._sides = {}
        self._op("heal")

    def add_filter(self, fn: PacketFilter) -> None:
        """Install a routing hook, called for each packet crossing the core after
        the partition check, in installation order; the first reason returned
        drops the packet."""
        self._filters.append(fn)
        self._op("add_filter", name=getattr(fn, "__qualname__", type(fn).__qualname__))

    def statistics(self) -> NetworkStatistics:
        """Return a snapshot of the network's counters."""
        c = self._counters
        links: dict[str, LinkStatistics] = {}
        for name, host in self._hosts.items():
            links[f"{name}.up"] = host._up.statistics()
            links[f"{name}.down"] = host._down.statistics()
        return NetworkStatistics(
            c.sent,
            c.delivered,
            c.bytes_sent,
            c.bytes_delivered,
            c.dup,
            c.corrupted,
            dict(c.drops),
            links,
            {name: nat.statistics() for name, nat in self._nats.items()},
        )

    # -- packet path ----------------------------------------------------------

    def _send(self, host: Host, src: Address, data: bytes, dst: Address) -> None:
        """Stage 1 (in the sending task, at the send time): the up link."""
        now = trio.current_time()
        packet_id = next(self._packet_ids)
        c = self._counters
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
            target = self._private.get((src_nat, packet.dst[0]))
        if target is not None:  # direct route between hosts behind the same NAT
            packet.seen_src = packet.src
            src_side = dst_side = target.name
        else:
            packet.seen_src = packet.src
            if src_nat is not None:
                packet.seen_src = self._outbound(self._nats[src_nat], packet, now)
            src_side = src_nat or packet.src_host
            target = self._public.get(packet.dst[0])
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
        sides = self._sides
        if sides and src_side != dst_side:
            src_group, dst_group = sides.get(src_side), sides.get(dst_side)
            if src_group is not None and dst_group is not None and src_group != dst_group:
                return DropReason.PARTITION
        if self._filters:
            info = PacketInfo(
                packet.id, packet.seen_src, packet.dst, len(packet.data), packet.sent_at
            )
            for fn in self._filters:
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
        host = self._private.get((nat.name, result[0]))
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
        c = self._counters
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
        drops = self._counters.drops
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

    async def _run_scheduler(self) -> None:
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

    # -- bookkeeping ----------------------------------------------------------

    def _record(self, t: float, kind: str, **fields: object) -> None:
        if self._recorder is not None:
            self._recorder.record(t, kind, **fields)

    def _op(self, op: str, **fields: object) -> None:
        if self._recorder is not None:
            self._recorder.record(trio.current_time(), "op", op=op, **fields)

    def _check_new_name(self, name: str) -> None:
        if name in self._hosts or name in self._nats:
            raise ValueError(f"name {name!r} is already used by a host or NAT")

    def _check_public_free(self, address: str) -> None:
        if address in self._public:
            raise ValueError(
                f"public address {address} is already used by {self._public[address].name!r}"
            )

    def _claim_address(self, name: str, address: str, nat: str | None) -> None:
        if nat is None:
            self._check_public_free(address)
            return
        if nat not in self._nats:
            raise ValueError(f"host {name!r}: unknown NAT {nat!r}")
        if (nat, address) in self._private:
            raise ValueError(f"address {address} behind NAT {nat!r} is already used")

    def _place(self, host: Host) -> None:
        if host._nat is None:
            self._public[host._address] = host
        else:
            self._private[(host._nat, host._address)] = host

    def _side_of_name(self, name: str) -> str:
        if name in self._nats:
            return name
        host = self._hosts.get(name)
        if host is None:
            raise KeyError(f"unknown host or NAT {name!r}")
        return host._nat or host.name


@asynccontextmanager
async def open_network(seed: int, *, recorder: Recorder | None = None) -> AsyncIterator[Network]:
    """Open a virtual network whose scheduler runs while the context is open.

    Pins Trio's scheduling (:func:`~netsim.determinism.deterministic_scheduling`
    with ``seed``) for the lifetime of the context, so a simulation run under a
    ``MockClock`` is replayable. On exit the scheduler is cancelled; datagrams
    still in flight are discarded. An exception from the body propagates as
    itself (not wrapped in an ExceptionGroup).

    Args:
        seed: seed of every random stream in the network.
        recorder: where to record datagram fates and operations (None: nothing).

    Yields:
        The :class:`Network`; add NATs and hosts, then create sockets.
    """
    network = Network(seed, recorder=recorder)
    with deterministic_scheduling(seed):
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(network._run_scheduler, name="netsim-scheduler")
                try:
                    yield network
                finally:
                    nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            if len(group.exceptions) == 1 and not isinstance(
                group.exceptions[0], BaseExceptionGroup
            ):
                inner = group.exceptions[0]
                raise inner from inner.__cause__
            raise
