"""Forward error correction: XOR parity over small groups of packets, switched on by loss.

Why: a lost packet cannot be retransmitted sooner than the sender learns of the loss,
about one RTT plus the gap to the next packet; on a lossy path that sets the tail latency
of chat messages (docs/BENCHMARKS.md). A parity packet sent right after a group repairs
one loss in the group within one one-way delay instead.

Rules (docs/PROTOCOL.md "Forward error correction"):

* The sender measures loss as an exponentially weighted rate of its ack-eliciting
  packets declared lost (``LOSS_WEIGHT``). FEC switches on above ``FEC_ON_LOSS`` and off
  below ``FEC_OFF_LOSS``; while off, nothing is added to the wire.
* While on, every packet carrying message data is a *member* of the open group. The
  group closes when it has ``group_size`` members (chosen from the measured loss:
  ``GROUP_SIZES``), when a member would stretch it past ``FEC_MAX_SPAN`` packet
  numbers, or ``FEC_FLUSH_S`` after its first member; closing it sends one FEC frame
  (alone in its packet, not ack-eliciting, never retransmitted): the XOR of the members'
  plaintexts, each zero-padded to the longest, and the XOR of their lengths. A group of
  one is a plain copy: at very high loss every data packet is sent twice.
* Members leave room for the FEC frame's own header (``FEC_OVERHEAD_BYTES``), so a parity
  packet never exceeds ``max_datagram_bytes``.
* The receiver starts keeping the plaintexts of the packets it authenticates once it has
  seen an FEC frame (the last ``RECENT_PLAINTEXTS`` of them), and stops, forgetting them,
  after ``RECEIVER_IDLE_S`` without one. So the first group after the sender switched
  on, or after it sent no parity for ``RECEIVER_IDLE_S / 2``, is a single member: its
  parity is a copy, which wakes the receiver (and protects that packet). An FEC frame
  whose group lacks exactly one member it has never received rebuilds that member; the
  session then treats it as received (acknowledged, its frames processed; a late copy is
  a replay).

Theory: with independent loss ``p`` and ``k`` members plus one parity, a group repairs
itself unless two of its ``k + 1`` packets are lost; the parity costs ``1 / k`` more data
bytes. The group sizes trade those two against each other per loss band.
"""

from __future__ import annotations

from typing import final

from udpim.core.framecodec import FEC_MAX_SPAN
from udpim.core.frames import FecFrame

__all__ = [
    "FEC_FLUSH_S",
    "FEC_OFF_LOSS",
    "FEC_ON_LOSS",
    "FEC_OVERHEAD_BYTES",
    "GROUP_SIZES",
    "LOSS_WEIGHT",
    "RECEIVER_IDLE_S",
    "RECENT_PLAINTEXTS",
    "FecDecoder",
    "FecEncoder",
    "xor_bytes",
]

LOSS_WEIGHT = 1 / 128
"""Weight of one packet's outcome in the measured loss rate."""
FEC_ON_LOSS = 0.01
"""Measured loss at or above which FEC switches on."""
FEC_OFF_LOSS = 0.0025
"""... and below which it switches off again."""
GROUP_SIZES = ((0.03, 5), (0.08, 3), (0.2, 2), (2.0, 1))
"""(loss below, members per parity): 5 below 3 %, 3 below 8 %, 2 below 20 %, else a copy."""
FEC_FLUSH_S = 0.045
"""A group closes this long after its first member even if it is not full."""
FEC_OVERHEAD_BYTES = 32
"""Room members leave for the FEC frame's type and varints around the parity."""
RECENT_PLAINTEXTS = 64
"""Plaintexts a receiver keeps for repairs."""
RECEIVER_IDLE_S = 30.0
"""A receiver forgets its plaintexts after this long without an FEC frame."""


def xor_bytes(chunks: list[bytes], length: int) -> bytes:
    """XOR of ``chunks``, each zero-padded on the right to ``length`` bytes."""
    value = 0
    for chunk in chunks:
        value ^= int.from_bytes(chunk.ljust(length, b"\x00"), "big")
    return value.to_bytes(length, "big")


@final
class FecEncoder:
    """The sender's side: measured loss, the open group, and its parity."""

    __slots__ = ("_first_at", "_last_parity_at", "_loss", "_members", "active", "parities_sent")

    def __init__(self) -> None:
        self._loss = 0.0
        self.active = False
        self._members: list[tuple[int, bytes]] = []
        self._first_at = 0.0
        self._last_parity_at: float | None = None
        self.parities_sent = 0

    @property
    def loss_rate(self) -> float:
        """The measured loss rate of ack-eliciting packets."""
        return self._loss

    @property
    def group_size(self) -> int:
        """Members per parity now; 0 when FEC is off."""
        if not self.active:
            return 0
        return next(size for below, size in GROUP_SIZES if self._loss < below)

    def on_outcome(self, lost: bool) -> None:
        """An ack-eliciting packet was acknowledged (False) or declared lost (True)."""
        self._loss += LOSS_WEIGHT * ((1.0 if lost else 0.0) - self._loss)
        if self._loss >= FEC_ON_LOSS:
            self.active = True
        elif self._loss < FEC_OFF_LOSS:
            self.active = False

    def on_data_packet(self, packet_number: int, plaintext: bytes, now: float) -> FecFrame | None:
        """Add a packet that carried message data; returns a parity to send, if one closed.

        A member that would stretch the open group past ``FEC_MAX_SPAN`` closes that
        group first (its parity is returned) and opens a new one.
        """
        size = self.group_size
        if size == 0:
            self._members.clear()
            return None
        closed: FecFrame | None = None
        members = self._members
        if members and packet_number - members[0][0] >= FEC_MAX_SPAN:
            closed = self._close()
        if not self._members:
            self._first_at = now
        self._members.append((packet_number, plaintext))
        last = self._last_parity_at
        if last is None or now - last >= RECEIVER_IDLE_S / 2:
            size = 1  # the receiver keeps nothing yet: wake it with a copy of this packet
        if closed is None and len(self._members) >= size:
            closed = self._close()
        if closed is not None:
            self._last_parity_at = now
        return closed

    def deadline(self) -> float | None:
        """When the open group must close, if one is open."""
        return self._first_at + FEC_FLUSH_S if self._members else None

    def on_timer(self, now: float) -> FecFrame | None:
        """Close the open group if its time is up."""
        if self._members and now >= self._first_at + FEC_FLUSH_S:
            self._last_parity_at = now
            return self._close()
        return None

    def _close(self) -> FecFrame:
        members, self._members = self._members, []
        first = members[0][0]
        bitmap = 0
        length_xor = 0
        for number, plaintext in members:
            bitmap |= 1 << (number - first)
            length_xor ^= len(plaintext)
        longest = max(len(plaintext) for _, plaintext in members)
        self.parities_sent += 1
        parity = xor_bytes([plaintext for _, plaintext in members], longest)
        return FecFrame(first, bitmap, length_xor, parity)


@final
class FecDecoder:
    """The receiver's side: recent plaintexts, and repairs from FEC frames."""

    __slots__ = ("_active_until", "_recent", "repaired")

    def __init__(self) -> None:
        self._recent: dict[int, bytes] = {}
        self._active_until = 0.0
        self.repaired = 0

    def on_packet(self, packet_number: int, plaintext: bytes, now: float) -> None:
        """Keep an authenticated packet's plaintext while the peer sends FEC."""
        if now >= self._active_until:
            self._recent.clear()
            return
        recent = self._recent
        recent[packet_number] = plaintext
        if len(recent) > RECENT_PLAINTEXTS:
            del recent[next(iter(recent))]

    def on_fec(self, frame: FecFrame, now: float) -> tuple[int, bytes] | None:
        """Repair the group's one missing member, if exactly one is missing.

        Returns:
            ``(packet number, plaintext)`` of the rebuilt packet, or None. The caller
            must check it never received that packet (its replay window knows).
        """
        self._active_until = now + RECEIVER_IDLE_S
        recent = self._recent
        missing = [number for number in frame.member_numbers() if number not in recent]
        if len(missing) != 1:
            return None
        others = [recent[n] for n in frame.member_numbers() if n != missing[0]]
        length = frame.length_xor
        for plaintext in others:
            length ^= len(plaintext)
        if not 0 < length <= len(frame.parity) or any(len(p) > len(frame.parity) for p in others):
            return None  # inconsistent with what we received: not our group
        rebuilt = xor_bytes([frame.parity, *others], len(frame.parity))[:length]
        self.repaired += 1
        return missing[0], rebuilt
