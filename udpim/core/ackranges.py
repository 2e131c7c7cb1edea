"""Receiver side of acknowledgements: received packet numbers -> ACK frames, and when.

What this module owns: the set of packet numbers received (as a short sorted list of
inclusive ranges), the receipt time of the largest, and the delayed-ACK policy. It
does not decide whether a packet is acceptable: the session calls
``on_packet_received`` only after authentication and the replay check.

Rules kept (RFC 9000 13.2, RFC 9002 section 5):

* A packet that is not ack-eliciting never makes an ACK due on its own; it is
  acknowledged with the next ACK that goes out.
* An ack-eliciting packet makes an ACK due immediately when it arrives out of order
  (it leaves a gap below it, or it fills a gap: RFC 9000 13.2.1), when it is the
  ``ack_eliciting_threshold``-th ack-eliciting packet not yet acknowledged, or when the
  caller says so (``at_once``: a packet whose only ack-eliciting frame is PING, such as
  a heartbeat, which comes alone, so delaying its ACK would coalesce nothing and cost
  a hub one timer per heartbeat); otherwise an ACK is due ``max_ack_delay_s`` after
  the first such packet arrived.
* ``build_ack`` reports the newest ``MAX_ACK_RANGES`` ranges, highest first (the
  ``AckFrame`` layout), with the ack delay measured from the receipt of the largest
  packet number; it clears the due state. Ranges lying wholly more than
  ``ACK_SPAN_PACKETS`` below the largest are left out: the sender has long declared
  those packets lost or seen them acknowledged (RFC 9002 6.1.1: three packets below
  an acknowledged one count as lost), and each range was already repeated in the
  many ACKs sent meanwhile. Without this, a long session on a lossy path would carry
  ``MAX_ACK_RANGES`` stale gaps in every ACK.
* Memory is bounded: at most ``MAX_TRACKED_RANGES`` ranges are kept; when a new gap
  would exceed that, the oldest range is dropped and packet numbers below the oldest
  kept range are ignored from then on (they are too old to matter: the sender has
  declared them lost). ``on_ack_of_ack`` prunes the same way once the peer has seen
  an ACK (RFC 9000 13.2.4), which keeps idle sessions at one range.

Theory: ranges are stored ascending, so the common case (the next packet number)
touches only the last element. Packets arriving out of order are rare and near the
top, so insertion scans from the end.
"""

from __future__ import annotations

from typing import final

from udpim.core.config import SessionConfig
from udpim.core.errors import LocalProtocolError
from udpim.core.framecodec import frame_size
from udpim.core.frames import AckFrame

_WIDE_DELAY_S = 8000.0  # an ack delay this long already takes a 4-byte varint

__all__ = ["ACK_SPAN_PACKETS", "MAX_ACK_RANGES", "MAX_TRACKED_RANGES", "AckTracker"]

MAX_ACK_RANGES = 32
"""At most this many ranges go into one ACK frame (the newest ones)."""

ACK_SPAN_PACKETS = 64
"""An ACK frame leaves out ranges ending more than this many packets below its largest."""

MAX_TRACKED_RANGES = 64
"""At most this many ranges are remembered; the oldest is dropped beyond it."""


@final
class AckTracker:
    """Tracks received packet numbers and decides when to acknowledge them.

    Args:
        config: supplies ``max_ack_delay_s`` and ``ack_eliciting_threshold``.
    """

    __slots__ = (
        "_config",
        "_deadline",
        "_floor",
        "_largest",
        "_largest_time",
        "_ranges",
        "_unacked",
        "_unacked_eliciting",
    )

    def __init__(self, config: SessionConfig) -> None:
        self._config = config
        self._ranges: list[tuple[int, int]] = []
        self._largest = -1
        self._largest_time = 0.0
        self._floor = 0
        self._unacked = False
        self._unacked_eliciting = 0
        self._deadline: float | None = None

    @property
    def max_ack_delay_s(self) -> float:
        """Longest this side holds an ACK for an ack-eliciting packet."""
        return self._config.max_ack_delay_s

    @property
    def largest_received(self) -> int | None:
        """The largest packet number received, or None before the first."""
        return self._largest if self._largest >= 0 else None

    @property
    def ranges(self) -> tuple[tuple[int, int], ...]:
        """Every remembered range, inclusive, highest first."""
        return tuple(reversed(self._ranges))

    def on_packet_received(
        self, packet_number: int, ack_eliciting: bool, now: float, *, at_once: bool = False
    ) -> None:
        """Record an authenticated, non-replayed packet (RFC 9000 13.2.1).

        Duplicates and packet numbers below the oldest remembered range are ignored.
        ``at_once`` makes the ACK of an ack-eliciting packet due now (no delay).

        Raises:
            LocalProtocolError: if ``packet_number`` is negative.
        """
        if packet_number < 0:
            raise LocalProtocolError("packet numbers are not negative")
        if packet_number < self._floor or not self._insert(packet_number):
            return
        out_of_order = packet_number != self._largest + 1
        if packet_number > self._largest:
            self._largest = packet_number
            self._largest_time = now
        self._unacked = True
        if not ack_eliciting:
            return
        self._unacked_eliciting += 1
        if (
            at_once
            or out_of_order
            or self._unacked_eliciting >= self._config.ack_eliciting_threshold
        ):
            due = now
        else:
            due = now + self._config.max_ack_delay_s
        if self._deadline is None or due < self._deadline:
            self._deadline = due

    def _insert(self, number: int) -> bool:
        """Add ``number`` to the ranges; False if it was already there."""
        ranges = self._ranges
        index = len(ranges) - 1
        while index >= 0 and ranges[index][0] > number:
            index -= 1
        if index >= 0 and number <= ranges[index][1]:
            return False
        joins_below = index >= 0 and ranges[index][1] == number - 1
        joins_above = index + 1 < len(ranges) and ranges[index + 1][0] == number + 1
        if joins_below and joins_above:
            ranges[index] = (ranges[index][0], ranges[index + 1][1])
            del ranges[index + 1]
        elif joins_below:
            ranges[index] = (ranges[index][0], number)
        elif joins_above:
            ranges[index + 1] = (number, ranges[index + 1][1])
        else:
            ranges.insert(index + 1, (number, number))
            if len(ranges) > MAX_TRACKED_RANGES:
                del ranges[0]
                self._floor = ranges[0][0]
        return True

    def ack_deadline(self) -> float | None:
        """When an ACK must go out, or None if no ack-eliciting packet awaits one."""
        return self._deadline

    def build_ack(self, now: float, max_bytes: int | None = None) -> AckFrame | None:
        """Build an ACK of the recent ranges and clear the due state.

        Args:
            now: when the ACK is sent (the ack delay is measured up to it).
            max_bytes: room left in the packet; an ACK that would not fit is not
                built and stays due.

        Returns:
            The frame (newest ranges, highest first, within ``ACK_SPAN_PACKETS`` of
            the largest, at most ``MAX_ACK_RANGES``), or None if no packet arrived
            since the previous ACK was built or it does not fit ``max_bytes``.
        """
        frame = self._frame(now)
        if frame is None:
            return None
        # Encoded only when the room could be short: at most the type byte, four varints
        # of at most 8 bytes (largest, delay, count, first) and two per further range.
        if (
            max_bytes is not None
            and 17 + 16 * len(frame.ranges) > max_bytes
            and frame_size(frame) > max_bytes
        ):
            return None
        self._unacked = False
        self._unacked_eliciting = 0
        self._deadline = None
        return frame

    def pending_ack_bytes(self) -> int | None:
        """Upper bound on the size of the ACK ``build_ack`` would return now (its ack
        delay counted at the widest encoding up to 2.4 hours), without building it."""
        frame = self._frame(self._largest_time + _WIDE_DELAY_S)
        return None if frame is None else frame_size(frame)

    def _frame(self, now: float) -> AckFrame | None:
        if not self._unacked or not self._ranges:
            return None
        lowest = self._largest - ACK_SPAN_PACKETS
        ranges = tuple(r for r in reversed(self._ranges[-MAX_ACK_RANGES:]) if r[1] >= lowest)
        delay_us = max(0, int((now - self._largest_time) * 1_000_000))
        return AckFrame(ranges=ranges, ack_delay_us=delay_us)

    def on_ack_of_ack(self, largest_acked: int) -> None:
        """The peer acknowledged one of our ACKs whose largest was ``largest_acked``.

        Stop reporting packet numbers at or below it (RFC 9000 13.2.4); they are
        ignored from now on.

        Raises:
            LocalProtocolError: if ``largest_acked`` was never received.
        """
        if largest_acked > self._largest:
            raise LocalProtocolError(f"packet {largest_acked} was never received")
        if largest_acked < self._floor:
            return
        ranges = self._ranges
        keep = 0
        while keep < len(ranges) and ranges[keep][1] <= largest_acked:
            keep += 1
        del ranges[:keep]
        if ranges and ranges[0][0] <= largest_acked:
            ranges[0] = (largest_acked + 1, ranges[0][1])
        self._floor = largest_acked + 1
