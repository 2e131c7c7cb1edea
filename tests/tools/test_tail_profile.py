"""The latency benchmark's tail profile: how each message got to the server."""

from __future__ import annotations

import pytest

from tools.benchmarks.packet_log import LoggedPacket, PacketLog
from tools.benchmarks.tail_profile import profile_tail, timelines
from udpim.core.frames import DataFrame


def _packet(number: int, sent_at: float, arrived_at: float | None, message: int) -> LoggedPacket:
    data = DataFrame(message, message * 200, 200, 0, bytes(200))
    return LoggedPacket(sent_at, arrived_at, number, 240, (data,))


# Four messages, queued at 0, 10, 20, 30 ms; one way 25 ms.
QUEUED = [0.0, 0.010, 0.020, 0.030]
LOG = PacketLog(
    up=(
        _packet(0, 0.000, 0.025, 0),  # arrived at once
        _packet(1, 0.010, None, 1),  # lost ...
        _packet(2, 0.020, None, 2),  # lost ...
        _packet(3, 0.030, None, 3),  # lost ...
        _packet(4, 0.070, 0.095, 1),  # ... 1 is retransmitted and arrives
        _packet(5, 0.075, 0.100, 2),  # ... 2 too, after a repair rebuilt it (delivered at 50)
    ),  # ... and 3 is rebuilt, never sent again
    down=(),
    undecrypted=0,
)
DELIVERED = {0: 0.026, 1: 0.096, 2: 0.050, 3: 0.060}


def test_a_message_delivered_before_any_copy_arrived_was_rebuilt() -> None:
    stories = timelines(LOG, QUEUED, DELIVERED)
    assert [story.rebuilt for story in stories] == [False, False, True, True]
    assert [story.arrival for story in stories] == [0.025, 0.095, 0.050, 0.060]
    parts = stories[2].parts()
    assert parts is not None
    assert parts[1] == pytest.approx(0.030)  # network: first send to the rebuild
    assert parts[2] == 0.0  # no HOL wait is counted for a rebuilt message


def test_the_profile_counts_rebuilt_messages_apart_and_their_later_copies_as_spurious() -> None:
    profile = profile_tail(LOG, QUEUED, DELIVERED)
    assert profile.attempts == {1: 1, 2: 1}
    assert profile.rebuilt == 2
    assert profile.latency_rebuilt.max == pytest.approx(0.030)
    assert profile.spurious_copies == 1  # message 2's copy, sent after its rebuild
    assert profile.up_lost == 3
    assert profile.p99.rebuilt + sum(profile.p99.attempts.values()) == profile.p99.messages
