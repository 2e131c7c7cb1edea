"""Forward error correction: a sliding-window random linear code over GF(2^8), switched
on by loss.

Why: a lost packet cannot be retransmitted sooner than the sender learns of the loss,
about one RTT plus the gap to the next packet; on a lossy path that sets the tail latency
of chat messages (docs/BENCHMARKS.md). A repair packet sent a few packets later rebuilds
a lost one within one one-way delay instead.

Rules (docs/PROTOCOL.md "Forward error correction"):

* The sender measures loss from the receiver's LOSS_REPORT frames (packets received,
  packet numbers skipped and not received, both counted since the session began) as an
  exponentially weighted rate, ``LOSS_WEIGHT`` per packet. A packet FEC rebuilt counts
  as missing: a working code must not hide the loss it repairs, or the measured loss
  would fall, switch FEC off, and the loss would come back. (Losses the sender declares
  itself would count repaired packets twice or not at all.) FEC switches on at
  ``FEC_ON_LOSS`` and off below ``FEC_OFF_LOSS``; while off, nothing is added to the
  wire.
* While on, the *window* holds every packet that carried message data and is neither
  acknowledged nor declared lost: the newest 4 to 16 of them (``GROUP_SIZES``), all
  within ``FEC_MAX_SPAN`` packet numbers. After every ``group_size`` new data packets
  (both chosen from the measured loss: ``GROUP_SIZES``; a fraction such as 1.3 spreads
  10 repairs over 13 packets), or ``FEC_FLUSH_S`` after the oldest data packet no repair
  covered yet, one FEC frame goes out (alone in its packet, not ack-eliciting, never
  retransmitted): the sum over the window of ``coefficient(seed, n) * symbol(n)``, where
  a packet's symbol is its plaintext's length (2 bytes) and the plaintext, and ``seed``
  counts the sender's repairs. Every packet is covered by several consecutive repairs,
  so a repair is useful as long as the window holds fewer losses than the repairs that
  cover them.
* Members leave room for the FEC frame's own header and the symbol's length
  (``FEC_OVERHEAD_BYTES``), so a repair packet never exceeds ``max_datagram_bytes``.
* The receiver starts keeping the symbols of the packets it authenticates once it has
  seen an FEC frame (the last ``RECENT_PACKETS``), and stops, forgetting them, after
  ``RECEIVER_IDLE_S`` without one. So the first repair after the sender switched on, or
  after it sent none for ``RECEIVER_IDLE_S / 2``, covers only the newest packet: a
  (scaled) copy, which wakes the receiver and protects that packet.
* Each FEC frame becomes an equation over the members the receiver lacks (the others are
  subtracted); a frame lacking more than ``MAX_UNKNOWNS`` members is dropped (it could
  not be solved, and this bounds the work a frame causes); the receiver keeps at most
  ``MAX_EQUATIONS`` and solves them together by
  Gaussian elimination, so two losses covered by two repairs are both rebuilt. A member
  it received but no longer keeps makes the frame useless (dropped). A rebuilt packet is
  then treated as received (acknowledged, its frames processed; a late copy is a replay).

Theory: with independent loss ``p``, a repair every ``k`` packets costs about ``1 / k``
more data bytes; a loss is rebuilt one one-way delay after the next repair, that is
within ``k`` packet gaps, or ``FEC_FLUSH_S``, of its own send.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import final

from udpim.core.framecodec import FEC_MAX_SPAN
from udpim.core.frames import FecFrame
from udpim.core.gf256 import coefficient, inverse, multiply, scale, to_bytes, to_int

__all__ = [
    "FEC_FLUSH_S",
    "FEC_OFF_LOSS",
    "FEC_ON_LOSS",
    "FEC_OVERHEAD_BYTES",
    "GROUP_SIZES",
    "LOSS_WEIGHT",
    "MAX_EQUATIONS",
    "MAX_UNKNOWNS",
    "RECEIVER_IDLE_S",
    "RECENT_PACKETS",
    "FecDecoder",
    "FecEncoder",
    "symbol",
]

LOSS_WEIGHT = 1 / 128
"""Weight of one packet's outcome in the measured loss rate."""
FEC_ON_LOSS = 0.01
"""Measured loss at or above which FEC switches on."""
FEC_OFF_LOSS = 0.0025
"""... and below which it switches off again."""
GROUP_SIZES = ((0.03, 5.0, 8), (0.07, 3.5, 16), (0.2, 2.75, 8), (2.0, 1.3, 4))
"""(loss below, new data packets per repair, packets a repair covers at most)."""
FEC_FLUSH_S = 0.045
"""A repair goes out this long after the oldest data packet no repair covers yet."""
FEC_OVERHEAD_BYTES = 40
"""Room members leave for the FEC frame's type, varints and the symbol length."""
RECENT_PACKETS = 128
"""Symbols a receiver keeps to subtract from repairs."""
MAX_EQUATIONS = 8
"""Unsolved repairs a receiver keeps."""
MAX_UNKNOWNS = MAX_EQUATIONS
"""A repair lacking more members than this is dropped: the kept equations could never
solve it, and it bounds the work one FEC frame can cause (a hostile peer's frames cost at
most ``MAX_EQUATIONS`` rows of ``MAX_UNKNOWNS`` unknowns to eliminate)."""
RECEIVER_IDLE_S = 30.0
"""A receiver forgets its symbols after this long without an FEC frame."""
MAX_REPORTED_OUTCOMES = 1024
"""Outcomes one LOSS_REPORT counts for at most."""


def symbol(plaintext: bytes) -> bytes:
    """A packet's source symbol: its length in 2 bytes, then the plaintext."""
    return len(plaintext).to_bytes(2, "big") + plaintext


@final
class FecEncoder:
    """The sender's side: measured loss, the window of unacknowledged data packets, and
    the repairs over it."""

    __slots__ = (
        "_credit",
        "_last_parity_at",
        "_loss",
        "_reported",
        "_seed",
        "_uncovered_since",
        "_window",
        "active",
        "parities_sent",
    )

    def __init__(self) -> None:
        self._loss = 0.0
        self.active = False
        self._window: dict[int, bytes] = {}  # packet number -> symbol, ascending
        self._credit = 0.0  # data packets since the last repair, less whole group sizes
        self._uncovered_since: float | None = None  # the oldest data packet not covered yet
        self._seed = 0
        self._last_parity_at: float | None = None
        self._reported = (0, 0)
        self.parities_sent = 0

    @property
    def loss_rate(self) -> float:
        """The loss rate of our packets, as the peer's LOSS_REPORTs tell it."""
        return self._loss

    @property
    def group_size(self) -> float:
        """New data packets per repair now; 0 when FEC is off."""
        return self._band()[0]

    def _band(self) -> tuple[float, int]:
        """(new data packets per repair, packets a repair covers); (0, 0) when off."""
        if not self.active:
            return (0, 0)
        return next((size, span) for below, size, span in GROUP_SIZES if self._loss < below)

    def _switch(self) -> None:
        if self._loss >= FEC_ON_LOSS:
            self.active = True
        elif self._loss < FEC_OFF_LOSS:
            self.active = False

    def on_loss_report(self, received: int, missing: int) -> None:
        """The peer's LOSS_REPORT: of our packets it has ``received`` so far, and
        ``missing`` are skipped and not received. The changes since the last report
        are that many outcomes at once."""
        last_received, last_missing = self._reported
        new_received = received - last_received
        new_missing = max(0, missing - last_missing)
        if new_received < 0 or new_received + new_missing == 0:
            return  # an older report, overtaken
        self._reported = (received, missing)
        outcomes = min(new_received + new_missing, MAX_REPORTED_OUTCOMES)
        share = new_missing / (new_received + new_missing)
        self._loss += (1 - (1 - LOSS_WEIGHT) ** outcomes) * (share - self._loss)
        self._switch()

    def forget(self, packet_number: int) -> None:
        """A packet was acknowledged or declared lost: later repairs leave it out."""
        self._window.pop(packet_number, None)

    def on_data_packet(self, packet_number: int, plaintext: bytes, now: float) -> FecFrame | None:
        """Add a packet that carried message data; returns a repair to send, if one is due."""
        size, span = self._band()
        window = self._window
        if size == 0:
            window.clear()
            self._credit = 0.0
            self._uncovered_since = None
            return None
        window[packet_number] = symbol(plaintext)
        while len(window) > span or packet_number - next(iter(window)) >= FEC_MAX_SPAN:
            del window[next(iter(window))]  # never the newest: span >= 1
        last = self._last_parity_at
        if last is None or now - last >= RECEIVER_IDLE_S / 2:
            # The receiver keeps nothing yet: wake it with a copy of this packet.
            return self._repair([(packet_number, window[packet_number])], now)
        if self._uncovered_since is None:
            self._uncovered_since = now
        self._credit += 1.0
        if self._credit >= size:
            self._credit -= size
            return self._repair(list(window.items()), now)
        return None

    def deadline(self) -> float | None:
        """When a repair is due for data packets no repair covers yet."""
        since = self._uncovered_since
        return None if since is None else since + FEC_FLUSH_S

    def on_timer(self, now: float) -> FecFrame | None:
        """Send the repair that is due, if it is."""
        since = self._uncovered_since
        if since is None or now < since + FEC_FLUSH_S:
            return None
        self._credit = 0.0
        if not self._window:  # everything it would cover was acknowledged meanwhile
            self._uncovered_since = None
            return None
        return self._repair(list(self._window.items()), now)

    def _repair(self, members: list[tuple[int, bytes]], now: float) -> FecFrame:
        seed = self._seed
        self._seed += 1
        first = members[0][0]
        bitmap = 0
        total = 0
        longest = 0
        for number, source in members:
            bitmap |= 1 << (number - first)
            total ^= to_int(scale(source, coefficient(seed, number)))
            longest = max(longest, len(source))
        self._uncovered_since = None
        self._last_parity_at = now
        self.parities_sent += 1
        return FecFrame(first, bitmap, seed, to_bytes(total, longest))


@final
class _Equation:
    """``sum(coefficients[n] * symbol(n)) == value`` over the packets ``n`` not received."""

    __slots__ = ("coefficients", "length", "value")

    def __init__(self, coefficients: dict[int, int], value: int, length: int) -> None:
        self.coefficients = coefficients
        self.value = value
        self.length = length

    def copy(self) -> _Equation:
        return _Equation(dict(self.coefficients), self.value, self.length)

    def subtract(self, factor: int, other: _Equation) -> None:
        """``self -= factor * other``."""
        coefficients = self.coefficients
        for number, c in other.coefficients.items():
            updated = coefficients.get(number, 0) ^ multiply(factor, c)
            if updated:
                coefficients[number] = updated
            else:
                coefficients.pop(number, None)
        self.value ^= to_int(scale(to_bytes(other.value, other.length), factor))
        self.length = max(self.length, other.length)

    def normalise(self, pivot: int) -> None:
        """Scale so that ``pivot``'s coefficient is 1."""
        factor = inverse(self.coefficients[pivot])
        if factor != 1:
            self.coefficients = {n: multiply(factor, c) for n, c in self.coefficients.items()}
            self.value = to_int(scale(to_bytes(self.value, self.length), factor))


@final
class FecDecoder:
    """The receiver's side: recent symbols, unsolved repairs, and the packets they rebuild."""

    __slots__ = ("_active_until", "_equations", "_recent", "repaired")

    def __init__(self) -> None:
        self._recent: dict[int, bytes] = {}
        self._equations: list[_Equation] = []
        self._active_until = 0.0
        self.repaired = 0

    def on_packet(self, packet_number: int, plaintext: bytes, now: float) -> None:
        """Keep an authenticated (or rebuilt) packet's symbol while the peer sends FEC,
        and subtract it from the repairs that lacked it."""
        if now >= self._active_until:
            self._recent.clear()
            self._equations.clear()
            return
        source = symbol(plaintext)
        recent = self._recent
        recent[packet_number] = source
        if len(recent) > RECENT_PACKETS:
            del recent[next(iter(recent))]
        if self._equations:
            kept = []
            for equation in self._equations:
                c = equation.coefficients.pop(packet_number, None)
                if c is not None:
                    equation.value ^= to_int(scale(source, c))
                    equation.length = max(equation.length, len(source))
                if equation.coefficients:
                    kept.append(equation)
            self._equations = kept

    def on_fec(
        self, frame: FecFrame, now: float, missing: Callable[[int], bool]
    ) -> list[tuple[int, bytes]]:
        """Add ``frame``'s equation and rebuild every packet the equations now determine.

        Args:
            frame: the FEC frame.
            now: the current time.
            missing: whether a packet number was never received (the replay window).

        Returns:
            ``(packet number, plaintext)`` of each rebuilt packet, ascending.
        """
        self._active_until = now + RECEIVER_IDLE_S
        recent = self._recent
        value = to_int(frame.parity)
        length = len(frame.parity)
        unknown: dict[int, int] = {}
        for number in frame.member_numbers():
            c = coefficient(frame.seed, number)
            source = recent.get(number)
            if source is not None:
                value ^= to_int(scale(source, c))
                length = max(length, len(source))
            elif missing(number):
                unknown[number] = c
            else:
                return []  # received but forgotten: this frame cannot be used
        if not unknown or len(unknown) > MAX_UNKNOWNS:
            return []  # nothing to learn, or more than the kept equations could solve
        first = frame.first_packet
        equations = [e for e in self._equations if min(e.coefficients) > first - FEC_MAX_SPAN]
        equations.append(_Equation(unknown, value, length))
        self._equations = equations[-MAX_EQUATIONS:]
        return self._solve()

    def _solve(self) -> list[tuple[int, bytes]]:
        """Gaussian elimination over copies of the kept equations; returns the packets
        that come out determined (a row with one unknown left)."""
        rows: list[tuple[int, _Equation]] = []  # (pivot, row), reduced
        for kept in self._equations:
            row = kept.copy()
            for pivot, other in rows:
                factor = row.coefficients.get(pivot)
                if factor:
                    row.subtract(factor, other)
            if not row.coefficients:
                continue  # dependent on the rows before it
            pivot = min(row.coefficients)
            row.normalise(pivot)
            for _, other in rows:
                factor = other.coefficients.get(pivot)
                if factor:
                    other.subtract(factor, row)
            rows.append((pivot, row))
        rebuilt: list[tuple[int, bytes]] = []
        for pivot, row in sorted(rows, key=lambda item: item[0]):
            if len(row.coefficients) != 1:
                continue
            source = to_bytes(row.value, row.length)
            size = int.from_bytes(source[:2], "big")
            if not 0 < size <= len(source) - 2:
                continue  # not consistent with what we received: rebuild nothing
            rebuilt.append((pivot, source[2 : 2 + size]))
        self.repaired += len(rebuilt)
        return rebuilt
