"""Send side of the message stream: fragmentation, retransmission queue, peer's window.

What this module owns: the application's messages from ``push`` until the peer has
acknowledged every byte, the cutting of new DATA fragments, the queue of fragments
whose packets were declared lost, and the peer's flow-control limit ``max_data``.

Rules kept:

* Message numbers count 0, 1, 2, ...; ``message_start`` is the sum of the lengths of
  all earlier messages (the stream offset). An empty message is legal and takes one
  DATA frame with no payload.
* ``next_frame`` hands out retransmissions first (lowest message, then offset), then
  new bytes in stream order. Every frame satisfies
  ``data_frame_size(...) <= max_frame_bytes``: a retransmission that no longer fits is
  split, a new fragment is cut to fit (the compact whole-message form when the whole
  message fits).
* Flow control: no new byte at or beyond the peer's ``max_data`` is ever cut, and no
  message is started at or beyond (oldest unacknowledged message +
  ``MAX_MESSAGES_AHEAD``), the receiver's bound on per-message overhead.
* Acknowledgement is by byte range, so duplicate acks, acks of split copies and acks
  arriving after a loss declaration are idempotent. A lost frame whose bytes are all
  acknowledged is not queued, a queued one that gets acknowledged is dropped, and the
  same lost frame is queued at most once.
* ``on_frame_acked`` reports a message when it *and every earlier message* are fully
  acknowledged, so reports come exactly once each, in ascending order. A message's
  memory is released as soon as it is fully acknowledged; its payload is released as
  soon as it is fully cut (in-flight frames hold their own bytes, and retransmissions
  resend those frames).
"""

from __future__ import annotations

import heapq
from typing import Final, final

from udpim.core.errors import LocalProtocolError
from udpim.core.frames import DataFrame
from udpim.core.recvbuffer import MAX_MESSAGES_AHEAD, merge_range, missing_ranges
from udpim.core.varint import data_frame_size, varint_size

__all__ = ["SendBuffer"]

_FrameKey = tuple[int, int, int]  # (message_number, fragment_offset, length)


_NO_MESSAGES: Final[dict[int, _Outgoing]] = {}
"""Every idle ``SendBuffer``'s message table; nothing is ever added to it."""


@final
class _Outgoing:
    """One message not yet fully acknowledged."""

    __slots__ = ("acked", "acked_bytes", "payload", "start", "total")

    def __init__(self, start: int, payload: bytes) -> None:
        self.start = start
        self.total = len(payload)
        self.payload: bytes | None = payload  # None once fully cut
        self.acked_bytes = 0
        self.acked: list[tuple[int, int]] | None = None


@final
class _LostQueue:
    """Frames of lost packets awaiting resending, lowest (message, offset) first."""

    __slots__ = ("frames", "order")

    def __init__(self) -> None:
        self.frames: dict[_FrameKey, DataFrame] = {}
        self.order: list[_FrameKey] = []  # heap of the keys of ``frames`` (each exactly once)

    def add(self, frame: DataFrame) -> None:
        key = (frame.message_number, frame.fragment_offset, len(frame.payload))
        if key not in self.frames:
            self.frames[key] = frame
            heapq.heappush(self.order, key)


def _fit(number: int, start: int, total: int, offset: int, available: int, limit: int) -> int:
    """Largest payload length <= ``available`` whose DATA frame fits ``limit`` bytes (0: none)."""
    if (
        offset == 0
        and available == total
        and data_frame_size(number, start, total, 0, total) <= limit
    ):
        return total
    budget = limit - data_frame_size(number, start, total, offset, 0) + 1  # length varint + payload
    length = min(available, budget - 1)
    while length > 0 and length + varint_size(length) > budget:
        length -= 1
    return max(length, 0)


@final
class SendBuffer:
    """Queues messages, cuts them into DATA frames and tracks their acknowledgement.

    Args:
        max_message_bytes: the largest message ``push`` accepts.
        initial_max_data: the peer's flow-control limit before its first WINDOW frame.
    """

    __slots__ = (
        "_cut_number",
        "_cut_offset",
        "_lost",
        "_max_data",
        "_max_message_bytes",
        "_messages",
        "_next_number",
        "_reported",
        "_stream_end",
        "_unacked_bytes",
    )

    def __init__(self, max_message_bytes: int, initial_max_data: int) -> None:
        self._max_message_bytes = max_message_bytes
        self._max_data = initial_max_data
        # Unacknowledged messages by number. While there is none (an idle session) this is
        # the shared ``_NO_MESSAGES``, never written to: an empty dict of its own is 64 bytes.
        self._messages = _NO_MESSAGES
        self._next_number = 0
        self._stream_end = 0
        self._cut_number = 0
        self._cut_offset = 0
        self._reported = 0
        self._unacked_bytes = 0
        self._lost: _LostQueue | None = None  # allocated on the first loss

    # --- read-only state ---------------------------------------------------------------

    @property
    def max_data(self) -> int:
        """The peer's flow-control limit (stream offset)."""
        return self._max_data

    @property
    def unacked_messages(self) -> int:
        """Messages pushed and not yet fully acknowledged."""
        return len(self._messages)

    @property
    def buffered_bytes(self) -> int:
        """Payload bytes pushed and not yet acknowledged."""
        return self._unacked_bytes

    @property
    def pending(self) -> bool:
        """Whether ``next_frame`` has something to send (given enough room)."""
        return self._live_lost_head() is not None or (
            self._cut_number < self._next_number and not self._new_data_blocked()
        )

    @property
    def blocked_by_flow_control(self) -> bool:
        """Unsent new data exists, but the peer's limit forbids cutting any of it."""
        return self._cut_number < self._next_number and self._new_data_blocked()

    # --- input from the application and the peer ---------------------------------------

    def push(self, payload: bytes) -> int:
        """Queue one message.

        Returns:
            Its message number.

        Raises:
            LocalProtocolError: if it is longer than ``max_message_bytes``.
        """
        if len(payload) > self._max_message_bytes:
            raise LocalProtocolError(
                f"message of {len(payload)} bytes is over the {self._max_message_bytes} maximum"
            )
        number = self._next_number
        if not self._messages:
            self._messages = {}
        self._messages[number] = _Outgoing(self._stream_end, bytes(payload))
        self._next_number = number + 1
        self._stream_end += len(payload)
        self._unacked_bytes += len(payload)
        return number

    def on_max_data(self, max_data: int) -> None:
        """The peer raised its limit (WINDOW frame); decreases are ignored."""
        self._max_data = max(self._max_data, max_data)

    def on_frame_acked(self, frame: DataFrame) -> list[int]:
        """The packet carrying ``frame`` was acknowledged.

        Returns:
            Message numbers that are now fully acknowledged together with every
            earlier message, ascending; each number is returned exactly once.

        Raises:
            LocalProtocolError: if ``frame`` is not one this buffer produced.
        """
        message = self._lookup(frame)
        if message is None:
            return []
        offset, end = frame.fragment_offset, frame.fragment_offset + len(frame.payload)
        if offset == 0 and end == message.total:
            newly = message.total - message.acked_bytes
        else:
            if message.acked is None:
                message.acked = []
            newly = sum(high - low for low, high in missing_ranges(message.acked, offset, end))
            merge_range(message.acked, offset, end)
        message.acked_bytes += newly
        self._unacked_bytes -= newly
        if message.acked_bytes < message.total:
            return []
        del self._messages[frame.message_number]
        if not self._messages:
            self._messages = _NO_MESSAGES  # and the emptied dict, table and all, goes
        frontier = self._oldest()
        if frontier <= self._reported:
            return []
        done = list(range(self._reported, frontier))
        self._reported = frontier
        return done

    def on_frame_lost(self, frame: DataFrame) -> None:
        """The packet carrying ``frame`` was declared lost: queue it for resending.

        Ignored if its message is fully acknowledged or it is already queued. A queued
        frame whose bytes all get acknowledged meanwhile (through another copy) is
        discarded instead of being sent.

        Raises:
            LocalProtocolError: if ``frame`` is not one this buffer produced.
        """
        if self._lookup(frame) is not None:
            self._queue_lost(frame)

    # --- output ------------------------------------------------------------------------

    def next_frame(self, max_frame_bytes: int) -> DataFrame | None:
        """The next DATA frame to send, at most ``max_frame_bytes`` encoded.

        Returns:
            A retransmission if any is queued, else a new fragment; None if nothing
            fits, nothing is queued, or flow control blocks new data.
        """
        lost = self._live_lost_head()
        if lost is not None:
            return self._cut_retransmission(lost, max_frame_bytes)
        if self._cut_number >= self._next_number or self._new_data_blocked():
            return None
        number, offset = self._cut_number, self._cut_offset
        message = self._messages[number]
        payload = message.payload
        assert payload is not None
        if message.total == 0:
            if data_frame_size(number, message.start, 0, 0, 0) > max_frame_bytes:
                return None
            length = 0
        else:
            available = min(message.total - offset, self._max_data - message.start - offset)
            length = _fit(number, message.start, message.total, offset, available, max_frame_bytes)
            if length == 0:
                return None
        if offset == 0 and length == message.total:
            chunk = payload
        else:
            chunk = payload[offset : offset + length]
        frame = DataFrame(number, message.start, message.total, offset, chunk)
        if offset + length == message.total:
            message.payload = None
            self._cut_number = number + 1
            self._cut_offset = 0
        else:
            self._cut_offset = offset + length
        return frame

    # --- internals ---------------------------------------------------------------------

    def _lookup(self, frame: DataFrame) -> _Outgoing | None:
        """The unacknowledged message ``frame`` belongs to (None if fully acknowledged)."""
        number = frame.message_number
        if not 0 <= number < self._next_number:
            raise LocalProtocolError(f"message {number} was never pushed")
        end = frame.fragment_offset + len(frame.payload)
        cut = self._cut_number
        if number > cut or (number == cut and not 0 < end <= self._cut_offset):
            raise LocalProtocolError(f"message {number} was never sent that far")
        message = self._messages.get(number)
        if message is None:
            return None
        if (
            frame.message_start != message.start
            or frame.total_length != message.total
            or frame.fragment_offset < 0
            or end > message.total
        ):
            raise LocalProtocolError(f"frame does not belong to message {number}")
        return message

    def _oldest(self) -> int:
        """The oldest message not fully acknowledged (``_next_number`` if none).

        Counted up from ``_reported`` (every message below it is acknowledged), not read
        as ``next(iter(self._messages))``: a dict emptied from the front keeps its holes
        until it is resized, and skipping them made that O(messages acknowledged) per
        call with thousands queued (``tools/bench oneway``)."""
        number = self._reported
        messages = self._messages
        while number < self._next_number and number not in messages:
            number += 1
        return number

    def _new_data_blocked(self) -> bool:
        number = self._cut_number
        if number >= self._oldest() + MAX_MESSAGES_AHEAD:
            return True
        message = self._messages[number]
        return message.total > 0 and message.start + self._cut_offset >= self._max_data

    def _queue_lost(self, frame: DataFrame) -> None:
        if self._lost is None:
            self._lost = _LostQueue()
        self._lost.add(frame)

    def _live_lost_head(self) -> DataFrame | None:
        """The first queued retransmission still worth sending (stale ones dropped)."""
        lost = self._lost
        if lost is None:
            return None
        order = lost.order
        while order:
            key = order[0]
            message = self._messages.get(key[0])
            if message is not None and (
                message.acked is None or missing_ranges(message.acked, key[1], key[1] + key[2])
            ):
                return lost.frames[key]
            del lost.frames[heapq.heappop(order)]
        self._lost = None
        return None

    def _cut_retransmission(self, frame: DataFrame, max_frame_bytes: int) -> DataFrame | None:
        """Pop ``frame`` (the queue head), splitting it if it no longer fits."""
        number, start, total = frame.message_number, frame.message_start, frame.total_length
        offset, payload = frame.fragment_offset, frame.payload
        if data_frame_size(number, start, total, offset, len(payload)) > max_frame_bytes:
            length = _fit(number, start, total, offset, len(payload) - 1, max_frame_bytes)
            if length == 0:
                return None
        else:
            length = len(payload)
        lost = self._lost
        assert lost is not None  # ``frame`` is its head
        del lost.frames[heapq.heappop(lost.order)]
        if length == len(payload):
            return frame
        rest = DataFrame(number, start, total, offset + length, payload[length:])
        self._queue_lost(rest)
        return DataFrame(number, start, total, offset, payload[:length])
