"""RttEstimator: RFC 9002 section 5.3 arithmetic, with binary-exact numbers."""

from __future__ import annotations

import pytest

from udpim.core.errors import LocalProtocolError
from udpim.core.rtt import RttEstimator


def test_before_first_sample_uses_initial_rtt() -> None:
    rtt = RttEstimator(initial_rtt_s=0.5, granularity_s=0.001)
    assert (rtt.smoothed_rtt_s, rtt.rttvar_s) == (0.5, 0.25)
    assert (rtt.min_rtt_s, rtt.latest_rtt_s, rtt.samples) == (0.0, 0.0, 0)
    assert rtt.pto_s(0.0625) == 0.5 + 4 * 0.25 + 0.0625


def test_default_initial_pto_is_rfc_value() -> None:
    # RFC 9002 6.2.2: 333 ms initial RTT -> PTO = 333 + 4 * 166.5 + max_ack_delay.
    rtt = RttEstimator(initial_rtt_s=0.333, granularity_s=0.001)
    assert rtt.pto_s(0.025) == pytest.approx(1.024, abs=1e-12)


def test_first_sample_ignores_ack_delay() -> None:
    rtt = RttEstimator(0.5, 0.001)
    rtt.update(0.25, ack_delay_s=0.125, max_ack_delay_s=0.25)
    assert rtt.smoothed_rtt_s == 0.25
    assert rtt.rttvar_s == 0.125
    assert rtt.min_rtt_s == 0.25
    assert rtt.latest_rtt_s == 0.25
    assert rtt.samples == 1


def test_second_sample_subtracts_ack_delay() -> None:
    rtt = RttEstimator(0.5, 0.001)
    rtt.update(0.25, 0.0, 0.25)
    rtt.update(0.5, ack_delay_s=0.125, max_ack_delay_s=0.25)
    # adjusted = 0.375; rttvar = 3/4 * 0.125 + 1/4 * |0.25 - 0.375|; srtt = 7/8 * 0.25 + 1/8 * 0.375
    assert rtt.rttvar_s == 0.125
    assert rtt.smoothed_rtt_s == 0.265625
    assert rtt.latest_rtt_s == 0.5
    assert rtt.min_rtt_s == 0.25
    assert rtt.samples == 2


def test_ack_delay_is_capped_by_max_ack_delay() -> None:
    rtt = RttEstimator(0.5, 0.001)
    rtt.update(0.25, 0.0, 0.25)
    rtt.update(0.5, ack_delay_s=0.25, max_ack_delay_s=0.0625)
    # adjusted = 0.5 - 0.0625 = 0.4375
    assert rtt.smoothed_rtt_s == 0.875 * 0.25 + 0.125 * 0.4375
    assert rtt.rttvar_s == 0.75 * 0.125 + 0.25 * (0.4375 - 0.25)


def test_ack_delay_not_subtracted_below_min_rtt() -> None:
    rtt = RttEstimator(0.5, 0.001)
    rtt.update(0.25, 0.0, 0.25)
    rtt.update(0.3125, ack_delay_s=0.125, max_ack_delay_s=0.25)
    # 0.3125 < min_rtt + ack_delay = 0.375: the raw sample is used.
    assert rtt.smoothed_rtt_s == 0.875 * 0.25 + 0.125 * 0.3125
    assert rtt.rttvar_s == 0.75 * 0.125 + 0.25 * 0.0625


def test_min_rtt_takes_raw_sample_not_adjusted() -> None:
    rtt = RttEstimator(0.5, 0.001)
    rtt.update(0.25, 0.0, 0.25)
    rtt.update(0.125, ack_delay_s=0.0625, max_ack_delay_s=0.25)
    assert rtt.min_rtt_s == 0.125
    rtt.update(0.5, 0.0, 0.25)
    assert rtt.min_rtt_s == 0.125
    assert rtt.latest_rtt_s == 0.5


def test_pto_uses_granularity_when_variance_is_small() -> None:
    rtt = RttEstimator(0.5, granularity_s=1.0)
    rtt.update(0.25, 0.0, 0.0)
    assert rtt.pto_s(0.0625) == 0.25 + 1.0 + 0.0625
    rtt2 = RttEstimator(0.5, granularity_s=0.001)
    rtt2.update(0.25, 0.0, 0.0)
    assert rtt2.pto_s(0.0625) == 0.25 + 4 * 0.125 + 0.0625


def test_negative_sample_is_refused_and_changes_nothing() -> None:
    rtt = RttEstimator(0.5, 0.001)
    rtt.update(0.25, 0.0, 0.25)
    for args in ((-0.1, 0.0, 0.25), (0.1, -0.1, 0.25), (0.1, 0.0, -0.25)):
        with pytest.raises(LocalProtocolError):
            rtt.update(*args)
    assert (rtt.smoothed_rtt_s, rtt.rttvar_s, rtt.samples) == (0.25, 0.125, 1)


@pytest.mark.parametrize(("initial", "granularity"), [(0.0, 0.001), (-1.0, 0.001), (0.5, -0.1)])
def test_bad_construction_is_refused(initial: float, granularity: float) -> None:
    with pytest.raises(LocalProtocolError):
        RttEstimator(initial, granularity)
