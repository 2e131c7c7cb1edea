"""Message delivery between two Sessions: exactly once, in order, acknowledged, flow
controlled, over a clean wire and over one that drops, duplicates and reorders."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from tests.core.pairs import (
    INITIATOR_ADDRESS,
    TEST_CONFIG,
    Datagram,
    Hook,
    Pair,
    delayed,
    established_pair,
    forged_session,
    make_pair,
)
from udpim.core.config import INITIAL_MAX_DATA_BYTES
from udpim.core.errors import LocalProtocolError
from udpim.core.events import MessageDelivered, MessageReceived
from udpim.core.frames import AckFrame, PingFrame, WindowFrame
from udpim.core.session import Session
from udpim.core.state import SessionState

CFG = TEST_CONFIG


def payloads(count: int, size: int, seed: int = 0) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(size) for _ in range(count)]


def send_all(pair: Pair, session: Session, messages: list[bytes]) -> list[int]:
    endpoint = pair.initiator.endpoint if session is pair.client else pair.responder.endpoint
    return [endpoint.send_message(session, message, pair.wire.now) for message in messages]


def received(pair: Pair, side: str) -> list[bytes]:
    host = pair.initiator if side == "initiator" else pair.responder
    return [event.payload for event in host.of(MessageReceived)]


def delivered(pair: Pair, side: str) -> list[int]:
    host = pair.initiator if side == "initiator" else pair.responder
    return [event.message_number for event in host.of(MessageDelivered)]


@pytest.mark.parametrize(
    ("count", "size"),
    [(1, 0), (1, 1), (20, 100), (5, 1_150), (3, 5_000), (1, CFG.max_message_bytes)],
    ids=["empty", "one-byte", "small", "near-datagram", "fragmented", "1MiB"],
)
def test_messages_arrive_once_in_order_and_are_acknowledged(count: int, size: int) -> None:
    pair = established_pair()
    messages = payloads(count, size)
    numbers = send_all(pair, pair.client, messages)
    assert numbers == list(range(count))
    pair.wire.run_until(lambda: len(delivered(pair, "initiator")) == count, 120.0)
    pair.wire.run(pair.wire.now + 1.0)
    assert received(pair, "responder") == messages
    assert pair.responder.of(MessageReceived) == [
        MessageReceived(n, m) for n, m in enumerate(messages)
    ]
    assert delivered(pair, "initiator") == numbers
    client, server = pair.client.statistics(), pair.server.statistics()
    assert (client.messages_sent, client.messages_delivered) == (count, count)
    assert server.messages_received == count
    assert client.bytes_in_flight == 0
    assert client.drops == server.drops == {}


def test_both_directions_at_once() -> None:
    pair = established_pair()
    up, down = payloads(10, 700, seed=1), payloads(10, 900, seed=2)
    send_all(pair, pair.client, up)
    send_all(pair, pair.server, down)
    pair.wire.run(pair.wire.now + 5.0)
    assert received(pair, "responder") == up
    assert received(pair, "initiator") == down
    assert delivered(pair, "initiator") == delivered(pair, "responder") == list(range(10))


def test_messages_queued_before_the_handshake_are_delivered_after_it() -> None:
    pair = make_pair()
    client = pair.connect()
    messages = payloads(3, 2_000)
    send_all(pair, client, messages)
    assert client.state is SessionState.INITIATING
    pair.wire.run(3.0)
    assert pair.initiator.event_types()[0] == "SessionEstablished"
    assert pair.responder.event_types()[0] == "SessionEstablished"
    assert received(pair, "responder") == messages
    assert delivered(pair, "initiator") == [0, 1, 2]


def test_oversized_message_is_refused_and_changes_nothing() -> None:
    pair = established_pair()
    before = pair.client.statistics()
    with pytest.raises(LocalProtocolError):
        send_all(pair, pair.client, [bytes(CFG.max_message_bytes + 1)])
    assert pair.client.statistics() == before
    assert send_all(pair, pair.client, [b"next"]) == [0]


def impaired(seed: int, loss: float, duplicate: float, reorder: float) -> Hook:
    rng = random.Random(seed)

    def hook(datagram: Datagram) -> list[Datagram]:
        if rng.random() < loss:
            return []
        copies = [datagram]
        if rng.random() < duplicate:
            copies.append(delayed(datagram, rng.random() / 16))
        if rng.random() < reorder:
            copies[0] = delayed(datagram, rng.random() / 8)
        return copies

    return hook


@pytest.mark.parametrize("seed", range(4))
def test_exactly_once_in_order_over_a_bad_wire(seed: int) -> None:
    pair = established_pair()
    pair.wire.hook = impaired(seed, loss=0.1, duplicate=0.1, reorder=0.2)
    messages = payloads(40, 300 + 397 * seed, seed=seed)
    up = send_all(pair, pair.client, messages)
    send_all(pair, pair.server, messages[::-1])
    done = lambda: len(delivered(pair, "initiator")) == len(delivered(pair, "responder")) == 40  # noqa: E731
    pair.wire.run_until(done, 300.0)
    pair.wire.run(pair.wire.now + 2.0)
    assert received(pair, "responder") == messages
    assert received(pair, "initiator") == messages[::-1]
    assert delivered(pair, "initiator") == up
    client, server = pair.client.statistics(), pair.server.statistics()
    assert client.packets_lost + server.packets_lost + client.probes_sent + server.probes_sent > 0
    drops = pair.initiator.drops() | pair.responder.drops()
    assert set(drops) <= {"replayed"}  # network duplicates only


def test_slow_reader_blocks_the_sender_without_loss_then_resumes() -> None:
    config = replace(CFG, max_message_bytes=512 * 1024)  # window: 2 MiB, the protocol minimum
    pair = established_pair(config)
    messages = payloads(24, 256 * 1024, seed=3)  # 6 MiB: three windows' worth
    pair.responder.draining = False  # the application stops reading
    send_all(pair, pair.client, messages)
    pair.wire.run(pair.wire.now + 10.0)
    blocked = pair.client.statistics()
    assert blocked.bytes_in_flight == 0  # everything sent was acknowledged ...
    assert blocked.messages_delivered == 8  # ... and it is exactly one window's worth
    sent_bytes = blocked.bytes_sent
    pair.wire.run(pair.wire.now + 10.0)
    still = pair.client.statistics()
    assert still.messages_delivered == 8
    # Only keepalive traffic while blocked, no data.
    assert still.bytes_sent - sent_bytes < 200
    assert received(pair, "responder") == []
    assert pair.initiator.drops() == pair.responder.drops() == {}

    pair.responder.draining = True
    pair.wire.run(pair.wire.now + 10.0)
    assert received(pair, "responder") == messages
    assert delivered(pair, "initiator") == list(range(24))
    assert pair.initiator.drops() == pair.responder.drops() == {}


def test_reading_reopens_the_window_a_message_at_a_time() -> None:
    config = replace(CFG, max_message_bytes=512 * 1024)  # window: 2 MiB
    pair = established_pair(config)
    pair.responder.draining = False
    send_all(pair, pair.client, payloads(16, 256 * 1024, seed=4))
    pair.wire.run(pair.wire.now + 5.0)
    assert pair.client.statistics().messages_delivered == 8
    endpoint = pair.responder.endpoint
    # Four reads (1 MiB consumed: half the window) earn a WINDOW update for four more.
    for _ in range(4):
        event = endpoint.next_event()
        assert event is not None
        assert isinstance(event[1], MessageReceived)
    pair.wire.run(pair.wire.now + 5.0)
    assert pair.client.statistics().messages_delivered == 12


def test_a_lost_window_update_is_advertised_again() -> None:
    # A receive window above the initial credit is advertised in the first packet. The
    # forger never acknowledges that packet, only the three after it: it is declared
    # lost (packet threshold) and the next packet carries the WINDOW frame again.
    window = 2 * INITIAL_MAX_DATA_BYTES
    pair = make_pair(replace(CFG, receive_window_bytes=window))
    forger, server = forged_session(pair)
    hub = pair.responder.endpoint
    hub.receive_datagram(forger.seal([PingFrame()]), INITIATOR_ADDRESS, 0.0)
    first = [frame for data, _ in hub.datagrams_to_send(0.0) for frame in forger.open(data)]
    assert WindowFrame(window) in first
    for number in range(3):
        hub.send_message(server, bytes([number]), 0.0)
        assert len(hub.datagrams_to_send(0.0)) == 1  # packets 1, 2, 3: one message each
    hub.receive_datagram(forger.seal([AckFrame(((1, 3),), 0)]), INITIATOR_ADDRESS, 0.0)
    assert server.statistics().packets_lost == 1
    again = [frame for data, _ in hub.datagrams_to_send(0.0) for frame in forger.open(data)]
    assert again == [WindowFrame(window)]
