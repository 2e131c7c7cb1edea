"""Handshakes between two Endpoints over the pure wire: success, loss, replay, cookies.

Timers come from ``pairs.TEST_CONFIG``: first retry after 0.5 s, doubling to a 4 s
ceiling, giving up after 16 s. The one-way delay is 1/32 s unless a test says otherwise.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from tests.core.pairs import (
    INITIATOR_ADDRESS,
    REBOUND_ADDRESS,
    RESPONDER_ADDRESS,
    TEST_CONFIG,
    TIMESTAMP_NS,
    Datagram,
    drop_where,
    make_pair,
    seeded_rng,
)
from udpim.core.config import CookieMode, EndpointConfig
from udpim.core.crypto import StaticKey
from udpim.core.endpoint import Endpoint
from udpim.core.events import MessageReceived, SessionClosed, SessionEstablished
from udpim.core.frames import CloseReason
from udpim.core.session import Role, Session
from udpim.core.state import SessionState
from udpim.core.wire import PacketType

CFG = TEST_CONFIG
ALWAYS = EndpointConfig(session=CFG, cookie_mode=CookieMode.ALWAYS)


def kinds(datagrams: list[Datagram]) -> list[PacketType | None]:
    return [d.kind for d in datagrams]


def initiation_times(log: list[Datagram]) -> list[float]:
    return [d.sent_at for d in log if d.kind is PacketType.INITIATION]


def test_handshake_establishes_both_sides_with_the_right_keys() -> None:
    pair = make_pair()
    client = pair.connect()
    pair.wire.run(1.0)
    assert client.state is SessionState.ESTABLISHED
    assert client.role is Role.INITIATOR
    server = pair.server
    assert server.role is Role.RESPONDER
    assert server.state is SessionState.ESTABLISHED
    assert pair.initiator.of(SessionEstablished) == [SessionEstablished(pair.responder_key.public)]
    assert pair.responder.of(SessionEstablished) == [SessionEstablished(pair.initiator_key.public)]
    assert client.peer_public == pair.responder_key.public
    assert server.peer_public == pair.initiator_key.public
    # INITIATION, RESPONSE, then the initiator's confirming DATA (a PING) and its ACK.
    assert kinds(pair.wire.log[:3]) == [PacketType.INITIATION, PacketType.RESPONSE, PacketType.DATA]
    assert pair.responder.endpoint.statistics().handshakes_accepted == 1


def test_responder_is_established_only_after_the_initiators_first_data() -> None:
    pair = make_pair()
    pair.connect()
    got_response = lambda: bool(pair.initiator.received)  # noqa: E731
    when = pair.wire.run_until(got_response, 1.0)
    assert when == 2 * pair.wire.delay_s
    assert pair.client.state is SessionState.CONFIRMING
    assert pair.server.state is SessionState.CONFIRMING
    assert pair.responder.events == []
    pair.wire.run(when + pair.wire.delay_s - 0.001)
    assert pair.responder.events == []
    pair.wire.run(when + pair.wire.delay_s)
    assert pair.responder.event_types() == ["SessionEstablished"]


def test_responder_holds_its_data_until_confirmed() -> None:
    pair = make_pair()
    pair.wire.hook = drop_where(
        lambda d: d.kind is PacketType.DATA and d.source == INITIATOR_ADDRESS
    )
    pair.connect()
    pair.wire.run_until(lambda: len(pair.responder.endpoint) == 1, 1.0)
    server = pair.server
    pair.responder.endpoint.send_message(server, b"early", pair.wire.now)
    pair.wire.run(5.0)
    # Only the RESPONSE went to the unconfirmed address: no DATA, no amplification.
    from_responder = [d for d in pair.wire.log if d.source == RESPONDER_ADDRESS]
    assert kinds(from_responder) == [PacketType.RESPONSE]
    pair.wire.hook = None
    pair.wire.run(15.0)  # the initiator's next probe (PTO backoff) confirms it
    assert server.state is SessionState.ESTABLISHED
    assert pair.initiator.of(MessageReceived) == [MessageReceived(0, b"early")]


def test_wrong_responder_key_creates_nothing() -> None:
    pair = make_pair()
    wrong = StaticKey.generate(seeded_rng(999)).public
    client = pair.initiator.endpoint.connect(wrong, RESPONDER_ADDRESS, 0.0, TIMESTAMP_NS)
    pair.wire.run(3.0)
    assert len(pair.responder.endpoint) == 0
    assert client.state is SessionState.INITIATING
    sent = len(initiation_times(pair.wire.log))
    assert sent == 3  # at 0, 0.5 and 1.5 s
    assert pair.responder.endpoint.statistics().drops == {"bad-mac": sent}
    assert [d.kind for d in pair.wire.log] == [PacketType.INITIATION] * sent  # no answer


def test_lost_initiations_back_off_exponentially_then_give_up() -> None:
    pair = make_pair()
    pair.wire.hook = drop_where(lambda d: True)
    client = pair.connect()
    assert client.get_timer() == 0.0  # the first initiation is due at once
    pair.wire.run(CFG.handshake_timeout_s + 10.0)
    # 0.5, 1, 2, 4, then capped at 4 s.
    assert initiation_times(pair.wire.log) == [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5]
    assert client.state is SessionState.CLOSED
    assert pair.initiator.of(SessionClosed) == [
        SessionClosed(CloseReason.HANDSHAKE_TIMEOUT, "", by_peer=False)
    ]
    assert len(pair.initiator.endpoint) == 0


def test_handshake_gives_up_exactly_at_the_timeout() -> None:
    pair = make_pair()
    pair.wire.hook = drop_where(lambda d: True)
    client = pair.connect()
    pair.wire.run(15.5)
    assert client.get_timer() == CFG.handshake_timeout_s  # before the next retry (19.5)
    pair.wire.run(CFG.handshake_timeout_s - 1 / 1024)
    assert client.state is SessionState.INITIATING
    pair.wire.run(CFG.handshake_timeout_s)
    assert client.state is SessionState.CLOSED


def test_retransmitted_initiations_are_fresh() -> None:
    pair = make_pair()
    pair.wire.hook = drop_where(lambda d: True)
    pair.connect()
    pair.wire.run(2.0)
    sent = [d.data for d in pair.wire.log]
    assert len(sent) == 3
    assert len(set(sent)) == 3
    assert len({data[5:37] for data in sent}) == 3  # a new ephemeral key each time


def test_first_initiation_lost_then_retry_succeeds() -> None:
    pair = make_pair()
    pair.wire.hook = drop_where(lambda d: d.index == 0)
    client = pair.connect()
    pair.wire.run(2.0)
    assert client.state is SessionState.ESTABLISHED
    assert initiation_times(pair.wire.log) == [0.0, 0.5]
    assert pair.responder.endpoint.statistics().handshakes_accepted == 1


def test_lost_response_leaves_exactly_one_established_session() -> None:
    pair = make_pair()
    pair.wire.hook = drop_where(lambda d: d.kind is PacketType.RESPONSE and d.index == 1)
    client = pair.connect()
    pair.wire.run(3.0)
    assert client.state is SessionState.ESTABLISHED
    assert initiation_times(pair.wire.log) == [0.0, 0.5]
    stats = pair.responder.endpoint.statistics()
    assert stats.handshakes_accepted == 2
    assert stats.sessions == 1
    (server,) = pair.responder.endpoint.sessions()
    assert server.state is SessionState.ESTABLISHED
    assert pair.responder.event_types() == ["SessionEstablished"]


def test_round_trip_longer_than_the_retry_still_establishes() -> None:
    # The first response arrives after the retry was sent: the initiator takes it, so
    # the responder must not have discarded the session that answered it.
    pair = make_pair(delay_s=0.375)
    client = pair.connect()
    pair.wire.run(10.0)
    assert client.state is SessionState.ESTABLISHED
    assert len(initiation_times(pair.wire.log)) >= 2
    (server,) = pair.responder.endpoint.sessions()
    assert server.state is SessionState.ESTABLISHED
    assert pair.responder.event_types() == ["SessionEstablished"]
    pair.initiator.endpoint.send_message(client, b"over a slow path", pair.wire.now)
    pair.wire.run(20.0)
    assert pair.responder.of(MessageReceived) == [MessageReceived(0, b"over a slow path")]
    assert pair.initiator.drops() == {"unexpected": 1}  # the late second response


def test_half_open_sessions_per_initiator_are_bounded() -> None:
    pair = make_pair()
    pair.wire.hook = drop_where(lambda d: d.kind is PacketType.RESPONSE)
    pair.connect()
    pair.wire.run(7.6)  # five initiations, no response arrives
    assert len(initiation_times(pair.wire.log)) == 5
    assert pair.responder.endpoint.statistics().handshakes_accepted == 5
    assert len(pair.responder.endpoint) == 3


def test_duplicated_initiation_is_a_stale_replay() -> None:
    pair = make_pair()
    pair.wire.hook = lambda d: (d, d) if d.kind is PacketType.INITIATION else (d,)
    client = pair.connect()
    pair.wire.run(2.0)
    assert client.state is SessionState.ESTABLISHED
    stats = pair.responder.endpoint.statistics()
    assert stats.handshakes_accepted == 1
    assert stats.sessions == 1
    assert stats.drops == {"stale-initiation": 1}
    assert [d.kind for d in pair.wire.log].count(PacketType.RESPONSE) == 1


def test_replayed_initiation_after_establishment_is_dropped() -> None:
    pair = make_pair()
    client = pair.connect()
    pair.wire.run(2.0)
    initiation = pair.wire.log[0].data
    for source in (INITIATOR_ADDRESS, REBOUND_ADDRESS):
        pair.wire.inject(initiation, source, RESPONDER_ADDRESS)
    pair.wire.run(4.0)
    stats = pair.responder.endpoint.statistics()
    assert stats.drops == {"stale-initiation": 2}
    assert stats.sessions == 1
    assert pair.server.state is SessionState.ESTABLISHED
    assert client.state is SessionState.ESTABLISHED


def test_cookie_round_trip_then_mac2_is_accepted() -> None:
    pair = make_pair(endpoint_config=ALWAYS)
    client = pair.connect()
    pair.wire.run(2.0)
    assert client.state is SessionState.ESTABLISHED
    assert kinds(pair.wire.log[:4]) == [
        PacketType.INITIATION,
        PacketType.COOKIE_REPLY,
        PacketType.INITIATION,
        PacketType.RESPONSE,
    ]
    assert len(pair.wire.log[1].data) < len(pair.wire.log[0].data)
    stats = pair.responder.endpoint.statistics()
    assert (stats.cookie_replies_sent, stats.handshakes_accepted) == (1, 1)
    assert stats.drops == {"cookie-required": 1}


def test_cookie_is_bound_to_the_source_address() -> None:
    pair = make_pair(endpoint_config=ALWAYS)
    pair.connect()
    pair.wire.run(2.0)
    with_cookie = pair.wire.log[2].data
    pair.wire.route(REBOUND_ADDRESS, pair.initiator)
    pair.wire.inject(with_cookie, REBOUND_ADDRESS, RESPONDER_ADDRESS)
    pair.wire.run(3.0)
    stats = pair.responder.endpoint.statistics()
    assert stats.cookie_replies_sent == 2
    assert stats.drops == {"cookie-required": 2}
    assert stats.sessions == 1
    (reply,) = [d for d in pair.wire.log[3:] if d.kind is PacketType.COOKIE_REPLY]
    assert reply.destination == REBOUND_ADDRESS


def test_cookie_reply_after_establishment_is_unexpected() -> None:
    pair = make_pair(endpoint_config=ALWAYS)
    client = pair.connect()
    pair.wire.run(2.0)
    pair.wire.inject(pair.wire.log[1].data, RESPONDER_ADDRESS, INITIATOR_ADDRESS)
    pair.wire.run(3.0)
    assert client.state is SessionState.ESTABLISHED
    assert client.statistics().drops == {"unexpected": 1}


def test_refused_peer_gets_no_answer() -> None:
    refused: list[bytes] = []

    def accept_peer(public: bytes) -> bool:
        refused.append(public)
        return False

    pair = make_pair(accept_peer=accept_peer)
    client = pair.connect()
    pair.wire.run(2.0)
    assert client.state is SessionState.INITIATING
    assert set(refused) == {pair.initiator_key.public}
    assert kinds(pair.wire.log) == [PacketType.INITIATION] * 3
    stats = pair.responder.endpoint.statistics()
    assert stats.drops == {"unknown-peer": 3}
    assert (stats.sessions, stats.handshakes_accepted) == (0, 0)


def test_accepted_peer_gets_a_session() -> None:
    pair = make_pair(accept_peer=lambda public: public == pair_key.public)
    pair_key = pair.initiator_key
    client = pair.connect()
    pair.wire.run(1.0)
    assert client.state is SessionState.ESTABLISHED


def test_reply_to_a_closed_initiator_is_dropped_not_raised() -> None:
    # Session API directly: close() while initiating, then the answer arrives.
    responder = Endpoint(
        EndpointConfig(session=CFG), StaticKey.generate(seeded_rng(2)), seeded_rng(3)
    )
    for kind, config in ((PacketType.RESPONSE, CFG), (PacketType.COOKIE_REPLY, CFG)):
        if kind is PacketType.COOKIE_REPLY:
            responder = Endpoint(ALWAYS, responder.static_key, seeded_rng(4))
        session = Session.initiate(
            config=config,
            local_key=StaticKey.generate(seeded_rng(1)),
            peer_public=responder.static_key.public,
            peer_address=RESPONDER_ADDRESS,
            local_cid=b"cid0",
            rng=seeded_rng(5),
            now=0.0,
            timestamp_ns=TIMESTAMP_NS + int(kind),
        )
        ((initiation, _),) = session.datagrams_to_send(0.0)
        responder.receive_datagram(initiation, INITIATOR_ADDRESS, 0.0)
        ((reply, _),) = responder.datagrams_to_send(0.0)
        assert reply[0] >> 4 & 3 == kind
        session.close(0.0)
        session.receive_datagram(reply, RESPONDER_ADDRESS, 0.1)
        assert session.state is SessionState.CLOSED
        assert session.statistics().drops == {"unexpected": 1}
        assert session.datagrams_to_send(0.2) == []


@pytest.mark.parametrize("retry_max_s", [1.0, 2.0])
def test_retry_ceiling_is_configurable(retry_max_s: float) -> None:
    config = replace(CFG, handshake_retry_max_s=retry_max_s, handshake_timeout_s=6.0)
    pair = make_pair(config)
    pair.wire.hook = drop_where(lambda d: True)
    pair.connect()
    pair.wire.run(10.0)
    times = initiation_times(pair.wire.log)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[0] == 0.5
    assert max(gaps) == retry_max_s
    assert all(gap in (0.5, 1.0, 2.0) for gap in gaps)
