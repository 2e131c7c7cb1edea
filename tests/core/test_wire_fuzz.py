"""Hostile input to every wire decoder: truncations, bit flips, random bytes.

The contract (wire.py): a ``*_untrusted`` decoder either raises ``BadPacket`` or returns
a value that our own encoder accepts and that survives a re-encode/decode round trip.
Any other exception fails these tests.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.core.test_wire import CODECS, HEADER_VECTORS, TAIL, VECTORS, Vector, h
from udpim.core.errors import BadPacket
from udpim.core.frames import (
    AckFrame,
    CloseFrame,
    CloseReason,
    DataFrame,
    Frame,
    PaddingFrame,
    PathChallengeFrame,
    PathResponseFrame,
    PingFrame,
    WindowFrame,
)
from udpim.core.varint import MAX_VARINT
from udpim.core.wire import (
    PacketType,
    decode_cookie_reply_untrusted,
    decode_data_header_untrusted,
    decode_frames_untrusted,
    decode_initiation_untrusted,
    decode_packet_number,
    decode_response_untrusted,
    decode_varint_untrusted,
    encode_data_header,
    encode_frames,
    encode_varint,
    frame_size,
    peek_packet_type_untrusted,
    validate_handshake_untrusted,
)


def mutations(data: bytes) -> Iterator[bytes]:
    """Every proper prefix and every single-bit flip of ``data``."""
    for end in range(len(data)):
        yield data[:end]
    for bit in range(8 * len(data)):
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        yield bytes(flipped)


def assert_bad_or_valid(kind: str, data: bytes) -> None:
    """``data`` decodes to BadPacket, or to a value that re-encodes and decodes the same."""
    encode, decode = CODECS[kind]
    try:
        value = decode(data)
    except BadPacket:
        return
    assert decode(encode(value)) == value


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v.name)
def test_every_truncation_and_bit_flip(vector: Vector) -> None:
    for mutated in mutations(vector.data):
        assert_bad_or_valid(vector.kind, mutated)


@pytest.mark.parametrize("text", [v[-1] for v in HEADER_VECTORS])
def test_every_truncation_and_bit_flip_of_data_headers(text: str) -> None:
    for mutated in mutations(h(text) + TAIL):
        try:
            header = decode_data_header_untrusted(mutated)
        except BadPacket:
            continue
        assert header.header == mutated[: 5 + header.pn_length]
        assert header.dcid == mutated[1:5]
        assert header.key_phase in (0, 1)
        assert 0 <= header.truncated_pn < 1 << (8 * header.pn_length)


def test_flips_inside_a_frame_list_never_escape() -> None:
    payload = encode_frames(
        [
            AckFrame(((1000, 2000), (10, 900)), 4096),
            CloseFrame(CloseReason.PROTOCOL_VIOLATION, "ünïcode ✓"),
            DataFrame(5, 1 << 20, 70_000, 65_000, b"\xff" * 20),
            WindowFrame(1 << 40),
        ]
    )
    for mutated in mutations(payload):
        assert_bad_or_valid("frames", mutated)


# --- random bytes into every decoder --------------------------------------------------------

DECODERS: list[Callable[[bytes], Any]] = [
    peek_packet_type_untrusted,
    decode_initiation_untrusted,
    decode_response_untrusted,
    decode_cookie_reply_untrusted,
    decode_data_header_untrusted,
    decode_frames_untrusted,
    lambda data: decode_varint_untrusted(data, 0),
    lambda data: decode_varint_untrusted(data, len(data) // 2),
    lambda data: validate_handshake_untrusted(data, PacketType.INITIATION),
    lambda data: validate_handshake_untrusted(data, PacketType.RESPONSE),
    lambda data: validate_handshake_untrusted(data, PacketType.COOKIE_REPLY),
]


@settings(max_examples=500)
@given(st.binary(max_size=200), st.sampled_from(range(len(DECODERS))))
def test_random_bytes_only_raise_bad_packet(data: bytes, which: int) -> None:
    with contextlib.suppress(BadPacket):
        DECODERS[which](data)


@settings(max_examples=300)
@given(st.integers(min_value=0, max_value=10), st.binary(max_size=40))
def test_random_frame_payloads_bad_or_valid(kind: int, data: bytes) -> None:
    assert_bad_or_valid("frames", bytes([kind]) + data)


# --- round trips ---------------------------------------------------------------------------------


@st.composite
def ack_frames(draw: st.DrawFn) -> AckFrame:
    high = draw(st.integers(min_value=0, max_value=1 << 40))
    ranges = []
    while True:
        low = high - draw(st.integers(min_value=0, max_value=min(high, 1000)))
        ranges.append((low, high))
        high = low - 2 - draw(st.integers(min_value=0, max_value=1000))
        if high < 0 or len(ranges) >= 8 or draw(st.booleans()):
            break
    delay = draw(st.integers(min_value=0, max_value=1 << 30)) << 3
    return AckFrame(tuple(ranges), delay)


@st.composite
def data_frames(draw: st.DrawFn) -> DataFrame:
    payload = draw(st.binary(max_size=64))
    offset = draw(st.integers(min_value=0, max_value=1 << 20))
    total = offset + len(payload) + draw(st.integers(min_value=0, max_value=1 << 20))
    if not payload:
        offset = total = 0  # an empty payload only exists as an empty whole message
    number = draw(st.integers(min_value=0, max_value=MAX_VARINT))
    start = draw(st.integers(min_value=0, max_value=MAX_VARINT - total))
    return DataFrame(number, start, total, offset, payload)


close_texts = st.text(max_size=80).filter(lambda t: len(t.encode()) <= 255)
frames: st.SearchStrategy[Frame] = st.one_of(
    st.builds(PaddingFrame, st.integers(min_value=1, max_value=40)),
    st.just(PingFrame()),
    ack_frames(),
    st.builds(WindowFrame, st.integers(min_value=0, max_value=MAX_VARINT)),
    st.builds(CloseFrame, st.sampled_from(CloseReason), close_texts),
    st.builds(PathChallengeFrame, st.binary(min_size=8, max_size=8)),
    st.builds(PathResponseFrame, st.binary(min_size=8, max_size=8)),
    data_frames(),
)


def _no_adjacent_padding(frame_list: list[Frame]) -> bool:
    pairs = itertools.pairwise(frame_list)
    return not any(isinstance(a, PaddingFrame) and isinstance(b, PaddingFrame) for a, b in pairs)


@settings(max_examples=300)
@given(st.lists(frames, min_size=1, max_size=6).filter(_no_adjacent_padding))
def test_frames_round_trip_with_exact_sizes(frame_list: list[Frame]) -> None:
    payload = encode_frames(frame_list)
    assert decode_frames_untrusted(payload) == frame_list
    assert len(payload) == sum(frame_size(frame) for frame in frame_list)


@settings(max_examples=300)
@given(
    st.integers(min_value=0, max_value=(1 << 62) - 1),
    st.integers(min_value=1, max_value=1 << 31),
    st.data(),
)
def test_packet_numbers_reconstruct_from_any_valid_largest(
    pn: int, unacked: int, data: st.DataObject
) -> None:
    """RFC 9000 A.2 + A.3: the receiver recovers the number whatever its largest
    received, as long as that lies between the sender's largest acked and the number."""
    largest_acked = pn - unacked if pn >= unacked else None
    header = decode_data_header_untrusted(encode_data_header(b"abcd", 0, pn, largest_acked) + TAIL)
    floor = -1 if largest_acked is None else largest_acked
    received = data.draw(st.integers(min_value=floor, max_value=pn - 1))
    largest = None if received < 0 else received
    assert decode_packet_number(header.truncated_pn, header.pn_length, largest) == pn


# --- the frame codec's varints agree with varint.py (the reference) ------------------------

VARINT_BOUNDARIES = [
    0,
    1,
    0x3F,
    0x40,
    0x3FFF,
    0x4000,
    0x3FFF_FFFF,
    0x4000_0000,
    MAX_VARINT - 1,
    MAX_VARINT,
]


@settings(max_examples=300)
@given(st.one_of(st.sampled_from(VARINT_BOUNDARIES), st.integers(0, MAX_VARINT)))
def test_frame_varints_encode_as_varint_module(value: int) -> None:
    payload = b"\x03" + encode_varint(value)
    assert encode_frames([WindowFrame(value)]) == payload
    assert decode_frames_untrusted(payload) == [WindowFrame(value)]


@settings(max_examples=500)
@given(st.binary(min_size=0, max_size=9))
def test_frame_varints_decode_as_varint_module(data: bytes) -> None:
    """Any bytes after a WINDOW type byte: same value, or both TRUNCATED."""
    reference: BadPacket | None = None
    try:
        value, end = decode_varint_untrusted(data, 0)
    except BadPacket as exc:
        reference = exc
    if reference is not None:
        with pytest.raises(BadPacket) as info:
            decode_frames_untrusted(b"\x03" + data)
        assert info.value.reason is reference.reason
    else:
        assert decode_frames_untrusted(b"\x03" + data[:end]) == [WindowFrame(value)]
