"""Events: what a ``Session`` tells its owner. Outputs only, never fed back in.

A driver drains them with ``Session.next_event()`` (or ``Endpoint.next_event()``,
which pairs each with its session) after every input, the way aioquic's ``QuicEvent``
and h11's events are consumed. Names are past tense: they report what happened.

``EventQueue`` is where a session's events wait for ``next_event``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, final

from udpim.core.frames import CloseReason

__all__ = [
    "Event",
    "EventQueue",
    "MessageDelivered",
    "MessageReceived",
    "PathChanged",
    "PeerReachable",
    "PeerUnreachable",
    "SessionClosed",
    "SessionEstablished",
]

Address = tuple[str, int]


@final
@dataclass(frozen=True, slots=True)
class SessionEstablished:
    """The handshake completed; ``peer_static_key`` is the authenticated peer (32 bytes)."""

    peer_static_key: bytes


@final
@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A whole message arrived; emitted exactly once per message, in send order."""

    message_number: int
    payload: bytes


@final
@dataclass(frozen=True, slots=True)
class MessageDelivered:
    """Every fragment of our message ``message_number`` was acknowledged by the peer."""

    message_number: int


@final
@dataclass(frozen=True, slots=True)
class PeerUnreachable:
    """Nothing authenticated arrived for ``dead_peer_timeout_s``; the session keeps trying."""

    silent_for_s: float


@final
@dataclass(frozen=True, slots=True)
class PeerReachable:
    """Authenticated input arrived again after ``PeerUnreachable``."""


@final
@dataclass(frozen=True, slots=True)
class PathChanged:
    """The peer's address changed and the new path was validated."""

    old_address: Address
    new_address: Address


@final
@dataclass(frozen=True, slots=True)
class SessionClosed:
    """The session ended; no more events follow. ``by_peer`` tells who closed it."""

    reason: CloseReason
    text: str
    by_peer: bool


Event = (
    SessionEstablished
    | MessageReceived
    | MessageDelivered
    | PeerUnreachable
    | PeerReachable
    | PathChanged
    | SessionClosed
)

_NO_EVENTS: Final[list[Event]] = []
"""Every empty ``EventQueue``'s item list; nothing is ever added to it."""


@final
class EventQueue:
    """A session's events waiting for ``next_event``, oldest first.

    A list read from a moving head, dropped once read to the end. Not a ``deque``: a
    deque allocates a 64-slot block (about 760 bytes) even when empty, and a hub holds
    100 000 sessions whose queues are nearly always empty; for the same reason an empty
    queue holds the shared ``_NO_EVENTS`` (never written to), not a list of its own.
    """

    __slots__ = ("_head", "_items")

    def __init__(self) -> None:
        self._items = _NO_EVENTS
        self._head = 0

    def __bool__(self) -> bool:
        return self._head < len(self._items)

    def append(self, event: Event) -> None:
        """Queue ``event`` last."""
        if self._items:
            self._items.append(event)
        else:
            self._items = [event]

    def popleft(self) -> Event:
        """Take the oldest event.

        Raises:
            IndexError: if the queue is empty.
        """
        event = self._items[self._head]
        self._head += 1
        if self._head == len(self._items):
            self._items = _NO_EVENTS
            self._head = 0
        return event
