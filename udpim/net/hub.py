"""``serve_hub``: the hub service, a ``HubCore`` on an ``EndpointDriver`` with a store.

What it owns: the hub's start-up (data-dir lock, identity, store, socket), the mapping
of session events to ``HubCore`` inputs, and the hub's logs.

Rules:

* One socket, one receive loop and one timer loop (``EndpointDriver``), one completion
  task for the store, one closer, one echo scheduler and one drop reporter: a fixed
  number of tasks however many sessions there are. No task per session or per probe.
* The endpoint answers only keys ``HubCore.accept_key`` accepts (closed hubs: keys bound
  to an account; none at all until the accounts are loaded). Cookies: the endpoint's
  default posture (stateless cookies under load).
* Event mapping (docs/IM.md section 14): ``SessionEstablished`` -> ``on_established``,
  ``MessageReceived`` -> ``on_message`` with the wall clock in unix ms,
  ``PeerUnreachable``/``PeerReachable`` -> ``on_unreachable``/``on_reachable``,
  ``SessionClosed`` -> ``on_closed``. Actions go through ``ActionRunner``.
* Accounts are read at start (``LoadAccounts``). ``udpim hub adduser`` writes the hub
  database directly (sqlite serialises the writers). A closed hub that refuses a key
  re-reads the accounts (``HubCore.reload_accounts``), at most every
  ``ACCOUNTS_RELOAD_MIN_S``, so a user added while it runs gets in at the daemon's next
  handshake attempt; strangers knocking cost at most one read per interval. An open hub
  sees an added (name, key) after its next start. A failed ``LoadAccounts`` at start
  stops the hub (``ServiceFailed``); a failed re-read is counted and logged.
* An open hub answers the hub-key query (``udpim.net.keyquery``); a closed hub does not.
  Every hub answers NAT observes with ``seen`` and sends the echoes its sessions ask for
  (``udpim.net.natprobe``): a ``seen`` reveals no key, and echoes need a session.
* ``keepalive`` frames set the session's liveness (``SetLiveness`` through the
  ``ActionRunner``) and feed ``HubReachability``; ``HubInfo.status()`` reports the
  core's statistics, reachability (reachable now, gaps) and the echo scheduler's
  figures, and the periodic statistics line includes them.
* ``serve_hub`` prints nothing; it logs under ``udpim.net.hub``. What strangers can
  cause (drops, refused hellos, bad frames) is only counted, and logged at most once per
  interval (``DropReporter``, ``STATISTICS_LOG_INTERVAL_S``), so logs cannot be flooded.
  Errors it raises are one-line ``UdpimError``s: ``DataDirBusy``, ``IdentityError``,
  ``StoreError``, ``ListenError``, ``ServiceFailed``.
* Shutdown (cancellation): every session gets a CLOSE (shielded, bounded flush), then
  the store finishes the ops already submitted and closes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Final, final

import trio

from udpim.core.config import EndpointConfig
from udpim.core.endpoint import Endpoint
from udpim.core.events import (
    Event,
    MessageReceived,
    PeerReachable,
    PeerUnreachable,
    SessionClosed,
    SessionEstablished,
)
from udpim.core.session import Session
from udpim.identity import load_or_create_identity, public_key_text
from udpim.im import events as im
from udpim.im.hubcore import HubCore
from udpim.net.actions import ActionRunner
from udpim.net.datadir import HUB_LOCK, hold_data_dir, open_owned_store
from udpim.net.droplog import DropReporter
from udpim.net.errors import ServiceFailed, plain_errors
from udpim.net.keyquery import answer_query
from udpim.net.listen import open_owned_udp_socket
from udpim.net.natprobe import EchoScheduler, EchoService
from udpim.net.reachability import HubReachability
from udpim.net.udp import DatagramSocket, EndpointDriver
from udpim.net.wallclock import WallClockMs, handshake_clock_ns, system_clock_ms
from udpim.settings import Address, format_address
from udpim.store.base import Store

__all__ = ["HUB_DATABASE", "HubConfig", "HubInfo", "serve_hub"]

log = logging.getLogger("udpim.net.hub")

HUB_DATABASE: Final = "hub.db"
"""The hub's database file inside its data directory."""
STATISTICS_LOG_INTERVAL_S: Final = 300.0
"""How often the hub logs its figures (sessions, users online, messages), if they changed."""
ACCOUNTS_RELOAD_MIN_S: Final = 2.0
"""A closed hub re-reads its accounts after a refused key at most this often."""


@final
@dataclass(frozen=True, slots=True)
class HubConfig:
    """What a hub needs to run.

    Attributes:
        data_dir: identity, database and lock file live here (created 0700).
        listen: the UDP address to bind (ignored when a socket is injected).
        closed: only users registered with ``udpim hub adduser`` may log in.
        endpoint: endpoint and session tunables.
    """

    data_dir: Path
    listen: Address
    closed: bool = False
    endpoint: EndpointConfig = field(default_factory=EndpointConfig)


def _no_status() -> dict[str, object]:
    return {}


@final
@dataclass(frozen=True, slots=True)
class HubInfo:
    """What ``serve_hub`` reports once it is listening.

    ``status()`` returns a JSON-ready snapshot: ``im`` (``HubStatistics``),
    ``reachability`` (``ReachabilityReport``) and ``echoes`` (``EchoStatistics``).
    """

    address: Address
    public_key: bytes
    status: Callable[[], dict[str, object]] = field(default=_no_status, compare=False)


async def serve_hub(
    config: HubConfig,
    *,
    sock: DatagramSocket | None = None,
    store: Store | None = None,
    rng: Callable[[int], bytes] = os.urandom,
    wall_clock_ms: WallClockMs | None = None,
    task_status: trio.TaskStatus[HubInfo] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a hub until cancelled.

    Args:
        config: data directory, listen address, closed mode, tunables.
        sock: a bound UDP socket to use instead of binding ``config.listen`` (netsim's
            virtual sockets in simulations); the caller keeps ownership.
        store: a store to use instead of opening ``<data_dir>/hub.db``; the caller
            keeps ownership (simulations pass an inline ``SqliteStore``).
        rng: randomness for the identity (if created), connection IDs and handshakes.
        wall_clock_ms: the wall clock in unix ms (default: the system clock); pass a
            virtual one in simulations so runs replay.
        task_status: reports ``HubInfo(address, public_key)`` once listening.

    Raises:
        DataDirBusy: another hub runs on this data directory.
        IdentityError: the identity file is unusable.
        StoreError: the database cannot be opened.
        ListenError: the address cannot be bound.
        ServiceFailed: the accounts cannot be loaded.
    """
    clock_ms = wall_clock_ms or system_clock_ms
    with plain_errors(), hold_data_dir(config.data_dir, HUB_LOCK, "hub"):
        key, created = load_or_create_identity(config.data_dir, rng)
        if created:
            log.info("created a new hub identity in %s", config.data_dir)
        async with AsyncExitStack() as stack:
            if store is None:
                store = await open_owned_store(stack, config.data_dir / HUB_DATABASE, "hub")
            if sock is None:
                sock = await open_owned_udp_socket(stack, config.listen)
            core = HubCore(
                closed=config.closed, idle_timeout_s=config.endpoint.session.idle_timeout_s
            )
            hub = _Hub(core, store, published_key=None if config.closed else key.public)
            endpoint = Endpoint(config.endpoint, key, rng, accept_peer=hub.accept_key)
            driver = EndpointDriver(
                endpoint,
                sock,
                hub.on_session_event,
                wall_clock_ns=handshake_clock_ns(wall_clock_ms),
                input_gate=hub.wait_for_room,
                on_foreign=hub.on_foreign,
            )
            await hub.run(driver, clock_ms, key.public, config, task_status)


@final
class _Hub:
    """The running hub: event mapping and notices (see the module docstring)."""

    def __init__(self, core: HubCore, store: Store, *, published_key: bytes | None) -> None:
        self._core = core
        self._store = store
        self._published_key = published_key  # answered to key queries (open hubs)
        self._driver: EndpointDriver | None = None
        self.echoes = EchoService(EchoScheduler(), self._send_datagram)
        self.reachability = HubReachability()
        self._runner: ActionRunner | None = None
        self._clock_ms: Callable[[], int] = system_clock_ms
        self._fatal: ServiceFailed | None = None
        self._failed = trio.Event()
        self._knocked = trio.Event()  # a closed hub refused a key: re-read the accounts

    def accept_key(self, key: bytes) -> bool:
        """The endpoint's ``accept_peer``: ``HubCore.accept_key``, and a refusal wakes
        the accounts re-read."""
        if self._core.accept_key(key):
            return True
        if self._core.reload_due:
            self._knocked.set()
        return False

    async def _reload_accounts(self) -> None:
        """Re-read the accounts after a refused key, at most every ACCOUNTS_RELOAD_MIN_S."""
        assert self._runner is not None  # started after the runner
        while True:
            await self._knocked.wait()
            self._knocked = trio.Event()
            self._runner.run(self._core.reload_accounts())
            await trio.sleep(ACCOUNTS_RELOAD_MIN_S)

    def on_foreign(self, data: bytes, source: Address) -> bytes | None:
        """A datagram outside udpim: a key query (open hubs) or a NAT observe."""
        if self._published_key is not None:
            answer = answer_query(data, self._published_key)
            if answer is not None:
                return answer
        return self.echoes.on_datagram_untrusted(data, source)

    async def _send_datagram(self, data: bytes, address: Address) -> None:
        assert self._driver is not None  # echoes are requested only once running
        await self._driver.send_datagram(data, address)

    def status(self) -> dict[str, object]:
        """The hub's figures (see ``HubInfo``)."""
        report: dict[str, object] = {"im": asdict(self._core.statistics())}
        report["echoes"] = asdict(self.echoes.scheduler.statistics())
        if self._driver is not None:
            reach = self.reachability.report(self._driver.endpoint.sessions(), trio.current_time())
            report["reachability"] = asdict(reach)
        return report

    async def wait_for_room(self) -> None:
        if self._runner is not None:
            await self._runner.wait_for_room()

    async def run(
        self,
        driver: EndpointDriver,
        clock_ms: Callable[[], int],
        public_key: bytes,
        config: HubConfig,
        task_status: trio.TaskStatus[HubInfo],
    ) -> None:
        self._clock_ms = clock_ms
        self._driver = driver
        echoes = self.echoes
        runner = ActionRunner(
            self._core,
            driver,
            self._store,
            on_notify=self._on_notify,
            on_liveness=self.reachability.on_liveness,
            on_echo=lambda action: echoes.request(action.sid, action.token, action.delay_s),
        )
        self._runner = runner
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(runner.serve)
                runner.run(self._core.start())
                await nursery.start(driver.serve)
                nursery.start_soon(DropReporter(driver, log).run)
                nursery.start_soon(echoes.run)
                nursery.start_soon(self._log_statistics)
                nursery.start_soon(self._reload_accounts)
                log.info(
                    "hub listening on %s, key %s, %s",
                    format_address(driver.address),
                    public_key_text(public_key),
                    "closed" if config.closed else "open (trust on first use)",
                )
                task_status.started(HubInfo(driver.address, public_key, self.status))
                await self._failed.wait()
                nursery.cancel_scope.cancel()
        finally:
            await driver.aclose()
        if self._fatal is not None:
            raise self._fatal

    async def _log_statistics(self) -> None:
        last = None
        while True:
            await trio.sleep(STATISTICS_LOG_INTERVAL_S)
            stats = self._core.statistics()
            assert self._driver is not None
            reach = self.reachability.report(self._driver.endpoint.sessions(), trio.current_time())
            if (stats, reach) != last:
                log.info(
                    "hub: %d sessions, %d users online, %d accounts, %d messages stored, "
                    "%d delivers pushed, %d hellos refused, %d bad frames, %d store errors; "
                    "reachable now %d of %d, %d reachability gaps (longest %.1f s)",
                    stats.sessions,
                    stats.online_users,
                    stats.accounts,
                    stats.messages_stored,
                    stats.delivers_pushed,
                    stats.refused_hellos,
                    stats.bad_frames,
                    stats.store_errors,
                    reach.reachable_now,
                    reach.sessions,
                    reach.gaps,
                    reach.gap_max_s,
                )
            last = (stats, reach)

    def on_session_event(self, session: Session, event: Event) -> None:
        runner = self._runner
        assert runner is not None
        runner.closer.on_session_event(session, event)
        core, sid = self._core, session.local_cid
        if isinstance(event, MessageReceived):
            runner.run(core.on_message(sid, event.payload, self._clock_ms()))
        elif isinstance(event, SessionEstablished):
            runner.run(core.on_established(sid, event.peer_static_key))
        elif isinstance(event, PeerUnreachable):
            runner.run(core.on_unreachable(sid))
        elif isinstance(event, PeerReachable):
            runner.run(core.on_reachable(sid))
        elif isinstance(event, SessionClosed):
            self.echoes.cancel(sid)
            self.reachability.on_closed(session)
            runner.run(core.on_closed(sid))

    def _on_notify(self, event: im.Event) -> None:
        if isinstance(event, im.SessionWelcomed):
            log.debug("welcomed %s device %s", event.user, event.device)
        elif isinstance(event, im.SessionRefused):  # counted; see _log_statistics
            log.debug("refused a hello as %s: %s", event.user, event.reason)
        elif isinstance(event, im.AccountBound):
            log.info("bound the new user %s to key %s", event.user, public_key_text(event.key))
        elif isinstance(event, im.PresenceChanged):
            log.debug("%s is %s", event.user, "online" if event.online else "offline")
        elif isinstance(event, im.StoreFailed):
            log.error("store failure in %s: %s", event.op_name, event.detail)
            if event.op_name == "LoadingAccounts":
                self._fatal = ServiceFailed(f"cannot load the hub's accounts: {event.detail}")
                self._failed.set()
