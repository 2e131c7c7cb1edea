"""Path migration of a live pair: NAT rebinding, path validation within the
anti-amplification budget, reordered old packets, and falling back on timeout."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace

from tests.core.pairs import (
    INITIATOR_ADDRESS,
    REBOUND_ADDRESS,
    RESPONDER_ADDRESS,
    TEST_CONFIG,
    Datagram,
    Pair,
    Wire,
    delayed,
    established_pair,
)
from udpim.core.events import MessageDelivered, MessageReceived, PathChanged
from udpim.core.state import SessionState

CFG = TEST_CONFIG
MOVED_RESPONDER = ("127.1.0.2", 7001)


def rebind_after(
    index: int, old: tuple[str, int], new: tuple[str, int]
) -> Callable[[Datagram], list[Datagram]]:
    """A NAT that maps ``old`` to ``new`` for every datagram from log index ``index`` on."""

    def hook(datagram: Datagram) -> list[Datagram]:
        if datagram.source == old and datagram.index >= index:
            return [replace(datagram, source=new)]
        return [datagram]

    return hook


def assert_budget_kept(wire: Wire, pair: Pair, address: tuple[str, int], until: float) -> None:
    """Before ``until`` (validation), the responder never sent ``address`` more bytes than
    it had received from it, at any moment."""
    arrivals = [d for d in pair.responder.received if d.source == address]
    sent = [d for d in wire.log if d.destination == address and d.source == RESPONDER_ADDRESS]
    total_out = 0
    for datagram in sent:
        if datagram.sent_at > until:
            break
        total_out += len(datagram.data)
        total_in = sum(len(d.data) for d in arrivals if d.arrive_at <= datagram.sent_at)
        assert total_out <= total_in, (datagram.sent_at, total_out, total_in)


def stream(pair: Pair, count: int, every_s: float, start: float) -> list[bytes]:
    """Send ``count`` messages, one every ``every_s``, from the initiator."""
    rng = random.Random(count)
    messages = [rng.randbytes(rng.randrange(1, 3000)) for _ in range(count)]
    for n, message in enumerate(messages):
        pair.wire.run(start + n * every_s)
        pair.initiator.endpoint.send_message(pair.client, message, pair.wire.now)
    return messages


def test_nat_rebinding_mid_stream_validates_the_new_path() -> None:
    pair = established_pair()
    wire = pair.wire
    wire.run(1.0)
    wire.route(REBOUND_ADDRESS, pair.initiator)
    wire.hook = rebind_after(len(wire.log) + 6, INITIATOR_ADDRESS, REBOUND_ADDRESS)
    messages = stream(pair, 30, 0.05, 1.0)
    wire.run(wire.now + 3.0)
    server = pair.server
    assert pair.responder.of(PathChanged) == [PathChanged(INITIATOR_ADDRESS, REBOUND_ADDRESS)]
    assert server.peer_address == REBOUND_ADDRESS
    assert server.statistics().path_migrations == 1
    # Nothing lost, nothing twice, every message acknowledged.
    assert [e.payload for e in pair.responder.of(MessageReceived)] == messages
    assert [e.message_number for e in pair.initiator.of(MessageDelivered)] == list(range(30))
    assert pair.responder.drops() == {}
    changed_at = next(
        d.arrive_at
        for d in pair.responder.received
        if d.source == REBOUND_ADDRESS and d.arrive_at > 1.0
    )
    assert_budget_kept(wire, pair, REBOUND_ADDRESS, changed_at + 1.0)
    # Once moved, nothing more goes to the old mapping.
    late = [d for d in wire.log if d.destination == INITIATOR_ADDRESS and d.sent_at > changed_at]
    assert late == []


def test_rebinding_while_idle_costs_one_probe_and_keeps_the_budget() -> None:
    pair = established_pair()
    wire = pair.wire
    wire.run(1.0)
    wire.route(REBOUND_ADDRESS, pair.initiator)
    wire.hook = rebind_after(len(wire.log), INITIATOR_ADDRESS, REBOUND_ADDRESS)
    wire.run_until(lambda: bool(pair.responder.of(PathChanged)), 30.0)
    # The heartbeat (a bare PING) is smaller than a PATH_CHALLENGE packet, so the
    # challenge waits for the initiator's probe to widen the budget.
    assert_budget_kept(wire, pair, REBOUND_ADDRESS, wire.now)
    assert pair.server.peer_address == REBOUND_ADDRESS
    assert pair.client.statistics().probes_sent == 1
    pair.initiator.endpoint.send_message(pair.client, b"still here", wire.now)
    wire.run(wire.now + 1.0)
    assert pair.responder.of(MessageReceived) == [MessageReceived(0, b"still here")]


def test_reordered_old_packet_does_not_move_the_path_back() -> None:
    pair = established_pair()
    wire = pair.wire
    wire.run(1.0)
    wire.route(REBOUND_ADDRESS, pair.initiator)
    first = len(wire.log)
    rebind = rebind_after(first + 1, INITIATOR_ADDRESS, REBOUND_ADDRESS)

    def hook(datagram: Datagram) -> list[Datagram]:
        if datagram.index == first:  # sent before the rebinding, arrives last
            return [delayed(datagram, 0.5)]
        return rebind(datagram)

    wire.hook = hook
    messages = stream(pair, 10, 0.01, 1.0)
    server = pair.server
    straggler_at = wire.log[first].arrive_at + 0.5
    wire.run(straggler_at)
    assert server.peer_address == REBOUND_ADDRESS
    wire.run(wire.now + 3.0)
    assert server.peer_address == REBOUND_ADDRESS
    moved_at = min(d.arrive_at for d in pair.responder.received if d.source == REBOUND_ADDRESS)
    assert not [d for d in wire.log if d.destination == INITIATOR_ADDRESS and d.sent_at > moved_at]
    late = [
        d for d in pair.responder.received if d.source == INITIATOR_ADDRESS and d.arrive_at > 1.0
    ]
    assert len(late) == 1  # the straggler did arrive from the old address ...
    assert pair.responder.of(PathChanged) == [PathChanged(INITIATOR_ADDRESS, REBOUND_ADDRESS)]
    assert [e.payload for e in pair.responder.of(MessageReceived)] == messages  # ... and counted


def test_validation_timeout_falls_back_to_the_old_path() -> None:
    pair = established_pair()
    wire = pair.wire
    wire.run(1.0)
    server = pair.server
    start = len(wire.log)
    # One packet arrives via an address that cannot be answered (no route back);
    # then the initiator's packets are lost for a while.
    spoofed = ("127.1.0.66", 666)

    def hook(datagram: Datagram) -> list[Datagram]:
        if datagram.source != INITIATOR_ADDRESS:
            return [datagram]
        if datagram.index == start:
            return [replace(datagram, source=spoofed)]
        return [] if datagram.sent_at < 6.0 else [datagram]

    wire.hook = hook
    pair.initiator.endpoint.send_message(pair.client, b"via elsewhere", 1.0)
    arrival = 1.0 + wire.delay_s
    wire.run(arrival)
    assert server.peer_address == spoofed
    wire.run(arrival + CFG.path_validation_timeout_s - 1 / 1024)
    assert server.peer_address == spoofed
    wire.run(arrival + CFG.path_validation_timeout_s)
    assert server.peer_address == INITIATOR_ADDRESS
    wire.run(10.0)
    assert pair.responder.of(PathChanged) == []
    assert server.statistics().path_migrations == 0
    sent_to_spoofed = sum(len(d.data) for d in wire.undeliverable if d.destination == spoofed)
    received_from_spoofed = sum(len(d.data) for d in pair.responder.received if d.source == spoofed)
    assert 0 < sent_to_spoofed <= received_from_spoofed
    pair.initiator.endpoint.send_message(pair.client, b"home again", wire.now)
    wire.run(wire.now + 1.0)
    assert [e.payload for e in pair.responder.of(MessageReceived)] == [
        b"via elsewhere",
        b"home again",
    ]


def test_a_copy_from_another_address_cannot_steal_the_path() -> None:
    # An on-path attacker forwards a copy of a genuine packet from its own address
    # ahead of the original: the path moves, but the next genuine packet from the
    # validated address moves it back.
    pair = established_pair()
    wire = pair.wire
    wire.run(1.0)
    server = pair.server
    attacker = ("127.1.0.66", 666)
    start = len(wire.log)

    def hook(datagram: Datagram) -> list[Datagram]:
        if datagram.index == start:
            copy = replace(datagram, source=attacker, arrive_at=datagram.arrive_at - 0.01)
            return [copy, datagram]
        return [datagram]

    wire.hook = hook
    messages = stream(pair, 20, 0.02, 1.0)
    wire.run(wire.now + 2.0)
    assert server.peer_address == INITIATOR_ADDRESS
    assert pair.responder.of(PathChanged) == []
    assert [e.payload for e in pair.responder.of(MessageReceived)] == messages
    sent_to_attacker = sum(len(d.data) for d in wire.undeliverable if d.destination == attacker)
    assert sent_to_attacker <= len(wire.log[start].data)
    assert pair.responder.drops() == {"replayed": 1}  # the original, after its copy


def test_the_initiator_follows_a_responder_that_moved() -> None:
    pair = established_pair()
    wire = pair.wire
    wire.run(1.0)
    client = pair.client
    wire.route(MOVED_RESPONDER, pair.responder)
    wire.hook = rebind_after(len(wire.log), RESPONDER_ADDRESS, MOVED_RESPONDER)
    down = stream_from_responder(pair, 10)
    wire.run(wire.now + 40.0)
    assert client.peer_address == MOVED_RESPONDER
    assert pair.initiator.of(PathChanged) == [PathChanged(RESPONDER_ADDRESS, MOVED_RESPONDER)]
    assert [e.payload for e in pair.initiator.of(MessageReceived)] == down
    assert client.state is SessionState.ESTABLISHED
    assert client.statistics().heartbeats_sent >= 4


def stream_from_responder(pair: Pair, count: int) -> list[bytes]:
    messages = [bytes([n]) * 50 for n in range(count)]
    for message in messages:
        pair.responder.endpoint.send_message(pair.server, message, pair.wire.now)
    return messages


def test_an_exhausted_budget_holds_output_without_stalling_the_timer() -> None:
    # The responder moves, its first packet arrives, then nothing more: the initiator's
    # new path has a budget of one small packet. Heartbeats (every 0.5 s here) and ACKs
    # wait for room, and no deadline stays in the past (the wire checks every step);
    # when validation times out the initiator falls back and its owed output leaves.
    config = replace(CFG, heartbeat_interval_s=0.5)
    pair = established_pair(config)
    wire = pair.wire
    wire.run(1.0)
    client = pair.client
    wire.route(MOVED_RESPONDER, pair.responder)
    start = len(wire.log)
    rebind = rebind_after(start, RESPONDER_ADDRESS, MOVED_RESPONDER)
    wire.hook = lambda d: rebind(d) if d.index == start or d.source == INITIATOR_ADDRESS else []
    pair.responder.endpoint.send_message(pair.server, b"x", wire.now)
    beats = client.statistics().heartbeats_sent
    arrival = 1.0 + wire.delay_s
    wire.run(arrival + CFG.path_validation_timeout_s - 1 / 1024)
    assert client.peer_address == MOVED_RESPONDER
    budget = len(wire.log[start].data)
    spent = [d for d in wire.log[start:] if d.source == INITIATOR_ADDRESS]
    assert sum(len(d.data) for d in spent) <= budget
    assert client.statistics().heartbeats_sent == beats + 1  # the next one is owed
    wire.run(arrival + CFG.path_validation_timeout_s)
    assert client.peer_address == RESPONDER_ADDRESS
    assert client.statistics().heartbeats_sent == beats + 2
    assert pair.initiator.of(MessageReceived) == [MessageReceived(0, b"x")]
    assert client.state is SessionState.ESTABLISHED
