"""Hostile input against live Endpoints and Sessions: every truncation and single-bit
flip of captured real datagrams, random bytes, and replays. Nothing may raise; every
rejected datagram is counted exactly once; nothing is delivered twice."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.core.pairs import (
    INITIATOR_ADDRESS,
    REBOUND_ADDRESS,
    RESPONDER_ADDRESS,
    TEST_CONFIG,
    Datagram,
    Host,
    Pair,
    established_pair,
    forged_session,
    make_pair,
)
from udpim.core.config import CookieMode, EndpointConfig
from udpim.core.errors import LocalProtocolError
from udpim.core.events import MessageReceived, SessionClosed
from udpim.core.frames import (
    AckFrame,
    CloseFrame,
    CloseReason,
    DataFrame,
    Frame,
    PaddingFrame,
    PathChallengeFrame,
    PathResponseFrame,
    PingFrame,
    WindowFrame,
)
from udpim.core.session import Session
from udpim.core.state import SessionState
from udpim.core.transmit import MAX_PENDING_PATH_RESPONSES
from udpim.core.wire import PacketType


def mutations(data: bytes) -> Iterator[bytes]:
    """Every proper prefix and every single-bit flip of ``data``."""
    for length in range(len(data)):
        yield data[:length]
    for index in range(len(data)):
        for bit in range(8):
            flipped = bytearray(data)
            flipped[index] ^= 1 << bit
            yield bytes(flipped)


def total(drops: dict[str, int]) -> int:
    return sum(drops.values())


def feed_each_counted(feed: Callable[[bytes], None], count: Callable[[], int], data: bytes) -> int:
    """Feed every mutation; each must be dropped and counted exactly once."""
    fed = 0
    for mutated in mutations(data):
        before = count()
        feed(mutated)
        assert count() == before + 1, mutated.hex()
        fed += 1
    return fed


def capture(pair: Pair, predicate: Callable[[Datagram], bool]) -> list[Datagram]:
    """Make the wire swallow (and keep) every datagram ``predicate`` selects."""
    kept: list[Datagram] = []

    def hook(datagram: Datagram) -> list[Datagram]:
        if predicate(datagram):
            kept.append(datagram)
            return []
        return [datagram]

    pair.wire.hook = hook
    return kept


def endpoint_feeder(host: Host, source: tuple[str, int], now: float) -> Callable[[bytes], None]:
    return lambda data: host.endpoint.receive_datagram(data, source, now)


def session_feeder(
    session: Session, source: tuple[str, int], now: float
) -> Callable[[bytes], None]:
    return lambda data: session.receive_datagram(data, source, now)


def test_mutated_data_packets_are_counted_drops_at_endpoint_and_session() -> None:
    pair = established_pair()
    server = pair.server
    kept = capture(pair, lambda d: d.source == INITIATOR_ADDRESS and d.kind is PacketType.DATA)
    pair.initiator.endpoint.send_message(pair.client, b"secret", pair.wire.now)
    pair.wire.run(pair.wire.now + 0.01)
    (original,) = kept
    now = pair.wire.now
    fed = feed_each_counted(
        endpoint_feeder(pair.responder, INITIATOR_ADDRESS, now),
        lambda: total(pair.responder.drops()),
        original.data,
    )
    fed += feed_each_counted(
        session_feeder(server, INITIATOR_ADDRESS, now),
        lambda: total(server.statistics().drops),
        original.data,
    )
    assert fed == 2 * 9 * len(original.data)
    drops = pair.responder.drops()
    assert drops["decrypt-failed"] > 0
    assert drops["truncated"] > 0
    assert drops["unknown-connection"] > 0  # flips of the connection ID, at the endpoint
    assert server.state is SessionState.ESTABLISHED
    assert pair.responder.of(MessageReceived) == []
    # The genuine packet is still accepted afterwards: nothing poisoned the window.
    pair.responder.endpoint.receive_datagram(original.data, INITIATOR_ADDRESS, now)
    pair.responder.drain()
    assert pair.responder.of(MessageReceived) == [MessageReceived(0, b"secret")]


def test_mutated_initiations_are_counted_drops() -> None:
    pair = make_pair()
    pair.connect()
    pair.wire.run(1.0)
    initiation = pair.wire.log[0].data
    assert pair.wire.log[0].kind is PacketType.INITIATION
    responder = pair.responder
    feed_each_counted(
        endpoint_feeder(responder, INITIATOR_ADDRESS, 1.0),
        lambda: total(responder.drops()),
        initiation,
    )
    drops = responder.endpoint.statistics().drops
    # Flips of mac2 pass mac1 (it does not cover mac2) and are caught as replays.
    assert drops["stale-initiation"] == 16 * 8
    assert drops["bad-mac"] > 0
    assert len(responder.endpoint) == 1
    assert responder.endpoint.datagrams_to_send(1.0) == []


def test_mutated_responses_are_counted_drops_then_the_real_one_completes() -> None:
    pair = make_pair()
    kept = capture(pair, lambda d: d.kind is PacketType.RESPONSE)
    client = pair.connect()
    pair.wire.run(0.1)
    (response,) = kept
    for feed, count in (
        (
            endpoint_feeder(pair.initiator, RESPONDER_ADDRESS, 0.1),
            lambda: total(pair.initiator.drops()),
        ),
        (session_feeder(client, RESPONDER_ADDRESS, 0.1), lambda: total(client.statistics().drops)),
    ):
        feed_each_counted(feed, count, response.data)
    assert client.state is SessionState.INITIATING
    pair.initiator.endpoint.receive_datagram(response.data, RESPONDER_ADDRESS, 0.1)
    assert client.state is SessionState.CONFIRMING  # keys installed: the handshake completed


def test_mutated_cookie_replies_are_counted_drops() -> None:
    pair = make_pair(
        endpoint_config=EndpointConfig(session=TEST_CONFIG, cookie_mode=CookieMode.ALWAYS)
    )
    kept = capture(pair, lambda d: d.kind is PacketType.COOKIE_REPLY)
    client = pair.connect()
    pair.wire.run(0.1)
    (reply,) = kept
    feed_each_counted(
        endpoint_feeder(pair.initiator, RESPONDER_ADDRESS, 0.1),
        lambda: total(pair.initiator.drops()),
        reply.data,
    )
    assert pair.initiator.endpoint.datagrams_to_send(0.1) == []  # no early retry
    pair.initiator.endpoint.receive_datagram(reply.data, RESPONDER_ADDRESS, 0.1)
    assert [packet[0] >> 4 & 3 for packet, _ in pair.initiator.endpoint.datagrams_to_send(0.1)] == [
        PacketType.INITIATION
    ]
    assert client.state is SessionState.INITIATING


@pytest.mark.parametrize("source", [INITIATOR_ADDRESS, REBOUND_ADDRESS])
def test_replayed_data_is_dropped_and_never_delivered_twice(source: tuple[str, int]) -> None:
    pair = established_pair()
    messages = [b"once %d" % n for n in range(10)]
    for message in messages:
        pair.initiator.endpoint.send_message(pair.client, message, pair.wire.now)
    pair.wire.run(pair.wire.now + 2.0)
    captured = [
        d.data for d in pair.wire.log if d.kind is PacketType.DATA and d.source == INITIATOR_ADDRESS
    ]
    for data in captured:
        pair.wire.inject(data, source, RESPONDER_ADDRESS)
    pair.wire.run(pair.wire.now + 2.0)
    assert [e.payload for e in pair.responder.of(MessageReceived)] == messages
    assert pair.responder.drops() == {"replayed": len(captured)}
    assert pair.server.peer_address == INITIATOR_ADDRESS  # a replay moves no path


@settings(max_examples=150)
@given(
    data=st.one_of(
        st.binary(max_size=1600),
        st.builds(
            lambda b, rest: bytes([b]) + rest, st.integers(0x40, 0x7F), st.binary(max_size=200)
        ),
    )
)
def test_random_bytes_are_counted_drops(data: bytes) -> None:
    pair, client, server = hostile_pair()
    for host, session, source in (
        (pair.responder, server, INITIATOR_ADDRESS),
        (pair.initiator, client, RESPONDER_ADDRESS),
    ):
        before = total(host.drops())
        host.endpoint.receive_datagram(data, source, 1.0)
        assert total(host.drops()) == before + 1
        before = total(session.statistics().drops)
        session.receive_datagram(data, source, 1.0)
        assert total(session.statistics().drops) == before + 1
        # Aimed at the live session's connection ID, to get past the demultiplexer.
        if len(data) > 5 and data[0] >> 4 == 0x7:
            aimed = data[:1] + session.local_cid + data[5:]
            before = total(host.drops())
            host.endpoint.receive_datagram(aimed, source, 1.0)
            assert total(host.drops()) == before + 1
    assert server.state is client.state is SessionState.ESTABLISHED


def _ack(pairs: list[tuple[int, int]]) -> AckFrame:
    return AckFrame(tuple(sorted({(a, a + b) for a, b in pairs}, reverse=True)), 0)


def _data(number: int, start: int, total: int, offset: int, payload: bytes) -> DataFrame:
    return DataFrame(number, start, max(total, offset + len(payload)), offset, payload)


_small = st.integers(0, 70)
authenticated_frames = st.one_of(
    st.builds(PingFrame),
    st.builds(PaddingFrame, st.integers(1, 20)),
    st.lists(st.tuples(st.integers(0, 60), st.integers(0, 5)), min_size=1, max_size=4).map(_ack),
    st.builds(WindowFrame, st.integers(0, 1 << 23)),
    st.builds(PathChallengeFrame, st.binary(min_size=8, max_size=8)),
    st.builds(PathResponseFrame, st.binary(min_size=8, max_size=8)),
    st.builds(
        _data,
        _small,
        st.one_of(_small, st.integers(0, 1 << 23)),
        _small,
        _small,
        st.binary(max_size=40),
    ),
    st.builds(CloseFrame, st.sampled_from(list(CloseReason)), st.text(max_size=10)),
)


@settings(max_examples=200)
@given(
    packets=st.lists(
        st.lists(authenticated_frames, min_size=1, max_size=5), min_size=1, max_size=8
    ),
    confirm_first=st.booleans(),
)
def test_authenticated_nonsense_never_raises(
    packets: list[list[Frame]], confirm_first: bool
) -> None:
    # Frames sealed with the peer's real keys: anything an honest peer would not send
    # must close the session (with one SessionClosed), never raise.
    pair = make_pair()
    forger, server = forged_session(pair)
    host = pair.responder
    now = 0.0
    if confirm_first:
        host.endpoint.receive_datagram(forger.seal([PingFrame()]), INITIATOR_ADDRESS, now)
    for frames in packets:
        try:
            sealed = forger.seal(frames)
        except LocalProtocolError:  # not even encodable (overlapping ranges, ...)
            continue
        now += 0.01
        host.endpoint.receive_datagram(sealed, INITIATOR_ADDRESS, now)
        host.drain()
        host.endpoint.datagrams_to_send(now)
        deadline = host.endpoint.get_timer()
        if deadline is not None and deadline <= now + 1.0:
            now = max(now, deadline)
            host.endpoint.handle_timer(now)
            host.endpoint.datagrams_to_send(now)
    host.drain()
    closes = host.of(SessionClosed)
    assert len(closes) == (server.state in (SessionState.CLOSING, SessionState.CLOSED))


@functools.cache
def hostile_pair() -> tuple[Pair, Session, Session]:
    """One established pair that every random example is thrown at (it must survive)."""
    pair = established_pair()
    return pair, pair.client, pair.server


def test_a_flood_of_path_challenges_is_answered_only_up_to_the_limit() -> None:
    pair = make_pair()
    forger, server = forged_session(pair)
    hub = pair.responder.endpoint
    hub.receive_datagram(forger.seal([PingFrame()]), INITIATOR_ADDRESS, 0.0)
    flood = [PathChallengeFrame(bytes([n]) * 8) for n in range(MAX_PENDING_PATH_RESPONSES + 2)]
    hub.receive_datagram(forger.seal(flood), INITIATOR_ADDRESS, 0.0)
    frames = [frame for data, _ in hub.datagrams_to_send(0.0) for frame in forger.open(data)]
    responses = [frame for frame in frames if isinstance(frame, PathResponseFrame)]
    assert responses == [PathResponseFrame(c.data) for c in flood[:MAX_PENDING_PATH_RESPONSES]]
    # The limit is per flush: the next challenges are answered again.
    hub.receive_datagram(forger.seal(flood[-1:]), INITIATOR_ADDRESS, 0.0)
    frames = [frame for data, _ in hub.datagrams_to_send(0.0) for frame in forger.open(data)]
    assert [f for f in frames if isinstance(f, PathResponseFrame)] == [
        PathResponseFrame(flood[-1].data)
    ]
    assert server.state is SessionState.ESTABLISHED
