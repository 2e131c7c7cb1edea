"""crypto.py: static keys, the key schedule, sealed DATA packets, key phases, replay window."""

from __future__ import annotations

import hashlib
import hmac
import random
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from hypothesis import given, settings
from hypothesis import strategies as st

from udpim.core.crypto import (
    PacketOpener,
    PacketSealer,
    ReplayWindow,
    StaticKey,
    next_secret,
    packet_key,
)
from udpim.core.errors import BadPacket, DropReason, LocalProtocolError
from udpim.core.frames import DataFrame, Frame, PingFrame
from udpim.core.wire import (
    decode_data_header_untrusted,
    decode_frames_untrusted,
    decode_packet_number,
    encode_data_header,
    encode_frames,
)

SECRET = bytes(range(32))
DCID = b"\xde\xad\xbe\xef"
# X25519 points of small order (RFC 7748 / libsodium's blacklist): DH with them is all zeros.
LOW_ORDER_POINTS = [bytes(32), (1).to_bytes(32, "little")]


def seeded_rng(seed: int) -> Callable[[int], bytes]:
    return random.Random(seed).randbytes


def hkdf_expand_32(secret: bytes, info: bytes) -> bytes:
    """RFC 5869 HKDF-Expand for one block, written independently with the stdlib."""
    return hmac.new(secret, info + b"\x01", hashlib.sha256).digest()


def seal_datagram(sealer: PacketSealer, pn: int, plaintext: bytes, acked: int | None) -> bytes:
    header = encode_data_header(DCID, sealer.key_phase, pn, acked)
    return header + sealer.seal(pn, header, plaintext)


def open_datagram(opener: PacketOpener, data: bytes, largest: int | None) -> bytes:
    header = decode_data_header_untrusted(data)
    pn = decode_packet_number(header.truncated_pn, header.pn_length, largest)
    return opener.open_untrusted(pn, header.key_phase, header.header, data[len(header.header) :])


# --- static keys ----------------------------------------------------------------------------


def test_static_key_is_deterministic_from_rng_and_round_trips() -> None:
    a, b = StaticKey.generate(seeded_rng(1)), StaticKey.generate(seeded_rng(1))
    assert a.public == b.public
    assert len(a.public) == 32
    assert StaticKey.from_bytes(a.private_bytes()).public == a.public
    assert StaticKey.generate(seeded_rng(2)).public != a.public
    assert a.public.hex() in repr(a)


def test_static_keys_agree() -> None:
    a, b = StaticKey.generate(seeded_rng(1)), StaticKey.generate(seeded_rng(2))
    assert a.exchange_untrusted(b.public) == b.exchange_untrusted(a.public)


@pytest.mark.parametrize("point", [*LOW_ORDER_POINTS, bytes(31)])
def test_exchange_rejects_unusable_public_keys(point: bytes) -> None:
    with pytest.raises(BadPacket) as info:
        StaticKey.generate(seeded_rng(1)).exchange_untrusted(point)
    assert info.value.reason is DropReason.MALFORMED


# --- key schedule -------------------------------------------------------------------------------


def test_key_schedule_matches_rfc5869_expand() -> None:
    assert next_secret(SECRET) == hkdf_expand_32(SECRET, b"udpim key update")
    assert packet_key(SECRET) == hkdf_expand_32(SECRET, b"udpim packet key")
    assert packet_key(SECRET) != next_secret(SECRET) != SECRET


def test_seal_uses_the_documented_key_nonce_and_associated_data() -> None:
    """Known-answer check against ChaCha20-Poly1305 driven straight from the spec."""
    sealer = PacketSealer(SECRET)
    sealed = sealer.seal(0x0102030405, b"header", b"frames")
    nonce = bytes(4) + (0x0102030405).to_bytes(8, "big")
    assert sealed == ChaCha20Poly1305(packet_key(SECRET)).encrypt(nonce, b"frames", b"header")
    sealer.update()
    epoch1 = ChaCha20Poly1305(packet_key(next_secret(SECRET)))
    nonce = bytes(4) + (0x0102030406).to_bytes(8, "big")
    assert sealer.seal(0x0102030406, b"h", b"f") == epoch1.encrypt(nonce, b"f", b"h")


@pytest.mark.parametrize("cls", [PacketSealer, PacketOpener])
def test_secret_must_be_32_bytes(cls: type) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        cls(bytes(31))


# --- sealing and opening ---------------------------------------------------------------------


def test_seal_open_round_trip_through_the_wire() -> None:
    sealer, opener = PacketSealer(SECRET), PacketOpener(SECRET)
    frames: list[Frame] = [DataFrame(0, 0, 5, 0, b"hello"), PingFrame()]
    datagram = seal_datagram(sealer, 0, encode_frames(frames), None)
    assert decode_frames_untrusted(open_datagram(opener, datagram, None)) == frames


def test_different_packet_numbers_give_different_ciphertexts() -> None:
    sealer = PacketSealer(SECRET)
    assert sealer.seal(1, b"h", b"same") != sealer.seal(2, b"h", b"same")


def test_seal_refuses_reused_or_decreasing_packet_numbers() -> None:
    sealer = PacketSealer(SECRET)
    sealer.seal(5, b"h", b"x")
    for pn in (5, 4, -1, 1 << 64):
        with pytest.raises(LocalProtocolError):
            sealer.seal(pn, b"h", b"x")
    sealer.update()  # a new epoch does not make old numbers usable again
    with pytest.raises(LocalProtocolError):
        sealer.seal(5, b"h", b"x")


def test_every_bit_flip_of_a_sealed_packet_is_dropped() -> None:
    sealer = PacketSealer(SECRET)
    datagram = seal_datagram(sealer, 70_000, encode_frames([PingFrame()]), 69_990)
    allowed = {
        DropReason.DECRYPT_FAILED,
        DropReason.UNKNOWN_VERSION,
        DropReason.UNEXPECTED,
        DropReason.MALFORMED,
        DropReason.TRUNCATED,
    }
    opener = PacketOpener(SECRET)
    for bit in range(8 * len(datagram)):
        flipped = bytearray(datagram)
        flipped[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(BadPacket) as info:
            open_datagram(opener, bytes(flipped), 69_995)
        assert info.value.reason in allowed
    for end in range(len(datagram)):
        with pytest.raises(BadPacket):
            open_datagram(opener, datagram[:end], 69_995)
    assert opener.epoch == 0  # no forgery moved the key phase
    assert open_datagram(opener, datagram, 69_995) == b"\x01"


def test_open_rejects_out_of_range_packet_numbers() -> None:
    with pytest.raises(BadPacket) as info:
        PacketOpener(SECRET).open_untrusted(1 << 64, 0, b"h", bytes(17))
    assert info.value.reason is DropReason.DECRYPT_FAILED


# --- key phases ---------------------------------------------------------------------------


def test_key_update_followed_by_the_receiver() -> None:
    sealer, opener = PacketSealer(SECRET), PacketOpener(SECRET)
    assert opener.open_untrusted(1, 0, b"h", sealer.seal(1, b"h", b"a")) == b"a"
    sealer.update()
    assert (sealer.epoch, sealer.key_phase) == (1, 1)
    assert opener.open_untrusted(2, 1, b"h", sealer.seal(2, b"h", b"b")) == b"b"
    assert (opener.epoch, opener.key_phase, opener.has_previous) == (1, 1, True)
    sealer.update()
    assert opener.open_untrusted(3, 0, b"h", sealer.seal(3, b"h", b"c")) == b"c"
    assert (opener.epoch, opener.key_phase) == (2, 0)


def test_late_packet_of_the_previous_phase_opens_until_discarded() -> None:
    sealer, opener = PacketSealer(SECRET), PacketOpener(SECRET)
    late = sealer.seal(10, b"h", b"late")
    also_late = sealer.seal(11, b"h", b"also late")
    sealer.update()
    opener.open_untrusted(12, 1, b"h", sealer.seal(12, b"h", b"new"))
    assert opener.open_untrusted(10, 0, b"h", late) == b"late"
    assert opener.epoch == 1  # the late packet did not move the phase back
    opener.discard_previous()
    assert not opener.has_previous
    with pytest.raises(BadPacket) as info:
        opener.open_untrusted(11, 0, b"h", also_late)
    assert info.value.reason is DropReason.DECRYPT_FAILED


def test_forged_flipped_phase_packet_does_not_advance_the_opener() -> None:
    sealer, opener = PacketSealer(SECRET), PacketOpener(SECRET)
    with pytest.raises(BadPacket) as info:
        opener.open_untrusted(5, 1, b"h", bytes(40))
    assert info.value.reason is DropReason.DECRYPT_FAILED
    assert (opener.epoch, opener.key_phase, opener.has_previous) == (0, 0, False)
    assert opener.open_untrusted(6, 0, b"h", sealer.seal(6, b"h", b"still phase 0")) != b""
    sealer.update()
    assert opener.open_untrusted(7, 1, b"h", sealer.seal(7, b"h", b"next")) == b"next"


def test_packet_of_two_epochs_ago_fails() -> None:
    sealer, opener = PacketSealer(SECRET), PacketOpener(SECRET)
    old = sealer.seal(1, b"h", b"epoch 0")
    sealer.update()
    opener.open_untrusted(2, 1, b"h", sealer.seal(2, b"h", b"epoch 1"))
    sealer.update()
    opener.open_untrusted(3, 0, b"h", sealer.seal(3, b"h", b"epoch 2"))
    with pytest.raises(BadPacket):  # same phase bit as epoch 2, wrong key
        opener.open_untrusted(1, 0, b"h", old)


# --- replay window ------------------------------------------------------------------------------


def test_replay_window_size_at_least_2048() -> None:
    with pytest.raises(ValueError, match="2048"):
        ReplayWindow(2047)
    assert ReplayWindow().size_packets == 2048


def test_replay_window_rejects_duplicates() -> None:
    window = ReplayWindow()
    assert window.largest is None
    for pn in (0, 5, 3):
        assert window.check(pn)
        window.mark(pn)
        assert not window.check(pn)
    assert window.check(4)
    assert window.check(1)
    assert window.largest == 5


def test_replay_window_rejects_numbers_older_than_the_window() -> None:
    window = ReplayWindow(2048)
    window.mark(3000)
    assert window.check(3000 - 2047)  # the oldest number still inside
    assert not window.check(3000 - 2048)
    window.mark(3000 - 2048)  # marking outside the window is ignored
    assert not window.check(3000 - 2048)
    assert window.check(3000 - 2047)


def test_replay_window_far_ahead_jump_forgets_everything_below() -> None:
    window = ReplayWindow(2048)
    for pn in range(10):
        window.mark(pn)
    window.mark(1_000_000)
    assert not window.check(9)
    assert not window.check(1_000_000)
    assert window.check(999_999)
    assert window.check(1_000_000 - 2047)
    window.mark(1_000_000 + 2047)  # jump by exactly one window less one
    assert not window.check(1_000_000)


@settings(max_examples=200)
@given(
    st.lists(st.integers(min_value=0, max_value=6000), max_size=80),
    st.sampled_from([2048, 3000, 4096]),
)
def test_replay_window_matches_a_model(numbers: list[int], size: int) -> None:
    window = ReplayWindow(size)
    seen: set[int] = set()
    for pn in numbers:
        largest = max(seen, default=-1)
        expected = pn not in seen and pn > largest - size
        assert window.check(pn) == expected
        if expected:
            window.mark(pn)
            seen.add(pn)
