"""dialer.py: the initiator's retry schedule, fresh initiations, cookies and responses."""

from __future__ import annotations

import pytest

from tests.core.pairs import TEST_CONFIG, TIMESTAMP_NS, seeded_rng
from udpim.core.cookies import CookieGuard, TimestampGuard
from udpim.core.crypto import StaticKey
from udpim.core.dialer import KEPT_ATTEMPTS, Dialer
from udpim.core.errors import BadPacket, DropReason
from udpim.core.handshake import respond_untrusted

CFG = TEST_CONFIG  # retry 0.5 s doubling to 4 s, give up after 16 s
INITIATOR = StaticKey.generate(seeded_rng(1))
RESPONDER = StaticKey.generate(seeded_rng(2))
ADDRESS = ("127.16.0.2", 40000)


def dialer(now: float = 0.0) -> Dialer:
    return Dialer(CFG, INITIATOR, RESPONDER.public, b"dial", seeded_rng(3), now, TIMESTAMP_NS)


def respond(initiation: bytes, guard: TimestampGuard | None = None) -> bytes:
    return respond_untrusted(RESPONDER, initiation, b"resp", seeded_rng(4), timestamp_guard=guard)[
        1
    ]


def test_schedule_backs_off_to_the_ceiling_and_gives_up() -> None:
    d = dialer(100.0)
    assert d.initiation_due(100.0)
    assert d.deadline() == 100.0
    sent = []
    now = 100.0
    while not d.timed_out(now):
        if d.initiation_due(now):
            d.next_initiation(now)
            sent.append(now - 100.0)
        now = d.deadline()
    assert sent == [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5]
    assert now == 100.0 + CFG.handshake_timeout_s
    assert d.initiations_sent == 7
    assert not d.timed_out(now - 0.001)


def test_every_initiation_is_fresh_with_a_growing_timestamp() -> None:
    d = dialer()
    guard = TimestampGuard()
    first = d.next_initiation(0.0)
    second = d.next_initiation(0.0)  # even at the same instant
    assert first != second
    respond(first, guard)
    respond(second, guard)  # accepted: strictly newer
    with pytest.raises(BadPacket) as info:
        respond(first, guard)
    assert info.value.reason is DropReason.STALE_INITIATION


def test_a_response_to_any_of_the_last_attempts_completes() -> None:
    initiations = []
    d = dialer()
    for n in range(KEPT_ATTEMPTS + 1):
        initiations.append(d.next_initiation(float(n)))
    with pytest.raises(BadPacket):
        d.on_response_untrusted(respond(initiations[0]))  # forgotten: too old
    result = d.on_response_untrusted(respond(initiations[1]))
    assert result.peer_public == RESPONDER.public
    assert result.peer_cid == b"resp"


def test_a_response_completes_only_once() -> None:
    d = dialer()
    response = respond(d.next_initiation(0.0))
    d.on_response_untrusted(response)
    with pytest.raises(BadPacket) as info:
        d.on_response_untrusted(response)
    assert info.value.reason is DropReason.UNEXPECTED


def test_nothing_outstanding_is_unexpected() -> None:
    d = dialer()
    other = dialer()
    response = respond(other.next_initiation(0.0))
    with pytest.raises(BadPacket) as info:
        d.on_response_untrusted(response)
    assert info.value.reason is DropReason.UNEXPECTED


def test_cookie_reply_makes_the_next_initiation_carry_mac2_at_once() -> None:
    d = dialer()
    guard = CookieGuard(RESPONDER.public, seeded_rng(5))
    first = d.next_initiation(0.0)
    assert not d.initiation_due(0.2)
    d.on_cookie_reply_untrusted(guard.make_reply(first, ADDRESS, 0.2), 0.2)
    assert d.initiation_due(0.2)
    second = d.next_initiation(0.2)
    assert guard.check_mac2(second, ADDRESS, 0.2)
    assert not guard.check_mac2(first, ADDRESS, 0.2)


def test_a_corrupted_cookie_reply_is_refused() -> None:
    d = dialer()
    first = d.next_initiation(0.0)
    reply = CookieGuard(RESPONDER.public, seeded_rng(5)).make_reply(first, ADDRESS, 0.0)
    with pytest.raises(BadPacket):
        d.on_cookie_reply_untrusted(reply[:-1] + bytes([reply[-1] ^ 1]), 0.1)
    assert not d.initiation_due(0.1)  # a refused reply changes nothing
