"""Errors raised by the sans-IO core, and the reasons a datagram can be dropped.

Rules (h11's split):

* ``LocalProtocolError`` means *our* caller misused the API (sent on a closed session,
  passed a message larger than the configured maximum, ...). It is raised, and the state
  of the object it was raised from is unchanged.
* ``BadPacket`` means bytes from the network were not acceptable. Decoders named
  ``*_untrusted`` raise only ``BadPacket``; ``Session`` and ``Endpoint`` catch it and count
  it under its ``DropReason`` in ``statistics()``. It never escapes ``receive_datagram``.
* Authenticated input that no honest peer could send ends the session with a
  ``SessionClosed`` event carrying a ``CloseReason``; it is not an exception either.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, final

if TYPE_CHECKING:
    from udpim.core.frames import CloseReason

__all__ = ["BadPacket", "DropReason", "LocalProtocolError", "ProtocolViolation", "UdpimError"]


class UdpimError(Exception):
    """Base class of every error udpim raises on purpose."""


@final
class LocalProtocolError(UdpimError):
    """The caller asked the core for something the protocol does not allow now."""


@final
class DropReason(Enum):
    """Why a received datagram was dropped. Every drop is counted under one of these.

    The values are stable strings: they appear in ``statistics()``, logs and
    docs/PROTOCOL.md ("Drop reasons").
    """

    TRUNCATED = "truncated"  # shorter than its header or a length field says
    MALFORMED = "malformed"  # a field holds a value the format does not allow
    UNKNOWN_VERSION = "unknown-version"  # version bits are not ours
    OVERSIZED = "oversized"  # larger than the configured maximum datagram size
    UNKNOWN_CONNECTION = "unknown-connection"  # no session owns the connection ID
    BAD_MAC = "bad-mac"  # handshake mac1 wrong: the sender does not know our key
    DECRYPT_FAILED = "decrypt-failed"  # AEAD open failed (forged, corrupted, wrong key)
    REPLAYED = "replayed"  # packet number already seen or older than the replay window
    STALE_INITIATION = "stale-initiation"  # handshake timestamp not newer than the last one
    UNKNOWN_PEER = "unknown-peer"  # the responder refuses this static key
    COOKIE_REQUIRED = "cookie-required"  # under load and no valid cookie: answered statelessly
    UNEXPECTED = "unexpected"  # a valid packet that the current state does not accept
    RATE_LIMITED = "rate-limited"  # over a configured per-source or global limit


@final
class BadPacket(UdpimError):
    """A datagram (or part of one) from the network is not acceptable.

    Args:
        reason: the counted drop reason.
        detail: a short human-readable explanation for logs; never shown to the peer.
    """

    def __init__(self, reason: DropReason, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason
        self.detail = detail


@final
class ProtocolViolation(UdpimError):
    """Authenticated input that no honest peer could send (ack of an unsent packet,
    data beyond the advertised window, ...).

    Raised by the session's components and caught by ``Session``, which closes the
    session with ``code`` and sends an authenticated CLOSE. Never escapes the core.

    Args:
        code: the close reason to report.
        detail: a short explanation, sent as the CLOSE text.
    """

    def __init__(self, code: CloseReason, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
