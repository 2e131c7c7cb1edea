"""cookies.py: mac1, cookies bound to addresses, rotation, replies, amplification, replays."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from udpim.core.cookies import (
    NO_MAC2,
    Address,
    CookieGuard,
    TimestampGuard,
    compute_mac1,
    compute_mac2,
    open_cookie_reply_untrusted,
    verify_mac1_untrusted,
)
from udpim.core.crypto import StaticKey
from udpim.core.errors import BadPacket, DropReason, LocalProtocolError
from udpim.core.handshake import InitiatorHandshake, respond_untrusted
from udpim.core.wire import (
    COOKIE_REPLY_BYTES,
    INITIATION_BYTES,
    INITIATION_MAC1_OFFSET,
    RESPONSE_BYTES,
    decode_cookie_reply_untrusted,
)

LIFETIME_S = 120.0
ADDRESS: Address = ("127.1.0.7", 40_000)


def seeded_rng(seed: int) -> Callable[[int], bytes]:
    return random.Random(seed).randbytes


INITIATOR = StaticKey.generate(seeded_rng(100))
RESPONDER = StaticKey.generate(seeded_rng(200))


def new_attempt(seed: int = 1, timestamp_ns: int = 1) -> InitiatorHandshake:
    return InitiatorHandshake(INITIATOR, RESPONDER.public, b"icid", seeded_rng(seed), timestamp_ns)


def new_guard(seed: int = 5) -> CookieGuard:
    return CookieGuard(RESPONDER.public, seeded_rng(seed), LIFETIME_S)


def initiation_with_cookie(guard: CookieGuard, address: Address, now: float) -> bytes:
    """The cookie round trip: first attempt, cookie reply, second attempt with mac2."""
    first = new_attempt(seed=1, timestamp_ns=1)
    reply = guard.make_reply(first.initiation(None), address, now)
    cookie = first.consume_cookie_reply_untrusted(reply)
    return new_attempt(seed=2, timestamp_ns=2).initiation(cookie)


# --- mac1 --------------------------------------------------------------------------------------


def test_mac1_accepts_genuine_and_rejects_the_rest() -> None:
    initiation = new_attempt().initiation(None)
    verify_mac1_untrusted(initiation, RESPONDER.public)
    other = StaticKey.generate(seeded_rng(9)).public
    cases = [
        (initiation, other, DropReason.BAD_MAC),
        (initiation[:-1], RESPONDER.public, DropReason.TRUNCATED),
        (b"\x60" + bytes(48), RESPONDER.public, DropReason.UNEXPECTED),  # a cookie reply
        (b"\x70" + bytes(48), RESPONDER.public, DropReason.UNEXPECTED),  # DATA
        (b"\x00" + initiation[1:], RESPONDER.public, DropReason.UNKNOWN_VERSION),
    ]
    for data, key, reason in cases:
        with pytest.raises(BadPacket) as info:
            verify_mac1_untrusted(data, key)
        assert info.value.reason is reason


def test_mac1_of_a_response_is_keyed_with_the_initiator_key() -> None:
    initiation = new_attempt().initiation(None)
    _info, response, _result = respond_untrusted(RESPONDER, initiation, b"rcid", seeded_rng(2))
    verify_mac1_untrusted(response, INITIATOR.public)
    with pytest.raises(BadPacket):
        verify_mac1_untrusted(response, RESPONDER.public)


def test_mac2_without_cookie_is_zero() -> None:
    assert compute_mac2(None, b"anything") == NO_MAC2 == bytes(16)
    assert compute_mac2(bytes(16), b"anything") != NO_MAC2


# --- cookies -----------------------------------------------------------------------------------


def test_cookie_round_trip_is_accepted_from_the_same_address() -> None:
    guard = new_guard()
    initiation = initiation_with_cookie(guard, ADDRESS, now=10.0)
    assert guard.check_mac2(initiation, ADDRESS, now=11.0)
    assert not guard.check_mac2(new_attempt().initiation(None), ADDRESS, now=11.0)


@pytest.mark.parametrize(
    "other",
    [("127.1.0.8", 40_000), ("127.1.0.7", 40_001), ("::ffff:127.1.0.7", 40_000), ("hub", 40_000)],
)
def test_cookie_is_bound_to_the_source_address(other: Address) -> None:
    guard = new_guard()
    initiation = initiation_with_cookie(guard, ADDRESS, now=0.0)
    assert not guard.check_mac2(initiation, other, now=0.0)
    assert guard.cookie(other, now=0.0) != guard.cookie(ADDRESS, now=0.0)


def test_cookie_survives_one_rotation_but_not_two() -> None:
    guard = new_guard()
    initiation = initiation_with_cookie(guard, ADDRESS, now=0.0)
    assert guard.check_mac2(initiation, ADDRESS, now=LIFETIME_S - 0.001)
    assert guard.check_mac2(initiation, ADDRESS, now=LIFETIME_S)  # previous secret
    assert guard.check_mac2(initiation, ADDRESS, now=2 * LIFETIME_S - 0.001)
    assert not guard.check_mac2(initiation, ADDRESS, now=2 * LIFETIME_S)


def test_cookie_expires_after_a_long_idle_gap() -> None:
    guard = new_guard()
    initiation = initiation_with_cookie(guard, ADDRESS, now=0.0)
    assert not guard.check_mac2(initiation, ADDRESS, now=5 * LIFETIME_S)
    fresh = initiation_with_cookie(guard, ADDRESS, now=5 * LIFETIME_S)
    assert guard.check_mac2(fresh, ADDRESS, now=5 * LIFETIME_S + 1)


def test_secrets_come_from_the_rng() -> None:
    assert new_guard(seed=1).cookie(ADDRESS, 0.0) == new_guard(seed=1).cookie(ADDRESS, 0.0)
    assert new_guard(seed=1).cookie(ADDRESS, 0.0) != new_guard(seed=2).cookie(ADDRESS, 0.0)


def test_guard_argument_checks() -> None:
    with pytest.raises(ValueError, match="positive"):
        CookieGuard(RESPONDER.public, seeded_rng(1), 0.0)
    guard = new_guard()
    with pytest.raises(LocalProtocolError):
        guard.make_reply(b"\x40" * 140, ADDRESS, 0.0)
    assert not guard.check_mac2(b"\x40" * 140, ADDRESS, 0.0)


# --- cookie replies ------------------------------------------------------------------------------


def test_cookie_reply_decrypts_only_with_the_right_mac1_and_key() -> None:
    attempt = new_attempt()
    initiation = attempt.initiation(None)
    reply = new_guard().make_reply(initiation, ADDRESS, 0.0)
    mac1 = initiation[INITIATION_MAC1_OFFSET : INITIATION_MAC1_OFFSET + 16]
    cid, cookie = open_cookie_reply_untrusted(reply, RESPONDER.public, mac1)
    assert cid == b"icid"
    assert cookie == new_guard().cookie(ADDRESS, 0.0)
    for key, ad in [(RESPONDER.public, bytes(16)), (INITIATOR.public, mac1)]:
        with pytest.raises(BadPacket) as info:
            open_cookie_reply_untrusted(reply, key, ad)
        assert info.value.reason is DropReason.DECRYPT_FAILED
    other_attempt = new_attempt(seed=3)  # a different initiation: different mac1
    other_attempt.initiation(None)
    with pytest.raises(BadPacket) as info:
        other_attempt.consume_cookie_reply_untrusted(reply)
    assert info.value.reason is DropReason.DECRYPT_FAILED


def test_cookie_reply_for_another_connection_id_is_refused() -> None:
    attempt = new_attempt()
    initiation = attempt.initiation(None)
    forged = initiation[:1] + b"xxxx" + initiation[5:]  # same mac1, other sender cid
    reply = new_guard().make_reply(forged, ADDRESS, 0.0)
    with pytest.raises(BadPacket) as info:
        attempt.consume_cookie_reply_untrusted(reply)
    assert info.value.reason is DropReason.UNKNOWN_CONNECTION


def test_cookie_reply_nonce_is_fresh_each_time() -> None:
    guard = new_guard()
    initiation = new_attempt().initiation(None)
    first = decode_cookie_reply_untrusted(guard.make_reply(initiation, ADDRESS, 0.0))
    second = decode_cookie_reply_untrusted(guard.make_reply(initiation, ADDRESS, 0.0))
    assert first.nonce != second.nonce


def test_every_bit_flip_of_a_cookie_reply_is_dropped() -> None:
    attempt = new_attempt()
    reply = new_guard().make_reply(attempt.initiation(None), ADDRESS, 0.0)
    for bit in range(8 * len(reply)):
        flipped = bytearray(reply)
        flipped[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(BadPacket):
            attempt.consume_cookie_reply_untrusted(bytes(flipped))


# --- amplification -----------------------------------------------------------------------------


def test_replies_are_smaller_than_initiations() -> None:
    initiation = new_attempt().initiation(None)
    reply = new_guard().make_reply(initiation, ADDRESS, 0.0)
    _info, response, _result = respond_untrusted(RESPONDER, initiation, b"rcid", seeded_rng(2))
    assert len(reply) == COOKIE_REPLY_BYTES < len(response) == RESPONSE_BYTES
    assert RESPONSE_BYTES < len(initiation) == INITIATION_BYTES


def responder_output(data: bytes, guard: CookieGuard, under_load: bool, now: float) -> bytes:
    """What a responder following the documented posture sends back to ``data``."""
    try:
        verify_mac1_untrusted(data, RESPONDER.public)
        if under_load and not guard.check_mac2(data, ADDRESS, now):
            return guard.make_reply(data, ADDRESS, now)
        return respond_untrusted(RESPONDER, data, b"rcid", seeded_rng(3))[1]
    except BadPacket:
        return b""


@st.composite
def initiation_shaped(draw: st.DrawFn) -> bytes:
    """141 bytes with a plausible first byte and, usually, a correct mac1."""
    first = draw(st.sampled_from([0x40, 0x40, 0x40, 0x41, 0x50, 0x00]))
    body = bytes([first]) + draw(st.binary(min_size=108, max_size=108))
    mac1 = (
        compute_mac1(RESPONDER.public, body)
        if draw(st.booleans())
        else draw(st.binary(min_size=16, max_size=16))
    )
    data = body + mac1 + draw(st.binary(min_size=16, max_size=16))
    cut = draw(st.integers(min_value=0, max_value=len(data) + 8))
    return (data + bytes(8))[:cut] if draw(st.booleans()) else data


@settings(max_examples=150)
@given(initiation_shaped(), st.booleans(), st.floats(min_value=0, max_value=1e6))
def test_responder_never_sends_more_than_it_received(data: bytes, load: bool, now: float) -> None:
    sent = responder_output(data, new_guard(), load, now)
    assert len(sent) <= len(data)


def test_amplification_property_exercises_both_reply_kinds() -> None:
    """The posture above really answers (so the property is not vacuous)."""
    initiation = new_attempt().initiation(None)
    assert len(responder_output(initiation, new_guard(), True, 0.0)) == COOKIE_REPLY_BYTES
    assert len(responder_output(initiation, new_guard(), False, 0.0)) == RESPONSE_BYTES


# --- timestamp guard -----------------------------------------------------------------------


def test_timestamps_must_strictly_increase_per_initiator() -> None:
    guard = TimestampGuard()
    assert guard.accept(b"a" * 32, 10)
    assert not guard.accept(b"a" * 32, 10)
    assert not guard.accept(b"a" * 32, 9)
    assert guard.accept(b"b" * 32, 1)  # another initiator has its own clock
    assert guard.accept(b"a" * 32, 11)


def test_timestamp_guard_memory_is_bounded_and_evicts_the_least_recent() -> None:
    guard = TimestampGuard(max_initiators=3)
    for key in (b"a", b"b", b"c"):
        assert guard.accept(key, 100)
    assert guard.accept(b"a", 101)  # "a" is now the most recently accepted
    assert guard.accept(b"d", 100)  # evicts "b", the least recently accepted
    assert guard.tracked_initiators == 3
    assert not guard.accept(b"a", 100)
    assert not guard.accept(b"c", 100)
    assert guard.accept(b"b", 100)  # forgotten: documented, see the cookies essay
    with pytest.raises(ValueError, match=">= 1"):
        TimestampGuard(0)


@pytest.mark.parametrize("size", [INITIATION_BYTES - 1, INITIATION_BYTES + 1])
def test_wrong_sized_initiations_get_no_answer(size: int) -> None:
    data = new_attempt().initiation(None)
    data = (data + bytes(4))[:size]
    assert responder_output(data, new_guard(), True, 0.0) == b""


def test_timestamp_guard_keeps_its_order_over_many_acceptances() -> None:
    # Thousands of re-acceptances and evictions (the guard compacts its table as it
    # goes): the key evicted is still the one least recently accepted.
    guard = TimestampGuard(max_initiators=3)
    for round_ in range(5_000):
        for key in (b"a", b"b", b"c"):
            assert guard.accept(key, round_)
    for fresh in range(5_000):
        assert guard.accept(b"new %d" % fresh, 1)  # each evicts the oldest
    assert guard.tracked_initiators == 3
    assert not guard.accept(b"new 4999", 1)
    assert guard.accept(b"new 4996", 1)  # evicted: forgotten
    assert not guard.accept(b"new 4998", 1)  # evicted "new 4997", the oldest
    assert guard.accept(b"new 4997", 1)
