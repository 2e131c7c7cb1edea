"""Loss recovery for one packet-number space: RFC 9002 section 6 and Appendix A.

What this module owns: the table of sent, unacknowledged packets (with the frames they
carried), bytes in flight, the loss-detection timer and the consecutive-PTO count. It
feeds the ``RttEstimator`` and ``CongestionController`` it holds and never calls back:
methods *return* what the session must do (``AckOutcome``, ``TimeoutOutcome``); the
session requeues the frames of lost packets under new packet numbers.

Rules kept:

* Every packet number the session puts on the wire is reported, in increasing order:
  ``on_packet_sent`` for packets it wants acknowledged or counted in flight (they are
  tracked), ``on_packet_number_used`` for the others (ACK-only packets). Acknowledging
  a number above the largest reported is a ``ProtocolViolation``; acks of numbers
  already acknowledged, declared lost or never tracked are ignored.
* RTT sample (RFC 9002 5.1, as udpim's contract narrows it): only when the largest
  acknowledged packet is newly acknowledged *and* ack-eliciting; the peer's ack delay
  is honoured and capped by ``max_ack_delay_s`` (``RttEstimator``).
* Loss (RFC 9002 6.1): an unacknowledged packet below the largest acknowledged is lost
  once ``packet_threshold`` later packets are acknowledged, or once it is older than
  ``time_threshold * max(smoothed_rtt, latest_rtt)`` (at least the granularity);
  otherwise the loss time is armed for the moment it would become so.
* Timer (RFC 9002 6.2): the loss time if armed; else, when ack-eliciting packets are
  in flight, ``last ack-eliciting send + pto * 2**min(pto_count, max_pto_backoff)``;
  else none. A PTO expiry declares nothing lost: it asks for probes (one per
  outstanding ack-eliciting packet, at most two, RFC 9002 6.2.4). Probes may exceed
  the congestion window (RFC 9002 7.5); ``can_send`` is for new data only.
* Persistent congestion (RFC 9002 7.6) is judged on each batch of lost packets by
  ``congestion.in_persistent_congestion`` over ``3 * pto`` (before backoff).
* Any acknowledgement of new packets resets ``pto_count``. So does hearing from a peer
  that was silent for longer than a PTO, or on a newly validated path
  (``on_peer_reappeared``): the backoff grew while the peer could not hear us (a NAT
  mapping that died, a network that was gone), and it is back now. If ack-eliciting data
  has been outstanding for a PTO or more by then, probes are owed at once (QUIC resets
  its backoff on migration the same way), so a push that met a dead mapping is repaired
  about one RTT after the peer re-appears instead of after a backed-off PTO.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import islice
from typing import final

from udpim.core.config import CongestionAlgorithm, SessionConfig
from udpim.core.congestion import (
    PERSISTENT_CONGESTION_THRESHOLD,
    CongestionController,
    CongestionState,
    DelayGatedReno,
    NewReno,
    in_persistent_congestion,
)
from udpim.core.errors import LocalProtocolError, ProtocolViolation
from udpim.core.frames import AckFrame, CloseReason, Frame
from udpim.core.rtt import RttEstimator

__all__ = [
    "MAX_PROBES",
    "AckOutcome",
    "LossRecovery",
    "ReappearedOutcome",
    "RecoveryStatistics",
    "SentPacket",
    "TimeoutOutcome",
]

MAX_PROBES = 2
"""RFC 9002 6.2.4: at most two probe datagrams per PTO expiry."""


@dataclass(slots=True)
class SentPacket:
    """One packet the session sent and wants tracked.

    Attributes:
        packet_number: its full packet number.
        time_sent: ``now`` when it was handed to the driver.
        size_bytes: the datagram's size (counts towards bytes in flight).
        ack_eliciting: it carries a frame other than ACK, PADDING or CLOSE.
        in_flight: it counts towards bytes in flight (every ack-eliciting packet does).
        frames: the frames it carried, handed back if it is lost.
    """

    packet_number: int
    time_sent: float
    size_bytes: int
    ack_eliciting: bool
    in_flight: bool
    frames: tuple[Frame, ...]


@final
@dataclass(frozen=True, slots=True)
class AckOutcome:
    """What one ACK frame did: packets newly acknowledged and newly declared lost.

    Both tuples are in ascending packet-number order.
    """

    acked: tuple[SentPacket, ...]
    lost: tuple[SentPacket, ...]
    rtt_sampled: bool


@final
@dataclass(frozen=True, slots=True)
class TimeoutOutcome:
    """What a timer expiry did: packets declared lost, and probes to send now (0..2)."""

    lost: tuple[SentPacket, ...]
    probes: int


@final
@dataclass(frozen=True, slots=True)
class ReappearedOutcome:
    """What hearing from a peer that was away did: probes to send now (0..2), and the
    oldest ack-eliciting packet that had been outstanding for at least a PTO (None: no
    data was overdue, nothing to repair)."""

    probes: int
    overdue: SentPacket | None


@final
@dataclass(frozen=True, slots=True)
class RecoveryStatistics:
    """A snapshot of loss recovery, RTT and congestion state."""

    smoothed_rtt_s: float
    rttvar_s: float
    min_rtt_s: float
    latest_rtt_s: float
    rtt_samples: int
    congestion_window_bytes: int
    congestion_state: str
    bytes_in_flight: int
    packets_in_flight: int
    pto_count: int
    packets_lost: int


_NO_PACKETS: dict[int, SentPacket] = {}
"""Every idle ``LossRecovery``'s sent-packet table; nothing is ever added to it (an empty
dict of its own is 64 bytes)."""

_NOTHING_ACKED = AckOutcome((), (), False)
_NOTHING_DUE = TimeoutOutcome((), 0)
_NOTHING_OVERDUE = ReappearedOutcome(0, None)


@final
class LossRecovery:
    """Sent-packet table, ack processing, loss detection and PTO of one session.

    Args:
        config: timer and threshold tunables (shared, not copied).
        congestion: the congestion controller; if omitted, the one
            ``config.congestion_control`` names, sized for ``config.max_datagram_bytes``,
            which exists only while it is not at rest (an idle session keeps none; the
            next packet in flight makes a new one, the same as the one dropped).
    """

    __slots__ = (
        "_bytes_in_flight",
        "_config",
        "_congestion",
        "_eliciting_in_flight",
        "_first_sample_time",
        "_largest_acked",
        "_largest_used",
        "_last_eliciting_time",
        "_loss_time",
        "_own_congestion",
        "_packets_lost",
        "_pto_count",
        "_pto_fired_at",
        "_sent",
        "rtt",
    )

    def __init__(
        self, config: SessionConfig, congestion: CongestionController | None = None
    ) -> None:
        self._config = config
        self.rtt = RttEstimator(config.initial_rtt_s, config.timer_granularity_s)
        self._congestion = congestion
        self._own_congestion = congestion is None
        # While no packet is tracked (an idle session) this is the shared ``_NO_PACKETS``,
        # never written to; the first tracked packet gets a table of its own.
        self._sent = _NO_PACKETS
        self._bytes_in_flight = 0
        self._eliciting_in_flight = 0
        self._pto_count = 0
        self._pto_fired_at = 0.0
        self._largest_used = -1
        self._largest_acked: int | None = None
        self._loss_time: float | None = None
        self._last_eliciting_time = 0.0
        self._first_sample_time: float | None = None
        self._packets_lost = 0

    @property
    def bytes_in_flight(self) -> int:
        """Bytes of in-flight packets neither acknowledged nor declared lost."""
        return self._bytes_in_flight

    @property
    def congestion(self) -> CongestionController:
        """The congestion controller (our own is made here when it does not exist)."""
        controller = self._congestion
        if controller is None:
            config = self._config
            if config.congestion_control is CongestionAlgorithm.NEWRENO:
                controller = NewReno(config.max_datagram_bytes)
            else:
                controller = DelayGatedReno(config.max_datagram_bytes, self.rtt)
            self._congestion = controller
        return controller

    @property
    def congestion_window_bytes(self) -> int:
        """Bytes the congestion controller lets be in flight."""
        controller = self._congestion
        if controller is not None:
            return controller.congestion_window_bytes
        config = self._config
        if config.congestion_control is CongestionAlgorithm.NEWRENO:
            return NewReno.initial_window_bytes(config.max_datagram_bytes)
        return DelayGatedReno.initial_window_bytes(config.max_datagram_bytes)

    def _settle_congestion(self) -> None:
        """Drop our own controller when it is at rest (``NewReno.at_rest``)."""
        controller = self._congestion
        if self._own_congestion and isinstance(controller, NewReno) and controller.at_rest:
            self._congestion = None

    @property
    def pto_count(self) -> int:
        """Consecutive probe timeouts since the last acknowledgement of new packets."""
        return self._pto_count

    @property
    def largest_acked(self) -> int | None:
        """Largest packet number the peer acknowledged (for packet-number encoding)."""
        return self._largest_acked

    def in_flight_packets(self) -> int:
        """How many tracked packets are neither acknowledged nor declared lost."""
        return len(self._sent)

    def can_send(self, size_bytes: int) -> bool:
        """Whether a new in-flight packet of ``size_bytes`` fits the congestion window."""
        return self._bytes_in_flight + size_bytes <= self.congestion_window_bytes

    def window_room(self) -> int:
        """Bytes the congestion window still admits (may be negative after a probe)."""
        return self.congestion_window_bytes - self._bytes_in_flight

    def statistics(self) -> RecoveryStatistics:
        """A snapshot of RTT, congestion window and loss counters."""
        rtt = self.rtt
        return RecoveryStatistics(
            smoothed_rtt_s=rtt.smoothed_rtt_s,
            rttvar_s=rtt.rttvar_s,
            min_rtt_s=rtt.min_rtt_s,
            latest_rtt_s=rtt.latest_rtt_s,
            rtt_samples=rtt.samples,
            congestion_window_bytes=self.congestion_window_bytes,
            congestion_state=(
                CongestionState.SLOW_START.value
                if self._congestion is None
                else self._congestion.state_name()
            ),
            bytes_in_flight=self._bytes_in_flight,
            packets_in_flight=len(self._sent),
            pto_count=self._pto_count,
            packets_lost=self._packets_lost,
        )

    def oldest_unacked(self, count: int) -> tuple[SentPacket, ...]:
        """The ``count`` oldest ack-eliciting packets still outstanding (probe content).

        The packets stay tracked; the session may resend their frames in probes
        (RFC 9002 6.2.4: a probe should carry data that may have been lost).
        """
        eliciting = (packet for packet in self._sent.values() if packet.ack_eliciting)
        return tuple(islice(eliciting, count))

    def on_packet_number_used(self, packet_number: int) -> None:
        """Record that ``packet_number`` went on the wire, tracked or not.

        Raises:
            LocalProtocolError: if ``packet_number`` is negative.
        """
        if packet_number < 0:
            raise LocalProtocolError("packet numbers are not negative")
        self._largest_used = max(self._largest_used, packet_number)

    def on_packet_sent(self, packet: SentPacket) -> None:
        """Track a sent packet (RFC 9002 A.5).

        Raises:
            LocalProtocolError: if its number is not above every tracked one, it was
                sent before the latest tracked packet, its size is negative, or it is
                ack-eliciting but not in flight. Nothing is changed.
        """
        if packet.packet_number < 0 or packet.size_bytes < 0:
            raise LocalProtocolError("packet number and size must not be negative")
        if packet.ack_eliciting and not packet.in_flight:
            raise LocalProtocolError("an ack-eliciting packet is always in flight")
        sent = self._sent
        if sent:
            last = sent[next(reversed(sent))]
            if packet.packet_number <= last.packet_number or packet.time_sent < last.time_sent:
                raise LocalProtocolError("packets must be tracked in send order")
        else:  # the shared empty table: a table of its own from now on
            sent = self._sent = {}
        sent[packet.packet_number] = packet
        self._largest_used = max(self._largest_used, packet.packet_number)
        if packet.in_flight:
            self._bytes_in_flight += packet.size_bytes
            self.congestion.on_packet_sent(packet.size_bytes, packet.time_sent)
        if packet.ack_eliciting:
            self._eliciting_in_flight += 1
            self._last_eliciting_time = packet.time_sent

    def on_ack_received(self, ack: AckFrame, now: float) -> AckOutcome:
        """Process one ACK frame from the peer (RFC 9002 A.7).

        Returns:
            Newly acknowledged and newly lost packets, and whether the RTT was sampled.

        Raises:
            ProtocolViolation: PROTOCOL_VIOLATION if it acknowledges a packet number
                never sent (nothing is changed).
            LocalProtocolError: if ``now`` is before the latest tracked send.
        """
        if ack.largest > self._largest_used:
            raise ProtocolViolation(
                CloseReason.PROTOCOL_VIOLATION,
                f"ACK of packet {ack.largest}, never sent (largest {self._largest_used})",
            )
        if self._sent and now < self._sent[next(reversed(self._sent))].time_sent:
            raise LocalProtocolError("time went backwards")
        if self._largest_acked is None or ack.largest > self._largest_acked:
            self._largest_acked = ack.largest
        acked = self._remove_acked(ack.ranges)
        if not acked:
            return _NOTHING_ACKED
        newest = acked[-1]
        rtt_sampled = newest.packet_number == ack.largest and newest.ack_eliciting
        if rtt_sampled:
            self.rtt.update(
                now - newest.time_sent, ack.ack_delay_us / 1e6, self._config.max_ack_delay_s
            )
            if self._first_sample_time is None:
                self._first_sample_time = now
        lost = self._detect_lost(now)
        self._on_lost(lost, now)
        in_flight = [packet for packet in acked if packet.in_flight]
        if in_flight:
            self.congestion.on_packets_acked(in_flight, now)
        self._settle_congestion()
        self._pto_count = 0
        self._pto_fired_at = 0.0
        return AckOutcome(tuple(acked), lost, rtt_sampled)

    def _remove_acked(self, ranges: Iterable[tuple[int, int]]) -> list[SentPacket]:
        sent = self._sent
        if not sent:
            return []
        oldest = next(iter(sent))
        acked: list[SentPacket] = []
        for first, last in ranges:
            first = max(first, oldest)
            if last < first:
                continue
            if last - first + 1 <= len(sent):
                numbers: Iterable[int] = range(last, first - 1, -1)
            else:
                numbers = [number for number in reversed(sent) if first <= number <= last]
            for number in numbers:
                packet = sent.pop(number, None)
                if packet is not None:
                    acked.append(packet)
                    self._forget(packet)
        if not sent:
            self._sent = _NO_PACKETS  # an emptied dict keeps its table: idle sessions stay small
        acked.reverse()
        return acked

    def _forget(self, packet: SentPacket) -> None:  # stop counting it in flight
        if packet.in_flight:
            self._bytes_in_flight -= packet.size_bytes
        if packet.ack_eliciting:
            self._eliciting_in_flight -= 1

    def _detect_lost(self, now: float) -> tuple[SentPacket, ...]:
        """Remove and return packets lost by packet or time threshold (RFC 9002 A.10)."""
        self._loss_time = None
        largest_acked = self._largest_acked
        assert largest_acked is not None  # set by every ACK; loss time needs an ACK
        config, rtt = self._config, self.rtt
        loss_delay_s = config.time_threshold * max(rtt.latest_rtt_s, rtt.smoothed_rtt_s)
        loss_delay_s = max(loss_delay_s, config.timer_granularity_s)
        threshold = config.packet_threshold
        lost: list[SentPacket] = []
        sent = self._sent
        for number, packet in sent.items():
            if number > largest_acked:
                break
            # Compare ``time_sent + delay`` with ``now`` (not ``time_sent`` with
            # ``now - delay``): the loss time is that same sum, so a timer that
            # fires exactly at it always finds the packet lost (float rounding).
            when = packet.time_sent + loss_delay_s
            if when <= now or largest_acked >= number + threshold:
                lost.append(packet)
            elif self._loss_time is None or when < self._loss_time:
                self._loss_time = when
        for packet in lost:
            del sent[packet.packet_number]
            self._forget(packet)
        if not sent:
            self._sent = _NO_PACKETS
        return tuple(lost)

    def _on_lost(self, lost: tuple[SentPacket, ...], now: float) -> None:
        if not lost:
            return
        self._packets_lost += len(lost)
        in_flight = [packet for packet in lost if packet.in_flight]
        if in_flight:
            self.congestion.on_packets_lost(in_flight, now)
            duration_s = PERSISTENT_CONGESTION_THRESHOLD * self.rtt.pto_s(
                self._config.max_ack_delay_s
            )
            if in_persistent_congestion(lost, self._first_sample_time, duration_s):
                self.congestion.on_persistent_congestion(now)

    def deadline(self) -> float | None:
        """When ``on_timeout`` must run: the loss time, else the PTO (RFC 9002 A.8).

        Returns:
            An absolute time; None if no loss time is armed and nothing ack-eliciting
            is in flight.
        """
        if self._loss_time is not None:
            return self._loss_time
        if self._eliciting_in_flight == 0:
            return None
        backoff = 1 << min(self._pto_count, self._config.max_pto_backoff)
        pto_s = self.rtt.pto_s(self._config.max_ack_delay_s)
        deadline = self._last_eliciting_time + pto_s * backoff
        if deadline <= self._pto_fired_at:
            # The last expiry's probe never went out (an unvalidated path's spent budget)
            # and the backoff is capped: count from that expiry, or the timer would fire
            # again at once, forever.
            return self._pto_fired_at + pto_s * backoff
        return deadline

    def on_peer_reappeared(self, now: float) -> ReappearedOutcome:
        """The peer was heard after a silence longer than a PTO, or on a path that was
        just validated: reset the PTO backoff, and probe at once if data is overdue
        (see the module rules).

        Returns:
            The probes owed now (as many as a PTO expiry would ask for) and the oldest
            overdue packet, or no probes and None when nothing was outstanding for a PTO.
        """
        self._pto_count = 0
        self._pto_fired_at = 0.0
        oldest = self.oldest_unacked(1)
        if not oldest or now - oldest[0].time_sent < self.rtt.pto_s(self._config.max_ack_delay_s):
            return _NOTHING_OVERDUE
        return ReappearedOutcome(min(MAX_PROBES, self._eliciting_in_flight), oldest[0])

    def on_timeout(self, now: float) -> TimeoutOutcome:
        """Run the loss-detection timer (RFC 9002 A.9).

        Calling it before ``deadline()`` is harmless and does nothing.

        Returns:
            Loss-time expiry: the packets declared lost, no probes. PTO expiry: no
            losses, 1 or 2 probes to send now; ``pto_count`` grows by one.
        """
        deadline = self.deadline()
        if deadline is None or now < deadline:
            return _NOTHING_DUE
        if self._loss_time is not None:
            lost = self._detect_lost(now)
            self._on_lost(lost, now)
            self._settle_congestion()
            return TimeoutOutcome(lost, 0)
        self._pto_count += 1
        self._pto_fired_at = now
        return TimeoutOutcome((), min(MAX_PROBES, self._eliciting_in_flight))
