"""The initiator's side of the handshake: sending initiations until one is answered.

Rules (docs/PROTOCOL.md "Handshake"):

* Every initiation, including each retransmission, is a *fresh* one: new ephemeral key,
  newer timestamp (WireGuard's rule). The responder rejects any initiation whose
  timestamp is not newer than the last it accepted from us, so a recorded initiation
  cannot be replayed, and a retransmission is never mistaken for one.
* Timestamps come from the caller's wall clock at ``connect`` plus the elapsed session
  time, so they increase even if the caller's clock does not move between retries.
* Retransmissions back off exponentially from ``handshake_retry_s`` up to
  ``handshake_retry_max_s``; the dialer gives up after ``handshake_timeout_s``.
* A response may answer any of the last few initiations (the first response can arrive
  after a retry was sent), so the dialer keeps the newest ``KEPT_ATTEMPTS`` and tries
  each. A COOKIE_REPLY makes the next initiation carry the cookie (mac2) and go out at
  once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, final

from udpim.core.config import SessionConfig
from udpim.core.crypto import StaticKey
from udpim.core.errors import BadPacket, DropReason
from udpim.core.handshake import HandshakeResult, InitiatorHandshake

__all__ = ["KEPT_ATTEMPTS", "Dialer"]

KEPT_ATTEMPTS = 3

_T = TypeVar("_T")


@final
class Dialer:
    """Produces initiations on schedule and turns the answer into transport secrets.

    Args:
        config: retry and timeout settings.
        local_key: our static identity.
        peer_public: the responder's static public key (32 bytes).
        local_cid: the connection ID the responder must put on packets to us.
        rng: randomness for ephemeral keys.
        now: the session clock at connect.
        timestamp_ns: the wall clock at connect, in nanoseconds.
    """

    __slots__ = (
        "_attempts",
        "_cookie",
        "_give_up_at",
        "_local_cid",
        "_local_key",
        "_max_retry_s",
        "_next_at",
        "_peer_public",
        "_retry_s",
        "_rng",
        "_started",
        "_timestamp_ns",
        "initiations_sent",
    )

    def __init__(
        self,
        config: SessionConfig,
        local_key: StaticKey,
        peer_public: bytes,
        local_cid: bytes,
        rng: Callable[[int], bytes],
        now: float,
        timestamp_ns: int,
    ) -> None:
        self._local_key = local_key
        self._peer_public = peer_public
        self._local_cid = local_cid
        self._rng = rng
        self._started = now
        self._timestamp_ns = timestamp_ns
        self._retry_s = config.handshake_retry_s
        self._max_retry_s = config.handshake_retry_max_s
        self._give_up_at = now + config.handshake_timeout_s
        self._next_at = now
        self._attempts: list[InitiatorHandshake] = []
        self._cookie: bytes | None = None
        self.initiations_sent = 0

    def initiation_due(self, now: float) -> bool:
        """Whether an initiation should be sent now."""
        return now >= self._next_at

    def next_initiation(self, now: float) -> bytes:
        """Build a fresh initiation and schedule the retransmission after it."""
        elapsed_ns = round((now - self._started) * 1e9)
        attempt = InitiatorHandshake(
            self._local_key,
            self._peer_public,
            self._local_cid,
            self._rng,
            self._timestamp_ns + elapsed_ns + self.initiations_sent,
        )
        self._attempts.append(attempt)
        del self._attempts[:-KEPT_ATTEMPTS]
        self.initiations_sent += 1
        self._next_at = now + self._retry_s
        self._retry_s = min(self._retry_s * 2, self._max_retry_s)
        return attempt.initiation(self._cookie)

    def deadline(self) -> float:
        """The next retransmission or the give-up time, whichever is first."""
        return min(self._next_at, self._give_up_at)

    def timed_out(self, now: float) -> bool:
        """Whether the handshake should be abandoned."""
        return now >= self._give_up_at

    def on_cookie_reply_untrusted(self, data: bytes, now: float) -> None:
        """Take the cookie from a COOKIE_REPLY and re-send at once.

        Raises:
            BadPacket: if no outstanding initiation can open the reply.
        """
        self._cookie = self._try_each(lambda attempt: attempt.consume_cookie_reply_untrusted(data))
        self._next_at = now

    def on_response_untrusted(self, data: bytes) -> HandshakeResult:
        """Complete the handshake with a RESPONSE.

        Raises:
            BadPacket: if no outstanding initiation accepts the response.
        """
        return self._try_each(lambda attempt: attempt.consume_response_untrusted(data))

    def _try_each(self, consume: Callable[[InitiatorHandshake], _T]) -> _T:
        first_error = BadPacket(DropReason.UNEXPECTED, "no initiation outstanding")
        for attempt in reversed(self._attempts):
            try:
                return consume(attempt)
            except BadPacket as exc:
                if first_error.reason is DropReason.UNEXPECTED:
                    first_error = exc
        raise first_error
