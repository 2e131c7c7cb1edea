"""Round-trip time estimation and the probe timeout, exactly as RFC 9002 section 5.

``RttEstimator`` owns four numbers: the latest sample, the minimum, the smoothed RTT
and its mean deviation. ``LossRecovery`` feeds it one sample per acknowledgement that
qualifies (RFC 9002 5.1: the largest acknowledged packet is newly acknowledged and
ack-eliciting); everything else reads it.

Rules kept (RFC 9002 section 5.3):

* Before the first sample, ``smoothed_rtt_s = initial_rtt_s`` and
  ``rttvar_s = initial_rtt_s / 2``; ``min_rtt_s`` and ``latest_rtt_s`` read 0.0 and
  ``samples`` is 0.
* The first sample sets ``min_rtt_s = smoothed_rtt_s = sample`` and
  ``rttvar_s = sample / 2``, ignoring the peer's ack delay.
* Later samples: ``min_rtt_s`` takes the raw sample (never ack-delay adjusted). The
  peer's reported ack delay is first capped at ``max_ack_delay_s`` and then subtracted
  only if the result stays at or above ``min_rtt_s``. Then
  ``rttvar = 3/4 rttvar + 1/4 |smoothed - adjusted|`` and
  ``smoothed = 7/8 smoothed + 1/8 adjusted`` (in that order: rttvar uses the old
  smoothed value).
* ``pto_s = smoothed + max(4 * rttvar, granularity) + max_ack_delay`` (RFC 9002
  6.2.1); the caller applies the exponential backoff.
"""

from __future__ import annotations

from typing import final

from udpim.core.errors import LocalProtocolError

__all__ = ["RttEstimator"]


@final
class RttEstimator:
    """RTT estimator of one session (RFC 9002 section 5).

    Args:
        initial_rtt_s: RTT assumed before the first sample (RFC 9002 6.2.2: 333 ms).
        granularity_s: timer granularity; the variance term of the PTO is at least this.

    Raises:
        LocalProtocolError: if ``initial_rtt_s`` is not positive or
            ``granularity_s`` is negative.
    """

    __slots__ = ("_granularity_s", "_latest_s", "_min_s", "_rttvar_s", "_samples", "_smoothed_s")

    def __init__(self, initial_rtt_s: float, granularity_s: float) -> None:
        if initial_rtt_s <= 0 or granularity_s < 0:
            raise LocalProtocolError("initial RTT must be positive, granularity >= 0")
        self._granularity_s = granularity_s
        self._smoothed_s = initial_rtt_s
        self._rttvar_s = initial_rtt_s / 2
        self._min_s = 0.0
        self._latest_s = 0.0
        self._samples = 0

    @property
    def smoothed_rtt_s(self) -> float:
        """Exponentially weighted RTT (``initial_rtt_s`` before the first sample)."""
        return self._smoothed_s

    @property
    def rttvar_s(self) -> float:
        """Mean deviation of the RTT samples."""
        return self._rttvar_s

    @property
    def min_rtt_s(self) -> float:
        """Smallest raw sample seen (0.0 before the first sample)."""
        return self._min_s

    @property
    def latest_rtt_s(self) -> float:
        """The most recent raw sample (0.0 before the first sample)."""
        return self._latest_s

    @property
    def samples(self) -> int:
        """How many samples were taken."""
        return self._samples

    def update(self, latest_rtt_s: float, ack_delay_s: float, max_ack_delay_s: float) -> None:
        """Take one RTT sample (RFC 9002 5.3).

        Args:
            latest_rtt_s: time from sending the largest newly acknowledged packet to
                receiving its acknowledgement.
            ack_delay_s: the delay the peer reported in its ACK frame.
            max_ack_delay_s: the peer's bound on its ack delay; caps ``ack_delay_s``.

        Raises:
            LocalProtocolError: if a value is negative (nothing is changed).
        """
        if latest_rtt_s < 0 or ack_delay_s < 0 or max_ack_delay_s < 0:
            raise LocalProtocolError("RTT sample and delays must not be negative")
        self._latest_s = latest_rtt_s
        self._samples += 1
        if self._samples == 1:
            self._min_s = latest_rtt_s
            self._smoothed_s = latest_rtt_s
            self._rttvar_s = latest_rtt_s / 2
            return
        self._min_s = min(self._min_s, latest_rtt_s)
        ack_delay_s = min(ack_delay_s, max_ack_delay_s)
        adjusted_s = latest_rtt_s
        if latest_rtt_s >= self._min_s + ack_delay_s:
            adjusted_s = latest_rtt_s - ack_delay_s
        self._rttvar_s = 0.75 * self._rttvar_s + 0.25 * abs(self._smoothed_s - adjusted_s)
        self._smoothed_s = 0.875 * self._smoothed_s + 0.125 * adjusted_s

    def pto_s(self, max_ack_delay_s: float) -> float:
        """The probe timeout before backoff (RFC 9002 6.2.1).

        Args:
            max_ack_delay_s: the peer's maximum ack delay (added because every udpim
                packet is in the application-data space of a confirmed session).

        Returns:
            ``smoothed_rtt + max(4 * rttvar, granularity) + max_ack_delay`` in seconds.
        """
        return self._smoothed_s + max(4 * self._rttvar_s, self._granularity_s) + max_ack_delay_s
