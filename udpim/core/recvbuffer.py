"""Receive side of the message stream: reassembly, exactly-once in-order delivery,
and the flow-control window we grant the peer.

What this module owns: fragments of messages not yet handed to the application,
the stream offset the application has consumed, and ``max_data``, the credit last
advertised to the peer (docs/PROTOCOL.md "Flow control").

Rules kept:

* Exactly once, in order. Message ``n`` is handed out by ``next_message`` only after
  every byte of it arrived and messages ``0 .. n-1`` were handed out. Duplicate and
  overlapping fragments (retransmissions, probes, network duplicates) add nothing:
  only bytes not yet held are stored, and frames of delivered messages are ignored.
* Bounded memory. Stored payload never exceeds ``window_bytes``: honest peers stay
  below ``max_data`` and their messages never overlap in the stream, so anything that
  would push the stored bytes past the window is a ``ProtocolViolation(FLOW_CONTROL)``,
  as is a byte at or beyond ``max_data`` and a message number ``MAX_MESSAGES_AHEAD``
  or more past the first incomplete message (which bounds per-message overhead, e.g.
  of empty messages; ``SendBuffer`` never sends that far ahead).
* Consistency. All fragments of one message agree on ``message_start`` and
  ``total_length``; neighbouring messages tile the stream (``start(n) + total(n) ==
  start(n + 1)``), checked whenever both ends are known (each adjacent pair is checked
  when the later of the two arrives); a message is at most ``max_message_bytes``.
  Anything else is ``ProtocolViolation(PROTOCOL_VIOLATION)``.
* Credit. ``window_frame`` re-advertises ``max_data = consumed + window_bytes`` once
  the application consumed at least ``min(window / 2, window - max_message)`` bytes
  since the last advertisement, so the peer can always send the whole next message.

Theory: a message received in one frame is stored as is; a fragmented one keeps its
pieces keyed by offset plus a sorted list of covered byte ranges, and is joined once
complete. ``missing_ranges``/``merge_range`` are the interval helpers, also used by
``SendBuffer`` for acknowledged ranges.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from functools import lru_cache
from operator import itemgetter
from typing import final

from udpim.core.errors import LocalProtocolError, ProtocolViolation
from udpim.core.frames import CloseReason, DataFrame, WindowFrame

__all__ = ["MAX_MESSAGES_AHEAD", "ReceiveBuffer", "merge_range", "missing_ranges"]

MAX_MESSAGES_AHEAD = 16384
"""A DATA frame's message number must be below (first incomplete message + this).

The sender keeps every message it starts sending below (its oldest unacknowledged
message + this); that one is never ahead of the receiver's first incomplete message,
so honest peers never trip the check.
"""

_END = itemgetter(1)


def missing_ranges(covered: list[tuple[int, int]], start: int, end: int) -> list[tuple[int, int]]:
    """The parts of ``[start, end)`` not inside ``covered``.

    Args:
        covered: sorted, disjoint, non-touching half-open ranges.
        start: first offset of the range asked about.
        end: offset just past it.

    Returns:
        Half-open ranges, ascending.
    """
    pieces: list[tuple[int, int]] = []
    position = start
    for index in range(bisect_right(covered, start, key=_END), len(covered)):
        low, high = covered[index]
        if low >= end:
            break
        if low > position:
            pieces.append((position, low))
        position = high
        if position >= end:
            break
    if position < end:
        pieces.append((position, end))
    return pieces


def merge_range(covered: list[tuple[int, int]], start: int, end: int) -> None:
    """Add ``[start, end)`` to ``covered`` in place, merging overlapping or touching ranges."""
    if start >= end:
        return
    first = bisect_left(covered, start, key=_END)
    last = first
    low, high = start, end
    while last < len(covered) and covered[last][0] <= end:
        low = min(low, covered[last][0])
        high = max(high, covered[last][1])
        last += 1
    covered[first:last] = [(low, high)]


@final
class _Incoming:
    """One message with at least one byte (or its empty body) received."""

    __slots__ = ("covered", "payload", "pieces", "received", "start", "total")

    def __init__(self, start: int, total: int) -> None:
        self.start = start
        self.total = total
        self.received = 0
        self.payload: bytes | None = None  # set once complete
        self.pieces: dict[int, bytes] | None = None
        self.covered: list[tuple[int, int]] | None = None


def _violation(detail: str) -> ProtocolViolation:
    return ProtocolViolation(CloseReason.PROTOCOL_VIOLATION, detail)


@final
class ReceiveBuffer:
    """Reassembles the peer's messages and hands them out once, in order.

    Args:
        window_bytes: stream bytes we let the peer have outstanding (our window).
        max_message_bytes: the largest message we accept.

    Raises:
        LocalProtocolError: unless ``0 <= max_message_bytes < window_bytes`` (a window
            no larger than one message could deadlock).
    """

    __slots__ = (
        "_buffered",
        "_consumed",
        "_delivered",
        "_frontier",
        "_max_data",
        "_max_message_bytes",
        "_messages",
        "_update_bytes",
        "_window",
    )

    def __init__(self, window_bytes: int, max_message_bytes: int) -> None:
        if not 0 <= max_message_bytes < window_bytes:
            raise LocalProtocolError("the window must be larger than the largest message")
        self._window = window_bytes
        self._max_message_bytes = max_message_bytes
        self._update_bytes = _update_bytes(window_bytes, max_message_bytes)
        self._max_data = window_bytes
        self._consumed = 0
        self._buffered = 0
        self._delivered = 0
        self._frontier = 0
        self._messages: dict[int, _Incoming] | None = None

    @property
    def max_data(self) -> int:
        """The flow-control limit last advertised: the peer sends below this offset."""
        return self._max_data

    @property
    def buffered_bytes(self) -> int:
        """Payload bytes held (received, not yet handed to the application)."""
        return self._buffered

    @property
    def delivered_messages(self) -> int:
        """Messages handed out by ``next_message`` (the next one's number)."""
        return self._delivered

    def on_frame(self, frame: DataFrame) -> None:
        """Take one authenticated DATA frame.

        Raises:
            ProtocolViolation: FLOW_CONTROL for bytes at or beyond ``max_data``, memory
                beyond the window or a message number too far ahead;
                PROTOCOL_VIOLATION for an oversized message, a fragment outside its
                message, or fields inconsistent with earlier frames. Nothing is
                changed when it raises.
        """
        number, start, total = frame.message_number, frame.message_start, frame.total_length
        offset, payload = frame.fragment_offset, frame.payload
        end = offset + len(payload)
        if total > self._max_message_bytes:
            raise _violation(f"message {number} of {total} bytes is over the maximum")
        if end > total:
            raise _violation(f"fragment of message {number} ends past its length")
        if start + end > self._max_data:
            raise ProtocolViolation(CloseReason.FLOW_CONTROL, f"data beyond {self._max_data}")
        if number < self._delivered:
            return
        messages = self._messages
        message = messages.get(number) if messages is not None else None
        if message is None:
            self._check_new(number, start, total)
            message = _Incoming(start, total)
            missing = [(offset, end)] if end > offset else []
        elif message.start != start or message.total != total:
            raise _violation(f"fragments of message {number} disagree on its position")
        elif message.payload is not None:
            return
        else:
            assert message.covered is not None
            missing = missing_ranges(message.covered, offset, end)
        new_bytes = sum(high - low for low, high in missing)
        if self._buffered + new_bytes > self._window:
            raise ProtocolViolation(CloseReason.FLOW_CONTROL, "more buffered than the window")
        if messages is None:
            messages = self._messages = {}
        messages[number] = message
        self._buffered += new_bytes
        self._store(message, offset, payload, missing)
        if message.payload is not None and number == self._frontier:
            frontier = number + 1
            while (later := messages.get(frontier)) is not None and later.payload is not None:
                frontier += 1
            self._frontier = frontier

    def _check_new(self, number: int, start: int, total: int) -> None:
        """Validate the first frame of message ``number`` against its neighbours."""
        if start < self._consumed or (number == self._delivered and start != self._consumed):
            raise _violation(f"message {number} starts at {start}, expected {self._consumed}")
        if number >= self._frontier + MAX_MESSAGES_AHEAD:
            raise ProtocolViolation(CloseReason.FLOW_CONTROL, f"message {number} too far ahead")
        messages = self._messages
        if messages is None:
            return
        before = messages.get(number - 1)
        if before is not None and before.start + before.total != start:
            raise _violation(f"message {number} overlaps or misses message {number - 1}")
        after = messages.get(number + 1)
        if after is not None and start + total != after.start:
            raise _violation(f"message {number} overlaps or misses message {number + 1}")

    @staticmethod
    def _store(
        message: _Incoming, offset: int, payload: bytes, missing: list[tuple[int, int]]
    ) -> None:
        if offset == 0 and len(payload) == message.total:
            message.payload = payload
            message.received = message.total
            message.pieces = message.covered = None
            return
        if message.pieces is None or message.covered is None:
            message.pieces = {}
            message.covered = []
        for low, high in missing:
            message.pieces[low] = payload[low - offset : high - offset]
            message.received += high - low
        merge_range(message.covered, offset, offset + len(payload))
        if message.received == message.total:
            pieces = message.pieces
            message.payload = b"".join(pieces[key] for key in sorted(pieces))
            message.pieces = message.covered = None

    def next_message(self) -> tuple[int, bytes] | None:
        """Hand out the next complete message in order, releasing its credit.

        Returns:
            ``(message_number, payload)``, or None if the next message is incomplete.
        """
        messages = self._messages
        if messages is None:
            return None
        number = self._delivered
        message = messages.get(number)
        if message is None or message.payload is None:
            return None
        del messages[number]
        if not messages:
            self._messages = None
        self._delivered = number + 1
        self._consumed += message.total
        self._buffered -= message.total
        return number, message.payload

    @property
    def window_update_due(self) -> bool:
        """The application consumed enough that ``window_frame()`` would return a frame."""
        return self._consumed + self._window - self._max_data >= self._update_bytes

    def window_frame(self, force: bool = False) -> WindowFrame | None:
        """A WINDOW frame raising ``max_data``, when the application consumed enough.

        Args:
            force: advertise now even if little was consumed (a WINDOW frame was lost,
                or the peer may be blocked); the value may equal the previous one.

        Returns:
            The frame to send, or None when no update is due.
        """
        if not (force or self.window_update_due):
            return None
        self._max_data = max(self._max_data, self._consumed + self._window)
        return WindowFrame(self._max_data)


@lru_cache(maxsize=8)
def _update_bytes(window_bytes: int, max_message_bytes: int) -> int:
    """Consumed bytes that make a WINDOW update worth sending; cached, so every buffer of
    one configuration shares the int (32 bytes a session otherwise)."""
    return max(1, min(window_bytes // 2, window_bytes - max_message_bytes))
