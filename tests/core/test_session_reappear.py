"""A peer that re-appears: the probe backoff is reset and overdue data goes out at once.

docs/PROTOCOL.md 7.8: when a packet arrives after a silence longer than the PTO, or a
path migration is validated, the session resets ``pto_count`` and, if ack-eliciting data
has been outstanding for a PTO or more, probes at once. This is what repairs a push that
met a dead NAT mapping about one RTT after the daemon's next heartbeat, instead of after
a PTO backed off up to 64 times. Also here: ``set_liveness`` (with ``Endpoint.touch``)
and ``silent_for_s``.

The quiet pair (``pairs.TEST_CONFIG``): the initiator last sent at 1/16 s and its next
heartbeat leaves at 1/16 + 8 s; one-way delay 1/32 s.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.core.pairs import (
    INITIATOR_ADDRESS,
    REBOUND_ADDRESS,
    RESPONDER_ADDRESS,
    TEST_CONFIG,
    Datagram,
    Pair,
    drop_where,
    established_pair,
    make_pair,
)
from udpim.core.events import MessageReceived, PathChanged, PeerUnreachable
from udpim.core.state import SessionState

CFG = TEST_CONFIG
HEARTBEAT_AT = 1 / 16 + CFG.heartbeat_interval_s
ONE_WAY = 1 / 32


def quiet_pair() -> Pair:
    pair = established_pair()
    pair.wire.run(1.0)
    return pair


def received_at(pair: Pair) -> float:
    return pair.wire.run_until(lambda: bool(pair.initiator.of(MessageReceived)), 60.0)


def test_push_into_a_dead_mapping_is_repaired_one_rtt_after_the_next_heartbeat() -> None:
    pair = quiet_pair()
    wire, server = pair.wire, pair.server
    wire.hook = drop_where(lambda d: d.source == RESPONDER_ADDRESS)  # the mapping died
    pair.responder.endpoint.send_message(server, b"push", wire.now)
    wire.run(HEARTBEAT_AT - 0.25)
    backed_off = server.statistics()
    assert backed_off.probes_sent >= 3
    pto_deadline = server.get_timer()
    assert pto_deadline is not None
    assert pto_deadline > HEARTBEAT_AT + 4 * ONE_WAY  # the backed-off PTO is far off
    wire.hook = None  # the daemon's heartbeat makes a new mapping
    arrived = received_at(pair)
    assert arrived == HEARTBEAT_AT + 2 * ONE_WAY  # heartbeat in, probe out: one RTT
    assert pair.initiator.of(MessageReceived) == [MessageReceived(0, b"push")]
    stats = server.statistics()
    assert stats.probes_sent == backed_off.probes_sent + 2  # as a PTO expiry would
    assert stats.reachability_gaps == 1
    assert stats.reachability_gap_total_s == HEARTBEAT_AT + ONE_WAY - 1.0
    assert stats.reachability_gap_max_s == stats.reachability_gap_total_s


def test_one_overdue_packet_counts_one_gap_however_often_the_peer_reappears() -> None:
    pair = quiet_pair()
    wire, server = pair.wire, pair.server
    wire.hook = drop_where(lambda d: d.source == RESPONDER_ADDRESS)  # inbound stays dead
    pair.responder.endpoint.send_message(server, b"push", wire.now)
    wire.run(HEARTBEAT_AT + 2 * CFG.heartbeat_interval_s + 1.0)  # three heartbeats heard
    assert server.statistics().reachability_gaps == 1
    wire.hook = None
    arrived = received_at(pair)
    assert arrived <= HEARTBEAT_AT + 3 * CFG.heartbeat_interval_s + 2 * ONE_WAY
    stats = server.statistics()
    assert stats.reachability_gaps == 1
    assert stats.reachability_gap_total_s == HEARTBEAT_AT + ONE_WAY - 1.0


def test_data_sent_just_before_the_peer_reappears_is_not_probed_twice() -> None:
    pair = quiet_pair()
    wire, server = pair.wire, pair.server
    wire.run(HEARTBEAT_AT)  # the heartbeat is on its way, after 8 s of silence
    pair.responder.endpoint.send_message(server, b"fresh", wire.now)
    wire.run(HEARTBEAT_AT + 1.0)
    assert pair.initiator.of(MessageReceived) == [MessageReceived(0, b"fresh")]
    stats = server.statistics()
    assert stats.probes_sent == 0
    assert stats.reachability_gaps == 0


def test_rebinding_repairs_overdue_data_once_the_new_path_validates() -> None:
    pair = quiet_pair()
    wire, server = pair.wire, pair.server
    wire.route(REBOUND_ADDRESS, pair.initiator)
    old_mapping_dead = True

    def nat(datagram: Datagram) -> list[Datagram]:
        if datagram.destination == INITIATOR_ADDRESS and old_mapping_dead:
            return []
        if datagram.source == INITIATOR_ADDRESS:
            return [replace(datagram, source=REBOUND_ADDRESS)]
        return [datagram]

    wire.hook = nat
    pair.responder.endpoint.send_message(server, b"push", wire.now)
    arrived = received_at(pair)
    (changed,) = pair.responder.of(PathChanged)
    assert changed == PathChanged(INITIATOR_ADDRESS, REBOUND_ADDRESS)
    # Within a few initiator probes of the heartbeat (the new path's budget must grow
    # before the challenge fits), far sooner than the backed-off PTO.
    assert HEARTBEAT_AT < arrived < HEARTBEAT_AT + 2.0
    stats = server.statistics()
    assert stats.reachability_gaps == 1  # counted once: at the heartbeat, not again
    assert stats.reachability_gap_total_s == HEARTBEAT_AT + ONE_WAY - 1.0
    assert stats.path_migrations == 1


def test_set_liveness_moves_the_deadlines_through_the_endpoint() -> None:
    pair = quiet_pair()
    wire, server = pair.wire, pair.server
    server.set_liveness(64.0, 256.0)
    pair.responder.endpoint.touch(server)  # the wire checks the endpoint's timer agrees
    stats = server.statistics()
    assert (stats.dead_peer_timeout_s, stats.idle_timeout_s) == (64.0, 256.0)
    assert stats.heartbeat_interval_s == CFG.heartbeat_interval_s
    with pytest.raises(ValueError, match="positive"):
        server.set_liveness(0.0, 10.0)
    assert server.statistics().dead_peer_timeout_s == 64.0
    wire.hook = drop_where(lambda d: d.source == INITIATOR_ADDRESS)
    last_heard = 3 / 32
    wire.run(last_heard + 64.0 - 1 / 1024)
    assert server.state is SessionState.ESTABLISHED
    assert server.silent_for_s(wire.now) == wire.now - last_heard
    wire.run(last_heard + 64.0)
    assert server.state is SessionState.UNREACHABLE
    assert pair.responder.of(PeerUnreachable) == [PeerUnreachable(64.0)]
    wire.run(last_heard + 256.0)
    assert server.state is SessionState.CLOSED


def test_touching_a_session_of_another_endpoint_does_nothing() -> None:
    pair = quiet_pair()
    other = make_pair(seed=2)
    stranger = other.connect()
    pair.initiator.endpoint.touch(stranger)
    pair.wire.run(2.0)
    assert pair.client.state is SessionState.ESTABLISHED
