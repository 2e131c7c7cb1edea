"""Real UDP impairment proxy: relays datagrams between clients and a server through netsim.models.

What it owns: the sockets, the per-client mappings and the delivery schedule of `netsim proxy`.
Every impairment decision is made by a `netsim.models.LinkDirection`, the same code the virtual
network runs under MockClock; nothing here draws a random number.

Rules it keeps:

- "up" is client -> server, "down" is server -> client. Each client mapping owns one
  `LinkDirection` per direction, seeded `derive_rng(seed, "proxy", str(index), "up"|"down")`,
  `index` counting mappings in creation order: one client and one seed decide alike every run.
- Each mapping has its own upstream socket bound to port 0: the server sees each client as a
  distinct source, and its replies go back to the right client.
- Mappings behave like an endpoint-independent NAT with address-and-port-dependent filtering:
  only the target's datagrams go down (others: `NAT_FILTERED`); only client -> server traffic
  refreshes a mapping; one idle for `nat_timeout_s` expires (checked when used, and closed on
  time by the expiry task); a reply reaching it is dropped (`NAT_EXPIRED`) and the client's next
  datagram opens a new mapping on a new upstream port.
- Time only from `trio.current_time()`. One sender task serves a heap of `(deliver_at, seq,
  item)` and sleeps in `trio.move_on_at` until the earliest; never a task per packet. `seq`
  breaks ties, so equal deadlines leave in arrival order.
- Bounded: at most `max_clients` mappings (beyond: `NAT_NO_MAPPING`) and `max_pending_packets`
  scheduled deliveries (beyond: `QUEUE`). Socket errors (such as an ICMP port unreachable
  reported on a later call) never stop the proxy; they count as `socket_errors`.

Theory of operation: `ImpairmentProxy.serve` binds the listening socket and runs, in one
nursery, the client receive loop, the sender, the expiry task and one upstream receive loop per
mapping. A client datagram finds or opens its mapping and crosses its up `LinkDirection`; the
deliveries go on the heap, to leave from the upstream socket for the target. A datagram on an
upstream socket crosses the down `LinkDirection` and leaves from the listening socket for the
client. Cancellation closes every socket; `statistics()` stays readable afterwards.

The values around the engine live next door and are re-exported here: the configuration
(`ProxyConfig`, `Direction`, the defaults) in `netsim.proxy_config`, the statistics snapshots
in `netsim.proxy_statistics`.
"""

from __future__ import annotations

import contextlib
import heapq
import math
import socket
from dataclasses import dataclass, field
from typing import Any

import trio

from netsim.models import DropReason, LinkDirection, Verdict, derive_rng
from netsim.proxy_config import (
    DEFAULT_MAX_CLIENTS,
    DEFAULT_MAX_PENDING_PACKETS,
    DEFAULT_NAT_TIMEOUT_S,
    Address,
    Direction,
    ProxyConfig,
)
from netsim.proxy_statistics import (
    DirectionCounters,
    DirectionStatistics,
    ProxyMapping,
    ProxyStatistics,
)

__all__ = [
    "DEFAULT_MAX_CLIENTS",
    "DEFAULT_MAX_PENDING_PACKETS",
    "DEFAULT_NAT_TIMEOUT_S",
    "Address",
    "Direction",
    "DirectionStatistics",
    "ImpairmentProxy",
    "ProxyConfig",
    "ProxyMapping",
    "ProxyStatistics",
    "serve_proxy",
]

MAX_DATAGRAM_BYTES = 65535
# Larger kernel buffers absorb bursts from a fast sender; best effort (the OS may cap them).
SOCKET_BUFFER_BYTES = 4 * 1024 * 1024


@dataclass(slots=True, eq=False)
class _ClientMapping:
    """One client's state: its upstream socket, its two link directions, its timer."""

    index: int
    client: Address
    sock: trio.socket.SocketType
    up: LinkDirection
    down: LinkDirection
    expires_at: float = math.inf
    closed: bool = False
    cancel_scope: trio.CancelScope = field(default_factory=trio.CancelScope)


@dataclass(slots=True)
class _Pending:
    """A scheduled delivery: `data` leaves `sock` for `destination`."""

    sock: trio.socket.SocketType
    data: bytes
    destination: Address
    counters: DirectionCounters
    mapping: _ClientMapping | None  # set for "up": sending needs the mapping's socket open


class ImpairmentProxy:
    """The proxy's state and tasks; `serve` runs it, `statistics()` reads it at any time.

    Each instance serves once. Typical use::

        proxy = ImpairmentProxy(config)
        address = await nursery.start(proxy.serve)
    """

    def __init__(self, config: ProxyConfig) -> None:
        self._config = config
        self._counters = {Direction.UP: DirectionCounters(), Direction.DOWN: DirectionCounters()}
        self._mappings: dict[Address, _ClientMapping] = {}
        self._heap: list[tuple[float, int, _Pending]] = []
        self._seq = 0
        self._wakeup = trio.Event()
        self._clients = 0
        self._expired = 0
        self._address: Address | None = None
        self._served = False
        self._epoch = 0.0  # trio time at start: models see time since the proxy started

    @property
    def config(self) -> ProxyConfig:
        """The configuration this proxy was made with."""
        return self._config

    @property
    def address(self) -> Address | None:
        """The bound listening address, `None` until `serve` has bound it."""
        return self._address

    def statistics(self) -> ProxyStatistics:
        """Return a snapshot of every counter (valid during and after `serve`)."""
        return ProxyStatistics(
            up=self._counters[Direction.UP].snapshot(),
            down=self._counters[Direction.DOWN].snapshot(),
            clients=self._clients,
            active_mappings=len(self._mappings),
            mappings_expired=self._expired,
            pending_packets=len(self._heap),
        )

    def mappings(self) -> list[ProxyMapping]:
        """Return the live client mappings, oldest first."""
        return [
            ProxyMapping(m.index, m.client, _address(m.sock.getsockname()), m.expires_at)
            for m in sorted(self._mappings.values(), key=lambda m: m.index)
        ]

    async def serve(
        self, *, task_status: trio.TaskStatus[Address] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Bind the listening socket, report its address and relay until cancelled.

        Args:
            task_status: receives the bound listening address once the proxy is ready.

        Raises:
            OSError: the listening address cannot be bound.
            RuntimeError: this proxy is already serving or has served.
        """
        if self._served:
            raise RuntimeError("an ImpairmentProxy serves only once")
        self._served = True
        self._epoch = trio.current_time()
        with _udp_socket() as listen:
            await listen.bind(self._config.listen)
            self._address = address = _address(listen.getsockname())
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._send_loop)
                    nursery.start_soon(self._expiry_loop)
                    nursery.start_soon(self._client_loop, listen, nursery)
                    task_status.started(address)
            finally:
                for mapping in self._mappings.values():
                    mapping.closed = True
                    mapping.sock.close()
                self._mappings.clear()

    # -- client -> server ---------------------------------------------------------------

    async def _client_loop(self, listen: trio.socket.SocketType, nursery: trio.Nursery) -> None:
        counters = self._counters[Direction.UP]
        target = self._config.target
        while True:
            try:
                data, source = await listen.recvfrom(MAX_DATAGRAM_BYTES)
            except OSError:
                counters.socket_errors += 1
                continue
            now = trio.current_time()
            counters.packets_in += 1
            counters.bytes_in += len(data)
            mapping = await self._mapping_for(_address(source), now, listen, nursery)
            if mapping is None:
                counters.drops[DropReason.NAT_NO_MAPPING] += 1
                continue
            mapping.expires_at = now + self._config.nat_timeout_s
            verdict = mapping.up.transmit(data, now - self._epoch)
            self._schedule(verdict, counters, mapping.sock, target, mapping)

    async def _mapping_for(
        self, client: Address, now: float, listen: trio.socket.SocketType, nursery: trio.Nursery
    ) -> _ClientMapping | None:
        mapping = self._mappings.get(client)
        if mapping is not None and now >= mapping.expires_at:
            self._expire(mapping)
        elif mapping is not None:
            return mapping
        if len(self._mappings) >= self._config.max_clients:
            return None
        seed, index, sock = self._config.seed, self._clients, _udp_socket()
        try:
            await sock.bind((self._config.upstream_bind_host(), 0))
        except OSError:
            sock.close()
            self._counters[Direction.UP].socket_errors += 1
            return None
        except BaseException:
            sock.close()
            raise
        up, down = (
            LinkDirection(self._config.profile(d), derive_rng(seed, "proxy", str(index), str(d)))
            for d in Direction
        )
        mapping = _ClientMapping(index, client, sock, up, down)
        self._clients += 1
        self._mappings[client] = mapping
        nursery.start_soon(self._upstream_loop, listen, mapping)
        return mapping

    # -- server -> client ---------------------------------------------------------------

    async def _upstream_loop(self, listen: trio.socket.SocketType, mapping: _ClientMapping) -> None:
        counters = self._counters[Direction.DOWN]
        with mapping.cancel_scope:
            while True:
                try:
                    data, source = await mapping.sock.recvfrom(MAX_DATAGRAM_BYTES)
                except trio.ClosedResourceError:
                    return
                except OSError:
                    counters.socket_errors += 1
                    continue
                now = trio.current_time()
                counters.packets_in += 1
                counters.bytes_in += len(data)
                if _address(source) != self._config.target:
                    counters.drops[DropReason.NAT_FILTERED] += 1
                    continue
                if now >= mapping.expires_at:
                    counters.drops[DropReason.NAT_EXPIRED] += 1
                    self._expire(mapping)
                    return
                verdict = mapping.down.transmit(data, now - self._epoch)
                self._schedule(verdict, counters, listen, mapping.client, None)

    def _expire(self, mapping: _ClientMapping) -> None:
        if mapping.closed:
            return
        mapping.closed = True
        mapping.cancel_scope.cancel()
        mapping.sock.close()
        del self._mappings[mapping.client]
        self._expired += 1

    async def _expiry_loop(self) -> None:
        # Every mapping expires at its own `expires_at`; one opened later expires later than
        # `now + nat_timeout_s`, so sleeping until the earliest current deadline (or a full
        # timeout when there is none) never oversleeps an expiry.
        while True:
            now = trio.current_time()
            for mapping in [m for m in self._mappings.values() if now >= m.expires_at]:
                self._expire(mapping)
            deadline = min(
                (m.expires_at for m in self._mappings.values()),
                default=now + self._config.nat_timeout_s,
            )
            await trio.sleep_until(deadline)

    # -- delivery schedule ------------------------------------------------------------------

    def _schedule(
        self,
        verdict: Verdict,
        counters: DirectionCounters,
        sock: trio.socket.SocketType,
        destination: Address,
        mapping: _ClientMapping | None,
    ) -> None:
        if verdict.dropped is not None:
            counters.drops[verdict.dropped] += 1
            return
        for delivery in verdict.deliveries:
            counters.duplicated += delivery.duplicate
            counters.corrupted += delivery.corrupted
            if len(self._heap) >= self._config.max_pending_packets:
                counters.drops[DropReason.QUEUE] += 1
                continue
            entry = _Pending(sock, delivery.data, destination, counters, mapping)
            self._seq += 1
            heapq.heappush(self._heap, (self._epoch + delivery.at, self._seq, entry))
            if self._heap[0][2] is entry:
                self._wakeup.set()

    async def _send_loop(self) -> None:
        while True:
            deadline = self._heap[0][0] if self._heap else math.inf
            if trio.current_time() < deadline:
                with trio.move_on_at(deadline):
                    await self._wakeup.wait()
                self._wakeup = trio.Event()
                continue
            _, _, entry = heapq.heappop(self._heap)
            await self._send(entry)

    async def _send(self, entry: _Pending) -> None:
        counters = entry.counters
        if entry.mapping is not None and entry.mapping.closed:
            counters.drops[DropReason.NAT_EXPIRED] += 1
            return
        # Counted before the send: trio yields after the datagram left, and a receiver must
        # never have seen more than the counters say.
        counters.packets_out += 1
        counters.bytes_out += len(entry.data)
        try:
            await entry.sock.sendto(entry.data, entry.destination)
        except (OSError, trio.ClosedResourceError):
            counters.packets_out -= 1
            counters.bytes_out -= len(entry.data)
            counters.socket_errors += 1


async def serve_proxy(
    config: ProxyConfig, *, task_status: trio.TaskStatus[Address] = trio.TASK_STATUS_IGNORED
) -> None:
    """Run an impairment proxy for `config` until cancelled (see `ImpairmentProxy` for counters).

    Args:
        config: what to listen on, where to relay and how to impair.
        task_status: receives the bound listening address once the proxy is ready.

    Raises:
        OSError: the listening address cannot be bound.
    """
    await ImpairmentProxy(config).serve(task_status=task_status)


def _udp_socket() -> trio.socket.SocketType:
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        with contextlib.suppress(OSError):  # the OS may refuse or cap the size
            sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER_BYTES)
    return sock


def _address(raw: Any) -> Address:
    host, port = raw[0], raw[1]
    return (str(host), int(port))
