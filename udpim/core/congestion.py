"""Congestion control: the ``CongestionController`` seam and NewReno (RFC 9002 7, App. B).

What this module owns: the congestion window, and the rules that grow and shrink it.
It never sees frames, timers or packet numbers beyond what ``LossRecovery`` hands it,
and it never calls back: ``LossRecovery`` asks ``congestion_window_bytes`` before
letting new data go out (``can_send``).

The seam (how to add another algorithm, e.g. CUBIC or BBR):

1. Write a class that satisfies the ``CongestionController`` protocol below (it is a
   structural ``typing.Protocol``: no base class, no registration). ``LossRecovery``
   calls exactly these hooks, in this order for one ACK: ``on_packets_lost`` (if any
   were declared lost), then ``on_persistent_congestion`` (if RFC 9002 7.6 says so),
   then ``on_packets_acked``. Only packets that counted towards bytes in flight
   (``SentPacket.in_flight``) are passed; ``on_packet_sent`` sees the same ones.
2. Pass an instance: ``LossRecovery(config, congestion=MyController(...))``. The
   session builds its ``LossRecovery`` in one place, so switching algorithms is a
   one-line change there (or a factory in the session's constructor); nothing else
   in the core knows which algorithm runs.
3. Run ``tests/core/test_congestion.py``-style timelines against it and the whole
   ``tests/sim`` suite; ``state_name()`` shows up in statistics and traces.

NewReno rules kept (RFC 9002 7.2-7.6 and Appendix B):

* initial window ``min(10 * mds, max(14720, 2 * mds))``, minimum window ``2 * mds``
  (``mds`` = maximum datagram size), slow-start threshold starts infinite;
* slow start: the window grows by the bytes acknowledged; congestion avoidance: by
  one ``mds`` per window of bytes acknowledged (an integer byte counter, no float
  drift);
* a loss starts a recovery period at ``now`` unless the lost packet was sent at or
  before the current period's start (``time_sent <= recovery_start_time``): one
  reduction per period, by the loss reduction factor 0.5, never below the minimum;
* packets sent at or before the recovery start do not grow the window when acked;
  acknowledging a packet sent after it ends the period;
* persistent congestion collapses the window to the minimum and forgets the period;
  ``in_persistent_congestion`` is the RFC 9002 7.6.2 test ``LossRecovery`` applies.

Simplification (RFC 9002 7.8, "underutilizing the congestion window"): instead of
tracking pacing and application-limited periods, the window grows only when, just
before an acknowledgement is processed, at least half of it was in flight. A chat
session trickling a few messages per RTT therefore keeps its initial window instead
of inflating it without ever having tested the path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import Enum
from functools import lru_cache
from typing import TYPE_CHECKING, Protocol, final

from udpim.core.errors import LocalProtocolError

if TYPE_CHECKING:
    from udpim.core.recovery import SentPacket
    from udpim.core.rtt import RttEstimator

__all__ = [
    "INITIAL_WINDOW_CAP_BYTES",
    "LOSS_REDUCTION_FACTOR",
    "PERSISTENT_CONGESTION_THRESHOLD",
    "GATED_INITIAL_WINDOW_PACKETS",
    "QUEUE_FLOOR_S",
    "QUEUE_FRACTION",
    "CongestionController",
    "CongestionState",
    "DelayGatedReno",
    "NewReno",
    "in_persistent_congestion",
]

INITIAL_WINDOW_CAP_BYTES = 14720
"""RFC 9002 7.2: the initial window is at most ``max(14720, 2 * mds)`` bytes."""

LOSS_REDUCTION_FACTOR = 0.5
"""RFC 9002 7.3.2 (kLossReductionFactor): the window is halved once per recovery period."""

GATED_INITIAL_WINDOW_PACKETS = 32
"""DelayGatedReno's initial window in datagrams (38 KB at 1200 bytes): a 1 MiB message
needs two fewer round trips of slow start than with RFC 9002's 10."""

QUEUE_FRACTION = 0.25
"""DelayGatedReno: a queue is a smoothed RTT this fraction above the minimum RTT ..."""

QUEUE_FLOOR_S = 0.005
"""... and at least this many seconds above it (jitter below this is not a queue)."""

PERSISTENT_CONGESTION_THRESHOLD = 3
"""RFC 9002 7.6.1 (kPersistentCongestionThreshold): PTO periods of total loss."""


def in_persistent_congestion(
    lost: Sequence[SentPacket], first_sample_time: float | None, duration_s: float
) -> bool:
    """Whether packets declared lost together establish persistent congestion (RFC 9002 7.6.2).

    True when two ack-eliciting packets, both sent at or after the first RTT sample,
    are more than ``duration_s`` apart and every packet number between them is in
    ``lost``. A packet number missing from ``lost`` breaks the run: it may have been
    acknowledged (conservative; a packet lost in an earlier batch also breaks it).

    Args:
        lost: the batch, in ascending packet-number order.
        first_sample_time: when the first RTT sample was taken (None: never, so False).
        duration_s: ``PERSISTENT_CONGESTION_THRESHOLD`` times the PTO without backoff.
    """
    if first_sample_time is None:
        return False
    run_start: float | None = None
    previous = -2
    for packet in lost:
        if packet.packet_number != previous + 1:
            run_start = None
        previous = packet.packet_number
        if not packet.ack_eliciting or packet.time_sent < first_sample_time:
            continue
        if run_start is None:
            run_start = packet.time_sent
        elif packet.time_sent - run_start > duration_s:
            return True
    return False


class CongestionController(Protocol):
    """What ``LossRecovery`` needs from a congestion-control algorithm."""

    @property
    def congestion_window_bytes(self) -> int:
        """Bytes that may be in flight."""
        ...

    def on_packet_sent(self, size_bytes: int, now: float) -> None:
        """An in-flight packet of ``size_bytes`` left at ``now``."""
        ...

    def on_packets_acked(self, packets: Sequence[SentPacket], now: float) -> None:
        """In-flight packets were newly acknowledged (ascending packet numbers)."""
        ...

    def on_packets_lost(self, packets: Sequence[SentPacket], now: float) -> None:
        """In-flight packets were declared lost (ascending packet numbers)."""
        ...

    def on_persistent_congestion(self, now: float) -> None:
        """RFC 9002 7.6 established persistent congestion (after ``on_packets_lost``)."""
        ...

    def state_name(self) -> str:
        """A short stable name of the current state, for statistics and traces."""
        ...


@final
class CongestionState(Enum):
    """NewReno's states (RFC 9002 7.3, figure 3)."""

    SLOW_START = "slow-start"
    RECOVERY = "recovery"
    CONGESTION_AVOIDANCE = "congestion-avoidance"


class NewReno:
    """NewReno congestion control (RFC 9002 section 7 and Appendix B).

    Args:
        max_datagram_bytes: the largest datagram this side sends (``mds``).

    Raises:
        LocalProtocolError: if ``max_datagram_bytes`` is not positive.
    """

    __slots__ = (
        "_acked_in_avoidance",
        "_cwnd",
        "_in_flight",
        "_mds",
        "_recovery_start",
        "_ssthresh",
        "_state",
    )

    def __init__(self, max_datagram_bytes: int) -> None:
        if max_datagram_bytes <= 0:
            raise LocalProtocolError("max_datagram_bytes must be positive")
        self._mds = max_datagram_bytes
        self._cwnd = self.initial_window_bytes(max_datagram_bytes)
        self._ssthresh: float = math.inf
        self._recovery_start: float | None = None
        self._state = CongestionState.SLOW_START
        self._acked_in_avoidance = 0
        self._in_flight = 0

    @property
    def congestion_window_bytes(self) -> int:
        """Bytes that may be in flight."""
        return self._cwnd

    @staticmethod
    def initial_window_bytes(max_datagram_bytes: int) -> int:
        """The window a new controller starts with (RFC 9002 7.2)."""
        return _initial_window_bytes(max_datagram_bytes)

    @property
    def at_rest(self) -> bool:
        """Whether a new controller would be the same: nothing in flight, no loss ever
        reacted to (so still in slow start) and the window never grown (in slow start it
        only grows). Its owner may then drop it and make a new one when needed."""
        return (
            self._in_flight == 0
            and self._ssthresh == math.inf
            and self._cwnd == self.initial_window_bytes(self._mds)
        )

    @property
    def minimum_window_bytes(self) -> int:
        """RFC 9002 7.2 (kMinimumWindow): two maximum-size datagrams."""
        return 2 * self._mds

    @property
    def slow_start_threshold_bytes(self) -> float:
        """Slow-start threshold (``math.inf`` until the first loss)."""
        return self._ssthresh

    @property
    def state(self) -> CongestionState:
        """The current state."""
        return self._state

    def state_name(self) -> str:
        """``"slow-start"``, ``"recovery"`` or ``"congestion-avoidance"``."""
        return self._state.value

    def on_packet_sent(self, size_bytes: int, now: float) -> None:
        """Count an in-flight packet (used only to tell whether the window is used)."""
        self._in_flight += size_bytes

    def on_packets_acked(self, packets: Sequence[SentPacket], now: float) -> None:
        """Grow the window for acknowledged packets (RFC 9002 B.5)."""
        utilised = 2 * self._in_flight >= self._cwnd
        for packet in packets:
            self._in_flight = max(0, self._in_flight - packet.size_bytes)
            if self._in_recovery(packet.time_sent):
                continue
            if self._state is CongestionState.RECOVERY:
                self._state = self._growth_state()
            if not utilised:
                continue
            if self._cwnd < self._ssthresh:
                self._cwnd += packet.size_bytes
                self._state = self._growth_state()
            else:
                self._acked_in_avoidance += packet.size_bytes
                if self._acked_in_avoidance >= self._cwnd:
                    self._acked_in_avoidance -= self._cwnd
                    self._cwnd += self._mds

    def on_packets_lost(self, packets: Sequence[SentPacket], now: float) -> None:
        """Start a recovery period unless one already covers these packets (RFC 9002 B.6, B.8)."""
        if not packets:
            return
        for packet in packets:
            self._in_flight = max(0, self._in_flight - packet.size_bytes)
        last_sent = max(packet.time_sent for packet in packets)
        if self._in_recovery(last_sent) or not self._congestion_signal():
            return
        self._recovery_start = now
        self._ssthresh = int(self._cwnd * LOSS_REDUCTION_FACTOR)
        self._cwnd = max(int(self._ssthresh), self.minimum_window_bytes)
        self._acked_in_avoidance = 0
        self._state = CongestionState.RECOVERY

    def on_persistent_congestion(self, now: float) -> None:
        """Collapse to the minimum window and forget the recovery period (RFC 9002 7.6.2)."""
        self._cwnd = self.minimum_window_bytes
        self._recovery_start = None
        self._acked_in_avoidance = 0
        self._state = self._growth_state()

    def _congestion_signal(self) -> bool:
        """Whether a loss means congestion. NewReno: always (every loss halves)."""
        return True

    def _in_recovery(self, time_sent: float) -> bool:
        return self._recovery_start is not None and time_sent <= self._recovery_start

    def _growth_state(self) -> CongestionState:
        if self._cwnd < self._ssthresh:
            return CongestionState.SLOW_START
        return CongestionState.CONGESTION_AVOIDANCE


@final
class DelayGatedReno(NewReno):
    """NewReno whose loss reaction is gated by queueing delay (udpim's default).

    Rule: a loss starts a recovery period (halving the window) only when the RTT shows a
    queue: ``min(smoothed_rtt, latest_rtt) - min_rtt > max(QUEUE_FRACTION * min_rtt,
    QUEUE_FLOOR_S)``. Random loss on an unloaded path (Wi-Fi, cellular: the paths udpim
    is for) then costs retransmissions, not throughput, while a loss at a bottleneck
    whose queue has grown still halves the window as NewReno does, and persistent
    congestion still collapses it. The minimum window is 4 datagrams rather than 2, so
    one loss never stalls a trickle of chat messages behind a two-packet window, and the
    initial window is ``GATED_INITIAL_WINDOW_PACKETS`` datagrams.

    Trade-off: a bottleneck with a queue shorter than ``QUEUE_FLOOR_S`` drops packets
    without a delay signal; there this controller backs off only on persistent
    congestion. Choose ``CongestionAlgorithm.NEWRENO`` for strict RFC 9002 behaviour.

    Args:
        max_datagram_bytes: the largest datagram this side sends.
        rtt: the session's RTT estimator (read, never written).
    """

    __slots__ = ("_rtt",)

    def __init__(self, max_datagram_bytes: int, rtt: RttEstimator) -> None:
        super().__init__(max_datagram_bytes)
        self._rtt = rtt

    @staticmethod
    def initial_window_bytes(max_datagram_bytes: int) -> int:
        """``GATED_INITIAL_WINDOW_PACKETS`` datagrams."""
        return _gated_initial_window_bytes(max_datagram_bytes)

    @property
    def minimum_window_bytes(self) -> int:
        """Four maximum-size datagrams."""
        return 4 * self._mds

    def _congestion_signal(self) -> bool:
        rtt = self._rtt
        if rtt.samples == 0:
            return True  # nothing known about the path yet: be conservative
        # Both the smoothed and the latest RTT must show it: the smoothed one lags (it
        # still carries early, slower samples), the latest one jitters.
        queueing_s = min(rtt.smoothed_rtt_s, rtt.latest_rtt_s) - rtt.min_rtt_s
        return queueing_s > max(QUEUE_FRACTION * rtt.min_rtt_s, QUEUE_FLOOR_S)


# The initial windows are cached, so every controller of one datagram size shares the int
# (an idle session's window is usually its initial one: 32 bytes a session otherwise).


@lru_cache(maxsize=8)
def _initial_window_bytes(max_datagram_bytes: int) -> int:
    """RFC 9002 7.2: ``min(10 * mds, max(14720, 2 * mds))``."""
    return min(10 * max_datagram_bytes, max(INITIAL_WINDOW_CAP_BYTES, 2 * max_datagram_bytes))


@lru_cache(maxsize=8)
def _gated_initial_window_bytes(max_datagram_bytes: int) -> int:
    """``GATED_INITIAL_WINDOW_PACKETS`` datagrams."""
    return GATED_INITIAL_WINDOW_PACKETS * max_datagram_bytes
