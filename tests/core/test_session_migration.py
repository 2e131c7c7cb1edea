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
    Forger,
    Pair,
    Wire,
    delayed,
    established_pair,
    forged_session,
    make_pair,
)
from udpim.core.config import SessionConfig
from udpim.core.events import MessageDelivered, MessageReceived, PathChanged, SessionEstablished
from udpim.core.frames import (
    AckFrame,
    CloseFrame,
    CloseReason,
    PaddingFrame,
    PathChallengeFrame,
    PathResponseFrame,
    PingFrame,
)
from udpim.core.session import Session
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


def test_a_lost_path_challenge_is_sent_again() -> None:
    # Mid-stream rebinding as above, but the responder's first datagram to the new
    # address (the one carrying the PATH_CHALLENGE) is lost: when the later ones are
    # acknowledged, loss detection hands the challenge back and it goes out again.
    pair = established_pair()
    wire = pair.wire
    wire.run(1.0)
    wire.route(REBOUND_ADDRESS, pair.initiator)
    rebind = rebind_after(len(wire.log) + 6, INITIATOR_ADDRESS, REBOUND_ADDRESS)
    lost: list[Datagram] = []

    def hook(datagram: Datagram) -> list[Datagram]:
        if datagram.destination == REBOUND_ADDRESS and not lost:
            lost.append(datagram)
            return []
        return rebind(datagram)

    wire.hook = hook
    messages = stream(pair, 30, 0.05, 1.0)
    (challenge,) = lost
    # Validated before the first challenge's timeout: by the copy sent again.
    wire.run(challenge.sent_at + CFG.path_validation_timeout_s - 1 / 1024)
    assert pair.responder.of(PathChanged) == [PathChanged(INITIATOR_ADDRESS, REBOUND_ADDRESS)]
    assert pair.server.statistics().packets_lost == 1
    assert [e.payload for e in pair.responder.of(MessageReceived)] == messages
    assert [e.message_number for e in pair.initiator.of(MessageDelivered)] == list(range(30))


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


def responder_moves_once(config: SessionConfig, *, keep_initiator: bool) -> tuple[Pair, int]:
    """At 1.0 s the responder moves and sends b"x"; only that first packet from its new
    address gets through (and, if ``keep_initiator``, the initiator's own packets).
    Returns the pair and the wire-log index of that packet: the initiator's new path has
    a budget of its size."""
    pair = established_pair(config)
    wire = pair.wire
    wire.run(1.0)
    wire.route(MOVED_RESPONDER, pair.responder)
    start = len(wire.log)
    rebind = rebind_after(start, RESPONDER_ADDRESS, MOVED_RESPONDER)

    def hook(datagram: Datagram) -> list[Datagram]:
        passes = datagram.index == start or (
            keep_initiator and datagram.source == INITIATOR_ADDRESS
        )
        return rebind(datagram) if passes else []

    wire.hook = hook
    pair.responder.endpoint.send_message(pair.server, b"x", wire.now)
    return pair, start


def test_an_exhausted_budget_holds_output_without_stalling_the_timer() -> None:
    # The responder moves, its first packet arrives, then nothing more: the initiator's
    # new path has a budget of one small packet. Heartbeats (every 0.5 s here) and ACKs
    # wait for room, and no deadline stays in the past (the wire checks every step);
    # when validation times out the initiator falls back and its owed output leaves.
    pair, start = responder_moves_once(replace(CFG, heartbeat_interval_s=0.5), keep_initiator=True)
    wire, client = pair.wire, pair.client
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


def test_probes_the_budget_cannot_carry_do_not_stall_the_timer() -> None:
    # As above, but the initiator has data in flight that the moved responder never
    # acknowledges, and validation takes long: the PTO expires again and again (its
    # backoff capped at 2x here) with no room for the probes. Each expiry must move the
    # deadline forward (the wire checks every step), and the data arrives once the
    # initiator falls back to the old path.
    config = replace(CFG, path_validation_timeout_s=30.0, max_pto_backoff=1)
    pair, _ = responder_moves_once(config, keep_initiator=False)
    wire, client = pair.wire, pair.client
    wire.run(1.0 + wire.delay_s)
    assert client.peer_address == MOVED_RESPONDER
    pair.initiator.endpoint.send_message(client, b"y", wire.now)
    wire.run(20.0)
    wire.hook = None
    wire.run(40.0)
    assert client.peer_address == RESPONDER_ADDRESS
    assert pair.responder.of(MessageReceived)[-1] == MessageReceived(0, b"y")
    assert client.state is SessionState.ESTABLISHED


def rebound_before_confirming(pair: Pair) -> Callable[[Datagram], list[Datagram]]:
    """A NAT that rebinds the initiator right after its initiation left: its first DATA
    packet (the handshake confirmation) reaches the responder from a new address."""
    pair.wire.route(REBOUND_ADDRESS, pair.initiator)
    return rebind_after(1, INITIATOR_ADDRESS, REBOUND_ADDRESS)


def bytes_between(wire: Wire, source: tuple[str, int], destination: tuple[str, int]) -> int:
    return sum(len(d.data) for d in wire.log if (d.source, d.destination) == (source, destination))


def test_an_initiator_that_moved_before_confirming_is_validated_where_it_is() -> None:
    pair = make_pair()
    wire = pair.wire
    wire.hook = rebound_before_confirming(pair)
    client, server = pair.establish()
    assert server.peer_address == REBOUND_ADDRESS
    down = stream_from_responder(pair, 40)
    wire.run(wire.now + 2.0)
    assert [e.payload for e in pair.initiator.of(MessageReceived)] == down
    # No longer held to the budget: the responder sent far more than it received.
    sent = bytes_between(wire, RESPONDER_ADDRESS, REBOUND_ADDRESS)
    assert sent > 2 * bytes_between(wire, REBOUND_ADDRESS, RESPONDER_ADDRESS)
    # The address it moved from was never validated: there was no path to change.
    assert pair.responder.of(PathChanged) == []
    assert server.statistics().path_migrations == 0
    assert len(pair.responder.of(SessionEstablished)) == 1
    assert client.state is SessionState.ESTABLISHED


def test_without_a_fallback_a_timed_out_validation_challenges_again() -> None:
    # As above, but everything the responder sends is lost until after the validation
    # timeout: with no validated address to fall back to, it must challenge again (or it
    # would stay inside the anti-amplification budget for the rest of the session).
    pair = make_pair()
    wire = pair.wire
    rebind = rebound_before_confirming(pair)
    heal_at = 3.0  # past the validation timeout of the first challenge

    def hook(datagram: Datagram) -> list[Datagram]:
        lost = datagram.source == RESPONDER_ADDRESS and datagram.index > 1
        return [] if lost and datagram.sent_at < heal_at else rebind(datagram)

    wire.hook = hook
    pair.connect()
    wire.run(heal_at)
    server = pair.server
    assert (server.state, server.peer_address) == (SessionState.ESTABLISHED, REBOUND_ADDRESS)
    down = stream_from_responder(pair, 40)
    wire.run(heal_at + 2 * CFG.path_validation_timeout_s)
    assert [e.payload for e in pair.initiator.of(MessageReceived)] == down
    sent = bytes_between(wire, RESPONDER_ADDRESS, REBOUND_ADDRESS)
    assert sent > 2 * bytes_between(wire, REBOUND_ADDRESS, RESPONDER_ADDRESS)
    assert pair.responder.of(PathChanged) == []


# --- a new path's budget smaller than what is owed (a forger sizes the packets) ------

ELSEWHERE = ("127.1.0.77", 777)


def moved_with_a_tiny_budget(pair: Pair) -> tuple[Forger, Session, int]:
    """A confirmed forged session that owes two PATH_RESPONSEs, then migrates with one
    PING-only packet, whose size it returns: the new address's budget has room for no
    frame at all."""
    forger, server = forged_session(pair)
    hub = pair.responder.endpoint
    hub.receive_datagram(forger.seal([PingFrame()]), INITIATOR_ADDRESS, 0.0)
    challenges = [PathChallengeFrame(b"a" * 8), PathChallengeFrame(b"b" * 8)]
    hub.receive_datagram(forger.seal(challenges), INITIATOR_ADDRESS, 0.0)
    tiny = forger.seal([PingFrame()])
    hub.receive_datagram(tiny, ELSEWHERE, 0.0)
    assert server.peer_address == ELSEWHERE
    return forger, server, len(tiny)


def test_owed_frames_that_do_not_fit_the_budget_wait_for_more_bytes() -> None:
    pair = make_pair()
    forger, _, received = moved_with_a_tiny_budget(pair)
    hub = pair.responder.endpoint
    assert hub.datagrams_to_send(0.0) == []  # ACK, responses and challenge: none fits
    more = forger.seal([PaddingFrame(40)])
    hub.receive_datagram(more, ELSEWHERE, 0.0)
    out = hub.datagrams_to_send(0.0)
    assert [address for _, address in out] == [ELSEWHERE]
    assert sum(len(data) for data, _ in out) <= received + len(more)
    frames = [frame for data, _ in out for frame in forger.open(data)]
    assert [type(frame) for frame in frames] == [
        AckFrame,
        PathResponseFrame,
        PathResponseFrame,
        PathChallengeFrame,
    ]
    assert frames[1:3] == [PathResponseFrame(b"a" * 8), PathResponseFrame(b"b" * 8)]


def test_a_close_that_does_not_fit_the_budget_waits_for_more_bytes() -> None:
    pair = make_pair()
    forger, server, _ = moved_with_a_tiny_budget(pair)
    hub = pair.responder.endpoint
    hub.close_session(server, 0.0, CloseReason.SHUTDOWN)
    assert hub.datagrams_to_send(0.0) == []  # not even a CLOSE without text fits
    hub.receive_datagram(forger.seal([PaddingFrame(40)]), ELSEWHERE, 0.0)
    out = hub.datagrams_to_send(0.0)
    assert [address for _, address in out] == [ELSEWHERE]
    assert [frame for data, _ in out for frame in forger.open(data)] == [
        CloseFrame(CloseReason.SHUTDOWN, "")
    ]
