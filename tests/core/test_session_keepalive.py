"""Heartbeats, dead-peer detection and the idle close of a live session pair.

Numbers from ``pairs.TEST_CONFIG``: heartbeat every 8 s of send silence, dead peer after
32 s and idle close after 128 s of receive silence. In the quiet pair the initiator last
sent at 1/16 s (the confirming PING) and last heard at 1/8 s (its ACK, sent without
delay: a PING alone is acknowledged at once); the responder last heard at 3/32 s.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.core.pairs import (
    INITIATOR_ADDRESS,
    TEST_CONFIG,
    Pair,
    drop_where,
    established_pair,
)
from udpim.core.events import PeerReachable, PeerUnreachable, SessionClosed
from udpim.core.frames import CloseReason
from udpim.core.state import SessionState

CFG = TEST_CONFIG
CLIENT_SENT = 1 / 16
CLIENT_HEARD = 1 / 8


def quiet_pair() -> Pair:
    pair = established_pair()
    pair.wire.run(1.0)
    return pair


def sent_by(pair: Pair, initiator: bool, since: int = 0) -> list[float]:
    return [
        d.sent_at for d in pair.wire.log[since:] if (d.source == INITIATOR_ADDRESS) == initiator
    ]


def test_heartbeat_after_exactly_the_interval_of_send_silence() -> None:
    pair = quiet_pair()
    client = pair.client
    mark = len(pair.wire.log)
    first = CLIENT_SENT + CFG.heartbeat_interval_s
    assert client.get_timer() == first
    pair.wire.run(first - 1 / 1024)
    assert sent_by(pair, True, mark) == []
    pair.wire.run(3 * CFG.heartbeat_interval_s + 1.0)
    assert sent_by(pair, True, mark) == [first + n * CFG.heartbeat_interval_s for n in range(3)]
    stats = client.statistics()
    assert stats.heartbeats_sent == 3
    assert stats.state is SessionState.ESTABLISHED
    # Each heartbeat is acknowledged at once (a PING alone is never delayed: a hub
    # would pay a timer per heartbeat), which keeps the peer alive.
    assert sent_by(pair, False, mark) == [t + pair.wire.delay_s for t in sent_by(pair, True, mark)]


def test_heartbeats_are_suppressed_while_the_initiator_sends() -> None:
    pair = quiet_pair()
    client = pair.client
    for n in range(1, 11):  # a message every 4 s, half the interval
        pair.wire.run(4.0 * n)
        pair.initiator.endpoint.send_message(client, b"tick", pair.wire.now)
    pair.wire.run(40.0 + CFG.heartbeat_interval_s - 0.01)
    assert client.statistics().heartbeats_sent == 0
    pair.wire.run(40.0 + CFG.heartbeat_interval_s)
    assert client.statistics().heartbeats_sent == 1


def test_acks_of_the_peers_traffic_also_suppress_heartbeats() -> None:
    pair = quiet_pair()
    for n in range(1, 11):  # the responder talks; the initiator only acknowledges
        pair.wire.run(4.0 * n)
        pair.responder.endpoint.send_message(pair.server, b"news", pair.wire.now)
    pair.wire.run(45.0)
    assert pair.client.statistics().heartbeats_sent == 0


def test_responder_sends_no_heartbeats() -> None:
    pair = quiet_pair()
    server = pair.server
    pair.wire.hook = drop_where(lambda d: d.source == INITIATOR_ADDRESS)
    mark = len(pair.wire.log)
    pair.wire.run(CFG.idle_timeout_s - 1.0)
    assert server.state is SessionState.UNREACHABLE
    assert server.statistics().heartbeats_sent == 0
    pair.wire.run(CFG.idle_timeout_s + 1.0)
    assert server.state is SessionState.CLOSED
    assert sent_by(pair, False, mark) == []  # silence in, silence out


def test_heartbeat_interval_can_change_at_run_time() -> None:
    pair = quiet_pair()
    client = pair.client
    client.set_heartbeat_interval(2.0)
    assert client.get_timer() == CLIENT_SENT + 2.0
    with pytest.raises(ValueError, match="positive"):
        client.set_heartbeat_interval(0.0)
    assert client.get_timer() == CLIENT_SENT + 2.0


def test_dead_peer_declared_at_the_timeout_and_reachable_again() -> None:
    pair = quiet_pair()
    client = pair.client
    pair.wire.hook = drop_where(lambda d: d.source != INITIATOR_ADDRESS)
    dead_at = CLIENT_HEARD + CFG.dead_peer_timeout_s
    pair.wire.run(dead_at - 1 / 1024)
    assert client.state is SessionState.ESTABLISHED
    pair.wire.run(dead_at)
    assert client.state is SessionState.UNREACHABLE
    assert pair.initiator.of(PeerUnreachable) == [PeerUnreachable(CFG.dead_peer_timeout_s)]
    # Probes and heartbeats go on while unreachable; the first one answered brings the
    # peer back.
    before = client.statistics().packets_sent
    pair.wire.run(dead_at + 20.0)
    assert client.statistics().packets_sent > before
    pair.wire.hook = None
    back = pair.wire.run_until(lambda: client.state is SessionState.ESTABLISHED, 200.0)
    assert pair.initiator.of(PeerReachable) == [PeerReachable()]
    assert pair.initiator.event_types()[-2:] == ["PeerUnreachable", "PeerReachable"]
    assert client.get_timer() is not None
    assert back < dead_at + 20.0 + CFG.heartbeat_interval_s + 1.0


def test_responder_also_declares_a_silent_initiator_unreachable() -> None:
    pair = quiet_pair()
    server = pair.server
    pair.wire.hook = drop_where(lambda d: d.source == INITIATOR_ADDRESS)
    pair.wire.run(3 / 32 + CFG.dead_peer_timeout_s)
    assert server.state is SessionState.UNREACHABLE
    assert pair.responder.of(PeerUnreachable) == [PeerUnreachable(CFG.dead_peer_timeout_s)]


def test_idle_close_at_the_idle_timeout() -> None:
    pair = quiet_pair()
    client = pair.client
    pair.wire.hook = drop_where(lambda d: d.source != INITIATOR_ADDRESS)
    idle_at = CLIENT_HEARD + CFG.idle_timeout_s
    pair.wire.run(idle_at - 1 / 1024)
    assert client.state is SessionState.UNREACHABLE
    mark = len(pair.wire.log)
    pair.wire.run(idle_at)
    assert client.state is SessionState.CLOSED
    assert pair.initiator.of(SessionClosed) == [
        SessionClosed(CloseReason.IDLE_TIMEOUT, "", by_peer=False)
    ]
    assert sent_by(pair, True, mark) == []  # nothing to say to a silent peer
    assert len(pair.initiator.endpoint) == 0


def test_forged_traffic_keeps_nothing_alive() -> None:
    pair = quiet_pair()
    client = pair.client
    pair.wire.hook = drop_where(lambda d: d.source != INITIATOR_ADDRESS)
    real = next(d.data for d in pair.wire.log if d.source != INITIATOR_ADDRESS and d.index > 1)
    for n in range(40):  # a corrupted copy of a real packet every 4 s
        pair.wire.run(4.0 * n + 2.0)
        pair.wire.inject(
            real[:-1] + bytes([real[-1] ^ 1]), pair.responder.address, pair.initiator.address
        )
    assert client.state is SessionState.CLOSED
    assert pair.initiator.of(SessionClosed)[0].reason is CloseReason.IDLE_TIMEOUT


def test_dead_peer_timeout_longer_than_idle_goes_straight_to_close() -> None:
    config = replace(CFG, dead_peer_timeout_s=2 * CFG.idle_timeout_s)
    pair = established_pair(config)
    pair.wire.hook = drop_where(lambda d: d.source != INITIATOR_ADDRESS)
    pair.wire.run(200.0)
    assert pair.initiator.event_types() == ["SessionEstablished", "SessionClosed"]
