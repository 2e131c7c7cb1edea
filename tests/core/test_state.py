"""state.py: every TRANSITIONS row driven through a real Session, and every illegal pair.

Each row of the table has a scenario below that brings a real ``Session`` (over the pure
wire of ``pairs.py``) into the row's state, feeds the row's input through public calls
only (datagrams, timers, ``close``), and checks the resulting state and events. A row
added to the table without a scenario fails ``test_every_row_has_a_scenario``.

A CLOSE is carried by an authenticated packet, and authentication
(``PACKET_AUTHENTICATED``) is fed first, so ``PEER_CLOSED`` arrives only in ESTABLISHED or
CLOSING; the table has no other rows for it, and two tests below check that a CLOSE in
the first packet of a CONFIRMING session, or the packet that ends UNREACHABLE, goes
through ESTABLISHED.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from tests.core.pairs import (
    INITIATOR_ADDRESS,
    TEST_CONFIG,
    Datagram,
    Forger,
    Pair,
    drop_where,
    established_pair,
    forged_session,
    make_pair,
)
from udpim.core.config import CookieMode, EndpointConfig
from udpim.core.errors import LocalProtocolError
from udpim.core.events import (
    MessageReceived,
    PeerUnreachable,
    SessionClosed,
    SessionEstablished,
)
from udpim.core.frames import AckFrame, CloseFrame, CloseReason, PingFrame
from udpim.core.session import Session
from udpim.core.state import (
    TRANSITIONS,
    SessionInput,
    SessionState,
    next_state,
    state_diagram_mermaid,
)
from udpim.core.wire import PacketType

S = SessionState
I = SessionInput  # noqa: E741 - mirrors state.py's table
CFG = TEST_CONFIG
UNDECODABLE = b"\x07"  # frame type 0x07 does not exist


def from_responder(datagram: Datagram) -> bool:
    return datagram.source != INITIATOR_ADDRESS


def from_initiator(datagram: Datagram) -> bool:
    return datagram.source == INITIATOR_ADDRESS


def closed_events(pair_side: list[SessionClosed]) -> list[tuple[CloseReason, bool]]:
    return [(event.reason, event.by_peer) for event in pair_side]


def unreachable_client() -> tuple[Pair, Session]:
    """Established, then the responder goes silent until the client declares it dead."""
    pair = established_pair()
    client = pair.client
    pair.wire.hook = drop_where(from_responder)
    pair.wire.run_until(lambda: client.state is S.UNREACHABLE, 100.0)
    assert pair.initiator.of(PeerUnreachable)
    return pair, client


def unreachable_forged() -> tuple[Pair, Forger, Session]:
    """A forger's session on the responder, confirmed, then silent until UNREACHABLE."""
    pair = make_pair()
    forger, session = forged_session(pair)
    pair.responder.endpoint.receive_datagram(forger.seal([PingFrame()]), INITIATOR_ADDRESS, 0.0)
    pair.wire.run_until(lambda: session.state is S.UNREACHABLE, 100.0)
    return pair, forger, session


# --- INITIATING -----------------------------------------------------------------------


def initiating_cookie_received() -> None:
    pair = make_pair(endpoint_config=EndpointConfig(session=CFG, cookie_mode=CookieMode.ALWAYS))
    client = pair.connect()
    got_cookie = lambda: any(d.kind is PacketType.COOKIE_REPLY for d in pair.initiator.received)  # noqa: E731
    pair.wire.run_until(got_cookie, 1.0)
    assert client.state is S.INITIATING
    # The cookie makes the next initiation go out at once, not at the retry timer.
    initiations = [d for d in pair.wire.log if d.kind is PacketType.INITIATION]
    assert [d.sent_at for d in initiations] == [0.0, 2 * pair.wire.delay_s]
    pair.wire.run(1.0)
    assert client.state is S.ESTABLISHED


def initiating_response_received() -> None:
    pair = make_pair()
    client = pair.connect()
    assert client.state is S.INITIATING
    got_response = lambda: any(d.kind is PacketType.RESPONSE for d in pair.initiator.received)  # noqa: E731
    pair.wire.run_until(got_response, 1.0)
    assert client.state is S.CONFIRMING  # keys, may send; the responder's proof comes next
    assert pair.initiator.of(SessionEstablished) == [SessionEstablished(pair.responder_key.public)]
    pair.wire.run_until(lambda: client.state is not S.CONFIRMING, 1.0)
    assert client.state is S.ESTABLISHED


def initiating_handshake_timeout() -> None:
    pair = make_pair()
    pair.wire.hook = drop_where(lambda d: True)
    client = pair.connect()
    pair.wire.run(CFG.handshake_timeout_s - 0.001)
    assert client.state is S.INITIATING
    pair.wire.run(CFG.handshake_timeout_s)
    assert client.state is S.CLOSED
    assert pair.initiator.of(SessionClosed) == [
        SessionClosed(CloseReason.HANDSHAKE_TIMEOUT, "", by_peer=False)
    ]


def initiating_app_close() -> None:
    pair = make_pair()
    client = pair.connect()
    pair.initiator.endpoint.close_session(client, 0.0)
    assert client.state is S.CLOSED
    pair.wire.run(5.0)
    assert pair.wire.log == []  # not even the first initiation went out
    assert pair.initiator.of(SessionClosed) == [SessionClosed(CloseReason.NORMAL, "", False)]


# --- CONFIRMING -----------------------------------------------------------------------


def confirming_packet_authenticated() -> None:
    pair = make_pair()
    pair.connect()
    pair.wire.run_until(lambda: len(pair.responder.endpoint) == 1, 1.0)
    server = pair.server
    assert server.state is S.CONFIRMING
    pair.wire.run_until(lambda: server.state is not S.CONFIRMING, 1.0)
    assert server.state is S.ESTABLISHED
    assert pair.responder.of(SessionEstablished) == [SessionEstablished(pair.initiator_key.public)]


def confirming_idle_timeout() -> None:
    # Responder: a half-open session whose initiator never confirms ends quietly, after
    # the idle timeout like any silent session (not sooner: see state.py).
    pair = make_pair()
    pair.wire.hook = drop_where(lambda d: d.kind is PacketType.DATA and from_initiator(d))
    client = pair.connect()
    pair.wire.run_until(lambda: len(pair.responder.endpoint) == 1, 1.0)
    server = pair.server
    created = pair.wire.now
    pair.wire.run(created + CFG.idle_timeout_s - 0.001)
    assert server.state is S.CONFIRMING
    pair.wire.run(created + CFG.idle_timeout_s)
    assert server.state is S.CLOSED
    assert pair.responder.events == []  # never announced, so it ends quietly
    assert len(pair.responder.endpoint) == 0
    # Initiator: it got the response at 2 one-way delays; all its packets were lost, so it
    # never heard the responder again and closes at the idle timeout.
    answered = 2 * pair.wire.delay_s
    assert client.state is S.CONFIRMING
    pair.wire.run(answered + CFG.idle_timeout_s - 0.001)
    assert client.state is S.CONFIRMING
    pair.wire.run(answered + CFG.idle_timeout_s)
    assert client.state is S.CLOSED
    assert pair.initiator.of(SessionClosed) == [
        SessionClosed(CloseReason.IDLE_TIMEOUT, "", by_peer=False)
    ]


def test_half_open_session_survives_an_uplink_outage_longer_than_the_handshake_timeout() -> None:
    # The initiator's first packets are all lost for longer than handshake_timeout_s; the
    # responder keeps the half-open session, so the session completes once the link heals.
    pair = make_pair()
    outage_end = 3 * CFG.handshake_timeout_s
    pair.wire.hook = drop_where(
        lambda d: d.kind is PacketType.DATA and from_initiator(d) and d.sent_at < outage_end
    )
    client = pair.connect()
    pair.initiator.endpoint.send_message(client, b"after the outage", 0.0)
    pair.wire.run_until(lambda: client.state is S.ESTABLISHED, outage_end + 100.0)
    pair.wire.run(pair.wire.now + 1.0)
    assert [e.payload for e in pair.responder.of(MessageReceived)] == [b"after the outage"]
    assert pair.initiator.of(SessionClosed) == []


def test_close_in_the_first_packet_confirms_then_closes() -> None:
    # The CLOSE authenticates first, which confirms the handshake, so the session passes
    # through ESTABLISHED (and announces it) before closing.
    with pytest.raises(LocalProtocolError):
        next_state(S.CONFIRMING, I.PEER_CLOSED)
    pair = make_pair()
    forger, server = forged_session(pair)
    assert server.state is S.CONFIRMING
    close = forger.seal([CloseFrame(CloseReason.SHUTDOWN, "bye")])
    pair.responder.endpoint.receive_datagram(close, INITIATOR_ADDRESS, 0.0)
    assert server.state is S.CLOSED
    pair.responder.drain()
    assert pair.responder.event_types() == ["SessionEstablished", "SessionClosed"]
    assert pair.responder.of(SessionClosed) == [SessionClosed(CloseReason.SHUTDOWN, "bye", True)]


def confirming_violation() -> None:
    pair = make_pair()
    forger, server = forged_session(pair)
    assert server.state is S.CONFIRMING
    garbage = forger.seal_plaintext(UNDECODABLE)
    pair.responder.endpoint.receive_datagram(garbage, INITIATOR_ADDRESS, 0.0)
    assert server.state is S.CLOSING
    pair.responder.drain()
    assert closed_events(pair.responder.of(SessionClosed)) == [
        (CloseReason.PROTOCOL_VIOLATION, False)
    ]
    (datagram,) = pair.responder.endpoint.datagrams_to_send(0.0)
    (frame,) = forger.open(datagram[0])
    assert isinstance(frame, CloseFrame)
    assert frame.code is CloseReason.PROTOCOL_VIOLATION


def confirming_app_close() -> None:
    pair = make_pair()
    forger, server = forged_session(pair)
    pair.responder.endpoint.close_session(server, 0.0, CloseReason.SHUTDOWN, "restart")
    assert server.state is S.CLOSING
    (datagram,) = pair.responder.endpoint.datagrams_to_send(0.0)
    assert forger.open(datagram[0]) == [CloseFrame(CloseReason.SHUTDOWN, "restart")]


# --- ESTABLISHED ----------------------------------------------------------------------


def established_packet_authenticated() -> None:
    pair = established_pair()
    client, server = pair.client, pair.server
    before = server.statistics().packets_received
    pair.initiator.endpoint.send_message(client, b"hi", pair.wire.now)
    pair.wire.run(pair.wire.now + 1.0)
    assert server.state is S.ESTABLISHED
    assert server.statistics().packets_received == before + 1


def established_dead_peer_timeout() -> None:
    pair = established_pair()
    client = pair.client
    pair.wire.hook = drop_where(from_responder)
    heard = pair.wire.now  # the last ACK from the responder arrived before this
    pair.wire.run_until(lambda: client.state is not S.ESTABLISHED, 100.0)
    assert client.state is S.UNREACHABLE
    (event,) = pair.initiator.of(PeerUnreachable)
    assert event.silent_for_s == CFG.dead_peer_timeout_s
    assert pair.wire.now <= heard + CFG.dead_peer_timeout_s


def established_idle_timeout() -> None:
    # Reachable when the dead-peer timeout is not shorter than the idle timeout.
    config = replace(CFG, dead_peer_timeout_s=CFG.idle_timeout_s * 2)
    pair = established_pair(config)
    client = pair.client
    pair.wire.hook = drop_where(from_responder)
    pair.wire.run_until(lambda: client.state is not S.ESTABLISHED, 1000.0)
    assert client.state is S.CLOSED
    assert closed_events(pair.initiator.of(SessionClosed)) == [(CloseReason.IDLE_TIMEOUT, False)]


def established_peer_closed() -> None:
    pair = established_pair()
    client, server = pair.client, pair.server
    pair.responder.endpoint.close_session(server, pair.wire.now, CloseReason.SHUTDOWN, "later")
    pair.wire.run_until(lambda: client.state is not S.ESTABLISHED, 1.0)
    assert client.state is S.CLOSED
    assert pair.initiator.of(SessionClosed) == [SessionClosed(CloseReason.SHUTDOWN, "later", True)]


def established_violation() -> None:
    pair = make_pair()
    forger, server = forged_session(pair)
    endpoint = pair.responder.endpoint
    endpoint.receive_datagram(forger.seal([PingFrame()]), INITIATOR_ADDRESS, 0.0)
    assert server.state is S.ESTABLISHED
    never_sent = AckFrame(ranges=((1000, 1000),), ack_delay_us=0)
    endpoint.receive_datagram(forger.seal([never_sent]), INITIATOR_ADDRESS, 0.0)
    assert server.state is S.CLOSING
    pair.responder.drain()
    assert closed_events(pair.responder.of(SessionClosed)) == [
        (CloseReason.PROTOCOL_VIOLATION, False)
    ]


def established_app_close() -> None:
    pair = established_pair()
    client = pair.client
    pair.initiator.endpoint.close_session(client, pair.wire.now)
    assert client.state is S.CLOSING


# --- UNREACHABLE ----------------------------------------------------------------------


def unreachable_packet_authenticated() -> None:
    pair, client = unreachable_client()
    pair.wire.hook = None
    pair.wire.run_until(lambda: client.state is not S.UNREACHABLE, 100.0)
    assert client.state is S.ESTABLISHED
    assert pair.initiator.event_types()[-2:] == ["PeerUnreachable", "PeerReachable"]


def unreachable_idle_timeout() -> None:
    pair, client = unreachable_client()
    pair.wire.run_until(lambda: client.state is not S.UNREACHABLE, 1000.0)
    assert client.state is S.CLOSED
    assert closed_events(pair.initiator.of(SessionClosed)) == [(CloseReason.IDLE_TIMEOUT, False)]


def test_close_ending_unreachable_passes_through_established() -> None:
    # Like CONFIRMING: the CLOSE authenticates first (UNREACHABLE -> ESTABLISHED,
    # PeerReachable), then closes from ESTABLISHED.
    with pytest.raises(LocalProtocolError):
        next_state(S.UNREACHABLE, I.PEER_CLOSED)
    pair, forger, server = unreachable_forged()
    close = forger.seal([CloseFrame(CloseReason.NORMAL, "")])
    pair.responder.endpoint.receive_datagram(close, INITIATOR_ADDRESS, pair.wire.now)
    assert server.state is S.CLOSED
    pair.responder.drain()
    assert pair.responder.event_types()[-3:] == [
        "PeerUnreachable",
        "PeerReachable",
        "SessionClosed",
    ]


def unreachable_violation() -> None:
    pair, forger, server = unreachable_forged()
    garbage = forger.seal_plaintext(UNDECODABLE)
    pair.responder.endpoint.receive_datagram(garbage, INITIATOR_ADDRESS, pair.wire.now)
    assert server.state is S.CLOSING
    pair.responder.drain()
    assert closed_events(pair.responder.of(SessionClosed)) == [
        (CloseReason.PROTOCOL_VIOLATION, False)
    ]


def unreachable_app_close() -> None:
    pair, client = unreachable_client()
    pair.initiator.endpoint.close_session(client, pair.wire.now)
    assert client.state is S.CLOSING


# --- CLOSING --------------------------------------------------------------------------


def close_datagrams(pair: Pair, since: int) -> int:
    """DATA datagrams the initiator sent from log index ``since`` on."""
    return sum(1 for d in pair.wire.log[since:] if from_initiator(d) and d.kind is PacketType.DATA)


def closing_packet_authenticated() -> None:
    pair = established_pair()
    client, server = pair.client, pair.server
    pair.wire.hook = drop_where(from_initiator)  # our CLOSE never arrives
    pair.initiator.endpoint.close_session(client, pair.wire.now)
    pair.wire.run(pair.wire.now + 0.01)
    mark = len(pair.wire.log)
    received = client.statistics().packets_received
    pair.responder.endpoint.send_message(server, b"late", pair.wire.now)
    pair.wire.run(pair.wire.now + 2 * pair.wire.delay_s)
    assert client.state is S.CLOSING
    assert client.statistics().packets_received == received + 1
    assert close_datagrams(pair, mark) == 1  # the CLOSE again, in answer
    assert pair.initiator.of(SessionClosed) == [SessionClosed(CloseReason.NORMAL, "", False)]


def closing_peer_closed() -> None:
    pair = established_pair()
    client, server = pair.client, pair.server
    now = pair.wire.now
    pair.initiator.endpoint.close_session(client, now, CloseReason.NORMAL, "me first")
    pair.responder.endpoint.close_session(server, now, CloseReason.SHUTDOWN, "no, me")
    pair.wire.run(now + 2 * pair.wire.delay_s)
    assert client.state is S.CLOSED
    assert server.state is S.CLOSED
    # Each side reported its own close once; the crossing CLOSE adds no event.
    assert pair.initiator.of(SessionClosed) == [
        SessionClosed(CloseReason.NORMAL, "me first", False)
    ]
    assert pair.responder.of(SessionClosed) == [
        SessionClosed(CloseReason.SHUTDOWN, "no, me", False)
    ]


def closing_closing_done() -> None:
    pair = established_pair()
    client = pair.client
    pair.wire.hook = drop_where(lambda d: True)
    now = pair.wire.now
    pair.initiator.endpoint.close_session(client, now)
    deadline = client.get_timer()
    assert deadline is not None
    pair.wire.run(deadline - 0.001)
    assert client.state is S.CLOSING
    pair.wire.run(deadline)
    assert client.state is S.CLOSED
    assert client.get_timer() is None
    assert len(pair.initiator.endpoint) == 0  # forgotten once its events were drained


SCENARIOS: dict[tuple[SessionState, SessionInput], Callable[[], None]] = {
    (S.INITIATING, I.COOKIE_RECEIVED): initiating_cookie_received,
    (S.INITIATING, I.RESPONSE_RECEIVED): initiating_response_received,
    (S.INITIATING, I.HANDSHAKE_TIMEOUT): initiating_handshake_timeout,
    (S.INITIATING, I.APP_CLOSE): initiating_app_close,
    (S.CONFIRMING, I.PACKET_AUTHENTICATED): confirming_packet_authenticated,
    (S.CONFIRMING, I.IDLE_TIMEOUT): confirming_idle_timeout,
    (S.CONFIRMING, I.VIOLATION): confirming_violation,
    (S.CONFIRMING, I.APP_CLOSE): confirming_app_close,
    (S.ESTABLISHED, I.PACKET_AUTHENTICATED): established_packet_authenticated,
    (S.ESTABLISHED, I.DEAD_PEER_TIMEOUT): established_dead_peer_timeout,
    (S.ESTABLISHED, I.IDLE_TIMEOUT): established_idle_timeout,
    (S.ESTABLISHED, I.PEER_CLOSED): established_peer_closed,
    (S.ESTABLISHED, I.VIOLATION): established_violation,
    (S.ESTABLISHED, I.APP_CLOSE): established_app_close,
    (S.UNREACHABLE, I.PACKET_AUTHENTICATED): unreachable_packet_authenticated,
    (S.UNREACHABLE, I.IDLE_TIMEOUT): unreachable_idle_timeout,
    (S.UNREACHABLE, I.VIOLATION): unreachable_violation,
    (S.UNREACHABLE, I.APP_CLOSE): unreachable_app_close,
    (S.CLOSING, I.PACKET_AUTHENTICATED): closing_packet_authenticated,
    (S.CLOSING, I.PEER_CLOSED): closing_peer_closed,
    (S.CLOSING, I.CLOSING_DONE): closing_closing_done,
}

ILLEGAL = [(state, event) for state in S for event in I if (state, event) not in TRANSITIONS]


def row_id(row: tuple[SessionState, SessionInput]) -> str:
    return f"{row[0].value}-{row[1].value}".replace(" ", "_")


def test_every_row_has_a_scenario() -> None:
    assert set(SCENARIOS) == set(TRANSITIONS)


@pytest.mark.parametrize("row", list(TRANSITIONS), ids=row_id)
def test_transition_row(row: tuple[SessionState, SessionInput]) -> None:
    assert next_state(*row) is TRANSITIONS[row]
    SCENARIOS[row]()


@pytest.mark.parametrize("pair", ILLEGAL, ids=row_id)
def test_pairs_outside_the_table_raise(pair: tuple[SessionState, SessionInput]) -> None:
    state, event = pair
    with pytest.raises(LocalProtocolError, match=event.value):
        next_state(state, event)


def test_closed_is_terminal() -> None:
    assert not [row for row in TRANSITIONS if row[0] is S.CLOSED]
    assert {(S.CLOSED, event) for event in I} <= set(ILLEGAL)


@pytest.mark.parametrize("final", [S.CLOSING, S.CLOSED])
def test_illegal_close_raises_and_leaves_the_session_unchanged(final: SessionState) -> None:
    pair = established_pair()
    client = pair.client
    pair.wire.hook = drop_where(lambda d: True)
    pair.initiator.endpoint.close_session(client, pair.wire.now)
    pair.wire.flush()
    if final is S.CLOSED:
        pair.wire.run_until(lambda: client.state is S.CLOSED, 100.0)
    before = client.statistics()
    with pytest.raises(LocalProtocolError, match="app close"):
        client.close(pair.wire.now)
    with pytest.raises(LocalProtocolError):
        client.send_message(b"x", pair.wire.now)
    assert client.state is final
    assert client.statistics() == before
    assert client.next_event() is None  # no second SessionClosed


def test_mermaid_diagram_lists_every_row() -> None:
    diagram = state_diagram_mermaid()
    assert diagram.startswith("stateDiagram-v2\n")
    for (state, event), target in TRANSITIONS.items():
        assert f"    {state.value} --> {target.value}: {event.value}\n" in diagram
    assert diagram.count(" --> ") == len(TRANSITIONS) + 3  # plus two entries and the exit
