"""Key updates of a live pair: by time and by packet count, without loss or pause, and
with late packets of the previous key phase still accepted."""

from __future__ import annotations

import itertools
from dataclasses import replace

from tests.core.pairs import (
    INITIATOR_ADDRESS,
    TEST_CONFIG,
    Datagram,
    Pair,
    delayed,
    established_pair,
)
from udpim.core.events import MessageReceived
from udpim.core.wire import PacketType, decode_data_header_untrusted

CFG = TEST_CONFIG


def phases(pair: Pair, from_initiator: bool) -> list[int]:
    """The key phase of every DATA datagram one side sent, in order."""
    return [
        decode_data_header_untrusted(d.data).key_phase
        for d in pair.wire.log
        if d.kind is PacketType.DATA and (d.source == INITIATOR_ADDRESS) == from_initiator
    ]


def flips(sequence: list[int]) -> int:
    return sum(1 for a, b in itertools.pairwise(sequence) if a != b)


def stream_both_ways(pair: Pair, count: int, every_s: float) -> None:
    """A message each way every ``every_s``; each must arrive one delay later (no pause)."""
    start = pair.wire.now
    for n in range(count):
        now = start + n * every_s
        pair.wire.run(now)
        pair.initiator.endpoint.send_message(pair.client, b"up %d" % n, now)
        pair.responder.endpoint.send_message(pair.server, b"down %d" % n, now)
        pair.wire.run(now + pair.wire.delay_s)
        assert len(pair.responder.of(MessageReceived)) == n + 1
        assert len(pair.initiator.of(MessageReceived)) == n + 1


def assert_clean(pair: Pair, count: int) -> None:
    assert [e.payload for e in pair.responder.of(MessageReceived)] == [
        b"up %d" % n for n in range(count)
    ]
    assert [e.payload for e in pair.initiator.of(MessageReceived)] == [
        b"down %d" % n for n in range(count)
    ]
    assert pair.initiator.drops() == pair.responder.drops() == {}


def test_key_phase_flips_after_rekey_after_s_without_pause() -> None:
    config = replace(CFG, rekey_after_s=4.0)
    pair = established_pair(config)
    stream_both_ways(pair, 40, 0.25)  # ten seconds
    client, server = pair.client.statistics(), pair.server.statistics()
    assert client.key_updates_sent == server.key_updates_received == 2
    assert server.key_updates_sent == client.key_updates_received == 2
    assert flips(phases(pair, True)) == flips(phases(pair, False)) == 2
    assert_clean(pair, 40)


def test_no_update_before_rekey_after_s() -> None:
    pair = established_pair()
    stream_both_ways(pair, 20, 0.25)
    assert pair.client.statistics().key_updates_sent == 0
    assert set(phases(pair, True)) == {0}


def test_key_phase_flips_after_rekey_after_packets() -> None:
    config = replace(CFG, rekey_after_packets=16)
    pair = established_pair(config)
    stream_both_ways(pair, 40, 0.05)
    client, server = pair.client.statistics(), pair.server.statistics()
    sent = phases(pair, True)
    assert client.key_updates_sent == flips(sent) == server.key_updates_received
    # At most every 16 packets, and at least once per 16 + a round trip of packets.
    assert 2 <= client.key_updates_sent <= len(sent) // 16
    assert server.key_updates_sent == client.key_updates_received >= 1
    assert_clean(pair, 40)


def test_late_packets_of_the_previous_phase_still_decrypt() -> None:
    config = replace(CFG, rekey_after_packets=8)
    pair = established_pair(config)
    held: list[Datagram] = []

    def hook(datagram: Datagram) -> list[Datagram]:
        # Hold back every initiator DATA packet in phase 0 sent after the start, so
        # the packets after the first key update overtake them.
        if (
            datagram.source == INITIATOR_ADDRESS
            and datagram.kind is PacketType.DATA
            and decode_data_header_untrusted(datagram.data).key_phase == 0
            and datagram.sent_at > 0.5
        ):
            held.append(datagram)
            return [delayed(datagram, 0.1)]
        return [datagram]

    pair.wire.hook = hook
    messages = [b"m%d" % n for n in range(30)]
    for n, message in enumerate(messages):
        pair.wire.run(1.0 + n * 0.02)
        pair.initiator.endpoint.send_message(pair.client, message, pair.wire.now)
    pair.wire.run(5.0)
    arrivals = [d for d in pair.responder.received if d.kind is PacketType.DATA]
    order = [decode_data_header_untrusted(d.data).key_phase for d in arrivals]
    first_new = order.index(1)
    assert 0 in order[first_new:]  # an old-phase packet arrived after a new-phase one
    assert pair.server.statistics().key_updates_received >= 1
    assert [e.payload for e in pair.responder.of(MessageReceived)] == messages
    assert "decrypt-failed" not in pair.responder.drops()
    assert held
