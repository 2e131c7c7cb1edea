"""``serve_peer``: a user's daemon, a ``PeerCore`` on an ``EndpointDriver`` with a store,
a connection to the hub that never gives up, and the control socket.

What it owns: the daemon's start-up (data-dir lock, identity, store, socket, control
socket), the mapping of session events and notices, and the daemon's logs. The parts
live beside it: ``reconnect`` (dialling, backoff, hub key), ``peerhandle`` (the API),
``peercontrol`` (control commands), ``actions`` (executing the core's actions).

Rules:

* A fixed set of tasks: receive loop, timer loop, store completion, closer, connector,
  drop reporter, keepalive (probe receiver, learner, local address watch: ``natlearning``),
  control server (plus one task per control connection, at most ``MAX_CLIENTS``).
* Keepalive learning (docs/IM.md section 16) needs a second UDP socket, the probe socket:
  ``serve_peer`` opens one beside its own socket, or uses ``probe_sock`` when the socket
  is injected; with an injected socket and no probe socket, learning is off.
* Event mapping (docs/IM.md section 14): ``SessionEstablished`` -> ``on_connected``,
  ``MessageReceived`` -> ``on_message`` with the wall clock in unix ms,
  ``SessionClosed`` -> ``on_disconnected`` (and the connector redials),
  ``PeerUnreachable`` -> the connector closes that session and redials.
* Nothing is dialled before ``StateLoaded``; ``serve_peer`` reports ``PeerInfo`` once
  the state is loaded (the device id is known), before the hub is reached: messages can
  be queued while the hub is away.
* The daemon accepts no incoming sessions (``accept_peer`` refuses every key).
* Fatal conditions stop the daemon with a one-line ``UdpimError``: ``DataDirBusy``,
  ``IdentityError``, ``StoreError``, ``ListenError``, ``ControlError`` (control socket),
  ``LocalProtocolError`` (bad user name), ``PeerRefused``, ``HubKeyMismatch``,
  ``ServiceFailed`` (the store cannot load the state).
* ``serve_peer`` prints nothing; it logs under ``udpim.net.peer`` (and
  ``udpim.net.reconnect``, ``udpim.net.control``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, final

import trio

from udpim.core.config import EndpointConfig, SessionConfig
from udpim.core.crypto import StaticKey
from udpim.core.endpoint import Endpoint
from udpim.core.events import (
    Event,
    MessageReceived,
    PathChanged,
    PeerUnreachable,
    SessionClosed,
    SessionEstablished,
)
from udpim.core.session import Session
from udpim.identity import load_or_create_identity
from udpim.im import events as im
from udpim.im.natlearn import NatLearner
from udpim.im.ops import Op
from udpim.im.peercore import PeerCore
from udpim.net.actions import ActionRunner
from udpim.net.control import ControlListener, open_control_listener, serve_control
from udpim.net.datadir import DAEMON_LOCK, hold_data_dir, open_owned_store
from udpim.net.droplog import DropReporter
from udpim.net.errors import ServiceFailed, plain_errors
from udpim.net.listen import open_owned_udp_socket
from udpim.net.natlearning import KeepaliveManager, LocalAddress, system_local_address
from udpim.net.peercontrol import PeerCommands
from udpim.net.peerhandle import PeerHandle
from udpim.net.reconnect import HubConnector
from udpim.net.udp import DatagramSocket, EndpointDriver
from udpim.net.wallclock import WallClockMs, handshake_clock_ns, system_clock_ms
from udpim.settings import Address, format_address
from udpim.store.base import Store, StoreError

__all__ = ["PEER_DATABASE", "PeerConfig", "PeerHandle", "PeerInfo", "serve_peer"]

log = logging.getLogger("udpim.net.peer")

PEER_DATABASE: Final = "peer.db"
"""The daemon's database file inside its data directory."""


@final
@dataclass(frozen=True, slots=True)
class PeerConfig:
    """What a daemon needs to run.

    Attributes:
        data_dir: identity, database, lock file and control socket live here (0700).
        user: the user name to log in as.
        hub: the hub's address.
        hub_key: the hub's public key (32 bytes); None: pinned key, or trust on first use.
        listen: the local UDP address to bind (ignored when a socket is injected).
        session: session tunables (heartbeats, timeouts).
        learn_keepalive: learn the NAT's mapping timeout and set the heartbeat from it
            (``session.heartbeat_interval_s`` is then the default until learned).
    """

    data_dir: Path
    user: str
    hub: Address
    hub_key: bytes | None = None
    listen: Address = ("0.0.0.0", 0)
    session: SessionConfig = field(default_factory=SessionConfig)
    learn_keepalive: bool = True


@final
@dataclass(frozen=True, slots=True)
class PeerInfo:
    """What ``serve_peer`` reports once its state is loaded."""

    address: Address
    public_key: bytes
    device: str
    handle: PeerHandle


async def serve_peer(
    config: PeerConfig,
    *,
    sock: DatagramSocket | None = None,
    store: Store | None = None,
    rng: Callable[[int], bytes] = os.urandom,
    wall_clock_ms: WallClockMs | None = None,
    control: bool = True,
    probe_sock: DatagramSocket | None = None,
    local_address: LocalAddress | None = None,
    task_status: trio.TaskStatus[PeerInfo] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a user's daemon until cancelled (or until it must stop, see Raises).

    Args:
        config: data directory, user, hub address and key, tunables.
        sock: a bound UDP socket to use instead of binding ``config.listen`` (netsim's
            virtual sockets in simulations); the caller keeps ownership.
        store: a store to use instead of opening ``<data_dir>/peer.db``; the caller
            keeps ownership (simulations pass an inline ``SqliteStore``).
        rng: randomness for the identity (if created), ids, handshakes and backoff.
        wall_clock_ms: the wall clock in unix ms (default: the system clock).
        control: serve the control socket ``<data_dir>/control.sock``.
        probe_sock: the probe socket for keepalive learning when ``sock`` is injected
            (the caller keeps ownership); ignored without ``sock``.
        local_address: how to read the local address (path changes); by default the
            operating system's, when the sockets are not injected.
        task_status: reports ``PeerInfo`` once the durable state is loaded.

    Raises:
        UdpimError: one line; see the module docstring for the cases.
    """
    with plain_errors(), hold_data_dir(config.data_dir, DAEMON_LOCK, "daemon"):
        core = PeerCore(user=config.user, rng=rng)
        key, created = load_or_create_identity(config.data_dir, rng)
        if created:
            log.info("created a new identity in %s", config.data_dir)
        async with AsyncExitStack() as stack:
            if store is None:
                store = await open_owned_store(stack, config.data_dir / PEER_DATABASE, "peer")
            if sock is None:
                sock = await open_owned_udp_socket(stack, config.listen)
                probe_sock = None
                if config.learn_keepalive:
                    probe_sock = await open_owned_udp_socket(stack, (config.listen[0], 0))
                    local_address = local_address or system_local_address(config.hub)
            elif config.learn_keepalive and probe_sock is None:
                log.info("keepalive learning is off: no probe socket beside the given socket")
            listener = await open_control_listener(config.data_dir) if control else None
            if listener is not None:
                stack.callback(listener.sock.close)
            probes = _Probes(probe_sock if config.learn_keepalive else None, local_address)
            daemon = _Daemon(config, core, key, store, sock, rng, wall_clock_ms, probes)
            await daemon.run(listener, task_status)


@final
@dataclass(frozen=True, slots=True)
class _Probes:
    """What keepalive learning uses: the probe socket (None: no learning) and the local
    address reader (None: no path-change check by address)."""

    sock: DatagramSocket | None
    local_address: LocalAddress | None


@final
class _Daemon:
    """The running daemon: wiring, event mapping and notices (see the module docstring)."""

    def __init__(
        self,
        config: PeerConfig,
        core: PeerCore,
        key: StaticKey,
        store: Store,
        sock: DatagramSocket,
        rng: Callable[[int], bytes],
        wall_clock_ms: WallClockMs | None,
        probes: _Probes,
    ) -> None:
        self._config = config
        self._core = core
        self._key = key
        self._clock_ms = wall_clock_ms or system_clock_ms
        endpoint = Endpoint(
            EndpointConfig(session=config.session), key, rng, accept_peer=lambda _key: False
        )
        self._driver = EndpointDriver(
            endpoint,
            sock,
            self._on_session_event,
            wall_clock_ns=handshake_clock_ns(wall_clock_ms),
            input_gate=self._wait_for_room,
            on_foreign=self._on_foreign,
        )
        self._runner = ActionRunner(
            core,
            self._driver,
            store,
            on_notify=self._on_notify,
            on_store_done=self._on_store_done,
        )
        self._connector = HubConnector(
            self._driver, core, self._runner, hub=config.hub, hub_key=config.hub_key, rng=rng
        )
        self._keepalive = self._keepalive_manager(probes, rng)
        self._handle = PeerHandle(
            core=core,
            runner=self._runner,
            store=store,
            connector=self._connector,
            hub=config.hub,
            address=self._driver.address,
            session_config=config.session,
            wall_clock_ms=self._clock_ms,
            keepalive=self._keepalive,
        )
        self._loaded = trio.Event()
        self._fatal: ServiceFailed | None = None

    def _keepalive_manager(self, probes: _Probes, rng: Callable[[int], bytes]) -> KeepaliveManager:
        config = self._config
        learner = None
        if probes.sock is not None:
            default_s = config.session.heartbeat_interval_s
            learner = NatLearner(default_interval_s=default_s, rng=rng)
        return KeepaliveManager(
            driver=self._driver,
            core=self._core,
            runner=self._runner,
            session=config.session,
            hub=config.hub,
            learner=learner,
            probe_sock=probes.sock,
            local_address=probes.local_address,
            current_session=lambda: self._connector.session,
            wall_clock_ms=self._clock_ms,
        )

    async def run(
        self, listener: ControlListener | None, task_status: trio.TaskStatus[PeerInfo]
    ) -> None:
        driver = self._driver
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(self._runner.serve)
                await nursery.start(driver.serve)
                self._runner.run(self._core.start())
                await self._loaded.wait()
                if self._fatal is not None:
                    raise self._fatal
                nursery.start_soon(self._connector.run)
                nursery.start_soon(self._keepalive.run)
                nursery.start_soon(DropReporter(driver, log).run)
                if listener is not None:
                    await nursery.start(serve_control, listener, PeerCommands(self._handle))
                log.info(
                    "daemon for %s (device %s) on %s, hub %s",
                    self._config.user,
                    self._core.device,
                    format_address(driver.address),
                    format_address(self._config.hub),
                )
                task_status.started(
                    PeerInfo(driver.address, self._key.public, self._handle.device, self._handle)
                )
        finally:
            self._handle.close()
            await driver.aclose()

    async def _wait_for_room(self) -> None:
        await self._runner.wait_for_room()

    def _on_foreign(self, data: bytes, address: Address) -> bytes | None:
        return self._connector.on_foreign(data, address)

    def _on_session_event(self, session: Session, event: Event) -> None:
        self._runner.closer.on_session_event(session, event)
        core, sid = self._core, session.local_cid
        if isinstance(event, MessageReceived):
            self._runner.run(core.on_message(sid, event.payload, self._clock_ms()))
        elif isinstance(event, SessionEstablished):
            log.debug("session to the hub established")
            self._keepalive.on_session_established(session)
            self._runner.run(core.on_connected(sid))
        elif isinstance(event, PeerUnreachable):
            log.info("the hub is silent for %.0f s; reconnecting", event.silent_for_s)
            if session is self._connector.session:
                self._keepalive.on_unreachable(event.silent_for_s)
            self._connector.on_unreachable(session)
        elif isinstance(event, SessionClosed):
            reason = event.text or event.reason.name.lower().replace("_", " ")
            self._keepalive.on_session_ended(session, reason)
            self._runner.run(core.on_disconnected(sid))
            self._connector.on_session_ended(session, event.reason)
        elif isinstance(event, PathChanged):
            log.info("our address as the hub sees it changed (NAT rebinding or roaming)")

    def _on_notify(self, event: im.Event) -> None:
        self._log_notice(event)
        if isinstance(event, im.StateLoaded):
            self._connector.on_state_loaded(event.hub_key)
            self._loaded.set()
        elif isinstance(event, im.Welcomed):
            self._connector.on_welcomed()
            self._keepalive.on_welcomed()
        elif isinstance(event, im.Refused):
            self._connector.on_refused(event.reason)
        elif isinstance(event, im.StoreFailed) and event.op_name == "LoadingState":
            self._fatal = ServiceFailed(f"cannot load the daemon's state: {event.detail}")
            self._loaded.set()
        self._handle.on_notify(event)

    def _on_store_done(self, op: Op, result: object, error: StoreError | None) -> None:
        self._handle.on_store_done(op, result, error)

    @staticmethod
    def _log_notice(event: im.Event) -> None:
        if isinstance(event, im.Welcomed):
            log.info("logged in to the hub as %s (device %s)", event.user, event.device)
        elif isinstance(event, im.Refused):
            log.info("the hub refused us: %s", event.reason)  # PeerRefused says it once
        elif isinstance(event, im.PresenceChanged):
            log.info("%s is %s", event.user, "online" if event.online else "offline")
        elif isinstance(event, im.MessageArrived):
            log.debug("message %s from %s", event.id, event.sender)
        elif isinstance(event, im.OutboxChanged):
            log.debug("message %s to %s: %s", event.id, event.to, event.state.value)
        elif isinstance(event, im.StoreFailed):
            log.error("store failure in %s: %s", event.op_name, event.detail)
