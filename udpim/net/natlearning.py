"""The daemon's keepalive: the heartbeat interval in force, NAT-timeout learning, path
changes, and the reachability history ``udpim status`` shows.

What it owns: ``KeepaliveManager``, the Trio shell around ``udpim.im.natlearn.NatLearner``
(docs/IM.md section 16). It drives the probe socket (observes out; ``seen`` and echoes
in), the learner's timer, and the check of the local address.

Rules:

* The interval in force starts at ``SessionConfig.heartbeat_interval_s`` and changes
  only on the learner's ``SetHeartbeat``. It is applied to every session to the hub as
  it is established, and to the current one when it changes, with the daemon's own
  liveness stretched to match (``dead_peer = max(configured, 2 x interval + 10 s)``,
  ``idle = max(configured, 4 x interval)``): the hub answers each heartbeat, so the
  daemon hears from it about once per interval. It is announced to the hub with
  ``keepalive {interval_ms, nat_timeout_ms}`` after every welcome and on every change.
* Learning runs only with ``PeerConfig.learn_keepalive`` and a probe socket; it starts
  at the first welcome, its timer is fed only while welcomed (a test the session could
  not finish is void and runs again), and its observes go to the hub's address from the
  probe socket. Only datagrams from the hub's address are read from it.
* A path change (the local address changed, checked every ``LOCAL_ADDRESS_POLL_S``; or
  the public address in ``seen`` changed) restarts learning at the default interval.
* Three tasks at most (probe receiver, learner timer, local address watch); nothing
  here blocks the driver's event handler.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from typing import Final, final

import trio

from udpim.core.config import SessionConfig
from udpim.core.session import Session
from udpim.core.state import SessionState
from udpim.im.liveness import dead_peer_timeout_s, idle_timeout_s
from udpim.im.natlearn import (
    LearnAction,
    LearnPhase,
    NatLearner,
    RequestProbe,
    SendObserve,
    SetHeartbeat,
)
from udpim.im.peercore import PeerCore
from udpim.net.actions import ActionRunner
from udpim.net.natprobe import encode_observe, parse_echo_untrusted, parse_seen_untrusted
from udpim.net.reachability import ReachabilityHistory
from udpim.net.udp import DatagramSocket, EndpointDriver
from udpim.settings import Address, format_address

__all__ = ["LOCAL_ADDRESS_POLL_S", "KeepaliveManager", "LocalAddress", "system_local_address"]

log = logging.getLogger("udpim.net.natlearning")

LOCAL_ADDRESS_POLL_S: Final = 30.0
"""How often the daemon checks whether its local address changed (another network)."""
PROBE_BUFFER_BYTES: Final = 2048

LocalAddress = Callable[[], Awaitable[str | None]]
"""Returns the local IP address the daemon reaches the hub from (None: unknown now)."""


def system_local_address(hub: Address) -> LocalAddress:
    """The local address the operating system would use towards ``hub``: a UDP socket is
    connected (no packet is sent) and asked for its name."""

    async def local_address() -> str | None:
        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        try:
            await sock.connect(hub)
            return str(sock.getsockname()[0])
        except OSError:
            return None
        finally:
            sock.close()

    return local_address


@final
class KeepaliveManager:
    """The daemon's keepalive (see the module docstring).

    Args:
        driver: the daemon's endpoint driver.
        core: the daemon's core (``set_keepalive``, ``request_nat_probe``).
        runner: executes the core's actions.
        session: the session tunables (default interval, configured timeouts).
        hub: the hub's address (observes go there; only its datagrams are read).
        learner: the NAT learner, or None when learning is off.
        probe_sock: the probe socket (required with a learner).
        local_address: how to read the local address, or None (no check).
        current_session: returns the current session to the hub, if any.
        wall_clock_ms: the wall clock for the history (unix ms).
    """

    def __init__(
        self,
        *,
        driver: EndpointDriver,
        core: PeerCore,
        runner: ActionRunner,
        session: SessionConfig,
        hub: Address,
        learner: NatLearner | None,
        probe_sock: DatagramSocket | None,
        local_address: LocalAddress | None,
        current_session: Callable[[], Session | None],
        wall_clock_ms: Callable[[], int],
    ) -> None:
        if learner is not None and probe_sock is None:
            raise ValueError("learning needs a probe socket")
        self._driver = driver
        self._core = core
        self._runner = runner
        self._config = session
        self._hub = hub
        self._learner = learner
        self._probe_sock = probe_sock
        self._local_address = local_address
        self._current_session = current_session
        self._wall_clock_ms = wall_clock_ms
        self.interval_s = session.heartbeat_interval_s
        self.learned_timeout_s: float | None = None
        self.history = ReachabilityHistory()
        self._welcomed = False
        self._observes: list[bytes] = []
        self._wake = trio.Event()
        self._local: str | None = None
        self._public: Address | None = None
        self._path_changes = 0

    # ------------------------------------------------------------------ daemon events

    def on_session_established(self, session: Session) -> None:
        """A session to the hub is up: give it the interval in force."""
        self._apply(session)

    def on_welcomed(self) -> None:
        """The hub welcomed us: reachable; learning starts (once) or resumes."""
        self._welcomed = True
        self.history.record(self._wall_clock_ms(), "reachable", "logged in to the hub")
        # The hub sizes our session's liveness from the interval we announce (also when
        # the interval is fixed, so a long --heartbeat does not make presence flap).
        self._runner.run(self._core.set_keepalive(self.interval_s, self.learned_timeout_s))
        learner = self._learner
        if learner is not None and learner.phase is LearnPhase.IDLE:
            self._execute(learner.start(trio.current_time()))
        self._wake.set()

    def on_unreachable(self, silent_for_s: float) -> None:
        """The hub fell silent (the connector closes the session and redials)."""
        detail = f"the hub was silent for {silent_for_s:.0f} s"
        self.history.record(self._wall_clock_ms(), "unreachable", detail)

    def on_session_ended(self, session: Session, reason: str) -> None:
        """A session ended; only the welcomed current one is an event."""
        if not self._welcomed or session is not self._current_session():
            return
        self._welcomed = False
        self.history.record(self._wall_clock_ms(), "disconnected", reason)
        if self._learner is not None:
            self._execute(self._learner.on_interrupted(trio.current_time()))

    # ------------------------------------------------------------------ status

    def status(self) -> dict[str, object]:
        """A JSON-ready snapshot for ``udpim status``."""
        status: dict[str, object] = {
            "learning": self._learner is not None,
            "heartbeat_interval_s": self.interval_s,
            "learned_nat_timeout_s": self.learned_timeout_s,
            "local_address": self._local,
            "public_address": None if self._public is None else format_address(self._public),
        }
        learner = self._learner
        if learner is None:
            status.update(phase="off", path_changes=self._path_changes)
            return status
        now, wall_ms = trio.current_time(), self._wall_clock_ms()
        learned = learner.status()
        next_at = learned["next_test_at"]
        status.update(
            phase=learned["phase"],
            failed_at_s=learned["failed_at_s"],
            testing_delay_s=learned["testing_delay_s"],
            tests_run=learned["tests_run"],
            path_changes=learned["path_changes"],
            next_test_in_s=None
            if not isinstance(next_at, float)
            else round(max(0.0, next_at - now), 1),
            tests=[_wall(result, now, wall_ms) for result in _dicts(learned["history"])],
        )
        return status

    # ------------------------------------------------------------------ tasks

    async def run(self) -> None:
        """Announce the interval, then run the probe and address tasks until cancelled."""
        self._runner.run(self._core.set_keepalive(self.interval_s, None))
        async with trio.open_nursery() as nursery:
            if self._learner is not None:
                nursery.start_soon(self._receive_probes)
                nursery.start_soon(self._learn, self._learner)
            if self._local_address is not None:
                nursery.start_soon(self._watch_local_address, self._local_address)

    async def _learn(self, learner: NatLearner) -> None:
        sock = self._probe_sock
        assert sock is not None
        while True:
            while self._observes:
                data = self._observes.pop(0)
                try:
                    await sock.sendto(data, self._hub)
                except OSError as exc:
                    log.debug("observe to %s failed: %s", format_address(self._hub), exc)
            deadline = learner.get_timer() if self._welcomed else None
            with trio.move_on_at(math.inf if deadline is None else deadline):
                await self._wake.wait()
            self._wake = trio.Event()
            now = trio.current_time()
            deadline = learner.get_timer()
            if self._welcomed and deadline is not None and now >= deadline:
                self._execute(learner.on_timer(now))

    async def _receive_probes(self) -> None:
        sock, learner = self._probe_sock, self._learner
        assert sock is not None
        assert learner is not None
        while True:
            data, source = await sock.recvfrom(PROBE_BUFFER_BYTES)
            if (str(source[0]), int(source[1])) != self._hub:
                continue
            now = trio.current_time()
            seen = parse_seen_untrusted(data)
            if seen is not None:
                token, observed = seen
                changes = learner.path_changes
                actions = learner.on_seen(token, now, observed)
                if learner.path_changes != changes:
                    self._record_path_change(f"public address {self._public} -> {observed}")
                if observed is not None:
                    self._public = observed
                self._execute(actions)
                continue
            echoed = parse_echo_untrusted(data)
            if echoed is not None:
                self._execute(learner.on_echo(echoed, now))

    async def _watch_local_address(self, local_address: LocalAddress) -> None:
        while True:
            address = await local_address()
            if address is not None:
                if self._local is not None and address != self._local:
                    self._on_path_changed(f"local address {self._local} -> {address}")
                self._local = address
            await trio.sleep(LOCAL_ADDRESS_POLL_S)

    # ------------------------------------------------------------------ internals

    def _on_path_changed(self, detail: str) -> None:
        self._record_path_change(detail)
        if self._learner is None:
            self._path_changes += 1
            return
        self._execute(self._learner.on_path_changed(trio.current_time()))

    def _record_path_change(self, detail: str) -> None:
        log.info("network path changed (%s)", detail)
        self.history.record(self._wall_clock_ms(), "path-changed", detail)

    def _execute(self, actions: list[LearnAction]) -> None:
        learner = self._learner
        assert learner is not None or not actions
        for action in actions:
            if isinstance(action, SendObserve):
                self._observes.append(encode_observe(action.token))
                self._wake.set()
            elif isinstance(action, RequestProbe):
                sent = self._core.request_nat_probe(action.token, action.delay_s)
                if sent:
                    self._runner.run(sent)
                elif learner is not None:
                    learner.on_interrupted(trio.current_time())
                    self._wake.set()
            else:
                self._set_interval(action)

    def _set_interval(self, action: SetHeartbeat) -> None:
        changed = action.interval_s != self.interval_s
        self.interval_s = action.interval_s
        self.learned_timeout_s = action.learned_timeout_s
        if changed:
            log.info(
                "heartbeat every %g s (NAT keeps idle mappings %s)",
                action.interval_s,
                "for an unknown time"
                if action.learned_timeout_s is None
                else f"at least {action.learned_timeout_s:g} s",
            )
        session = self._current_session()
        if session is not None:
            self._apply(session)
        self._runner.run(self._core.set_keepalive(action.interval_s, action.learned_timeout_s))

    def _apply(self, session: Session) -> None:
        # With or without learning, the session's liveness must outlast the interval in
        # force: a dead-peer timeout at or below the heartbeat interval would declare the
        # hub dead between two heartbeats and redial for nothing.
        if session.state in (SessionState.CLOSING, SessionState.CLOSED):
            return
        interval, config = self.interval_s, self._config
        session.set_heartbeat_interval(interval)
        session.set_liveness(
            max(config.dead_peer_timeout_s, dead_peer_timeout_s(interval)),
            idle_timeout_s(interval, config.idle_timeout_s),
        )
        self._driver.endpoint.touch(session)
        self._driver.request_flush()


def _dicts(value: object) -> list[dict[str, object]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _wall(result: dict[str, object], now: float, wall_ms: int) -> dict[str, object]:
    at = result.get("at")
    assert isinstance(at, float)
    return {**result, "at": wall_ms - round((now - at) * 1000)}
