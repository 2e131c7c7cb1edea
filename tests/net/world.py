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

The services' life and death (sockets, stores, crash, stop, restart) is
``tools.simworld.SimWorld``'s, shared with the scenario library's app; this module adds
the topology above, the seed's rng streams, and the queries and waits the tests use.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import trio

from netsim.models import LinkProfile
from netsim.nat import NatConfig
from netsim.network import Network, open_network
from tools import simworld
from tools.simworld import EPOCH_MS, CrashableSocket, HubNode, Node, clock_ms
from udpim.core.config import SessionConfig
from udpim.core.errors import UdpimError
from udpim.identity import IDENTITY_FILE
from udpim.im.events import Event, MessageArrived, OutboxChanged, Welcomed

__all__ = [
    "EPOCH_MS",
    "HUB_ADDRESS",
    "HUB_HOST",
    "HUB_PORT",
    "NET_LINK",
    "CrashableSocket",
    "DaemonNode",
    "HubNode",
    "Node",
    "World",
    "open_world",
    "wait_until",
]

HUB_HOST = "127.1.0.1"
HUB_PORT = 7000
HUB_ADDRESS = (HUB_HOST, HUB_PORT)
NET_LINK = LinkProfile(delay_s=0.02, jitter_s=0.005)


class DaemonNode(simworld.DaemonNode):
    """A user's daemon, with the queries the system tests ask of its notices."""

    @property
    def probe_sock(self) -> CrashableSocket | None:
        """The probe socket of the current run (None when it does not learn)."""
        return self.probe

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


def seeded_random(seed: int, *labels: object) -> random.Random:
    """The generator of the stream named ``seed/label/...``."""
    return random.Random("/".join(map(str, (seed, *labels))))


class World(simworld.SimWorld):
    """The network, the tmp directory, and the nodes (see the module docstring)."""

    clock_ms = staticmethod(clock_ms)

    def __init__(self, network: Network, nursery: trio.Nursery, tmp: Path, seed: int) -> None:
        super().__init__(network, nursery, tmp, partial(seeded_random, seed))
        self.seed = seed

    def rng(self, *labels: object) -> Callable[[int], bytes]:
        """Random bytes from the stream ``seed/label/...`` (no ``service`` label)."""
        return seeded_random(self.seed, *labels).randbytes

    # ------------------------------------------------------------------ hub

    async def start_hub(  # type: ignore[override]
        self, *, closed: bool = False, link: LinkProfile = NET_LINK
    ) -> HubNode:
        """Start (the first time: add the host of) the hub at ``HUB_ADDRESS``."""
        if self.hub is None:
            self.network.add_host("hub", HUB_HOST, up=link, down=link)
            self.hub = HubNode("hub", self.tmp / "hub", "hub", HUB_PORT, closed=closed)
        return await super().start_hub("hub", HUB_PORT)

    # ------------------------------------------------------------------ daemons

    def add_daemon(  # type: ignore[override]
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
        n = len(self.daemons) + 1
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
            hub=HUB_ADDRESS,
            hub_key=hub_key,
            session=session or SessionConfig(),
            learn_keepalive=learn,
        )
        self.daemons.append(node)
        return node

    async def daemon(self, name: str, user: str, **options: Any) -> DaemonNode:
        """``add_daemon`` then ``start_daemon``, dialling with the hub's key."""
        if "hub_key" not in options and self.hub is not None:
            options["hub_key"] = self.hub.public_key
        node = self.add_daemon(name, user, **options)
        await self.start_daemon(node)
        return node

    async def welcomed_daemons(self, *users: str, **options: Any) -> list[DaemonNode]:
        """A started daemon per user (its host named for the user; ``daemon``'s options),
        once the hub welcomed them all."""
        nodes = [await self.daemon(user, user, **options) for user in users]
        await self.wait_welcomed(*nodes)
        return nodes

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
    errors = world.errors()
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
    if not await simworld.wait_until(predicate, timeout_s=timeout_s, poll_s=poll_s):
        raise AssertionError(f"{what} not reached within {timeout_s} s (virtual)")
    return trio.current_time() - start
