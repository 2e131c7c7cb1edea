"""A netsim world for system tests: a hub and daemons behind NATs, in virtual time.

Glue between udpim and netsim (only tests/ and tools/ may join them). Everything runs
under Trio's ``MockClock`` with autojump: the real services (``serve_hub``,
``serve_peer``) on netsim's virtual UDP sockets, real sqlite stores in inline mode
(``threaded=False``: deterministic, disk time invisible to virtual time), a virtual wall
clock, and rngs derived from the seed, so a run is a pure function of its seed.

Addresses (project convention, loopback strings only): the hub is public at
127.1.0.1:7000; daemon N sits behind its own NAT (public 127.1.1.N) at 127.16.N.2.

Daemons learn their NAT's mapping timeout by default (``learn=False`` turns it off):
each gets a second socket, the probe socket, and the host's current address as its local
address. ``add_daemon(nat=NatConfig(...))`` sets its NAT's behaviour; ``add_network`` and
``move`` model a handover to another NAT. Sockets count what they send and receive
(``CrashableSocket.bytes_sent`` ...), for bytes-on-the-wire figures.

Crashes: ``crash(node)`` makes the node's sockets silent (nothing more leaves them: no
CLOSE, no last flush), cancels its task and closes its store. All in-memory state is
gone; what the store committed stays. ``restart(node)`` starts it again on the same
data directory, the way a process restart would.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import trio

from netsim.models import LinkProfile
from netsim.nat import NatConfig
from netsim.network import Network, open_network
from netsim.socket import VirtualUDPSocket
from udpim.core.config import SessionConfig
from udpim.core.errors import UdpimError
from udpim.identity import IDENTITY_FILE
from udpim.im.events import Event, MessageArrived, OutboxChanged, Welcomed
from udpim.net.errors import plain_errors
from udpim.net.hub import HUB_DATABASE, HubConfig, HubInfo, serve_hub
from udpim.net.peer import PEER_DATABASE, PeerConfig, PeerHandle, PeerInfo, serve_peer
from udpim.store.base import StoreKind
from udpim.store.sqlite import SqliteStore

EPOCH_MS = 1_800_000_000_000
HUB_HOST = "127.1.0.1"
HUB_PORT = 7000
HUB_ADDRESS = (HUB_HOST, HUB_PORT)
NET_LINK = LinkProfile(delay_s=0.02, jitter_s=0.005)


class CrashableSocket:
    """A virtual socket that can be struck dumb, as a process killed mid-flight is."""

    def __init__(self, inner: VirtualUDPSocket) -> None:
        self.inner = inner
        self.crashed = False
        self.datagrams_sent = self.bytes_sent = 0
        self.datagrams_received = self.bytes_received = 0

    async def sendto(self, data: bytes, address: Any, /) -> int:
        if self.crashed:
            await trio.lowlevel.checkpoint()
            return len(data)
        sent = await self.inner.sendto(data, address)
        self.datagrams_sent += 1
        self.bytes_sent += len(data)
        return sent

    async def recvfrom(self, bufsize: int, /) -> tuple[bytes, Any]:
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
        return self.inner.getsockname()

    def close(self) -> None:
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
    closed: bool = False
    info: HubInfo | None = None

    @property
    def public_key(self) -> bytes:
        assert self.info is not None
        return self.info.public_key


@dataclass
class DaemonNode(Node):
    user: str = ""
    hub_key: bytes | None = None
    session: SessionConfig = field(default_factory=SessionConfig)
    learn: bool = True
    """Learn the NAT's mapping timeout (a probe socket beside the main one)."""
    probe_sock: CrashableSocket | None = None
    info: PeerInfo | None = None
    events: list[tuple[float, Event]] = field(default_factory=list)
    """Every notice of every run, with its virtual time."""
    run_start: int = 0
    """Index in ``events`` of the current run's first notice."""

    @property
    def handle(self) -> PeerHandle:
        assert self.info is not None, f"{self.name} is not running"
        return self.info.handle

    @property
    def running(self) -> bool:
        return self.info is not None

    def notices(self, kind: type[Event]) -> list[Event]:
        """The notices of one type, in order."""
        return [event for _, event in self.events if isinstance(event, kind)]

    def states(self, message_id: str) -> list[str]:
        """Every outbox state reported for ``message_id``, in order (across restarts)."""
        return [
            e.state.value
            for e in self.notices(OutboxChanged)
            if isinstance(e, OutboxChanged) and e.id == message_id
        ]

    def count_states(self, state: str) -> int:
        return sum(
            1
            for e in self.notices(OutboxChanged)
            if isinstance(e, OutboxChanged) and e.state.value == state
        )

    def arrived(self) -> int:
        return len(self.notices(MessageArrived))

    def welcomes(self) -> int:
        """Welcomes over all runs."""
        return len(self.notices(Welcomed))

    def welcomed_this_run(self) -> bool:
        return any(isinstance(event, Welcomed) for _, event in self.events[self.run_start :])


class World:
    """The network, the tmp directory, and the nodes (see the module docstring)."""

    def __init__(self, network: Network, nursery: trio.Nursery, tmp: Path, seed: int) -> None:
        self.network = network
        self.nursery = nursery
        self.tmp = tmp
        self.seed = seed
        self._daemons = 0
        self._nodes: list[DaemonNode] = []
        self.hub: HubNode | None = None

    # ------------------------------------------------------------------ clocks, rngs

    @staticmethod
    def clock_ms() -> int:
        """The virtual wall clock (unix ms)."""
        return EPOCH_MS + round(trio.current_time() * 1000)

    def rng(self, *labels: object) -> Callable[[int], bytes]:
        return random.Random("/".join(map(str, (self.seed, *labels)))).randbytes

    # ------------------------------------------------------------------ hub

    async def start_hub(self, *, closed: bool = False, link: LinkProfile = NET_LINK) -> HubNode:
        if self.hub is None:
            self.network.add_host("hub", HUB_HOST, up=link, down=link)
            self.hub = HubNode("hub", self.tmp / "hub", "hub", HUB_PORT, closed=closed)
        hub = self.hub
        await self._launch(hub, self._serve_hub)
        return hub

    async def _serve_hub(self, node: Node, task_status: trio.TaskStatus[object]) -> None:
        assert isinstance(node, HubNode)
        assert node.sock is not None
        assert node.store is not None
        config = HubConfig(node.data_dir, HUB_ADDRESS, closed=node.closed)
        serve = partial(
            serve_hub,
            config,
            sock=node.sock,
            store=node.store,
            rng=self.rng(node.name, node.generation),
            wall_clock_ms=self.clock_ms,
        )
        async with trio.open_nursery() as nursery:
            node.info = await nursery.start(serve)
            task_status.started(node.info)

    # ------------------------------------------------------------------ daemons

    def add_daemon(
        self,
        name: str,
        user: str,
        *,
        up: LinkProfile = NET_LINK,
        down: LinkProfile = NET_LINK,
        hub_key: bytes | None = None,
        copy_identity_of: DaemonNode | None = None,
        session: SessionConfig | None = None,
        nat: NatConfig | None = None,
        learn: bool = True,
    ) -> DaemonNode:
        """Create a daemon's host (behind its own NAT, ``nat-NAME``) and data directory;
        not started."""
        self._daemons += 1
        n = self._daemons
        self.network.add_nat(f"nat-{name}", f"127.1.1.{n}", nat or NatConfig())
        self.network.add_host(name, f"127.16.{n}.2", nat=f"nat-{name}", up=up, down=down)
        data_dir = self.tmp / name
        if copy_identity_of is not None:
            data_dir.mkdir(mode=0o700)
            shutil.copy2(copy_identity_of.data_dir / IDENTITY_FILE, data_dir / IDENTITY_FILE)
        node = DaemonNode(
            name,
            data_dir,
            name,
            0,
            user=user,
            hub_key=hub_key,
            session=session or SessionConfig(),
            learn=learn,
        )
        self._nodes.append(node)
        return node

    async def start_daemon(self, node: DaemonNode) -> DaemonNode:
        await self._launch(node, self._serve_daemon)
        return node

    async def daemon(self, name: str, user: str, **options: Any) -> DaemonNode:
        """``add_daemon`` then ``start_daemon``, dialling with the hub's key."""
        if "hub_key" not in options and self.hub is not None:
            options["hub_key"] = self.hub.public_key
        return await self.start_daemon(self.add_daemon(name, user, **options))

    async def _serve_daemon(self, node: Node, task_status: trio.TaskStatus[object]) -> None:
        assert isinstance(node, DaemonNode)
        assert node.sock is not None
        assert node.store is not None
        config = PeerConfig(
            node.data_dir,
            node.user,
            HUB_ADDRESS,
            hub_key=node.hub_key,
            session=node.session,
            learn_keepalive=node.learn,
        )
        node.run_start = len(node.events)
        host = self.network.host(node.host)

        async def local_address() -> str:
            await trio.lowlevel.checkpoint()
            return host.address

        async with trio.open_nursery() as nursery:
            serve = partial(
                serve_peer,
                config,
                sock=node.sock,
                store=node.store,
                rng=self.rng(node.name, node.generation),
                wall_clock_ms=self.clock_ms,
                control=False,
                probe_sock=node.probe_sock,
                local_address=local_address,
            )
            node.info = await nursery.start(serve)
            await nursery.start(_record_events, node.info.handle, node.events)
            task_status.started(node.info)

    # ------------------------------------------------------------------ life and death

    async def _launch(
        self, node: Node, serve: Callable[[Node, trio.TaskStatus[object]], Awaitable[None]]
    ) -> None:
        node.generation += 1
        raw = self.network.host(node.host).socket()
        await raw.bind(("0.0.0.0", node.port))
        node.sock = CrashableSocket(raw)
        if isinstance(node, DaemonNode) and node.learn:
            probe = self.network.host(node.host).socket()
            await probe.bind(("0.0.0.0", 0))
            node.probe_sock = CrashableSocket(probe)
        kind: StoreKind = "hub" if isinstance(node, HubNode) else "peer"
        database = HUB_DATABASE if kind == "hub" else PEER_DATABASE
        node.store = await SqliteStore.open(node.data_dir / database, kind, threaded=False)
        node.scope = trio.CancelScope()
        node.done = trio.Event()
        node.error = None
        await self.nursery.start(self._guard, node, serve)

    async def _guard(
        self,
        node: Node,
        serve: Callable[[Node, trio.TaskStatus[object]], Awaitable[None]],
        *,
        task_status: trio.TaskStatus[None],
    ) -> None:
        assert node.scope is not None
        assert node.done is not None
        try:
            with node.scope, plain_errors():
                await serve(node, task_status)  # type: ignore[arg-type]
        except UdpimError as exc:  # a service that stopped on its own: wait_stopped
            node.error = exc
        finally:
            if isinstance(node, DaemonNode | HubNode):
                node.info = None
            if node.sock is not None:
                node.sock.close()
            if isinstance(node, DaemonNode) and node.probe_sock is not None:
                node.probe_sock.close()
            if node.store is not None:
                await node.store.aclose()
            node.done.set()

    async def crash(self, node: Node) -> None:
        """Kill ``node``: memory lost, nothing more sent, disk kept."""
        assert node.sock is not None
        assert node.scope is not None
        assert node.done is not None
        node.sock.crashed = True
        if isinstance(node, DaemonNode) and node.probe_sock is not None:
            node.probe_sock.crashed = True
        node.scope.cancel()
        await node.done.wait()

    async def stop(self, node: Node) -> None:
        """Stop ``node`` cleanly (its sessions get CLOSE)."""
        assert node.scope is not None
        assert node.done is not None
        node.scope.cancel()
        await node.done.wait()

    # ------------------------------------------------------------------ networks

    def add_network(self, name: str, public_ip: str, nat: NatConfig | None = None) -> str:
        """Add a NAT ``name`` (another network a daemon can move to); returns its name."""
        self.network.add_nat(name, public_ip, nat or NatConfig())
        return name

    def move(self, node: DaemonNode, nat: str, address: str) -> None:
        """Move ``node``'s host behind ``nat`` at private ``address`` now (a handover:
        its sockets keep their ports, its NAT mappings are new)."""
        self.network.move_host(node.host, address, nat=nat)

    @staticmethod
    async def wait_welcomed(*nodes: DaemonNode, timeout_s: float = 300.0) -> None:
        """Wait until each of ``nodes`` was welcomed by the hub in its current run."""
        await wait_until(
            lambda: all(node.welcomed_this_run() for node in nodes),
            timeout_s=timeout_s,
            poll_s=0.1,
            what="welcome",
        )

    @staticmethod
    async def wait_stopped(node: Node) -> UdpimError:
        """Wait until ``node`` stops on its own with an error, and return (consume) it."""
        assert node.done is not None
        await node.done.wait()
        error, node.error = node.error, None
        assert isinstance(error, UdpimError), f"{node.name} stopped without an error"
        return error

    def nodes(self) -> list[Node]:
        return [*([self.hub] if self.hub is not None else []), *self._nodes]

    async def restart(self, node: Node) -> None:
        """Start ``node`` again on its data directory."""
        if isinstance(node, HubNode):
            await self._launch(node, self._serve_hub)
        else:
            await self._launch(node, self._serve_daemon)


async def _record_events(
    handle: PeerHandle, events: list[tuple[float, Event]], *, task_status: trio.TaskStatus[None]
) -> None:
    with handle.subscribe() as channel:
        task_status.started()
        async for event in channel:
            events.append((trio.current_time(), event))


@asynccontextmanager
async def open_world(tmp: Path, seed: int) -> AsyncIterator[World]:
    """A world whose services are cancelled when the block ends."""
    try:
        async with open_network(seed) as network, trio.open_nursery() as nursery:
            world = World(network, nursery, tmp, seed)
            try:
                yield world
            finally:
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:  # show a test's own failure as itself
        leaves = _leaves(group)
        if len(leaves) == 1:
            raise leaves[0] from None
        raise
    errors = {node.name: node.error for node in world.nodes() if node.error is not None}
    assert not errors, f"services stopped with errors: {errors}"


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for exc in group.exceptions:
        found += _leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc]
    return found


async def wait_until(
    predicate: Callable[[], bool] | Callable[[], Awaitable[bool]],
    *,
    timeout_s: float,
    poll_s: float = 1.0,
    what: str = "condition",
) -> float:
    """Poll ``predicate`` every ``poll_s`` (virtual) seconds; returns the time it took.

    Raises:
        AssertionError: not true within ``timeout_s``.
    """
    start = trio.current_time()
    with trio.move_on_after(timeout_s):
        while True:
            value = predicate()
            if not isinstance(value, bool):
                value = await value
            if value:
                return trio.current_time() - start
            await trio.sleep(poll_s)
    raise AssertionError(f"{what} not reached within {timeout_s} s (virtual)")
