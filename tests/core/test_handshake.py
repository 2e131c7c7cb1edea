"""handshake.py: the Noise-IK handshake, both sides, and every way it must fail."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from udpim.core.cookies import (
    TimestampGuard,
    compute_mac1,
    open_cookie_reply_untrusted,
    verify_mac1_untrusted,
)
from udpim.core.crypto import PacketOpener, PacketSealer, StaticKey
from udpim.core.errors import BadPacket, DropReason, LocalProtocolError
from udpim.core.handshake import (
    HandshakeResult,
    InitiationInfo,
    InitiatorHandshake,
    respond_untrusted,
)
from udpim.core.wire import INITIATION_MAC1_OFFSET, RESPONSE_MAC1_OFFSET

I_CID, R_CID = b"icid", b"rcid"
LOW_ORDER_POINT = bytes(32)


def seeded_rng(seed: int) -> Callable[[int], bytes]:
    return random.Random(seed).randbytes


INITIATOR = StaticKey.generate(seeded_rng(100))
RESPONDER = StaticKey.generate(seeded_rng(200))


def attempt(timestamp_ns: int = 1_000, seed: int = 1) -> InitiatorHandshake:
    return InitiatorHandshake(INITIATOR, RESPONDER.public, I_CID, seeded_rng(seed), timestamp_ns)


def respond(data: bytes, guard: TimestampGuard | None = None, seed: int = 2) -> bytes:
    return respond_untrusted(RESPONDER, data, R_CID, seeded_rng(seed), timestamp_guard=guard)[1]


def with_mac1(packet: bytes, receiver_public: bytes) -> bytes:
    """Recompute mac1 after tampering, as an attacker who knows the public key can."""
    offset = INITIATION_MAC1_OFFSET if len(packet) == 141 else RESPONSE_MAC1_OFFSET
    return packet[:offset] + compute_mac1(receiver_public, packet[:offset]) + packet[offset + 16 :]


def flip(data: bytes, index: int, mask: int = 0x01) -> bytes:
    changed = bytearray(data)
    changed[index] ^= mask
    return bytes(changed)


def reason_of(call: Callable[[], object]) -> DropReason:
    with pytest.raises(BadPacket) as info:
        call()
    return info.value.reason


# --- success ---------------------------------------------------------------------------------


def test_handshake_derives_matching_keys_and_authenticates_both_sides() -> None:
    initiator = attempt(timestamp_ns=123_456_789)
    initiation = initiator.initiation(None)
    assert len(initiation) == 141
    info, response, responder_result = respond_untrusted(
        RESPONDER, initiation, R_CID, seeded_rng(2)
    )
    assert info == InitiationInfo(INITIATOR.public, I_CID, 123_456_789)
    assert len(response) == 89
    initiator_result = initiator.consume_response_untrusted(response)
    assert initiator_result.peer_public == RESPONDER.public
    assert responder_result.peer_public == INITIATOR.public
    assert (initiator_result.peer_cid, responder_result.peer_cid) == (R_CID, I_CID)
    assert initiator_result.send_secret == responder_result.recv_secret
    assert initiator_result.recv_secret == responder_result.send_secret
    assert initiator_result.send_secret != initiator_result.recv_secret
    # The secrets work as transport keys in both directions.
    to_responder = PacketSealer(initiator_result.send_secret).seal(0, b"h", b"hi")
    assert PacketOpener(responder_result.recv_secret).open_untrusted(0, 0, b"h", to_responder)
    to_initiator = PacketSealer(responder_result.send_secret).seal(0, b"h", b"yo")
    assert PacketOpener(initiator_result.recv_secret).open_untrusted(0, 0, b"h", to_initiator)


def test_initiator_static_key_is_not_visible_in_the_initiation() -> None:
    assert INITIATOR.public not in attempt().initiation(None)


def test_seeded_rng_makes_the_handshake_deterministic() -> None:
    results: list[tuple[bytes, bytes, HandshakeResult]] = []
    for _ in range(2):
        initiator = attempt(seed=7)
        initiation = initiator.initiation(None)
        response = respond(initiation, seed=8)
        results.append((initiation, response, initiator.consume_response_untrusted(response)))
    assert results[0] == results[1]


def test_two_initiations_with_different_ephemerals_give_different_keys() -> None:
    secrets = []
    for seed in (1, 2):
        initiator = attempt(seed=seed)
        initiation = initiator.initiation(None)
        result = initiator.consume_response_untrusted(respond(initiation))
        secrets.append(result.send_secret)
    assert secrets[0] != secrets[1]


def test_same_attempt_resent_is_identical_apart_from_mac2() -> None:
    initiator = attempt()
    assert initiator.initiation(None) == initiator.initiation(None)
    assert initiator.initiation(None)[:125] == initiator.initiation(bytes(16))[:125]
    assert initiator.initiation(None)[125:] == bytes(16) != initiator.initiation(bytes(16))[125:]


# --- replay and timestamps ----------------------------------------------------------------------


def test_replayed_initiation_is_rejected_by_the_timestamp_guard() -> None:
    guard = TimestampGuard()
    initiation = attempt(timestamp_ns=5_000).initiation(None)
    respond(initiation, guard)
    assert reason_of(lambda: respond(initiation, guard)) is DropReason.STALE_INITIATION


def test_older_or_equal_timestamp_is_rejected_newer_accepted() -> None:
    guard = TimestampGuard()
    respond(attempt(timestamp_ns=5_000, seed=1).initiation(None), guard)
    for stale in (4_999, 5_000):
        stale_initiation = attempt(timestamp_ns=stale, seed=2).initiation(None)
        with pytest.raises(BadPacket) as info:
            respond(stale_initiation, guard)
        assert info.value.reason is DropReason.STALE_INITIATION
    respond(attempt(timestamp_ns=5_001, seed=3).initiation(None), guard)


def test_timestamp_must_fit_eight_bytes() -> None:
    for bad in (-1, 1 << 64):
        with pytest.raises(LocalProtocolError):
            attempt(timestamp_ns=bad)
    assert respond(attempt(timestamp_ns=(1 << 64) - 1).initiation(None))


# --- wrong keys and tampering -------------------------------------------------------------


def test_wrong_responder_key_fails_mac1_then_decryption() -> None:
    other = StaticKey.generate(seeded_rng(300))
    initiation = InitiatorHandshake(INITIATOR, other.public, I_CID, seeded_rng(1), 1).initiation(
        None
    )
    assert reason_of(lambda: respond(initiation)) is DropReason.BAD_MAC
    # Someone who knows our public key can fix mac1, but not the encrypted parts.
    forged = with_mac1(initiation, RESPONDER.public)
    assert reason_of(lambda: respond(forged)) is DropReason.DECRYPT_FAILED


@pytest.mark.parametrize(
    ("name", "index"),
    [("sender_cid", 1), ("ephemeral", 5), ("enc_static", 37), ("enc_timestamp", 85)],
)
def test_tampered_initiation_fields_fail(name: str, index: int) -> None:
    initiation = attempt().initiation(None)
    tampered = flip(initiation, index)
    assert reason_of(lambda: respond(tampered)) is DropReason.BAD_MAC
    assert reason_of(lambda: respond(with_mac1(tampered, RESPONDER.public))) is (
        DropReason.DECRYPT_FAILED
    )


def test_every_bit_flip_of_an_initiation_is_dropped_except_in_mac2() -> None:
    initiation = attempt().initiation(None)
    for bit in range(8 * 125):  # mac2 (bytes 125..140) is the cookie guard's business
        with pytest.raises(BadPacket):
            respond(flip(initiation, bit // 8, 1 << (bit % 8)))


def test_low_order_initiator_ephemeral_is_malformed() -> None:
    initiation = attempt().initiation(None)
    forged = with_mac1(initiation[:5] + LOW_ORDER_POINT + initiation[37:], RESPONDER.public)
    assert reason_of(lambda: respond(forged)) is DropReason.MALFORMED


def test_unusable_responder_key_is_refused_locally() -> None:
    with pytest.raises(LocalProtocolError):
        InitiatorHandshake(INITIATOR, LOW_ORDER_POINT, I_CID, seeded_rng(1), 1)
    with pytest.raises(LocalProtocolError):
        InitiatorHandshake(INITIATOR, RESPONDER.public, b"cid", seeded_rng(1), 1)
    with pytest.raises(LocalProtocolError):
        respond_untrusted(RESPONDER, attempt().initiation(None), b"cid", seeded_rng(1))


def test_responder_rejects_other_packet_types() -> None:
    initiator = attempt()
    response = respond(initiator.initiation(None))
    assert reason_of(lambda: respond(response)) is DropReason.UNEXPECTED


# --- the initiator's side of the failures --------------------------------------------------------


@pytest.mark.parametrize(
    ("index", "mask", "fixed_mac1", "reason"),
    [
        (1, 0x01, True, DropReason.DECRYPT_FAILED),  # sender_cid (bound into h)
        (5, 0x01, False, DropReason.UNKNOWN_CONNECTION),  # receiver_cid
        (9, 0x01, False, DropReason.BAD_MAC),  # ephemeral, mac1 not fixed
        (9, 0x01, True, DropReason.DECRYPT_FAILED),  # ephemeral
        (41, 0x80, True, DropReason.DECRYPT_FAILED),  # enc_empty
        (57, 0x01, False, DropReason.BAD_MAC),  # mac1
        (73, 0x01, False, DropReason.MALFORMED),  # mac2 must be zero
        (0, 0x01, False, DropReason.MALFORMED),  # low bits of byte0
        (0, 0x40, False, DropReason.UNKNOWN_VERSION),
    ],
)
def test_tampered_response_fails(
    index: int, mask: int, fixed_mac1: bool, reason: DropReason
) -> None:
    initiator = attempt()
    response = respond(initiator.initiation(None))
    tampered = flip(response, index, mask)
    if fixed_mac1:
        tampered = with_mac1(tampered, INITIATOR.public)
    assert reason_of(lambda: initiator.consume_response_untrusted(tampered)) is reason
    # A forged response does not spoil the attempt: the genuine one still completes it.
    assert initiator.consume_response_untrusted(response).peer_public == RESPONDER.public


def test_every_bit_flip_and_truncation_of_a_response_is_dropped() -> None:
    initiator = attempt()
    response = respond(initiator.initiation(None))
    for bit in range(8 * len(response)):
        with pytest.raises(BadPacket):
            initiator.consume_response_untrusted(flip(response, bit // 8, 1 << (bit % 8)))
    for end in range(len(response)):
        with pytest.raises(BadPacket):
            initiator.consume_response_untrusted(response[:end])


def test_impostor_responder_cannot_read_the_initiation() -> None:
    """A responder without the expected static key cannot even decrypt the initiation."""
    initiator = attempt()
    impostor = StaticKey.generate(seeded_rng(400))
    initiation = with_mac1(initiator.initiation(None), impostor.public)
    with pytest.raises(BadPacket) as info:
        respond_untrusted(impostor, initiation, R_CID, seeded_rng(2))
    assert info.value.reason is DropReason.DECRYPT_FAILED


def test_low_order_responder_ephemeral_is_malformed() -> None:
    initiator = attempt()
    response = respond(initiator.initiation(None))
    forged = with_mac1(response[:9] + LOW_ORDER_POINT + response[41:], INITIATOR.public)
    assert reason_of(lambda: initiator.consume_response_untrusted(forged)) is DropReason.MALFORMED


def test_duplicate_response_after_completion_is_unexpected() -> None:
    initiator = attempt()
    response = respond(initiator.initiation(None))
    initiator.consume_response_untrusted(response)
    assert reason_of(lambda: initiator.consume_response_untrusted(response)) is (
        DropReason.UNEXPECTED
    )


# --- random input into every untrusted entry point ------------------------------------------


@settings(max_examples=300)
@given(
    st.sampled_from([0x40, 0x50, 0x60, 0x70, 0x41]),
    st.sampled_from([None, 49, 89, 141]),
    st.binary(max_size=160),
    st.booleans(),
)
def test_random_datagrams_only_raise_bad_packet(
    first: int, size: int | None, body: bytes, fix_mac1: bool
) -> None:
    data = bytes([first]) + body
    if size is not None:
        data = (data + bytes(size))[:size]
    initiator = attempt()
    mac1 = initiator.initiation(None)[INITIATION_MAC1_OFFSET : INITIATION_MAC1_OFFSET + 16]
    calls: list[Callable[[bytes], object]] = [
        lambda d: respond(with_mac1(d, RESPONDER.public) if fix_mac1 and len(d) == 141 else d),
        lambda d: initiator.consume_response_untrusted(
            with_mac1(d, INITIATOR.public) if fix_mac1 and len(d) == 89 else d
        ),
        initiator.consume_cookie_reply_untrusted,
        lambda d: verify_mac1_untrusted(d, RESPONDER.public),
        lambda d: open_cookie_reply_untrusted(d, RESPONDER.public, mac1),
        lambda d: PacketOpener(bytes(32)).open_untrusted(7, first & 1, d[:6], d[6:]),
    ]
    for call in calls:
        with contextlib.suppress(BadPacket):
            call(data)
