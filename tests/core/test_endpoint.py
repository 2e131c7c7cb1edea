"""Endpoint: demultiplexing, the one timer heap over many sessions, forgetting closed
sessions, limits and statistics."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.core.pairs import (
    RESPONDER_ADDRESS,
    TEST_CONFIG,
    TIMESTAMP_NS,
    Host,
    Wire,
    drop_where,
    established_pair,
    make_pair,
    seeded_rng,
)
from udpim.core.config import CookieMode, EndpointConfig
from udpim.core.crypto import StaticKey
from udpim.core.endpoint import MAX_HALF_OPEN_PER_KEY, Endpoint
from udpim.core.errors import LocalProtocolError
from udpim.core.events import MessageReceived, SessionClosed, SessionEstablished
from udpim.core.frames import CloseReason
from udpim.core.session import Session
from udpim.core.state import SessionState
from udpim.core.wire import CID_BYTES, PacketType

CFG = TEST_CONFIG


def crowd(count: int, config: EndpointConfig | None = None) -> tuple[Host, list[Host], Wire]:
    """One responder and ``count`` initiators (own keys, own addresses) on one wire."""
    responder_key = StaticKey.generate(seeded_rng(10))
    config = config or EndpointConfig(session=CFG)
    responder = Host("hub", Endpoint(config, responder_key, seeded_rng(11)), RESPONDER_ADDRESS)
    peers = [
        Host(
            f"peer{n}",
            Endpoint(
                EndpointConfig(session=CFG),
                StaticKey.generate(seeded_rng(100 + n)),
                seeded_rng(200 + n),
            ),
            (f"127.16.1.{n + 1}", 40000 + n),
        )
        for n in range(count)
    ]
    return responder, peers, Wire(responder, *peers)


def timers(endpoint: Endpoint) -> list[float]:
    return [t for t in (s.get_timer() for s in endpoint.sessions()) if t is not None]


def test_one_timer_for_many_sessions_is_the_minimum() -> None:
    hub, peers, wire = crowd(12)
    hub_key = hub.endpoint.static_key.public
    for n, peer in enumerate(peers):
        wire.run(n * 0.3)  # staggered, so every session has its own deadlines
        peer.endpoint.connect(hub_key, RESPONDER_ADDRESS, wire.now, TIMESTAMP_NS)
    for step in range(400):
        if not wire.step():
            break
        # (The wire checks min-equality after every step; check it here explicitly too.)
        assert hub.endpoint.get_timer() == min(timers(hub.endpoint))
        if step % 40 == 0:
            peer = peers[step % len(peers)]
            (session,) = peer.endpoint.sessions()
            peer.endpoint.send_message(session, b"hello %d" % step, wire.now)
    assert len(hub.endpoint) == 12
    assert all(s.state is SessionState.ESTABLISHED for s in hub.endpoint.sessions())
    assert len(hub.of(SessionEstablished)) == 12
    assert len(hub.of(MessageReceived)) == 10


def test_handle_timer_runs_only_the_sessions_that_are_due() -> None:
    hub, peers, wire = crowd(2)
    hub_key = hub.endpoint.static_key.public
    for n, peer in enumerate(peers):
        wire.run(n * 5.0)
        peer.endpoint.connect(hub_key, RESPONDER_ADDRESS, wire.now, TIMESTAMP_NS)
    wire.run(6.0)
    early, late = hub.endpoint.sessions()
    early_at, late_at = early.get_timer(), late.get_timer()
    assert early_at is not None
    assert late_at is not None
    assert early_at < late_at
    assert hub.endpoint.get_timer() == early_at
    # The application queues on ``late`` behind the endpoint's back: only a timer run
    # of ``late`` itself (or an endpoint call naming it) will flush it.
    late.send_message(b"not yet", early_at)
    hub.endpoint.handle_timer(early_at)
    out = hub.endpoint.datagrams_to_send(early_at)
    assert all(address == peers[0].address for _, address in out)
    assert hub.endpoint.get_timer() == late_at
    hub.endpoint.handle_timer(late_at)
    out = hub.endpoint.datagrams_to_send(late_at)
    assert [address for _, address in out] == [peers[1].address]


def test_handle_timer_before_any_deadline_does_nothing() -> None:
    pair = established_pair()
    endpoint = pair.responder.endpoint
    deadline = endpoint.get_timer()
    assert deadline is not None
    endpoint.handle_timer(deadline - 1.0)
    assert endpoint.datagrams_to_send(deadline - 1.0) == []
    assert endpoint.get_timer() == deadline


def test_closed_sessions_are_forgotten_once_their_events_are_drained() -> None:
    pair = established_pair()
    wire = pair.wire
    wire.run(1.0)
    endpoint = pair.initiator.endpoint
    client = pair.client
    cid = client.local_cid
    pair.initiator.draining = False
    endpoint.close_session(client, wire.now)
    wire.run(wire.now + 5.0)  # the closing period ends
    assert client.state is SessionState.CLOSED
    assert endpoint.session(cid) is client  # its SessionClosed is still unread
    assert endpoint.statistics().sessions == 1
    item = endpoint.next_event()
    assert item is not None
    assert item[0] is client
    assert isinstance(item[1], SessionClosed)
    assert endpoint.next_event() is None
    assert endpoint.session(cid) is None
    assert len(endpoint) == 0
    assert endpoint.get_timer() is None


def test_a_closing_session_is_kept_while_it_may_answer() -> None:
    pair = established_pair()
    endpoint = pair.initiator.endpoint
    client = pair.client
    endpoint.close_session(client, pair.wire.now)
    pair.initiator.drain()
    assert client.state is SessionState.CLOSING
    assert endpoint.sessions() == [client]


def test_next_event_pairs_each_event_with_its_session() -> None:
    pair = make_pair()
    pair.initiator.draining = pair.responder.draining = False
    client = pair.connect()
    pair.wire.run(1.0)
    item = pair.initiator.endpoint.next_event()
    assert item == (client, SessionEstablished(pair.responder_key.public))
    item = pair.responder.endpoint.next_event()
    assert item is not None
    assert item[0].peer_public == pair.initiator_key.public


def test_demultiplexing_and_drop_statistics() -> None:
    pair = established_pair()
    endpoint = pair.responder.endpoint
    server = pair.server
    assert endpoint.session(server.local_cid) is server
    assert endpoint.session(b"none") is None
    now = pair.wire.now
    endpoint.receive_datagram(bytes(1501), RESPONDER_ADDRESS, now)
    endpoint.receive_datagram(b"\x70nope" + bytes(30), RESPONDER_ADDRESS, now)
    endpoint.receive_datagram(b"", RESPONDER_ADDRESS, now)
    endpoint.receive_datagram(b"\xc0" + bytes(40), RESPONDER_ADDRESS, now)
    stats = endpoint.statistics()
    assert stats.drops == {
        "oversized": 1,
        "unknown-connection": 1,
        "truncated": 1,
        "unknown-version": 1,
    }
    assert (stats.sessions, stats.handshakes_accepted, stats.cookie_replies_sent) == (1, 1, 0)
    assert server.statistics().drops == {}


def test_session_limit() -> None:
    config = EndpointConfig(session=CFG, max_sessions=1)
    pair = make_pair(endpoint_config=config)
    pair.connect()
    with pytest.raises(LocalProtocolError, match="limit"):
        pair.initiator.endpoint.connect(
            pair.responder_key.public, RESPONDER_ADDRESS, 0.0, TIMESTAMP_NS
        )
    pair.wire.run(1.0)
    # The responder holds one session; a second initiator is refused without state.
    hub = pair.responder.endpoint
    other = Endpoint(
        EndpointConfig(session=CFG), StaticKey.generate(seeded_rng(77)), seeded_rng(78)
    )
    other.connect(pair.responder_key.public, RESPONDER_ADDRESS, 1.0, TIMESTAMP_NS)
    ((initiation, _),) = other.datagrams_to_send(1.0)
    hub.receive_datagram(initiation, ("127.16.9.9", 1), 1.0)
    assert hub.statistics().drops == {"rate-limited": 1}
    assert hub.datagrams_to_send(1.0) == []
    assert len(hub) == 1


def test_cookies_under_load_only_above_the_threshold() -> None:
    config = EndpointConfig(
        session=CFG, cookie_mode=CookieMode.UNDER_LOAD, load_threshold_handshakes=3
    )
    hub, peers, wire = crowd(6, config)
    hub_key = hub.endpoint.static_key.public
    for peer in peers:
        peer.endpoint.connect(hub_key, RESPONDER_ADDRESS, 0.0, TIMESTAMP_NS)
    wire.run(5.0)
    stats = hub.endpoint.statistics()
    assert stats.cookie_replies_sent == 3
    assert stats.handshakes_accepted == 6
    assert all(s.state is SessionState.ESTABLISHED for s in hub.endpoint.sessions())


def test_sessions_are_listed_in_creation_order() -> None:
    pair = make_pair()
    endpoint = pair.initiator.endpoint
    first = pair.connect()
    second = endpoint.connect(
        pair.responder_key.public, RESPONDER_ADDRESS, 0.0, TIMESTAMP_NS + 10**9
    )
    assert endpoint.sessions() == [first, second]
    assert len(endpoint) == 2
    assert first.local_cid != second.local_cid
    assert isinstance(first, Session)


def test_two_sessions_between_the_same_endpoints_are_independent() -> None:
    pair = make_pair(replace(CFG))
    endpoint = pair.initiator.endpoint
    first = pair.connect()
    second = endpoint.connect(
        pair.responder_key.public, RESPONDER_ADDRESS, 0.0, TIMESTAMP_NS + 10**9
    )
    pair.wire.run(1.0)
    endpoint.send_message(first, b"one", 1.0)
    endpoint.send_message(second, b"two", 1.0)
    pair.wire.run(2.0)
    by_session = {
        (s.local_cid, e.payload) for s, e in pair.responder.events if isinstance(e, MessageReceived)
    }
    assert len(by_session) == 2
    assert {payload for _, payload in by_session} == {b"one", b"two"}
    assert len(pair.responder.endpoint) == 2


def test_half_open_sessions_per_key_are_capped_oldest_first() -> None:
    # A client redials over and over while none of its DATA gets through: each dial
    # leaves a half-open session on the responder, which keeps the newest few only.
    pair = make_pair(replace(CFG))
    pair.wire.hook = drop_where(lambda d: d.kind is PacketType.DATA)
    endpoint = pair.initiator.endpoint
    dials = MAX_HALF_OPEN_PER_KEY + 2
    for number in range(dials):
        endpoint.connect(
            pair.responder_key.public, RESPONDER_ADDRESS, pair.wire.now, TIMESTAMP_NS + number
        )
        pair.wire.run(pair.wire.now + 0.25)  # answered at once: one attempt per dial
    sessions = pair.responder.endpoint.sessions()
    assert len(sessions) == MAX_HALF_OPEN_PER_KEY
    assert all(s.state is SessionState.CONFIRMING for s in sessions)
    # The newest dials are the ones kept: their initiators can still confirm them.
    initiated = endpoint.sessions()
    pair.wire.hook = None
    pair.wire.run(pair.wire.now + 5.0)
    confirmed = [s for s in initiated if s.state is SessionState.ESTABLISHED]
    assert confirmed == initiated[-MAX_HALF_OPEN_PER_KEY:]


def test_a_connection_id_already_in_use_is_drawn_again() -> None:
    taken, fresh = b"cid1", b"cid2"
    drawn = [taken, taken, fresh]  # the second session's first draw collides
    seeded = seeded_rng(5)

    def rng(size: int) -> bytes:
        return drawn.pop(0) if size == CID_BYTES else seeded(size)

    endpoint = Endpoint(EndpointConfig(session=CFG), StaticKey.generate(seeded_rng(6)), rng)
    peer = StaticKey.generate(seeded_rng(7)).public
    first = endpoint.connect(peer, RESPONDER_ADDRESS, 0.0, TIMESTAMP_NS)
    second = endpoint.connect(peer, RESPONDER_ADDRESS, 0.0, TIMESTAMP_NS + 1)
    assert (first.local_cid, second.local_cid) == (taken, fresh)
    assert drawn == []
    assert endpoint.session(taken) is first
    assert endpoint.session(fresh) is second


def test_a_forgotten_half_open_session_is_never_flushed_again() -> None:
    # The responder forgets the oldest half-open session of a key that keeps redialling.
    # The application may still hold it (``sessions()`` listed it): closing it through
    # the endpoint changes the object but sends nothing, and the endpoint stays as it is.
    pair = make_pair(replace(CFG))
    pair.wire.hook = drop_where(lambda d: d.kind is PacketType.DATA)
    hub = pair.responder.endpoint

    def dial(number: int) -> None:
        pair.initiator.endpoint.connect(
            pair.responder_key.public, RESPONDER_ADDRESS, pair.wire.now, TIMESTAMP_NS + number
        )
        pair.wire.run(pair.wire.now + 0.25)

    dial(0)
    (oldest,) = hub.sessions()
    for number in range(1, MAX_HALF_OPEN_PER_KEY + 1):
        dial(number)
    assert oldest not in hub.sessions()
    assert hub.session(oldest.local_cid) is None
    deadline = hub.get_timer()
    hub.close_session(oldest, pair.wire.now, CloseReason.SHUTDOWN)
    assert oldest.state is SessionState.CLOSING
    assert hub.datagrams_to_send(pair.wire.now) == []
    assert hub.next_event() is None
    assert (len(hub), hub.get_timer()) == (MAX_HALF_OPEN_PER_KEY, deadline)
