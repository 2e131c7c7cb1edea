"""AckTracker: ranges, delayed-ACK deadlines scripted by hand, ACK frames."""

from __future__ import annotations

from dataclasses import replace

import pytest

from udpim.core.ackranges import (
    ACK_SPAN_PACKETS,
    MAX_ACK_RANGES,
    MAX_TRACKED_RANGES,
    AckTracker,
)
from udpim.core.config import SessionConfig
from udpim.core.errors import LocalProtocolError
from udpim.core.framecodec import frame_size

CONFIG = replace(SessionConfig(), max_ack_delay_s=0.0625, ack_eliciting_threshold=2)


def tracker(ack_eliciting_threshold: int = 2) -> AckTracker:
    return AckTracker(replace(CONFIG, ack_eliciting_threshold=ack_eliciting_threshold))


def test_fresh_tracker_has_nothing_to_ack() -> None:
    acks = tracker()
    assert acks.ack_deadline() is None
    assert acks.build_ack(0.0) is None
    assert acks.largest_received is None
    assert acks.ranges == ()
    assert acks.max_ack_delay_s == 0.0625


def test_in_order_packets_form_one_range() -> None:
    acks = tracker()
    for number in range(5):
        acks.on_packet_received(number, True, 1.0)
    frame = acks.build_ack(1.0)
    assert frame is not None
    assert frame.ranges == ((0, 4),)
    assert frame.largest == 4
    assert acks.largest_received == 4


def test_first_ack_eliciting_packet_arms_max_ack_delay() -> None:
    acks = tracker()
    acks.on_packet_received(0, True, 1.0)
    assert acks.ack_deadline() == 1.0625


def test_at_once_makes_the_ack_of_a_lone_ping_due_now() -> None:
    acks = tracker()
    acks.on_packet_received(0, True, 1.0, at_once=True)  # a heartbeat: PING alone
    assert acks.ack_deadline() == 1.0


def test_threshold_th_ack_eliciting_packet_makes_ack_due_now() -> None:
    acks = tracker()
    acks.on_packet_received(0, True, 1.0)
    acks.on_packet_received(1, True, 1.03125)
    assert acks.ack_deadline() == 1.03125


def test_threshold_of_one_acks_every_packet_at_once() -> None:
    acks = tracker(ack_eliciting_threshold=1)
    acks.on_packet_received(0, True, 2.0)
    assert acks.ack_deadline() == 2.0


def test_non_ack_eliciting_alone_never_makes_ack_due() -> None:
    acks = tracker()
    for number in range(5):
        acks.on_packet_received(number, False, 1.0)
    assert acks.ack_deadline() is None
    acks.on_packet_received(7, False, 1.5)  # even out of order
    assert acks.ack_deadline() is None
    # ... but it is acknowledged by the next ACK that goes out.
    frame = acks.build_ack(2.0)
    assert frame is not None
    assert frame.ranges == ((7, 7), (0, 4))


def test_non_eliciting_packets_do_not_count_towards_threshold() -> None:
    acks = tracker()
    acks.on_packet_received(0, True, 1.0)
    acks.on_packet_received(1, False, 1.015625)
    assert acks.ack_deadline() == 1.0625


def test_build_ack_clears_due_state() -> None:
    acks = tracker()
    acks.on_packet_received(0, True, 1.0)
    assert acks.build_ack(1.0625) is not None
    assert acks.ack_deadline() is None
    assert acks.build_ack(1.125) is None  # nothing new since
    acks.on_packet_received(1, True, 1.25)
    assert acks.ack_deadline() == 1.3125  # the threshold count restarted


def test_gap_below_makes_ack_due_immediately() -> None:
    acks = tracker()
    acks.on_packet_received(0, True, 1.0)
    acks.build_ack(1.0)
    acks.on_packet_received(2, True, 1.25)  # 1 is missing
    assert acks.ack_deadline() == 1.25


def test_first_packet_with_gap_below_is_acked_immediately() -> None:
    acks = tracker()
    acks.on_packet_received(3, True, 0.5)
    assert acks.ack_deadline() == 0.5


def test_filling_a_gap_makes_ack_due_immediately() -> None:
    acks = tracker()
    acks.on_packet_received(0, True, 1.0)
    acks.on_packet_received(2, True, 1.0)
    frame = acks.build_ack(1.0)
    assert frame is not None
    assert frame.ranges == ((2, 2), (0, 0))
    acks.on_packet_received(1, True, 1.5)
    assert acks.ack_deadline() == 1.5
    frame = acks.build_ack(1.5)
    assert frame is not None
    assert frame.ranges == ((0, 2),)


def test_earlier_deadline_is_kept() -> None:
    acks = tracker()
    acks.on_packet_received(0, True, 1.0)
    acks.on_packet_received(2, False, 1.0)
    acks.on_packet_received(4, True, 1.5)  # out of order, but 1.0625 is earlier
    assert acks.ack_deadline() == 1.0625


def test_duplicates_are_ignored() -> None:
    acks = tracker()
    acks.on_packet_received(0, True, 1.0)
    acks.on_packet_received(1, True, 1.0)
    acks.build_ack(1.0)
    acks.on_packet_received(1, True, 2.0)
    acks.on_packet_received(0, True, 2.0)
    assert acks.ack_deadline() is None
    assert acks.build_ack(2.0) is None
    assert acks.ranges == ((0, 1),)


def test_ranges_merge_in_any_arrival_order() -> None:
    acks = tracker()
    for number in (0, 2, 4, 6, 1, 5, 3):
        acks.on_packet_received(number, True, 1.0)
    assert acks.ranges == ((0, 6),)
    acks.on_packet_received(9, True, 1.0)
    acks.on_packet_received(8, True, 1.0)  # joins the range above it
    assert list(acks.ranges) == [(8, 9), (0, 6)]


def test_ranges_are_capped_dropping_the_oldest() -> None:
    acks = tracker()
    count = MAX_TRACKED_RANGES + 7
    for index in range(count):
        acks.on_packet_received(2 * index, True, 1.0)
    ranges = acks.ranges
    assert len(ranges) == MAX_TRACKED_RANGES
    assert ranges[0] == (2 * (count - 1), 2 * (count - 1))
    assert ranges[-1] == (14, 14)
    acks.build_ack(1.0)
    acks.on_packet_received(1, True, 2.0)  # below the oldest kept range: forgotten
    acks.on_packet_received(0, True, 2.0)
    assert acks.ack_deadline() is None
    assert acks.ranges == ranges


def test_ack_frame_carries_at_most_32_newest_ranges_highest_first() -> None:
    acks = tracker()
    for index in range(41):
        acks.on_packet_received(2 * index, True, 1.0)
    frame = acks.build_ack(1.0)
    assert frame is not None
    assert len(frame.ranges) == MAX_ACK_RANGES
    assert frame.ranges[0] == (80, 80)
    assert frame.ranges[-1] == (18, 18)
    assert all(a[0] > b[1] + 1 for a, b in zip(frame.ranges, frame.ranges[1:], strict=False))


def test_ack_frame_leaves_out_ranges_far_below_largest() -> None:
    acks = tracker()
    for index in range(40):
        acks.on_packet_received(3 * index, True, 1.0)
        acks.on_packet_received(3 * index + 1, True, 1.0)
    frame = acks.build_ack(1.0)
    assert frame is not None
    assert frame.ranges[0] == (117, 118)
    assert frame.ranges[-1] == (54, 55)  # ends within ACK_SPAN_PACKETS of 118
    assert 118 - 55 <= ACK_SPAN_PACKETS < 118 - 52
    assert len(frame.ranges) == 22
    assert len(acks.ranges) == 40  # still remembered (duplicates, order detection)


def test_one_long_range_is_always_reported() -> None:
    acks = tracker()
    for number in range(500):
        acks.on_packet_received(number, True, 1.0)
    frame = acks.build_ack(1.0)
    assert frame is not None
    assert frame.ranges == ((0, 499),)


def test_ack_delay_is_measured_from_receipt_of_largest() -> None:
    acks = tracker()
    acks.on_packet_received(0, True, 1.0)
    frame = acks.build_ack(1.015625)
    assert frame is not None
    assert frame.ack_delay_us == 15625
    acks.on_packet_received(5, True, 2.0)
    acks.on_packet_received(3, True, 2.5)  # lower: does not move the reference time
    frame = acks.build_ack(3.0)
    assert frame is not None
    assert frame.ack_delay_us == 1_000_000


def test_ack_delay_never_negative() -> None:
    acks = tracker()
    acks.on_packet_received(0, True, 1.0)
    frame = acks.build_ack(0.5)
    assert frame is not None
    assert frame.ack_delay_us == 0


def test_ack_of_ack_prunes_acknowledged_ranges() -> None:
    acks = tracker()
    for number in (0, 1, 2, 5, 6, 10, 11, 12):
        acks.on_packet_received(number, True, 1.0)
    acks.build_ack(1.0)
    acks.on_ack_of_ack(11)
    assert acks.ranges == ((12, 12),)
    acks.on_packet_received(8, True, 2.0)  # at or below the pruned point: ignored
    assert acks.ranges == ((12, 12),)
    assert acks.ack_deadline() is None
    acks.on_packet_received(13, True, 2.0)
    frame = acks.build_ack(2.0)
    assert frame is not None
    assert frame.ranges == ((12, 13),)
    acks.on_ack_of_ack(5)  # older than what was pruned already: nothing happens
    assert acks.ranges == ((12, 13),)
    acks.on_ack_of_ack(13)
    assert len(acks.ranges) == 0
    assert acks.largest_received == 13


def test_ack_of_ack_of_unreceived_packet_is_misuse() -> None:
    acks = tracker()
    acks.on_packet_received(3, True, 1.0)
    with pytest.raises(LocalProtocolError):
        acks.on_ack_of_ack(4)
    assert acks.ranges == ((3, 3),)


def test_negative_packet_number_is_misuse() -> None:
    acks = tracker()
    with pytest.raises(LocalProtocolError):
        acks.on_packet_received(-1, True, 1.0)
    assert acks.ranges == ()


@pytest.mark.parametrize("ranges", [1, 3, MAX_ACK_RANGES])
def test_an_ack_that_does_not_fit_max_bytes_is_not_built_and_stays_due(ranges: int) -> None:
    # Every other packet missing: ``ranges`` ranges in the frame.
    def filled() -> AckTracker:
        acks = tracker()
        for number in range(0, 2 * ranges, 2):
            acks.on_packet_received(number, True, 1.0)
        return acks

    whole = filled().build_ack(1.0)
    assert whole is not None
    size = frame_size(whole)
    acks = filled()
    assert acks.build_ack(1.0, max_bytes=size - 1) is None
    assert acks.ack_deadline() is not None  # still owed
    frame = acks.build_ack(1.0, max_bytes=size)  # an exact fit is built
    assert frame is not None
    assert len(frame.ranges) == ranges
    assert acks.ack_deadline() is None
