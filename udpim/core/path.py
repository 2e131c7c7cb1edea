"""The peer's address: path validation, migration and the anti-amplification budget.

Rules (docs/PROTOCOL.md "Paths"; RFC 9000 sections 8 and 9, made stricter):

* Until an address is validated, this side never sends it more bytes than it received
  from it (amplification factor <= 1.0; QUIC allows 3). ``send_budget()`` says how many
  bytes may still go out; the session stops packing when it is exhausted.
* A responder's first path is unvalidated until the initiator's first authenticated
  DATA packet proves it received the handshake response (``mark_validated``).
* An authenticated packet from a new address moves the session's sending to that address
  at once (NAT rebinding must not cost a round trip of silence), but only if it carries
  the largest packet number seen so far, so a reordered or delayed old packet cannot drag
  the path back. The new address starts unvalidated, with a budget equal to the bytes it
  sent us, and a PATH_CHALLENGE with 8 unpredictable bytes goes to it. The matching
  PATH_RESPONSE validates it and yields a ``PathChanged`` event.
* If no response arrives within ``path_validation_timeout_s``, the session falls back to
  the previous validated address. A responder whose initiator moved before its first
  DATA packet has none: it sends the same challenge again and keeps waiting (the budget
  still holds meanwhile). Only authenticated packets ever reach this object: a spoofed
  datagram cannot move the path.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import final

from udpim.core.events import PathChanged
from udpim.core.frames import PathChallengeFrame

__all__ = ["Address", "PathManager", "PathState"]

Address = tuple[str, int]

CHALLENGE_BYTES = 8


@final
class PathState(Enum):
    """Whether the address we send to is proven to be the peer's."""

    VALIDATED = "validated"
    VALIDATING = "validating"


@final
class PathManager:
    """The current peer address and what may be sent to it.

    Args:
        address: where the peer is believed to be.
        validated: True if that address is already proven (the initiator's choice).
        received_bytes: bytes already received from an unvalidated address.
        timeout_s: how long to wait for a PATH_RESPONSE before falling back.
    """

    __slots__ = (
        "_challenge",
        "_challenge_pending",
        "_deadline",
        "_fallback",
        "_received_bytes",
        "_sent_bytes",
        "_timeout_s",
        "address",
        "migrations",
        "state",
    )

    def __init__(
        self, address: Address, *, validated: bool, received_bytes: int, timeout_s: float
    ) -> None:
        self.address = address
        self.state = PathState.VALIDATED if validated else PathState.VALIDATING
        self._received_bytes = received_bytes
        self._sent_bytes = 0
        self._timeout_s = timeout_s
        self._fallback: Address | None = None
        self._challenge: bytes | None = None
        self._challenge_pending = False
        self._deadline: float | None = None
        self.migrations = 0

    # --- the budget ------------------------------------------------------------------

    def send_budget(self) -> int | None:
        """Bytes that may still be sent to ``address``; None when it is validated."""
        if self.state is PathState.VALIDATED:
            return None
        return max(0, self._received_bytes - self._sent_bytes)

    def on_sent(self, size: int) -> None:
        """Count ``size`` bytes sent to ``address``."""
        self._sent_bytes += size

    def mark_validated(self) -> None:
        """The peer proved it receives at ``address`` (responder confirmation)."""
        self.state = PathState.VALIDATED
        self._fallback = None
        self._challenge = None
        self._challenge_pending = False
        self._deadline = None

    # --- migration -------------------------------------------------------------------

    def on_authenticated(
        self,
        address: Address,
        size: int,
        *,
        is_largest: bool,
        now: float,
        rng: Callable[[int], bytes],
    ) -> None:
        """Account for an authenticated datagram and migrate if it came from elsewhere.

        Args:
            address: where the datagram came from.
            size: its size in bytes.
            is_largest: it carried the largest packet number received so far.
            now: the current time.
            rng: source of the challenge bytes.
        """
        if address == self.address:
            if self.state is PathState.VALIDATING:
                self._received_bytes += size
            return
        if not is_largest:
            return
        if address == self._fallback:
            # Back on the address we validated before (a flap, or a spoofed copy of a
            # packet was seen first): it needs no new proof.
            self.address = address
            self.mark_validated()
            return
        if self.state is PathState.VALIDATED:
            self._fallback = self.address
        self.address = address
        self.state = PathState.VALIDATING
        self._received_bytes = size
        self._sent_bytes = 0
        self._challenge = rng(CHALLENGE_BYTES)
        self._challenge_pending = True
        self._deadline = now + self._timeout_s

    @property
    def challenge_owed(self) -> bool:
        """A PATH_CHALLENGE waits to go out (``take_challenge`` would return it)."""
        return self._challenge_pending and self._challenge is not None

    def take_challenge(self) -> PathChallengeFrame | None:
        """The PATH_CHALLENGE to send now, if one is waiting to go out."""
        if not self.challenge_owed:
            return None
        assert self._challenge is not None  # challenge_owed checked it
        self._challenge_pending = False
        return PathChallengeFrame(self._challenge)

    def on_challenge_lost(self, frame: PathChallengeFrame) -> None:
        """Send the challenge again if it is still the one we wait for."""
        if frame.data == self._challenge and self.state is PathState.VALIDATING:
            self._challenge_pending = True

    def on_response(self, data: bytes) -> PathChanged | None:
        """Handle a PATH_RESPONSE; returns the event if it validated a migration."""
        if self._challenge is None or data != self._challenge:
            return None
        old = self._fallback
        self.mark_validated()
        if old is None or old == self.address:
            return None
        self.migrations += 1
        return PathChanged(old_address=old, new_address=self.address)

    def deadline(self) -> float | None:
        """When validation of the current address gives up, if it is being validated."""
        return self._deadline

    def on_timeout(self, now: float) -> None:
        """Validation timed out: fall back to the previous validated address; with none,
        challenge the current one again."""
        if self._deadline is None or now < self._deadline:
            return
        if self._fallback is None:
            # A responder whose initiator moved before confirming has no validated
            # address: giving up would leave it inside the budget for good.
            self._challenge_pending = True
            self._deadline = now + self._timeout_s
            return
        self._deadline = None
        self._challenge = None
        self._challenge_pending = False
        self.address = self._fallback
        self._fallback = None
        self.state = PathState.VALIDATED
