"""The daemon's connection to its hub: which key to dial, dialling, and redialling.

What it owns: ``Backoff`` (exponential, with jitter) and ``HubConnector``, the one task
that keeps the daemon's session to the hub alive.

Rules:

* Dial only after the durable state is loaded (``StateLoaded``: it carries the pinned
  hub key). Which key: ``--hub-key`` if given (pinned; a different pinned key is
  replaced, with a warning: the explicit flag wins); else the pinned key; else ask the
  hub (``udpim.net.keyquery``), pin the answer and warn (trust on first use).
* One session at a time. When it ends (closed by either side, idle, handshake timeout)
  or the hub falls silent (``PeerUnreachable``: we close it ourselves), wait a backoff
  delay and dial again. Delays start at ``MIN_BACKOFF_S``, double per failed attempt up
  to ``MAX_BACKOFF_S``, carry up to +50 % random jitter (from the injected rng, so
  simulations replay) and never exceed ``MAX_BACKOFF_S``; a welcome resets them.
* A ``refused`` hello stops the daemon (``PeerRefused``): the name belongs to another
  key, or a closed hub does not know it. Retrying would not change the answer.
* After a handshake timeout the hub's key is queried once: if the hub answers with a
  different key than the one we dial, the daemon stops (``HubKeyMismatch``) instead of
  retrying forever with a key that cannot work.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final, final

import trio

from udpim.core.frames import CloseReason
from udpim.core.session import Session
from udpim.core.state import SessionState
from udpim.identity import public_key_text
from udpim.im.peercore import PeerCore
from udpim.net.actions import ActionRunner
from udpim.net.errors import HubKeyMismatch, PeerRefused
from udpim.net.keyquery import QUERY, parse_answer_untrusted
from udpim.net.udp import EndpointDriver
from udpim.settings import Address, format_address

__all__ = ["KEY_QUERY_WAIT_S", "MAX_BACKOFF_S", "MIN_BACKOFF_S", "Backoff", "HubConnector"]

log = logging.getLogger("udpim.net.reconnect")

MIN_BACKOFF_S: Final = 1.0
MAX_BACKOFF_S: Final = 60.0
JITTER: Final = 0.5
"""A delay is ``base * (1 + JITTER * u)`` for uniform ``u`` in [0, 1), capped."""
KEY_QUERY_WAIT_S: Final = 2.0
"""How long one hub-key query waits for its answer."""


@final
class Backoff:
    """Exponential backoff with jitter between ``MIN_BACKOFF_S`` and ``MAX_BACKOFF_S``.

    Args:
        rng: randomness for the jitter (``os.urandom`` or a seeded one).
    """

    def __init__(self, rng: Callable[[int], bytes]) -> None:
        self._rng = rng
        self._base_s = MIN_BACKOFF_S

    def next_delay_s(self) -> float:
        """The delay before the next attempt; later calls return longer delays."""
        fraction = int.from_bytes(self._rng(4), "big") / 2**32
        delay = min(MAX_BACKOFF_S, self._base_s * (1 + JITTER * fraction))
        self._base_s = min(MAX_BACKOFF_S, self._base_s * 2)
        return delay

    def reset(self) -> None:
        """Start again from ``MIN_BACKOFF_S`` (after a success)."""
        self._base_s = MIN_BACKOFF_S


@final
class HubConnector:
    """Keeps one session to the hub (see the module docstring).

    The daemon feeds it: ``on_state_loaded``, ``on_welcomed``, ``on_refused``,
    ``on_session_ended``, ``on_unreachable`` and ``on_foreign`` (key answers).

    Args:
        driver: the daemon's endpoint driver.
        core: the daemon's core (to pin the key).
        runner: executes the core's actions.
        hub: the hub's address.
        hub_key: the key given by the user (``--hub-key``), or None.
        rng: randomness for the backoff jitter.
    """

    def __init__(
        self,
        driver: EndpointDriver,
        core: PeerCore,
        runner: ActionRunner,
        *,
        hub: Address,
        hub_key: bytes | None,
        rng: Callable[[int], bytes],
    ) -> None:
        self._driver = driver
        self._core = core
        self._runner = runner
        self._hub = hub
        self._given_key = hub_key
        self._rng = rng
        self._backoff = Backoff(rng)
        self._loaded = trio.Event()
        self._pinned: bytes | None = None
        self._session: Session | None = None
        self._ended = trio.Event()
        self._end_reason: CloseReason | None = None
        self._refused: str | None = None
        self._key_answer: tuple[trio.Event, list[bytes]] | None = None
        self.attempts = 0
        self.next_attempt_at: float | None = None

    @property
    def session(self) -> Session | None:
        """The current session to the hub (any state), or None between attempts."""
        return self._session

    # ------------------------------------------------------------------ inputs

    def on_state_loaded(self, pinned: bytes | None) -> None:
        """The daemon's state is loaded; ``pinned`` is the stored hub key."""
        self._pinned = pinned
        self._loaded.set()

    def on_welcomed(self) -> None:
        """The hub welcomed us on the current session: the next redial starts quickly."""
        self._backoff.reset()

    def on_refused(self, reason: str) -> None:
        """The hub refused our hello: stop now (not only once the hub's CLOSE arrives)."""
        self._refused = reason
        self._ended.set()

    def on_session_ended(self, session: Session, reason: CloseReason) -> None:
        """A session ended (``SessionClosed``); only the current one matters."""
        if session is self._session:
            self._end_reason = reason
            self._ended.set()

    def on_unreachable(self, session: Session) -> None:
        """The hub fell silent on ``session``: close it, so the loop redials."""
        if session is not self._session or session.state is SessionState.CLOSED:
            return
        if session.state is not SessionState.CLOSING:
            self._driver.close_session(session, CloseReason.NORMAL, "hub unreachable")

    def on_foreign(self, data: bytes, address: Address) -> bytes | None:
        """A datagram outside udpim: maybe the hub's answer to our key query."""
        waiting = self._key_answer
        key = parse_answer_untrusted(data)
        if waiting is not None and key is not None and address == self._hub:
            waiting[1].append(key)
            waiting[0].set()
        return None

    # ------------------------------------------------------------------ the task

    async def run(self) -> None:
        """Dial and redial until cancelled.

        Raises:
            PeerRefused: the hub refused our hello.
            HubKeyMismatch: the hub's key is not the one we dial.
        """
        await self._loaded.wait()
        key = await self._choose_key()
        while True:
            await self._attempt(key)
            if self._refused is not None:
                raise PeerRefused(
                    f"the hub at {format_address(self._hub)} refused us: {self._refused}"
                )
            if self._end_reason is CloseReason.HANDSHAKE_TIMEOUT:
                await self._check_key(key)
            delay_s = self._backoff.next_delay_s()
            log.info(
                "session to the hub %s ended (%s); redialling in %.1f s",
                format_address(self._hub),
                "handshake timed out"
                if self._end_reason is CloseReason.HANDSHAKE_TIMEOUT
                else "closed",
                delay_s,
            )
            self.next_attempt_at = trio.current_time() + delay_s
            await trio.sleep(delay_s)
            self.next_attempt_at = None

    async def _attempt(self, key: bytes) -> None:
        self._ended = trio.Event()
        self._end_reason = None
        self.attempts += 1
        log.debug("dialling the hub %s (attempt %d)", format_address(self._hub), self.attempts)
        self._session = self._driver.connect(key, self._hub)
        try:
            await self._ended.wait()
        finally:
            self._session = None

    async def _choose_key(self) -> bytes:
        given, pinned = self._given_key, self._pinned
        if given is not None:
            if pinned is not None and pinned != given:
                log.warning(
                    "replacing the pinned hub key %s with the given key %s",
                    public_key_text(pinned),
                    public_key_text(given),
                )
            if pinned != given:
                self._runner.run(self._core.pin_hub_key(given))
            return given
        if pinned is not None:
            return pinned
        backoff = Backoff(self._rng)
        first = True
        while True:
            answer = await self._query_key()
            if answer is not None:
                log.warning(
                    "trusting the hub key %s of %s on first use (pass --hub-key to verify it)",
                    public_key_text(answer),
                    format_address(self._hub),
                )
                self._runner.run(self._core.pin_hub_key(answer))
                return answer
            delay_s = backoff.next_delay_s()
            log.log(
                logging.WARNING if first else logging.INFO,
                "the hub %s does not answer the key query (down, unreachable, or a closed "
                "hub: then pass --hub-key); retrying in %.1f s",
                format_address(self._hub),
                delay_s,
            )
            first = False
            await trio.sleep(delay_s)

    async def _query_key(self) -> bytes | None:
        event, answers = trio.Event(), list[bytes]()
        self._key_answer = (event, answers)
        try:
            await self._driver.send_datagram(QUERY, self._hub)
            with trio.move_on_after(KEY_QUERY_WAIT_S):
                await event.wait()
        finally:
            self._key_answer = None
        return answers[0] if answers else None

    async def _check_key(self, key: bytes) -> None:
        answer = await self._query_key()
        if answer is None or answer == key:
            return
        source = "the given --hub-key" if self._given_key is not None else "the pinned key"
        raise HubKeyMismatch(
            f"the hub at {format_address(self._hub)} presents key {public_key_text(answer)}, "
            f"not {source} {public_key_text(key)}: refusing to connect (if the hub's key "
            f"really changed, start the daemon with --hub-key {public_key_text(answer)})"
        )
