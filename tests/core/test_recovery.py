"""LossRecovery: scripted timelines with exact deadlines (aioquic test_connect_with_loss style).

Times and RTTs are binary fractions so every deadline compares exactly. With
``initial_rtt_s = 0.5`` and ``max_ack_delay_s = 1/16`` the first PTO is
0.5 + 4 * 0.25 + 0.0625 = 1.5625 s.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from udpim.core.ackranges import AckTracker
from udpim.core.config import CongestionAlgorithm, SessionConfig
from udpim.core.errors import LocalProtocolError, ProtocolViolation
from udpim.core.frames import AckFrame, CloseReason, DataFrame, Frame, PingFrame, WindowFrame
from udpim.core.recovery import LossRecovery, SentPacket

CONFIG = replace(
    SessionConfig(),
    congestion_control=CongestionAlgorithm.NEWRENO,  # these are RFC 9002 timelines
    initial_rtt_s=0.5,
    max_ack_delay_s=0.0625,
    timer_granularity_s=1 / 1024,
    time_threshold=9 / 8,
    packet_threshold=3,
    max_pto_backoff=2,
)
FIRST_PTO = 1.5625


def packet(
    number: int,
    time_sent: float,
    size: int = 1000,
    eliciting: bool = True,
    frames: tuple[Frame, ...] = (PingFrame(),),
) -> SentPacket:
    return SentPacket(number, time_sent, size, eliciting, eliciting, frames)


def ack(*ranges: tuple[int, int], delay_us: int = 0) -> AckFrame:
    return AckFrame(ranges=ranges, ack_delay_us=delay_us)


def numbers(packets: tuple[SentPacket, ...]) -> list[int]:
    return [p.packet_number for p in packets]


def test_nothing_sent_no_deadline() -> None:
    recovery = LossRecovery(CONFIG)
    assert recovery.deadline() is None
    assert recovery.on_timeout(10.0).probes == 0
    assert recovery.largest_acked is None
    assert recovery.in_flight_packets() == 0


def test_pto_deadline_backoff_and_probes() -> None:
    recovery = LossRecovery(CONFIG)
    recovery.on_packet_sent(packet(0, 0.0))
    assert recovery.deadline() == FIRST_PTO
    assert recovery.on_timeout(FIRST_PTO - 0.0625).probes == 0  # early: nothing happens
    assert recovery.pto_count == 0

    outcome = recovery.on_timeout(FIRST_PTO)
    assert (outcome.lost, outcome.probes, recovery.pto_count) == ((), 1, 1)
    assert recovery.deadline() == 2 * FIRST_PTO  # doubled, from the same send time
    recovery.on_packet_sent(packet(1, FIRST_PTO))  # the probe
    assert recovery.deadline() == FIRST_PTO + 2 * FIRST_PTO

    outcome = recovery.on_timeout(3 * FIRST_PTO)
    assert (outcome.probes, recovery.pto_count) == (2, 2)  # two outstanding: two probes
    recovery.on_packet_sent(packet(2, 3 * FIRST_PTO))
    recovery.on_packet_sent(packet(3, 3 * FIRST_PTO))
    assert recovery.deadline() == 3 * FIRST_PTO + 4 * FIRST_PTO

    outcome = recovery.on_timeout(7 * FIRST_PTO)
    assert (outcome.probes, recovery.pto_count) == (2, 3)
    recovery.on_packet_sent(packet(4, 7 * FIRST_PTO))
    assert recovery.deadline() == 7 * FIRST_PTO + 4 * FIRST_PTO  # capped at 2**2

    # An ACK of new packets resets the backoff.
    recovery.on_ack_received(ack((4, 4)), 7 * FIRST_PTO + 0.5)
    assert recovery.pto_count == 0
    assert recovery.statistics().pto_count == 0


def test_pto_with_no_probe_sent_still_moves_forward() -> None:
    """A probe the path cannot carry (an unvalidated path's spent budget) is not sent, so
    no send moves the PTO's base; with the backoff capped, each expiry must still push
    the deadline one backed-off PTO past itself, or a driver would spin on it."""
    recovery = LossRecovery(CONFIG)
    recovery.on_packet_sent(packet(0, 0.0))
    # From the send: P, 2P, 4P (the cap), then from each expiry: 4P later each time.
    for deadline in [1, 2, 4, 8, 12, 16]:
        assert recovery.deadline() == deadline * FIRST_PTO
        assert recovery.on_timeout(deadline * FIRST_PTO).probes == 1
    assert recovery.pto_count == 6
    now = 16 * FIRST_PTO
    assert recovery.deadline() == now + 4 * FIRST_PTO
    # A probe sent later counts from its own send time, as before.
    recovery.on_packet_sent(packet(1, now + 1.0))
    assert recovery.deadline() == now + 1.0 + 4 * FIRST_PTO


def test_packet_threshold_then_time_threshold_losses() -> None:
    recovery = LossRecovery(CONFIG)
    for number in range(5):
        recovery.on_packet_sent(packet(number, number / 64))
    outcome = recovery.on_ack_received(ack((3, 3)), 3 / 64 + 0.5)
    assert numbers(outcome.acked) == [3]
    assert numbers(outcome.lost) == [0]  # 3 >= 0 + packet_threshold
    assert outcome.rtt_sampled
    assert recovery.rtt.latest_rtt_s == 0.5
    # loss delay = 9/8 * 0.5; packets 1 and 2 become lost at send time + 0.5625.
    assert recovery.deadline() == 1 / 64 + 0.5625
    assert recovery.on_timeout(1 / 64 + 0.5).lost == ()  # not yet
    expiry = recovery.on_timeout(1 / 64 + 0.5625)
    assert (numbers(expiry.lost), expiry.probes) == ([1], 0)
    assert recovery.deadline() == 2 / 64 + 0.5625
    assert numbers(recovery.on_timeout(2 / 64 + 0.5625).lost) == [2]
    # Only packet 4 is left: the PTO is measured from the last ack-eliciting send.
    assert recovery.deadline() == 4 / 64 + FIRST_PTO
    assert recovery.in_flight_packets() == 1
    assert recovery.statistics().packets_lost == 3


def test_time_threshold_loss_on_ack() -> None:
    recovery = LossRecovery(CONFIG)
    recovery.on_packet_sent(packet(0, 0.0))
    recovery.on_packet_sent(packet(1, 0.75))
    outcome = recovery.on_ack_received(ack((1, 1)), 1.25)
    # latest RTT 0.5 -> loss delay 0.5625; packet 0 was sent 1.25 s ago.
    assert numbers(outcome.lost) == [0]
    assert recovery.deadline() is None


def test_loss_delay_uses_larger_of_latest_and_smoothed() -> None:
    recovery = LossRecovery(CONFIG)
    recovery.on_packet_sent(packet(0, 0.0))
    recovery.on_ack_received(ack((0, 0)), 1.0)  # srtt 1.0
    recovery.on_packet_sent(packet(1, 1.0))
    recovery.on_packet_sent(packet(2, 1.0))
    recovery.on_ack_received(ack((2, 2)), 1.25)  # latest 0.25, srtt 0.90625
    assert recovery.rtt.smoothed_rtt_s == 0.90625
    assert recovery.deadline() == 1.0 + 9 / 8 * 0.90625


def test_loss_delay_at_least_granularity() -> None:
    config = replace(CONFIG, timer_granularity_s=0.25)
    recovery = LossRecovery(config)
    recovery.on_packet_sent(packet(0, 0.0))
    recovery.on_packet_sent(packet(1, 0.0))
    recovery.on_ack_received(ack((1, 1)), 0.0625)
    assert recovery.deadline() == 0.25  # 9/8 * 0.0625 is below the granularity


def test_ack_of_unsent_packet_is_protocol_violation() -> None:
    recovery = LossRecovery(CONFIG)
    with pytest.raises(ProtocolViolation) as info:
        recovery.on_ack_received(ack((0, 0)), 1.0)
    assert info.value.code is CloseReason.PROTOCOL_VIOLATION
    recovery.on_packet_sent(packet(0, 0.0))
    with pytest.raises(ProtocolViolation):
        recovery.on_ack_received(ack((5, 5), (0, 0)), 1.0)
    # Nothing changed.
    assert recovery.largest_acked is None
    assert recovery.bytes_in_flight == 1000
    assert recovery.deadline() == FIRST_PTO


def test_untracked_packet_numbers_may_be_acked() -> None:
    recovery = LossRecovery(CONFIG)
    recovery.on_packet_sent(packet(0, 0.0))
    recovery.on_packet_number_used(1)  # an ACK-only packet, not tracked
    outcome = recovery.on_ack_received(ack((0, 1)), 0.5)
    assert numbers(outcome.acked) == [0]
    assert not outcome.rtt_sampled  # the largest (1) was not newly acked and tracked
    assert recovery.largest_acked == 1
    with pytest.raises(ProtocolViolation):
        recovery.on_ack_received(ack((2, 2)), 0.5)


def test_ack_of_only_untracked_packets_acks_nothing() -> None:
    recovery = LossRecovery(CONFIG)
    recovery.on_packet_number_used(0)
    outcome = recovery.on_ack_received(ack((0, 0)), 0.5)
    assert (outcome.acked, outcome.lost, outcome.rtt_sampled) == ((), (), False)
    assert recovery.largest_acked == 0
    assert recovery.deadline() is None


def test_bytes_in_flight_bookkeeping() -> None:
    recovery = LossRecovery(CONFIG)
    recovery.on_packet_sent(packet(0, 0.0, size=1200))
    recovery.on_packet_sent(packet(1, 0.0, size=50, eliciting=False))  # not in flight
    recovery.on_packet_sent(packet(2, 0.0, size=1000))
    recovery.on_packet_sent(packet(3, 0.0, size=800))
    recovery.on_packet_sent(packet(4, 0.0, size=700))
    assert recovery.bytes_in_flight == 3700
    assert recovery.in_flight_packets() == 5
    assert recovery.can_send(12000 - 3700)
    assert not recovery.can_send(12000 - 3700 + 1)
    outcome = recovery.on_ack_received(ack((4, 4), (2, 2)), 0.25)
    assert numbers(outcome.acked) == [2, 4]
    assert numbers(outcome.lost) == [0, 1]
    assert recovery.bytes_in_flight == 800
    recovery.on_ack_received(ack((2, 4)), 0.5)
    assert recovery.bytes_in_flight == 0
    assert recovery.in_flight_packets() == 0
    assert recovery.deadline() is None


def test_duplicate_ack_changes_nothing() -> None:
    recovery = LossRecovery(CONFIG)
    recovery.on_packet_sent(packet(0, 0.0))
    recovery.on_packet_sent(packet(1, 0.0))
    recovery.on_ack_received(ack((0, 0)), 0.5)
    outcome = recovery.on_ack_received(ack((0, 0)), 0.75)
    assert (outcome.acked, outcome.lost, outcome.rtt_sampled) == ((), (), False)
    assert recovery.rtt.samples == 1


def test_rtt_sample_only_when_largest_is_newly_acked_and_eliciting() -> None:
    recovery = LossRecovery(CONFIG)
    recovery.on_packet_sent(packet(0, 0.0))
    recovery.on_packet_sent(packet(1, 0.0, eliciting=False))
    recovery.on_packet_sent(packet(2, 0.125))
    recovery.on_packet_sent(packet(3, 0.125))
    # The largest acknowledged (1) is not ack-eliciting: no sample.
    assert not recovery.on_ack_received(ack((0, 1)), 0.5).rtt_sampled
    assert recovery.rtt.samples == 0
    # The largest (3) is new and ack-eliciting: sample, with the ack delay honoured.
    outcome = recovery.on_ack_received(ack((3, 3), delay_us=62500), 0.875)
    assert outcome.rtt_sampled
    assert recovery.rtt.latest_rtt_s == 0.75
    # An ACK newly acknowledging only a lower packet takes no sample.
    assert not recovery.on_ack_received(ack((2, 3)), 1.0).rtt_sampled
    assert recovery.rtt.samples == 1


def test_ack_delay_is_applied_to_later_samples() -> None:
    recovery = LossRecovery(CONFIG)
    recovery.on_packet_sent(packet(0, 0.0))
    recovery.on_ack_received(ack((0, 0)), 0.25)
    recovery.on_packet_sent(packet(1, 1.0))
    recovery.on_ack_received(ack((1, 1), delay_us=125000), 1.5)  # capped at 1/16
    assert recovery.rtt.smoothed_rtt_s == 0.875 * 0.25 + 0.125 * (0.5 - 0.0625)


def test_lost_frames_are_handed_back() -> None:
    recovery = LossRecovery(CONFIG)
    data = DataFrame(0, 0, 3, 0, b"abc")
    window = WindowFrame(99)
    recovery.on_packet_sent(packet(0, 0.0, frames=(data, window)))
    for number in range(1, 4):
        recovery.on_packet_sent(packet(number, 0.0))
    outcome = recovery.on_ack_received(ack((3, 3)), 0.5)
    assert outcome.lost[0].frames == (data, window)


def test_oldest_unacked_skips_non_eliciting() -> None:
    recovery = LossRecovery(CONFIG)
    recovery.on_packet_sent(packet(0, 0.0, eliciting=False))
    recovery.on_packet_sent(packet(1, 0.0))
    recovery.on_packet_sent(packet(2, 0.0))
    recovery.on_packet_sent(packet(3, 0.0))
    assert numbers(recovery.oldest_unacked(2)) == [1, 2]
    assert numbers(recovery.oldest_unacked(9)) == [1, 2, 3]
    assert recovery.in_flight_packets() == 4  # still tracked


def test_only_non_eliciting_in_flight_has_no_pto() -> None:
    recovery = LossRecovery(CONFIG)
    recovery.on_packet_sent(packet(0, 0.0, eliciting=False))
    assert recovery.deadline() is None


def test_persistent_congestion_collapses_window() -> None:
    recovery = LossRecovery(CONFIG)
    recovery.on_packet_sent(packet(0, 0.0))
    recovery.on_ack_received(ack((0, 0)), 0.5)  # first sample: srtt 0.5, rttvar 0.25
    for number in range(1, 7):  # a blackout: packets 1..6 sent 1.0 .. 6.0, all lost
        recovery.on_packet_sent(packet(number, float(number)))
    recovery.on_packet_sent(packet(7, 6.5))
    outcome = recovery.on_ack_received(ack((7, 7)), 7.0)
    assert numbers(outcome.lost) == [1, 2, 3, 4, 5, 6]
    # duration = 3 * (0.5 + 4 * 0.1875 + 0.0625) = 3.9375 < 6.0 - 1.0
    assert recovery.congestion.congestion_window_bytes == 2400
    assert recovery.statistics().congestion_state == "slow-start"


def test_short_burst_of_loss_is_not_persistent_congestion() -> None:
    recovery = LossRecovery(CONFIG)
    recovery.on_packet_sent(packet(0, 0.0))
    recovery.on_ack_received(ack((0, 0)), 0.5)
    for number in range(1, 5):  # 1.0 .. 3.25: span 2.25 < 3.9375
        recovery.on_packet_sent(packet(number, 0.25 + 0.75 * number))
    recovery.on_packet_sent(packet(5, 3.5))
    recovery.on_ack_received(ack((5, 5)), 4.0)
    assert recovery.congestion.congestion_window_bytes == 6000
    assert recovery.statistics().congestion_state == "recovery"


def test_misuse_is_refused_without_change() -> None:
    recovery = LossRecovery(CONFIG)
    recovery.on_packet_sent(packet(5, 1.0))
    bad = [
        packet(5, 1.0),  # not above the last tracked number
        packet(6, 0.5),  # sent before the last tracked packet
        packet(-1, 1.0),
        SentPacket(7, 1.0, -5, True, True, ()),
        SentPacket(7, 1.0, 100, True, False, ()),  # ack-eliciting but not in flight
    ]
    for sent in bad:
        with pytest.raises(LocalProtocolError):
            recovery.on_packet_sent(sent)
    with pytest.raises(LocalProtocolError):
        recovery.on_packet_number_used(-1)
    with pytest.raises(LocalProtocolError):
        recovery.on_ack_received(ack((5, 5)), 0.5)  # time went backwards
    assert recovery.in_flight_packets() == 1
    assert recovery.bytes_in_flight == 1000


def test_huge_ack_range_over_small_table() -> None:
    recovery = LossRecovery(CONFIG)
    recovery.on_packet_number_used(1_000_000)
    recovery.on_packet_sent(packet(1_000_001, 0.0))
    recovery.on_packet_sent(packet(1_000_003, 0.0))
    outcome = recovery.on_ack_received(ack((0, 1_000_003)), 0.5)
    assert numbers(outcome.acked) == [1_000_001, 1_000_003]


def test_statistics_snapshot() -> None:
    recovery = LossRecovery(CONFIG)
    recovery.on_packet_sent(packet(0, 0.0))
    recovery.on_ack_received(ack((0, 0)), 0.25)
    recovery.on_packet_sent(packet(1, 1.0))
    stats = recovery.statistics()
    assert (stats.smoothed_rtt_s, stats.rttvar_s, stats.min_rtt_s) == (0.25, 0.125, 0.25)
    assert (stats.latest_rtt_s, stats.rtt_samples) == (0.25, 1)
    assert (stats.bytes_in_flight, stats.packets_in_flight) == (1000, 1)
    assert stats.congestion_window_bytes == 12000
    assert stats.congestion_state == "slow-start"


def test_timeline_with_peer_ack_tracker() -> None:
    """Sender and receiver components over a 0.25 s one-way path; packet 1 is dropped."""
    sender = LossRecovery(CONFIG)
    receiver = AckTracker(CONFIG)
    for number in range(4):
        sender.on_packet_sent(packet(number, 0.0))
    for number in (0, 2, 3):
        receiver.on_packet_received(number, True, 0.25)
    # Packet 2 arrived above a gap: the ACK is due at once.
    assert receiver.ack_deadline() == 0.25
    frame = receiver.build_ack(0.25)
    assert frame is not None
    assert frame.ranges == ((2, 3), (0, 0))
    outcome = sender.on_ack_received(frame, 0.5)
    assert numbers(outcome.acked) == [0, 2, 3]
    assert outcome.lost == ()  # 3 < 1 + packet_threshold
    assert sender.deadline() == 0.5625  # time threshold: 0.0 + 9/8 * 0.5
    outcome_timeout = sender.on_timeout(0.5625)
    assert numbers(outcome_timeout.lost) == [1]
    assert sender.deadline() is None
    # The retransmission goes out under a new packet number and is acknowledged.
    sender.on_packet_sent(packet(4, 0.5625, frames=outcome_timeout.lost[0].frames))
    receiver.on_packet_received(4, True, 0.8125)
    assert receiver.ack_deadline() == 0.8125 + 0.0625
    frame = receiver.build_ack(0.875)
    assert frame is not None
    assert frame.ack_delay_us == 62500
    outcome = sender.on_ack_received(frame, 1.125)
    assert numbers(outcome.acked) == [4]
    assert sender.rtt.latest_rtt_s == 0.5625
    assert sender.bytes_in_flight == 0


@pytest.mark.parametrize("step", [0.1, 0.3, 0.7, 1 / 3, 0.0123])
def test_loss_timer_firing_at_its_deadline_always_declares_loss(step: float) -> None:
    """Float rounding must not leave the loss time at ``now`` with nothing lost."""
    recovery = LossRecovery(SessionConfig())
    for index in range(40):
        base = 1000 + index * 4
        start = 0.5059534326898887 + index * step
        recovery.on_packet_sent(packet(base, start))
        recovery.on_packet_sent(packet(base + 1, start + step / 100))
        recovery.on_ack_received(ack((base + 1, base + 1)), start + step / 100 + step)
        deadline = recovery.deadline()
        assert deadline is not None
        outcome = recovery.on_timeout(deadline)
        assert numbers(outcome.lost) == [base]
        assert recovery.deadline() is None
        recovery.on_packet_number_used(base + 3)


def test_peer_reappearing_resets_backoff_and_probes_only_overdue_data() -> None:
    recovery = LossRecovery(CONFIG)
    assert recovery.on_peer_reappeared(0.0).overdue is None  # nothing in flight
    recovery.on_packet_sent(packet(0, 0.0))
    recovery.on_packet_sent(packet(1, 0.5))
    recovery.on_timeout(FIRST_PTO + 0.5)
    assert recovery.pto_count == 1
    fresh = recovery.on_peer_reappeared(FIRST_PTO - 0.25)  # the oldest is not overdue yet
    assert (fresh.probes, fresh.overdue) == (0, None)
    assert recovery.pto_count == 0
    recovery.on_timeout(FIRST_PTO + 0.5)
    outcome = recovery.on_peer_reappeared(FIRST_PTO + 1.0)
    assert outcome.probes == 2
    assert outcome.overdue is not None
    assert outcome.overdue.packet_number == 0
    assert recovery.pto_count == 0
    assert recovery.deadline() == 0.5 + FIRST_PTO  # back to the unbacked-off PTO
