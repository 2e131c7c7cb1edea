"""NewReno (RFC 9002 section 7, Appendix B) and the persistent-congestion test."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pytest

from udpim.core.config import CongestionAlgorithm, SessionConfig
from udpim.core.congestion import (
    GATED_INITIAL_WINDOW_PACKETS,
    CongestionController,
    CongestionState,
    DelayGatedReno,
    NewReno,
    in_persistent_congestion,
)
from udpim.core.errors import LocalProtocolError
from udpim.core.frames import AckFrame, PingFrame
from udpim.core.recovery import LossRecovery, SentPacket
from udpim.core.rtt import RttEstimator

MDS = 1200


def packet(number: int, time_sent: float, size: int = MDS, eliciting: bool = True) -> SentPacket:
    return SentPacket(number, time_sent, size, eliciting, True, (PingFrame(),))


def send(cc: NewReno, count: int, time_sent: float, first: int = 0) -> list[SentPacket]:
    packets = [packet(first + i, time_sent) for i in range(count)]
    for p in packets:
        cc.on_packet_sent(p.size_bytes, p.time_sent)
    return packets


@pytest.mark.parametrize(
    ("mds", "initial", "minimum"),
    [(1200, 12000, 2400), (1500, 14720, 3000), (9000, 18000, 18000)],
)
def test_initial_and_minimum_windows(mds: int, initial: int, minimum: int) -> None:
    cc = NewReno(mds)
    assert cc.congestion_window_bytes == initial
    assert cc.minimum_window_bytes == minimum
    assert cc.state is CongestionState.SLOW_START
    assert cc.state_name() == "slow-start"
    assert cc.slow_start_threshold_bytes == float("inf")


def test_bad_datagram_size_is_refused() -> None:
    with pytest.raises(LocalProtocolError):
        NewReno(0)


def test_slow_start_doubles_per_window_acknowledged() -> None:
    cc = NewReno(MDS)
    packets = send(cc, 10, 0.0)  # exactly one window in flight
    cc.on_packets_acked(packets, 0.1)
    assert cc.congestion_window_bytes == 24000
    packets = send(cc, 20, 0.1, first=10)
    cc.on_packets_acked(packets[:10], 0.2)
    assert cc.congestion_window_bytes == 36000
    assert cc.state is CongestionState.SLOW_START


def test_no_growth_while_application_limited() -> None:
    cc = NewReno(MDS)
    packets = send(cc, 2, 0.0)  # 2400 in flight of a 12000 window: under half used
    cc.on_packets_acked(packets, 0.1)
    assert cc.congestion_window_bytes == 12000
    packets = send(cc, 5, 0.1, first=2)  # exactly half: counts as used
    cc.on_packets_acked(packets, 0.2)
    assert cc.congestion_window_bytes == 18000


def test_loss_halves_window_and_enters_recovery() -> None:
    cc = NewReno(MDS)
    packets = send(cc, 10, 0.0)
    cc.on_packets_lost(packets[:1], 1.0)
    assert cc.congestion_window_bytes == 6000
    assert cc.slow_start_threshold_bytes == 6000
    assert cc.state_name() == "recovery"


def test_one_reduction_per_recovery_period() -> None:
    cc = NewReno(MDS)
    early = send(cc, 10, 0.0)
    cc.on_packets_lost(early[:1], 1.0)
    cc.on_packets_lost(early[1:3], 1.5)  # sent before the period began
    assert cc.congestion_window_bytes == 6000
    at_start = send(cc, 1, 1.0, first=10)  # sent at the very start time still counts as before
    cc.on_packets_lost(at_start, 1.6)
    assert cc.congestion_window_bytes == 6000
    late = send(cc, 2, 1.25, first=11)  # sent after the period began: a new congestion event
    cc.on_packets_lost(late[:1], 2.0)
    assert cc.congestion_window_bytes == 3000
    assert cc.state is CongestionState.RECOVERY


def test_acks_of_packets_sent_before_recovery_do_not_grow_window() -> None:
    cc = NewReno(MDS)
    early = send(cc, 10, 0.0)
    cc.on_packets_lost(early[:1], 1.0)
    cc.on_packets_acked(early[1:], 1.1)
    assert cc.congestion_window_bytes == 6000
    assert cc.state is CongestionState.RECOVERY


def test_ack_of_packet_sent_during_recovery_ends_it() -> None:
    cc = NewReno(MDS)
    early = send(cc, 10, 0.0)
    cc.on_packets_lost(early[:1], 1.0)
    cc.on_packets_acked(early[1:], 1.0)
    late = send(cc, 5, 1.5, first=10)  # 6000 in flight: window fully used
    cc.on_packets_acked(late[:1], 2.0)
    assert cc.state is CongestionState.CONGESTION_AVOIDANCE
    assert cc.state_name() == "congestion-avoidance"


def test_congestion_avoidance_adds_one_datagram_per_window() -> None:
    cc = NewReno(MDS)
    early = send(cc, 10, 0.0)
    cc.on_packets_lost(early[:1], 1.0)
    cc.on_packets_acked(early[1:], 1.0)
    assert cc.congestion_window_bytes == 6000
    packets = send(cc, 5, 1.5, first=10)  # one window (6000 bytes)
    cc.on_packets_acked(packets[:4], 2.0)
    assert cc.congestion_window_bytes == 6000  # 4800 of 6000 acknowledged so far
    refill = send(cc, 4, 2.0, first=15)  # the sender keeps the window full
    cc.on_packets_acked(packets[4:], 2.1)
    assert cc.congestion_window_bytes == 7200  # one full window acknowledged: + 1 mds
    more = send(cc, 2, 2.1, first=19)  # 7200 in flight
    cc.on_packets_acked(refill + more[:1], 2.5)  # 6000 of the new 7200
    assert cc.congestion_window_bytes == 7200
    assert cc.state is CongestionState.CONGESTION_AVOIDANCE


def test_persistent_congestion_collapses_to_minimum_and_restarts_slow_start() -> None:
    cc = NewReno(MDS)
    packets = send(cc, 10, 0.0)
    cc.on_packets_lost(packets, 5.0)
    cc.on_persistent_congestion(5.0)
    assert cc.congestion_window_bytes == 2400
    assert cc.state is CongestionState.SLOW_START
    # The recovery period is forgotten: a later ack of an old packet grows the window.
    old = send(cc, 1, 4.0, first=10)
    cc.on_packets_acked(old, 5.5)
    assert cc.congestion_window_bytes == 3600


def test_window_never_below_minimum() -> None:
    cc = NewReno(MDS)
    for round_ in range(8):
        packets = send(cc, 1, float(round_), first=round_)
        cc.on_packets_lost(packets, round_ + 0.5)
    assert cc.congestion_window_bytes == 2400


def test_empty_loss_report_changes_nothing() -> None:
    cc = NewReno(MDS)
    cc.on_packets_lost([], 1.0)
    assert cc.state is CongestionState.SLOW_START
    assert cc.congestion_window_bytes == 12000


# --- in_persistent_congestion --------------------------------------------------------


def run(times: Sequence[float], first: int = 0) -> list[SentPacket]:
    return [packet(first + i, t) for i, t in enumerate(times)]


def test_persistent_congestion_needs_span_longer_than_duration() -> None:
    assert in_persistent_congestion(run([1.0, 2.0, 4.0]), 0.5, duration_s=2.5)
    assert not in_persistent_congestion(run([1.0, 2.0, 3.5]), 0.5, duration_s=2.5)
    assert not in_persistent_congestion(run([1.0, 3.5]), 0.5, duration_s=2.5)  # equal is not more


def test_persistent_congestion_needs_an_rtt_sample() -> None:
    assert not in_persistent_congestion(run([1.0, 9.0]), None, duration_s=2.5)


def test_packets_before_first_sample_do_not_count() -> None:
    assert not in_persistent_congestion(run([1.0, 2.0, 4.0]), 1.5, duration_s=2.5)
    assert in_persistent_congestion(run([1.0, 2.0, 5.0]), 1.5, duration_s=2.5)


def test_gap_in_packet_numbers_breaks_the_run() -> None:
    lost = run([1.0, 2.0]) + run([4.0], first=3)  # packet 2 not among the lost
    assert not in_persistent_congestion(lost, 0.5, duration_s=2.5)


def test_non_eliciting_packets_bridge_but_do_not_start_a_run() -> None:
    lost = [
        packet(0, 0.5, eliciting=False),
        packet(1, 1.0),
        packet(2, 2.0, eliciting=False),
        packet(3, 3.75),
    ]
    assert in_persistent_congestion(lost, 0.25, duration_s=2.5)
    assert not in_persistent_congestion([*lost[:3], packet(3, 3.5)], 0.25, duration_s=2.5)


# --- the seam: another algorithm plugs into LossRecovery -----------------------------


class FixedWindow:
    """A trivial controller: a constant window, recording the hooks it gets."""

    def __init__(self, window_bytes: int) -> None:
        self.window_bytes = window_bytes
        self.calls: list[tuple[str, int]] = []

    @property
    def congestion_window_bytes(self) -> int:
        return self.window_bytes

    def on_packet_sent(self, size_bytes: int, now: float) -> None:
        self.calls.append(("sent", size_bytes))

    def on_packets_acked(self, packets: Sequence[SentPacket], now: float) -> None:
        self.calls.append(("acked", len(packets)))

    def on_packets_lost(self, packets: Sequence[SentPacket], now: float) -> None:
        self.calls.append(("lost", len(packets)))

    def on_persistent_congestion(self, now: float) -> None:
        self.calls.append(("persistent", 0))

    def state_name(self) -> str:
        return "fixed"


def test_another_controller_plugs_into_loss_recovery() -> None:
    fixed = FixedWindow(2000)
    controller: CongestionController = fixed
    recovery = LossRecovery(SessionConfig(), congestion=controller)
    assert recovery.congestion is fixed
    for number in range(5):
        recovery.on_packet_sent(packet(number, 0.0, size=500))
    assert not recovery.can_send(1)  # 2500 in flight of 2000
    recovery.on_ack_received(AckFrame(ranges=((3, 4),), ack_delay_us=0), 0.25)
    # Packets 0 and 1 are 3 below the largest acknowledged: lost by packet threshold.
    assert fixed.calls == [("sent", 500)] * 5 + [("lost", 2), ("acked", 2)]
    assert recovery.statistics().congestion_state == "fixed"
    assert recovery.can_send(1500)
    assert not recovery.can_send(1501)


def test_the_controller_hears_only_of_packets_in_flight() -> None:
    # LossRecovery may track packets that are not in flight; acknowledging or losing
    # only such packets must not call the controller (its hooks get in-flight packets).
    fixed = FixedWindow(2000)
    recovery = LossRecovery(SessionConfig(), congestion=fixed)
    for number in range(5):
        recovery.on_packet_sent(SentPacket(number, 0.0, 50, False, False, ()))
    outcome = recovery.on_ack_received(AckFrame(ranges=((3, 4),), ack_delay_us=0), 0.25)
    assert [p.packet_number for p in outcome.lost] == [0, 1]  # packet threshold
    assert [p.packet_number for p in outcome.acked] == [3, 4]
    deadline = recovery.deadline()  # packet 2: the time threshold
    assert deadline is not None
    assert [p.packet_number for p in recovery.on_timeout(deadline).lost] == [2]
    assert fixed.calls == []
    recovery.on_packet_sent(packet(5, deadline, size=500))
    recovery.on_ack_received(AckFrame(ranges=((5, 5),), ack_delay_us=0), deadline + 0.25)
    assert fixed.calls == [("sent", 500), ("acked", 1)]


# --- DelayGatedReno: halves only when the RTT shows a queue -------------------------------


def gated_with_rtt(samples: Sequence[float]) -> DelayGatedReno:
    rtt = RttEstimator(initial_rtt_s=0.333, granularity_s=0.001)
    for sample in samples:
        rtt.update(sample, 0.0, 0.025)
    return DelayGatedReno(MDS, rtt)


def test_random_loss_without_a_queue_keeps_the_window() -> None:
    cc = gated_with_rtt([0.050, 0.051, 0.049, 0.052])  # smoothed ~ min: no queue
    before = cc.congestion_window_bytes
    cc.on_packets_lost(send(cc, 3, 1.0), 2.0)
    assert cc.congestion_window_bytes == before
    assert cc.state is CongestionState.SLOW_START


def test_loss_with_a_grown_queue_halves_like_newreno() -> None:
    cc = gated_with_rtt([0.050] + [0.120] * 8)  # smoothed far above the 50 ms minimum
    before = cc.congestion_window_bytes
    cc.on_packets_lost(send(cc, 3, 1.0), 2.0)
    assert cc.congestion_window_bytes == before // 2
    assert cc.state is CongestionState.RECOVERY


def test_small_jitter_is_not_a_queue_but_the_floor_applies() -> None:
    # 4 ms above a 10 ms minimum is 40 % (above QUEUE_FRACTION) but under QUEUE_FLOOR_S.
    cc = gated_with_rtt([0.010] + [0.014] * 12)
    before = cc.congestion_window_bytes
    cc.on_packets_lost(send(cc, 2, 1.0), 2.0)
    assert cc.congestion_window_bytes == before


def test_loss_before_any_rtt_sample_is_taken_as_congestion() -> None:
    cc = gated_with_rtt([])
    before = cc.congestion_window_bytes
    cc.on_packets_lost(send(cc, 2, 1.0), 2.0)
    assert cc.congestion_window_bytes == before // 2


def test_gated_minimum_window_is_four_datagrams() -> None:
    cc = gated_with_rtt([0.050] + [0.200] * 8)
    for step in range(10):  # repeated congestion losses, each in a new period
        cc.on_packets_lost(send(cc, 1, 10.0 + step), 10.5 + step)
    assert cc.congestion_window_bytes == 4 * MDS
    cc.on_persistent_congestion(30.0)
    assert cc.congestion_window_bytes == 4 * MDS


def test_loss_recovery_picks_the_configured_controller() -> None:
    assert isinstance(LossRecovery(SessionConfig()).congestion, DelayGatedReno)
    newreno = replace(SessionConfig(), congestion_control=CongestionAlgorithm.NEWRENO)
    controller = LossRecovery(newreno).congestion
    assert isinstance(controller, NewReno)
    assert not isinstance(controller, DelayGatedReno)


@pytest.mark.parametrize(
    ("algorithm", "initial_window", "after_loss"),
    [
        (CongestionAlgorithm.NEWRENO, 10 * MDS, 5 * MDS),  # every loss halves
        (CongestionAlgorithm.DELAY_GATED, GATED_INITIAL_WINDOW_PACKETS * MDS, None),  # no queue
    ],
)
def test_an_idle_session_s_window_is_that_of_a_new_controller(
    algorithm: CongestionAlgorithm, initial_window: int, after_loss: int | None
) -> None:
    # Before the first packet, and whenever everything sent was acknowledged without a
    # loss the controller reacted to, window and state are those of a new controller
    # (LossRecovery keeps none then); a reaction to a loss is kept across idle moments.
    config = replace(SessionConfig(), congestion_control=algorithm, max_datagram_bytes=MDS)
    recovery = LossRecovery(config)
    for number in range(2):
        stats = recovery.statistics()
        assert (stats.congestion_window_bytes, stats.congestion_state) == (
            initial_window,
            "slow-start",
        )
        assert recovery.can_send(initial_window)
        assert not recovery.can_send(initial_window + 1)
        recovery.on_packet_sent(packet(number, 0.0, size=1000))
        assert recovery.window_room() == initial_window - 1000
        recovery.on_ack_received(AckFrame(ranges=((number, number),), ack_delay_us=0), 0.1)
    for number in range(2, 6):
        recovery.on_packet_sent(packet(number, 0.2, size=1000))
    recovery.on_ack_received(AckFrame(ranges=((5, 5),), ack_delay_us=0), 0.3)  # 2 is lost
    recovery.on_ack_received(AckFrame(ranges=((3, 4),), ack_delay_us=0), 0.3)
    stats = recovery.statistics()
    assert (stats.bytes_in_flight, stats.packets_lost) == (0, 1)
    assert stats.congestion_window_bytes == (after_loss or initial_window)


def test_gated_initial_window() -> None:
    assert gated_with_rtt([]).congestion_window_bytes == GATED_INITIAL_WINDOW_PACKETS * MDS


def test_queue_must_show_in_both_smoothed_and_latest_rtt() -> None:
    # The smoothed RTT still carries a slow early sample, the latest is at the minimum.
    cc = gated_with_rtt([0.150, 0.050, 0.051, 0.050])
    before = cc.congestion_window_bytes
    cc.on_packets_lost(send(cc, 2, 1.0), 2.0)
    assert cc.congestion_window_bytes == before
