"""Forward error correction between two sessions: switched on by loss, repairs in flight.

The pure wire of pairs.py moves datagrams with a fixed one-way delay (1/32 s). The client
first learns that its path loses packets (two data packets dropped and retransmitted),
which switches its FEC on; then a group of five messages is sent one packet each and
the second packet is dropped: the parity that follows the group rebuilds it at the
server a round trip before a retransmission could have arrived.
"""

from __future__ import annotations

from dataclasses import replace

from tests.core.pairs import (
    INITIATOR_ADDRESS,
    TEST_CONFIG,
    Datagram,
    Pair,
    drop_where,
    established_pair,
    forged_session,
)
from udpim.core import gf256
from udpim.core.events import MessageReceived
from udpim.core.fec import GROUP_SIZES, symbol
from udpim.core.frames import FecFrame, Frame, PingFrame
from udpim.core.state import SessionState
from udpim.core.wire import PacketType, encode_frames

GROUP = 5


def client_data(d: Datagram) -> bool:
    return d.source == INITIATOR_ADDRESS and d.kind is PacketType.DATA


def lose_two_messages(pair: Pair) -> None:
    """Send two messages whose packets are lost, and run until both are repaired."""
    dropped: list[Datagram] = []

    def next_two_messages(d: Datagram) -> bool:
        if client_data(d) and len(d.data) > 100 and len(dropped) < 2:
            dropped.append(d)
            return True
        return False

    pair.wire.hook = drop_where(next_two_messages)
    for number in range(2):
        pair.initiator.endpoint.send_message(
            pair.client, b"lost then resent %d " % number * 20, pair.wire.now
        )
        pair.wire.run(pair.wire.now + 0.01)
    pair.wire.run(pair.wire.now + 5.0)
    assert len(dropped) == 2
    pair.wire.hook = None


def lossy_pair(**config: object) -> Pair:
    """An established pair whose client has measured enough loss to send parity."""
    pair = established_pair(replace(TEST_CONFIG, **config))  # type: ignore[arg-type]
    lose_two_messages(pair)
    # FEC is on now; its first member goes out with a copy that wakes the receiver.
    send_spaced(pair, 1)
    pair.wire.run(pair.wire.now + 1.0)
    return pair


def send_spaced(pair: Pair, count: int) -> list[bytes]:
    """Send ``count`` messages 1 ms apart, so each goes in its own packet."""
    bodies = [b"message %d " % number * 10 for number in range(count)]
    for body in bodies:
        pair.initiator.endpoint.send_message(pair.client, body, pair.wire.now)
        pair.wire.run(pair.wire.now + 0.001)
    return bodies


def test_fec_switches_on_after_measured_loss_only() -> None:
    quiet = established_pair()
    send_spaced(quiet, 8)
    quiet.wire.run(quiet.wire.now + 2.0)
    assert quiet.client.statistics().fec_group_size == 0
    assert quiet.client.statistics().fec_parities_sent == 0
    assert lossy_pair().client.statistics().fec_group_size == GROUP_SIZES[0][1]


def test_a_lost_packet_is_rebuilt_from_the_parity() -> None:
    pair = lossy_pair()
    client, server = pair.client, pair.server
    mark = len(pair.wire.log)
    lost: list[Datagram] = []

    def second_data_packet(d: Datagram) -> bool:
        members = [x for x in pair.wire.log[mark:] if client_data(x) and len(x.data) > 100]
        if client_data(d) and len(d.data) > 100 and len(members) == 1 and not lost:
            lost.append(d)
            return True
        return False

    pair.wire.hook = drop_where(second_data_packet)
    bodies = send_spaced(pair, GROUP)
    pair.wire.run(pair.wire.now + 1.0)
    assert len(lost) == 1
    received = [e.payload for e in pair.responder.of(MessageReceived)][-GROUP:]
    assert received == bodies  # all delivered, in order, once
    assert server.statistics().packets_repaired == 1
    assert client.statistics().fec_parities_sent >= 2  # the wake-up copy, then the group


def test_delivery_time_of_the_repaired_message() -> None:
    pair = lossy_pair()
    mark = len(pair.wire.log)
    lost: list[Datagram] = []

    def first_data_packet(d: Datagram) -> bool:
        if client_data(d) and len(d.data) > 100 and not lost:
            lost.append(d)
            return True
        return False

    pair.wire.hook = drop_where(first_data_packet)
    start = pair.wire.now
    send_spaced(pair, GROUP)
    repaired_at = pair.wire.run_until(
        lambda: pair.server.statistics().packets_repaired == 1, pair.wire.now + 1.0
    )
    parity = next(d for d in pair.wire.log[mark:] if client_data(d) and d.sent_at >= start + 0.004)
    # Rebuilt when the parity arrived: sent with the last member, one way later.
    assert repaired_at == parity.arrive_at
    assert repaired_at - start < 2 * pair.wire.delay_s  # a retransmission needs > 1 RTT


def test_a_late_copy_of_a_repaired_packet_is_a_replay() -> None:
    pair = lossy_pair()
    held: list[Datagram] = []

    def hold_first(d: Datagram) -> bool:
        if client_data(d) and len(d.data) > 100 and not held:
            held.append(d)
            return True
        return False

    pair.wire.hook = drop_where(hold_first)
    bodies = send_spaced(pair, GROUP)
    pair.wire.run(pair.wire.now + 1.0)
    assert pair.server.statistics().packets_repaired == 1
    pair.wire.inject(held[0].data, held[0].source, held[0].destination)
    pair.wire.run(pair.wire.now + 1.0)
    received = [e.payload for e in pair.responder.of(MessageReceived)][-GROUP:]
    assert received == bodies
    assert pair.server.statistics().drops.get("replayed") == 1


def test_without_fec_the_loss_is_repaired_by_retransmission_only() -> None:
    pair = lossy_pair(fec=False)
    assert pair.client.statistics().fec_group_size == 0
    lost: list[Datagram] = []

    def first_data_packet(d: Datagram) -> bool:
        if client_data(d) and len(d.data) > 100 and not lost:
            lost.append(d)
            return True
        return False

    pair.wire.hook = drop_where(first_data_packet)
    bodies = send_spaced(pair, GROUP)
    pair.wire.run(pair.wire.now + 2.0)
    assert [e.payload for e in pair.responder.of(MessageReceived)][-GROUP:] == bodies
    assert pair.server.statistics().packets_repaired == 0
    assert pair.client.statistics().frames_retransmitted >= 1


def test_a_rebuilt_packet_the_replay_window_has_passed_is_not_processed() -> None:
    """A peer that lets pending repairs age past the replay window gets nothing from
    them: a packet that old is never processed, rebuilt or not."""
    pair = established_pair()
    forger, session = forged_session(pair)
    responder = pair.responder.endpoint
    ping = encode_frames([PingFrame()])

    def repair(seed: int, members: list[int]) -> FecFrame:
        total = 0
        for number in members:
            total ^= gf256.to_int(gf256.scale(symbol(ping), gf256.coefficient(seed, number)))
        first = members[0]
        bitmap = sum(1 << (number - first) for number in members)
        return FecFrame(first, bitmap, seed, gf256.to_bytes(total, len(symbol(ping))))

    def deliver(frame: Frame) -> None:
        data = forger.seal([frame], pair.wire.now)
        responder.receive_datagram(data, INITIATOR_ADDRESS, pair.wire.now)

    deliver(PingFrame())  # confirms the session
    deliver(repair(1, [100, 101, 140]))  # two equations, three unknowns: pending
    deliver(repair(2, [100, 101, 140]))
    forger.next_packet_number = 100 + TEST_CONFIG.replay_window_packets + 10
    deliver(PingFrame())  # 100 and 101 are now older than the replay window
    deliver(repair(3, [140]))  # solves all three
    statistics = session.statistics()
    assert statistics.packets_repaired == 1  # 140 only
    assert statistics.state is SessionState.ESTABLISHED


def test_loss_after_a_loss_free_stretch_is_measured_from_the_last_report() -> None:
    # The client keeps no FEC encoder while the server's LOSS_REPORTs count no loss, but
    # the first report that counts one is measured against the last report before it,
    # as an encoder that had seen them all would measure it: two losses among a few new
    # packets switch FEC on, not two among the 200 received since the session began.
    pair = established_pair()
    send_spaced(pair, 200)
    pair.wire.run(pair.wire.now + 2.0)
    assert pair.client.statistics().fec_group_size == 0
    lose_two_messages(pair)
    assert pair.client.statistics().fec_group_size == GROUP_SIZES[0][1]
