"""The virtual network: hosts, links, NATs and what happens to them, under Trio.

What this module owns: the topology and its life. :class:`Network` adds hosts
(each with an up and a down :class:`~netsim.models.LinkDirection`) and NATs,
keeps the public and private address spaces, applies timeline operations
(``set_link``, ``move_host``, ``rebind_nat``, ``partition``, ``heal``,
``add_filter``), records each as an ``op`` trace event, and reports
:class:`NetworkStatistics`. :func:`open_network` runs its scheduler task. The
packet path itself (routing, NAT traversal, partition and filter checks, the
scheduler, each datagram's fate) is :class:`netsim.routing.Router`; the routing
hook types :class:`PacketInfo` and :data:`PacketFilter` are defined there and
re-exported here, as are :class:`Host` and ``Address`` from :mod:`netsim.socket`.

Addressing rules kept here. Public hosts and NATs share one public address
space (each address used once). A host behind a NAT has a private address,
unique among the hosts behind that NAT only. Names are unique across hosts and
NATs. How packets are routed between these spaces (direct routes behind one
NAT, hairpins, no-route) is described in :mod:`netsim.routing`.

Partitions work on *sides* of the core: a public host is its own side, all
hosts behind a NAT share the NAT's side. ``partition(["client"], ["server"])``
drops (``partition``) any packet between sides in different groups; sides not
named are unaffected; traffic routed directly behind one NAT is never affected.
Host names are resolved to sides when ``partition`` is called.

Determinism: each link direction draws from ``derive_rng(seed, "link", host,
"up"|"down")``, each NAT from ``derive_rng(seed, "nat", name)``, ephemeral ports
from ``derive_rng(seed, "ports", host)``; :func:`open_network` pins Trio's task
scheduling with :func:`netsim.determinism.deterministic_scheduling` while open;
nothing iterates over hash-ordered sets.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

import trio

from netsim.determinism import deterministic_scheduling
from netsim.models import DropReason, LinkDirection, LinkProfile, LinkStatistics, derive_rng
from netsim.nat import Nat, NatConfig, NatStatistics
from netsim.routing import PacketFilter, PacketInfo, Router, RoutingTables
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
        self._recorder = recorder
        self._hosts: dict[str, Host] = {}
        self._tables = RoutingTables()
        self._router = Router(self._tables, recorder)

    @property
    def on_progress(self) -> Callable[[float], None] | None:
        """The progress hook (see the class docstring); settable, None to remove."""
        return self._router.on_progress

    @on_progress.setter
    def on_progress(self, fn: Callable[[float], None] | None) -> None:
        self._router.on_progress = fn

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
        self._tables.nats[name] = nat
        self._tables.public[public_ip] = nat
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
            send=self._router.send,
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
        return self._tables.nats[name]

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
            del self._tables.public[target._address]
        else:
            del self._tables.private[(target._nat, target._address)]
        target._address, target._nat = address, nat
        self._place(target)
        self._op("move_host", host=host, address=address, nat=nat)

    def rebind_nat(self, name: str, new_public_ip: str | None = None) -> None:
        """Make a NAT move every live mapping to a new external port (and address).

        Raises:
            KeyError: unknown NAT.
            ValueError: ``new_public_ip`` already used by another host or NAT.
        """
        nat = self._tables.nats[name]
        old_ip = nat.public_ip
        if new_public_ip is not None and new_public_ip != old_ip:
            self._check_public_free(new_public_ip)
        nat.rebind(trio.current_time(), new_public_ip)
        if nat.public_ip != old_ip:
            del self._tables.public[old_ip]
            self._tables.public[nat.public_ip] = nat
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
        self._tables.sides = sides
        self._op("partition", groups=listed)

    def heal(self) -> None:
        """Remove the partition."""
        self._tables.sides = {}
        self._op("heal")

    def add_filter(self, fn: PacketFilter) -> None:
        """Install a routing hook, called for each packet crossing the core after
        the partition check, in installation order; the first reason returned
        drops the packet."""
        self._tables.filters.append(fn)
        self._op("add_filter", name=getattr(fn, "__qualname__", type(fn).__qualname__))

    def statistics(self) -> NetworkStatistics:
        """Return a snapshot of the network's counters."""
        c = self._router.counters
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
            {name: nat.statistics() for name, nat in self._tables.nats.items()},
        )

    # -- bookkeeping ----------------------------------------------------------

    def _record(self, t: float, kind: str, **fields: object) -> None:
        if self._recorder is not None:
            self._recorder.record(t, kind, **fields)

    def _op(self, op: str, **fields: object) -> None:
        if self._recorder is not None:
            self._recorder.record(trio.current_time(), "op", op=op, **fields)

    def _check_new_name(self, name: str) -> None:
        if name in self._hosts or name in self._tables.nats:
            raise ValueError(f"name {name!r} is already used by a host or NAT")

    def _check_public_free(self, address: str) -> None:
        if address in self._tables.public:
            raise ValueError(
                f"public address {address} is already used by {self._tables.public[address].name!r}"
            )

    def _claim_address(self, name: str, address: str, nat: str | None) -> None:
        if nat is None:
            self._check_public_free(address)
            return
        if nat not in self._tables.nats:
            raise ValueError(f"host {name!r}: unknown NAT {nat!r}")
        if (nat, address) in self._tables.private:
            raise ValueError(f"address {address} behind NAT {nat!r} is already used")

    def _place(self, host: Host) -> None:
        if host._nat is None:
            self._tables.public[host._address] = host
        else:
            self._tables.private[(host._nat, host._address)] = host

    def _side_of_name(self, name: str) -> str:
        if name in self._tables.nats:
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
                nursery.start_soon(network._router.run, name="netsim-scheduler")
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
