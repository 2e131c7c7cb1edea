"""A hub and user daemons on a netsim network that already exists: the glue for netsim apps.

What it owns: starting, crashing, stopping and restarting the real udpim services
(``serve_hub``, ``serve_peer``) on netsim's virtual UDP sockets, with real sqlite stores in
inline mode, on hosts a scenario file declared. ``tools.udpim_app`` (the scenario library's
app) runs on it. The system tests' world (``tests/net/world.py``) is a ``SimWorld`` that
also builds its own topology: what both need lives here, once.

Rules it keeps (so that a run is a pure function of the seed and replays bit for bit):

* Time only from Trio (virtual under netsim's ``MockClock``); the services get a virtual
  wall clock (``clock_ms``: a fixed epoch plus virtual seconds).
* Randomness only from the injected ``rng(*labels)`` (the app passes ``sim.rng``), one
  stream per node and start (``name``, ``generation``), so a restart draws fresh bytes.
* Stores are ``SqliteStore(threaded=False, synced=False)``: every operation completes
  inline, so disk time is invisible to virtual time, and without an fsync per commit (a
  simulated crash ends tasks, not the machine: what was committed stays either way), so a
  busy disk does not slow the run. Data directories live under the ``tmp`` directory the
  caller provides (their paths never reach the trace).
* Structured concurrency: every service runs in the caller's nursery under its own cancel
  scope; ``crash``/``stop`` cancel it and wait until it is gone.

Keepalive learning: a daemon with ``learn_keepalive`` gets a probe socket (a fresh ephemeral
port per start) and reads its local address from the network, so a ``move`` is a path change
it notices; one without keeps its configured heartbeat.

Crashes: ``crash(node)`` silences the node's sockets (no CLOSE, no last flush), cancels its task
and closes its store: memory is gone, what the store committed stays. ``restart(node)`` starts
it again on the same data directory and port, the way a process restart would. Sockets count
what they send and receive (``CrashableSocket.wire_bytes()``).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import trio

from netsim.network import Network
from netsim.socket import VirtualUDPSocket
from udpim.core.config import SessionConfig
from udpim.core.errors import UdpimError
from udpim.im.events import Event, MessageArrived, Welcomed
from udpim.net.errors import plain_errors
from udpim.net.hub import HUB_DATABASE, HubConfig, HubInfo, serve_hub
from udpim.net.peer import PEER_DATABASE, PeerConfig, PeerHandle, PeerInfo, serve_peer
from udpim.settings import Address
from udpim.store.base import StoreKind
from udpim.store.sqlite import SqliteStore

__all__ = [
    "EPOCH_MS",
    "CrashableSocket",
    "DaemonNode",
    "HubNode",
    "Node",
    "SimWorld",
    "clock_ms",
    "wait_until",
]

EPOCH_MS = 1_800_000_000_000
"""The virtual wall clock's value (unix ms) at virtual time 0."""

RngFactory = Callable[..., random.Random]
"""``rng(*labels)``: a seeded generator per label tuple (``SimContext.rng``)."""


def clock_ms() -> int:
    """The virtual wall clock (unix ms)."""
    return EPOCH_MS + round(trio.current_time() * 1000)


class CrashableSocket:
    """A virtual socket that can be struck dumb, as a process killed mid-flight is."""

    def __init__(self, inner: VirtualUDPSocket) -> None:
        self.inner = inner
        self.crashed = False
        self.datagrams_sent = self.bytes_sent = 0
        self.datagrams_received = self.bytes_received = 0

    async def sendto(self, data: bytes, address: Any, /) -> int:
        """Send, unless crashed (then the datagram silently goes nowhere)."""
        if self.crashed:
            await trio.lowlevel.checkpoint()
            return len(data)
        sent = await self.inner.sendto(data, address)
        self.datagrams_sent += 1
        self.bytes_sent += len(data)
        return sent

    async def recvfrom(self, bufsize: int, /) -> tuple[bytes, Any]:
        """Receive, unless crashed (then block forever)."""
        if self.crashed:
            await trio.sleep_forever()
        data, source = await self.inner.recvfrom(bufsize)
        self.datagrams_received += 1
        self.bytes_received += len(data)
        return data, source

    def wire_bytes(self) -> int:
        """Bytes sent and received on the wire: UDP payloads + 28 bytes IPv4/UDP each."""
        datagrams = self.datagrams_sent + self.datagrams_received
        return self.bytes_sent + self.bytes_received + 28 * datagrams

    def getsockname(self) -> Any:
        """The bound address."""
        return self.inner.getsockname()

    def close(self) -> None:
        """Close the virtual socket."""
        self.inner.close()


@dataclass
class Node:
    """One service (hub or daemon) in the world, across its restarts."""

    name: str
    data_dir: Path
    host: str
    port: int
    generation: int = 0
    scope: trio.CancelScope | None = None
    done: trio.Event | None = None
    sock: CrashableSocket | None = None
    store: SqliteStore | None = None
    error: BaseException | None = None


@dataclass
class HubNode(Node):
    """The hub; ``info`` while it runs; ``closed``: only registered users may log in."""

    closed: bool = False
    info: HubInfo | None = None

    @property
    def public_key(self) -> bytes:
        """The hub's static public key (known once it ran once)."""
        assert self.info is not None, "the hub has not started"
        return self.info.public_key


@dataclass
class DaemonNode(Node):
    """A user's daemon; ``info`` while it runs, every notice of every run in ``events``."""

    user: str = ""
    hub: Address = ("127.0.0.1", 0)
    hub_key: bytes | None = None
    session: SessionConfig = field(default_factory=SessionConfig)
    info: PeerInfo | None = None
    events: list[tuple[float, Event]] = field(default_factory=list)
    run_start: int = 0
    """Index in ``events`` of the current run's first notice."""
    on_event: Callable[[Event], None] | None = None
    """Called with each notice as it arrives (in the world's recording task)."""
    learn_keepalive: bool = True
    """Learn the NAT's timeout (probe socket); False: the configured heartbeat stays."""
    probe: CrashableSocket | None = None

    @property
    def handle(self) -> PeerHandle:
        """The running daemon's API."""
        assert self.info is not None, f"{self.name} is not running"
        return self.info.handle

    @property
    def running(self) -> bool:
        """True while the daemon runs."""
        return self.info is not None

    def welcomed_this_run(self) -> bool:
        """True once the hub welcomed the current run."""
        return any(isinstance(event, Welcomed) for _, event in self.events[self.run_start :])

    def arrived_this_run(self) -> list[float]:
        """Virtual times of the messages that arrived in the current run."""
        return [
            t for t, event in self.events[self.run_start :] if isinstance(event, MessageArrived)
        ]


ServeFn = Callable[[Node, trio.TaskStatus[object]], Awaitable[None]]


class SimWorld:
    """The services of one simulation on an existing netsim network (module docstring).

    Args:
        network: the network whose hosts the services run on.
        nursery: where the services run (cancel it to end them all).
        tmp: a fresh directory for the data directories.
        rng: ``rng(*labels)`` giving seeded generators (``SimContext.rng``).
    """

    def __init__(self, network: Network, nursery: trio.Nursery, tmp: Path, rng: RngFactory) -> None:
        self.network = network
        self.nursery = nursery
        self.tmp = tmp
        self._rng = rng
        self.hub: HubNode | None = None
        self.daemons: list[DaemonNode] = []

    def rng(self, *labels: object) -> Callable[[int], bytes]:
        """Random bytes from the stream named by ``labels``."""
        return self._rng("service", *map(str, labels)).randbytes

    # ------------------------------------------------------------------ hub

    async def start_hub(self, host: str, port: int) -> HubNode:
        """Start the hub on ``host`` (its scenario address) at UDP ``port``."""
        if self.hub is None:
            self.hub = HubNode("hub", self.tmp / "hub", host, port)
        await self._launch(self.hub, self._serve_hub)
        return self.hub

    def hub_address(self) -> Address:
        """The hub's public address, as daemons dial it."""
        assert self.hub is not None
        return (self.network.host(self.hub.host).address, self.hub.port)

    async def _serve_hub(self, node: Node, task_status: trio.TaskStatus[object]) -> None:
        assert isinstance(node, HubNode)
        assert node.sock is not None
        assert node.store is not None
        config = HubConfig(node.data_dir, self.hub_address(), closed=node.closed)
        serve = partial(
            serve_hub,
            config,
            sock=node.sock,
            store=node.store,
            rng=self.rng(node.name, node.generation),
            wall_clock_ms=clock_ms,
        )
        async with trio.open_nursery() as nursery:
            node.info = await nursery.start(serve)
            task_status.started(node.info)

    # ------------------------------------------------------------------ daemons

    def add_daemon(
        self, host: str, user: str, *, session: SessionConfig, learn_keepalive: bool = True
    ) -> DaemonNode:
        """A daemon for ``user`` on ``host`` (not started); it dials the hub's key."""
        assert self.hub is not None, "start the hub first"
        node = DaemonNode(
            host,
            self.tmp / host,
            host,
            0,
            user=user,
            hub=self.hub_address(),
            hub_key=self.hub.public_key,
            session=session,
            learn_keepalive=learn_keepalive,
        )
        self.daemons.append(node)
        return node

    async def start_daemon(self, node: DaemonNode) -> DaemonNode:
        """Start (or restart) ``node`` on its data directory, with a fresh socket."""
        await self._launch(node, self._serve_daemon)
        return node

    async def _serve_daemon(self, node: Node, task_status: trio.TaskStatus[object]) -> None:
        assert isinstance(node, DaemonNode)
        assert node.sock is not None
        assert node.store is not None
        config = PeerConfig(
            node.data_dir,
            node.user,
            node.hub,
            hub_key=node.hub_key,
            session=node.session,
            learn_keepalive=node.learn_keepalive,
        )
        node.run_start = len(node.events)
        async with trio.open_nursery() as nursery:
            serve = partial(
                serve_peer,
                config,
                sock=node.sock,
                store=node.store,
                rng=self.rng(node.name, node.generation),
                wall_clock_ms=clock_ms,
                control=False,
                probe_sock=node.probe,
                local_address=partial(self._local_address, node.host),
            )
            node.info = await nursery.start(serve)
            await nursery.start(_record_events, node)
            task_status.started(node.info)

    async def _local_address(self, host: str) -> str | None:
        await trio.lowlevel.checkpoint()
        return self.network.host(host).address

    # ------------------------------------------------------------------ life and death

    async def _launch(self, node: Node, serve: ServeFn) -> None:
        node.generation += 1
        raw = self.network.host(node.host).socket()
        await raw.bind(("0.0.0.0", node.port))
        node.sock = CrashableSocket(raw)
        if isinstance(node, DaemonNode) and node.learn_keepalive:
            probe = self.network.host(node.host).socket()
            await probe.bind(("0.0.0.0", 0))
            node.probe = CrashableSocket(probe)
        kind: StoreKind = "hub" if isinstance(node, HubNode) else "peer"
        database = HUB_DATABASE if kind == "hub" else PEER_DATABASE
        node.store = await SqliteStore.open(
            node.data_dir / database, kind, threaded=False, synced=False
        )
        node.scope = trio.CancelScope()
        node.done = trio.Event()
        node.error = None
        await self.nursery.start(self._guard, node, serve)

    async def _guard(
        self, node: Node, serve: ServeFn, *, task_status: trio.TaskStatus[None]
    ) -> None:
        assert node.scope is not None
        assert node.done is not None
        try:
            with node.scope, plain_errors():
                await serve(node, task_status)  # type: ignore[arg-type]
        except UdpimError as exc:  # a service that stopped on its own
            node.error = exc
        finally:
            if isinstance(node, DaemonNode | HubNode):
                node.info = None
            if node.sock is not None:
                node.sock.close()
            if isinstance(node, DaemonNode) and node.probe is not None:
                node.probe.close()
            if node.store is not None:
                await node.store.aclose()
            node.done.set()

    async def crash(self, node: Node) -> None:
        """Kill ``node``: memory lost, nothing more sent, disk kept."""
        assert node.sock is not None
        node.sock.crashed = True
        if isinstance(node, DaemonNode) and node.probe is not None:
            node.probe.crashed = True
        await self.stop(node)

    async def stop(self, node: Node) -> None:
        """Stop ``node`` cleanly (its sessions get CLOSE)."""
        assert node.scope is not None
        assert node.done is not None
        node.scope.cancel()
        await node.done.wait()

    async def restart(self, node: Node) -> None:
        """Start ``node`` again on its data directory."""
        await self._launch(
            node, self._serve_hub if isinstance(node, HubNode) else self._serve_daemon
        )

    def nodes(self) -> list[Node]:
        """The hub (once added) and every daemon, in the order they were added."""
        return [*([self.hub] if self.hub is not None else []), *self.daemons]

    def errors(self) -> dict[str, BaseException]:
        """Services that stopped on their own with an error, by name."""
        return {node.name: node.error for node in self.nodes() if node.error is not None}


async def _record_events(node: DaemonNode, *, task_status: trio.TaskStatus[None]) -> None:
    assert node.info is not None
    with node.info.handle.subscribe() as channel:
        task_status.started()
        async for event in channel:
            node.events.append((trio.current_time(), event))
            if node.on_event is not None:
                node.on_event(event)


async def wait_until(
    predicate: Callable[[], bool] | Callable[[], Awaitable[bool]],
    *,
    timeout_s: float,
    poll_s: float = 1.0,
) -> bool:
    """Poll ``predicate`` (plain or async) every ``poll_s`` virtual seconds, up to ``timeout_s``.

    Returns:
        True when it became true in time, else False.
    """
    with trio.move_on_after(timeout_s):
        while True:
            value = predicate()
            if not isinstance(value, bool):
                value = await value
            if value:
                return True
            await trio.sleep(poll_s)
    return False
