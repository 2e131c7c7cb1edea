"""Loss recovery and acknowledgement timers of a live session pair, scripted by hand.

aioquic's ``test_connect_with_loss_*`` style: a quiet established pair at ``now = 1.0``,
chosen datagrams dropped, time jumped to ``get_timer()``, exact deadlines asserted.

The numbers (``pairs.TEST_CONFIG``, one-way delay 1/32 s): the handshake's confirming
PING leaves at 1/16 s and, a PING alone being acknowledged without delay, its ACK
arrives at 1/8 s, so the initiator's only RTT sample is 1/16 s: smoothed 1/16, rttvar
1/32, and PTO = 1/16 + 4 * 1/32 + 1/16 (max_ack_delay) = 1/4 s. Every value is a
binary fraction, so the deadlines compare exactly.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

from tests.core.pairs import (
    INITIATOR_ADDRESS,
    TEST_CONFIG,
    Datagram,
    Pair,
    drop_where,
    established_pair,
    truncated_packet_number,
)
from udpim.core.events import MessageDelivered, MessageReceived
from udpim.core.wire import PacketType

CFG = TEST_CONFIG
PTO_S = 1 / 4
QUIET = 1.0


def quiet_pair(config: object = CFG) -> Pair:
    pair = established_pair(config)  # type: ignore[arg-type]
    pair.wire.run(QUIET)
    stats = pair.client.statistics()
    assert (stats.smoothed_rtt_s, stats.rttvar_s, stats.latest_rtt_s) == (1 / 16, 1 / 32, 1 / 16)
    return pair


def client_data(pair: Pair, since: int) -> list[Datagram]:
    return [
        d
        for d in pair.wire.log[since:]
        if d.source == INITIATOR_ADDRESS and d.kind is PacketType.DATA
    ]


def server_data(pair: Pair, since: int) -> list[Datagram]:
    return [d for d in pair.wire.log[since:] if d.source != INITIATOR_ADDRESS]


def test_pto_fires_at_the_probe_timeout_and_backs_off() -> None:
    pair = quiet_pair()
    client = pair.client
    pair.wire.hook = drop_where(lambda d: d.source == INITIATOR_ADDRESS)
    mark = len(pair.wire.log)
    pair.initiator.endpoint.send_message(client, b"m" * 100, QUIET)
    pair.wire.flush()
    assert client.get_timer() == QUIET + PTO_S
    expected = [QUIET + PTO_S]
    for backoff in (2, 4, 8, 16):
        expected.append(expected[-1] + PTO_S * backoff)
    for deadline, following in itertools.pairwise(expected):
        assert client.get_timer() == deadline
        pair.wire.step()
        assert pair.wire.now == deadline
        assert client.get_timer() == following
    pair.wire.step()
    sent = client_data(pair, mark)
    times = [d.sent_at for d in sent]
    # The first PTO sends one probe (one packet in flight), later ones two.
    assert times == [QUIET, expected[0]] + [t for t in expected[1:] for _ in range(2)]
    # Every probe is a new packet: new packet number, new bytes (frames, not datagrams).
    numbers = [truncated_packet_number(d.data) for d in sent]
    assert numbers == sorted(set(numbers))
    assert len({d.data for d in sent}) == len(sent)
    # The first probe of each PTO carries the data again (same size as the original).
    sizes = [len(d.data) for d in sent]
    assert sizes[1] == sizes[0]
    assert sizes[2::2] == [sizes[0]] * 4
    assert client.statistics().probes_sent == 9


def test_delivery_resumes_once_the_wire_heals() -> None:
    pair = quiet_pair()
    client = pair.client
    pair.wire.hook = drop_where(lambda d: d.source == INITIATOR_ADDRESS)
    pair.initiator.endpoint.send_message(client, b"m" * 100, QUIET)
    pair.wire.run(15.0)
    pair.wire.hook = None
    pair.wire.run(30.0)
    assert pair.responder.of(MessageReceived) == [MessageReceived(0, b"m" * 100)]
    assert pair.initiator.of(MessageDelivered) == [MessageDelivered(0)]
    assert pair.server.statistics().drops == {}


def test_probe_backoff_is_capped() -> None:
    config = replace(CFG, max_pto_backoff=2, heartbeat_interval_s=1000.0)
    pair = quiet_pair(config)
    client = pair.client
    pair.wire.hook = drop_where(lambda d: d.source == INITIATOR_ADDRESS)
    pair.initiator.endpoint.send_message(client, b"x", QUIET)
    pair.wire.flush()
    deadlines = []
    for _ in range(6):
        deadline = client.get_timer()
        assert deadline is not None
        deadlines.append(deadline)
        pair.wire.step()
    gaps = [b - a for a, b in itertools.pairwise(deadlines)]
    assert deadlines[0] == QUIET + PTO_S
    assert gaps == [PTO_S * 2, PTO_S * 4, PTO_S * 4, PTO_S * 4, PTO_S * 4]


def test_delayed_ack_waits_max_ack_delay() -> None:
    pair = quiet_pair()
    server = pair.server
    mark = len(pair.wire.log)
    pair.initiator.endpoint.send_message(pair.client, b"one", QUIET)
    arrival = QUIET + pair.wire.delay_s
    pair.wire.run(arrival)
    assert server.get_timer() == arrival + CFG.max_ack_delay_s
    pair.wire.run(arrival + CFG.max_ack_delay_s - 1 / 1024)
    assert server_data(pair, mark) == []
    pair.wire.run(arrival + CFG.max_ack_delay_s)
    (ack,) = server_data(pair, mark)
    assert ack.sent_at == arrival + CFG.max_ack_delay_s


def test_every_fourth_packet_is_acknowledged_at_once() -> None:
    pair = quiet_pair()
    mark = len(pair.wire.log)
    endpoint = pair.initiator.endpoint
    for letter in b"abcd":
        endpoint.send_message(pair.client, bytes([letter]) * 1000, QUIET)
    pair.wire.run(QUIET + 0.5)
    assert len(client_data(pair, mark)) == 4
    (ack,) = server_data(pair, mark)
    assert ack.sent_at == QUIET + pair.wire.delay_s


def test_gap_triggers_an_immediate_ack_and_packet_threshold_loss() -> None:
    pair = quiet_pair()
    client, server = pair.client, pair.server
    mark = len(pair.wire.log)
    first = mark  # the first DATA datagram the client sends from now on
    pair.wire.hook = drop_where(lambda d: d.index == first)
    messages = [bytes([n]) * 1000 for n in range(6)]  # six packets
    for message in messages:
        pair.initiator.endpoint.send_message(client, message, QUIET)
    arrival = QUIET + pair.wire.delay_s
    pair.wire.run(arrival)
    # The second packet arrived with a gap below it: acknowledged at once, not delayed.
    acks = server_data(pair, mark)
    assert acks
    assert acks[0].sent_at == arrival
    back = arrival + pair.wire.delay_s
    pair.wire.run(back)
    stats = client.statistics()
    assert stats.packets_lost == 1
    assert stats.frames_retransmitted == 2  # message 0 and the head of message 1
    sent = client_data(pair, mark)
    assert [d.sent_at for d in sent] == [QUIET] * 6 + [back]
    retransmission = sent[-1]
    assert truncated_packet_number(retransmission.data) != truncated_packet_number(sent[0].data)
    assert retransmission.data != sent[0].data
    pair.wire.run(back + 1.0)
    assert [e.payload for e in pair.responder.of(MessageReceived)] == messages
    assert [e.message_number for e in pair.initiator.of(MessageDelivered)] == list(range(6))
    assert server.statistics().drops == {}


def test_time_threshold_loss() -> None:
    pair = quiet_pair()
    client = pair.client
    mark = len(pair.wire.log)
    first = mark
    pair.wire.hook = drop_where(lambda d: d.index == first)
    for n in range(2):
        pair.initiator.endpoint.send_message(client, bytes([n]) * 1000, QUIET)
    back = QUIET + 2 * pair.wire.delay_s  # the immediate ACK of packet 2 is back
    pair.wire.run(back)
    stats = client.statistics()
    assert stats.packets_lost == 0  # one packet later is not enough (threshold 3)
    # smoothed = 7/8 * 1/16 + 1/8 * 1/16, latest = 1/16: loss after 9/8 * smoothed.
    assert (stats.smoothed_rtt_s, stats.latest_rtt_s) == (1 / 16, 1 / 16)
    loss_time = QUIET + 9 / 8 * 1 / 16
    assert client.get_timer() == loss_time
    pair.wire.run(loss_time)
    assert client.statistics().packets_lost == 1
    assert [d.sent_at for d in client_data(pair, mark)] == [QUIET, QUIET, loss_time]
    pair.wire.run(loss_time + 1.0)
    assert len(pair.responder.of(MessageReceived)) == 2


def test_lost_ack_is_repaired_by_the_probe() -> None:
    pair = quiet_pair()
    client = pair.client
    mark = len(pair.wire.log)
    pair.wire.hook = drop_where(lambda d: d.source != INITIATOR_ADDRESS and d.index >= mark)
    pair.initiator.endpoint.send_message(client, b"data", QUIET)
    pair.wire.run(QUIET + PTO_S)
    pair.wire.hook = None
    pair.wire.run(QUIET + 2.0)
    # The probe's duplicate data is ignored; one message, one delivery.
    assert pair.responder.of(MessageReceived) == [MessageReceived(0, b"data")]
    assert pair.initiator.of(MessageDelivered) == [MessageDelivered(0)]
