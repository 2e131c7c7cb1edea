"""Closing: authenticated CLOSE frames, their text, the closing period, and what must
never close a session (unauthenticated bytes) or must (authenticated nonsense)."""

from __future__ import annotations

import pytest

from tests.core.pairs import (
    INITIATOR_ADDRESS,
    RESPONDER_ADDRESS,
    TEST_CONFIG,
    Forger,
    Pair,
    drop_where,
    established_pair,
    forged_session,
    make_pair,
)
from udpim.core.events import MessageReceived, SessionClosed
from udpim.core.frames import AckFrame, CloseFrame, CloseReason, DataFrame, PingFrame
from udpim.core.session import Session
from udpim.core.state import SessionState


def close_from_client(pair: Pair, code: CloseReason, text: str) -> SessionClosed:
    pair.initiator.endpoint.close_session(pair.client, pair.wire.now, code, text)
    pair.wire.run(pair.wire.now + 5.0)  # past the closing period (3 PTO)
    (event,) = pair.responder.of(SessionClosed)
    return event


@pytest.mark.parametrize("code", list(CloseReason))
def test_close_reason_and_text_reach_the_peer(code: CloseReason) -> None:
    pair = established_pair()
    client, server = pair.client, pair.server
    event = close_from_client(pair, code, "see you")
    assert event == SessionClosed(code, "see you", by_peer=True)
    assert pair.initiator.of(SessionClosed) == [SessionClosed(code, "see you", by_peer=False)]
    assert server.state is SessionState.CLOSED
    assert client.state is SessionState.CLOSED  # closing period over
    assert len(pair.responder.endpoint) == len(pair.initiator.endpoint) == 0


@pytest.mark.parametrize(
    ("text", "on_the_wire"),
    [
        ("a" * 255, "a" * 255),
        ("a" * 256, "a" * 255),
        ("é" * 200, "é" * 127),  # 2-byte characters: cut before the split one
        ("😀" * 64, "😀" * 63),  # 4-byte characters
        ("x\ud800y", "x?y"),  # a lone surrogate cannot be UTF-8
    ],
    ids=["255", "256", "2-byte", "4-byte", "surrogate"],
)
def test_close_text_is_cut_to_255_bytes_at_a_character_boundary(
    text: str, on_the_wire: str
) -> None:
    pair = established_pair()
    event = close_from_client(pair, CloseReason.NORMAL, text)
    assert event.text == on_the_wire
    assert len(event.text.encode()) <= 255
    assert pair.initiator.of(SessionClosed)[0].text == text  # the local event keeps it all


def test_messages_in_the_closing_packet_come_before_the_close() -> None:
    pair = make_pair()
    forger, server = forged_session(pair)
    packet = forger.seal(
        [
            DataFrame(0, 0, 5, 0, b"first"),
            DataFrame(1, 5, 4, 0, b"last"),
            CloseFrame(CloseReason.NORMAL, "done"),
        ]
    )
    pair.responder.endpoint.receive_datagram(packet, INITIATOR_ADDRESS, 0.0)
    pair.responder.drain()
    assert [type(e).__name__ for _, e in pair.responder.events] == [
        "SessionEstablished",
        "MessageReceived",
        "MessageReceived",
        "SessionClosed",
    ]
    assert pair.responder.of(MessageReceived) == [
        MessageReceived(0, b"first"),
        MessageReceived(1, b"last"),
    ]
    assert server.state is SessionState.CLOSED


def test_local_close_hands_out_received_messages_first() -> None:
    pair = established_pair()
    pair.responder.draining = False
    pair.initiator.endpoint.send_message(pair.client, b"unread", pair.wire.now)
    pair.wire.run(pair.wire.now + 1.0)
    pair.responder.endpoint.close_session(pair.server, pair.wire.now)
    pair.responder.draining = True
    pair.wire.run(pair.wire.now + 1.0)
    assert pair.responder.event_types()[-2:] == ["MessageReceived", "SessionClosed"]


def test_closing_period_answers_the_peer_with_close_then_ends() -> None:
    pair = established_pair()
    client, server = pair.client, pair.server
    pair.wire.hook = drop_where(lambda d: d.source == INITIATOR_ADDRESS)  # CLOSEs are lost
    pair.initiator.endpoint.close_session(client, pair.wire.now)
    deadline = client.get_timer()
    assert deadline is not None
    pair.wire.run(pair.wire.now + 0.01)
    mark = len(pair.wire.log)
    for _ in range(3):
        pair.responder.endpoint.send_message(server, b"are you there", pair.wire.now)
    pair.wire.run(deadline - 0.01)
    answers = [d for d in pair.wire.log[mark:] if d.source == INITIATOR_ADDRESS]
    received = [d for d in pair.wire.log[mark:] if d.source == RESPONDER_ADDRESS]
    assert 1 <= len(answers) <= len(received)  # never more CLOSEs than packets received
    assert client.state is SessionState.CLOSING
    with pytest.raises(Exception, match="closing"):
        pair.initiator.endpoint.send_message(client, b"too late", pair.wire.now)
    pair.wire.run(deadline)
    assert client.state is SessionState.CLOSED
    assert pair.initiator.of(MessageReceived) == []  # data in the closing period is ignored


def test_closing_period_lasts_three_probe_timeouts() -> None:
    pair = established_pair()
    pair.wire.run(1.0)
    client = pair.client
    stats = client.statistics()
    pto_s = stats.smoothed_rtt_s + 4 * stats.rttvar_s + TEST_CONFIG.max_ack_delay_s
    assert pto_s == 1 / 4  # smoothed 1/16 + 4 * rttvar 1/32 + max_ack_delay 1/16
    pair.initiator.endpoint.close_session(client, 1.0)
    assert client.get_timer() == 1.0 + 3 * pto_s


def test_timers_run_early_or_after_the_end_change_nothing() -> None:
    pair = established_pair()
    client = pair.client
    now = pair.wire.now
    pair.initiator.endpoint.close_session(client, now)
    pair.initiator.endpoint.datagrams_to_send(now)  # the CLOSE
    stats = client.statistics()
    deadline = now + 3 * (stats.smoothed_rtt_s + 4 * stats.rttvar_s + TEST_CONFIG.max_ack_delay_s)
    assert client.get_timer() == deadline
    client.handle_timer(deadline - 1 / 1024)  # early: still closing, same deadline
    assert (client.state, client.get_timer()) == (SessionState.CLOSING, deadline)
    client.handle_timer(deadline)
    assert (client.state, client.get_timer()) == (SessionState.CLOSED, None)
    sent = client.statistics().packets_sent
    client.handle_timer(deadline + 100.0)  # closed: no timer, and calling one is harmless
    assert (client.state, client.get_timer()) == (SessionState.CLOSED, None)
    assert client.datagrams_to_send(deadline + 100.0) == []
    assert client.statistics().packets_sent == sent
    pair.initiator.drain()
    assert pair.initiator.of(SessionClosed) == [SessionClosed(CloseReason.NORMAL, "", False)]


def test_unauthenticated_close_never_closes() -> None:
    pair = established_pair()
    client, server = pair.client, pair.server
    # A CLOSE sealed by someone who completed their own handshake with the responder:
    # right format, the client's connection ID, the wrong keys.
    stranger, _ = forged_session(pair, seed=99)
    forged = bytearray(stranger.seal([CloseFrame(CloseReason.NORMAL, "")]))
    forged[1:5] = client.local_cid
    # The responder's genuine CLOSE, kept from the client, then corrupted.
    pair.wire.hook = drop_where(lambda d: d.source == RESPONDER_ADDRESS)
    pair.responder.endpoint.close_session(server, pair.wire.now)
    pair.wire.run(pair.wire.now + 0.01)
    real = pair.wire.log[-1].data
    assert pair.wire.log[-1].source == RESPONDER_ADDRESS
    hostile = [bytes(forged), real[:-1] + bytes([real[-1] ^ 1]), real[:-3], real[:5] + bytes(20)]
    for data in hostile:
        pair.wire.inject(data, RESPONDER_ADDRESS, INITIATOR_ADDRESS)
    pair.wire.run(pair.wire.now + 1.0)
    assert client.state is SessionState.ESTABLISHED
    assert pair.initiator.of(SessionClosed) == []
    # Forged and zeroed packets reuse packet numbers the client has seen: REPLAYED before
    # any decryption; the bit-flipped one fails authentication.
    assert client.statistics().drops == {"replayed": 2, "decrypt-failed": 1, "truncated": 1}
    pair.wire.inject(real, RESPONDER_ADDRESS, INITIATOR_ADDRESS)
    pair.wire.run(pair.wire.now + 1.0)
    assert client.state is SessionState.CLOSED
    assert pair.initiator.of(SessionClosed) == [SessionClosed(CloseReason.NORMAL, "", True)]


def forger_close(pair: Pair, forger: Forger) -> CloseFrame:
    out = pair.responder.endpoint.datagrams_to_send(pair.wire.now)
    frames = [frame for data, _ in out for frame in forger.open(data)]
    closes = [frame for frame in frames if isinstance(frame, CloseFrame)]
    assert len(closes) == 1
    return closes[0]


def confirmed_forger(pair: Pair) -> tuple[Forger, Session]:
    forger, server = forged_session(pair)
    pair.responder.endpoint.receive_datagram(forger.seal([PingFrame()]), INITIATOR_ADDRESS, 0.0)
    assert server.state is SessionState.ESTABLISHED
    pair.responder.endpoint.datagrams_to_send(0.0)
    return forger, server


def test_ack_of_a_packet_never_sent_is_a_protocol_violation() -> None:
    pair = make_pair()
    forger, server = confirmed_forger(pair)
    ack = AckFrame(ranges=((50, 50),), ack_delay_us=0)
    pair.responder.endpoint.receive_datagram(forger.seal([ack]), INITIATOR_ADDRESS, 0.0)
    assert server.state is SessionState.CLOSING
    close = forger_close(pair, forger)
    assert close.code is CloseReason.PROTOCOL_VIOLATION
    assert "never sent" in close.text
    pair.responder.drain()
    (event,) = pair.responder.of(SessionClosed)
    assert (event.reason, event.by_peer) == (CloseReason.PROTOCOL_VIOLATION, False)


def test_data_beyond_the_window_is_a_flow_control_violation() -> None:
    pair = make_pair()
    forger, server = confirmed_forger(pair)
    window = pair.responder.endpoint.config.session.receive_window_bytes
    greedy = DataFrame(0, window, 10, 0, bytes(10))
    pair.responder.endpoint.receive_datagram(forger.seal([greedy]), INITIATOR_ADDRESS, 0.0)
    assert server.state is SessionState.CLOSING
    assert forger_close(pair, forger).code is CloseReason.FLOW_CONTROL


def test_undecodable_frames_under_valid_keys_are_a_violation() -> None:
    pair = make_pair()
    forger, server = confirmed_forger(pair)
    pair.responder.endpoint.receive_datagram(
        forger.seal_plaintext(b"\x01\x07"), INITIATOR_ADDRESS, 0.0
    )
    assert server.state is SessionState.CLOSING
    assert forger_close(pair, forger).code is CloseReason.PROTOCOL_VIOLATION


def test_a_violation_while_closing_changes_nothing() -> None:
    pair = make_pair()
    forger, server = confirmed_forger(pair)
    pair.responder.endpoint.close_session(server, 0.0, CloseReason.SHUTDOWN, "bye")
    forger_close(pair, forger)
    ack = AckFrame(ranges=((50, 50),), ack_delay_us=0)  # frames are not processed now
    pair.responder.endpoint.receive_datagram(forger.seal([ack]), INITIATOR_ADDRESS, 0.0)
    assert server.state is SessionState.CLOSING
    assert forger_close(pair, forger) == CloseFrame(CloseReason.SHUTDOWN, "bye")
    pair.responder.drain()
    assert len(pair.responder.of(SessionClosed)) == 1


def test_undecodable_frames_while_closing_do_not_close_again() -> None:
    # Opening the packet raises the violation before any frame is looked at; a closing
    # session has nothing left to end, so it keeps closing as it was.
    pair = make_pair()
    forger, server = confirmed_forger(pair)
    pair.responder.endpoint.close_session(server, 0.0, CloseReason.SHUTDOWN, "bye")
    forger_close(pair, forger)
    deadline = server.get_timer()
    pair.responder.endpoint.receive_datagram(
        forger.seal_plaintext(b"\x01\x07"), INITIATOR_ADDRESS, 0.0
    )
    assert (server.state, server.get_timer()) == (SessionState.CLOSING, deadline)
    pair.responder.drain()
    assert pair.responder.of(SessionClosed) == [
        SessionClosed(CloseReason.SHUTDOWN, "bye", by_peer=False)
    ]
