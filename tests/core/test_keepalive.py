"""keepalive.py: the heartbeat, dead-peer and idle deadlines on their own."""

from __future__ import annotations

import pytest

from tests.core.pairs import TEST_CONFIG
from udpim.core.keepalive import Keepalive

CFG = TEST_CONFIG  # heartbeat 8 s, dead peer 32 s, idle 128 s


def test_deadlines_count_from_creation() -> None:
    keepalive = Keepalive(CFG, 10.0, heartbeats=True)
    assert keepalive.heartbeat_deadline() == 18.0
    assert keepalive.dead_peer_deadline() == 42.0
    assert keepalive.idle_deadline() == 138.0
    assert keepalive.silent_for_s(12.5) == 2.5
    assert keepalive.heartbeats_sent == 0


def test_any_send_moves_the_heartbeat_only() -> None:
    keepalive = Keepalive(CFG, 0.0, heartbeats=True)
    keepalive.on_sent(5.0)
    assert keepalive.heartbeat_deadline() == 13.0
    assert keepalive.dead_peer_deadline() == 32.0
    keepalive.on_heartbeat_sent(13.0)
    assert keepalive.heartbeats_sent == 1
    assert keepalive.heartbeat_deadline() == 21.0


def test_authenticated_input_moves_liveness_only() -> None:
    keepalive = Keepalive(CFG, 0.0, heartbeats=True)
    keepalive.on_authenticated(7.0)
    assert keepalive.dead_peer_deadline() == 39.0
    assert keepalive.idle_deadline() == 135.0
    assert keepalive.heartbeat_deadline() == 8.0
    assert keepalive.silent_for_s(9.0) == 2.0


def test_a_side_without_heartbeats_has_no_heartbeat_deadline() -> None:
    keepalive = Keepalive(CFG, 0.0, heartbeats=False)
    keepalive.on_sent(1.0)
    assert keepalive.heartbeat_deadline() is None
    assert keepalive.dead_peer_deadline() == 32.0


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan")])
def test_interval_must_be_positive(bad: float) -> None:
    keepalive = Keepalive(CFG, 0.0, heartbeats=True)
    with pytest.raises(ValueError, match="positive"):
        keepalive.set_heartbeat_interval(bad)
    assert keepalive.heartbeat_deadline() == 8.0
    keepalive.set_heartbeat_interval(2.5)
    assert keepalive.heartbeat_deadline() == 2.5


def test_liveness_can_change_at_run_time() -> None:
    keepalive = Keepalive(CFG, 0.0, heartbeats=True)
    keepalive.on_authenticated(4.0)
    keepalive.set_liveness(70.0, 300.0)
    assert keepalive.dead_peer_deadline() == 74.0
    assert keepalive.idle_deadline() == 304.0
    assert keepalive.heartbeat_deadline() == 8.0


@pytest.mark.parametrize(("dead", "idle"), [(0.0, 10.0), (10.0, -1.0), (float("nan"), 10.0)])
def test_liveness_must_be_positive_and_stays_unchanged(dead: float, idle: float) -> None:
    keepalive = Keepalive(CFG, 0.0, heartbeats=True)
    with pytest.raises(ValueError, match="positive"):
        keepalive.set_liveness(dead, idle)
    assert keepalive.dead_peer_deadline() == 32.0
    assert keepalive.idle_deadline() == 128.0
