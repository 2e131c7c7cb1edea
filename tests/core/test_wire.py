"""Golden vectors for wire.py: ONE table drives both the encoders and the decoders.

Every row holds a value and its exact bytes (written out by hand from docs/PROTOCOL.md,
not produced by the encoder): ``encode(value) == bytes`` and ``decode(bytes) == value``.
tests/core/test_wire_fuzz.py mutates these same vectors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest

from udpim.core import framecodec, wire
from udpim.core.errors import BadPacket, DropReason, LocalProtocolError
from udpim.core.frames import (
    AckFrame,
    CloseFrame,
    CloseReason,
    DataFrame,
    FecFrame,
    LossReportFrame,
    PaddingFrame,
    PathChallengeFrame,
    PathResponseFrame,
    PingFrame,
    WindowFrame,
)
from udpim.core.wire import (
    COOKIE_REPLY_BYTES,
    INITIATION_BYTES,
    RESPONSE_BYTES,
    CookieReply,
    DataHeader,
    Initiation,
    PacketType,
    Response,
    data_frame_overhead,
    decode_cookie_reply_untrusted,
    decode_data_header_untrusted,
    decode_frames_untrusted,
    decode_initiation_untrusted,
    decode_packet_number,
    decode_response_untrusted,
    decode_varint_untrusted,
    encode_cookie_reply,
    encode_data_header,
    encode_frames,
    encode_initiation,
    encode_response,
    encode_varint,
    frame_size,
    packet_number_length,
    peek_packet_type_untrusted,
    validate_handshake_untrusted,
)


def h(text: str) -> bytes:
    """Hex with spaces between fields, for readable vectors."""
    return bytes.fromhex(text)


@dataclass(frozen=True)
class Vector:
    name: str
    kind: str
    value: Any
    data: bytes


def _decode_varint(data: bytes) -> int:
    value, end = decode_varint_untrusted(data, 0)
    if end != len(data):
        raise BadPacket(DropReason.MALFORMED, "trailing bytes")
    return value


CODECS: dict[str, tuple[Callable[[Any], bytes], Callable[[bytes], Any]]] = {
    "initiation": (encode_initiation, decode_initiation_untrusted),
    "response": (encode_response, decode_response_untrusted),
    "cookie_reply": (encode_cookie_reply, decode_cookie_reply_untrusted),
    "frames": (encode_frames, decode_frames_untrusted),
    "varint": (encode_varint, _decode_varint),
}

CID = "01020304"
FRAGMENT = DataFrame(300, 70_000, 1000, 600, b"abc")

VECTORS = [
    # --- handshake packets ------------------------------------------------------------
    Vector(
        "initiation",
        "initiation",
        Initiation(h(CID), b"\x11" * 32, b"\x22" * 48, b"\x33" * 24, b"\x44" * 16, b"\x55" * 16),
        h("40" + CID + "11" * 32 + "22" * 48 + "33" * 24 + "44" * 16 + "55" * 16),
    ),
    Vector(
        "response",
        "response",
        Response(h("0a0b0c0d"), h(CID), b"\x66" * 32, b"\x77" * 16, b"\x88" * 16, bytes(16)),
        h("50 0a0b0c0d" + CID + "66" * 32 + "77" * 16 + "88" * 16 + "00" * 16),
    ),
    Vector(
        "cookie reply",
        "cookie_reply",
        CookieReply(h(CID), b"\x99" * 12, b"\xaa" * 32),
        h("60" + CID + "99" * 12 + "aa" * 32),
    ),
    # --- varints (RFC 9000 section 16 and A.1 examples, every length boundary) ---------
    *(
        Vector(f"varint {value}", "varint", value, h(text))
        for value, text in [
            (0, "00"),
            (37, "25"),
            (63, "3f"),
            (64, "4040"),
            (15293, "7bbd"),
            (16383, "7fff"),
            (16384, "80004000"),
            (494878333, "9d7f3e7d"),
            ((1 << 30) - 1, "bfffffff"),
            (1 << 30, "c000000040000000"),
            (151288809941952652, "c2197c5eff14e88c"),
            ((1 << 62) - 1, "ffffffffffffffff"),
        ]
    ),
    # --- frames ---------------------------------------------------------------------------
    Vector("padding 1", "frames", [PaddingFrame(1)], h("00")),
    Vector("padding 3", "frames", [PaddingFrame(3)], h("000000")),
    Vector("ping", "frames", [PingFrame()], h("01")),
    Vector("ack one packet", "frames", [AckFrame(((0, 0),), 0)], h("02 00 00 00 00")),
    Vector(
        "ack three ranges",
        "frames",
        [AckFrame(((95, 100), (80, 90), (10, 10)), 800)],
        # largest 100 | delay 800>>3=100 | 2 more ranges | first 5 | gap 3 len 10 | gap 68 len 0
        h("02 4064 4064 02 05 03 0a 4044 00"),
    ),
    Vector("window", "frames", [WindowFrame(4 << 20)], h("03 80400000")),
    Vector("close empty", "frames", [CloseFrame(CloseReason.NORMAL, "")], h("04 00 00")),
    Vector(
        "close utf-8",
        "frames",
        [CloseFrame(CloseReason.REPLACED, "à bientôt")],
        h("04 06 0b c3a0 20 6269656e74 c3b4 74"),
    ),
    Vector(
        "path challenge",
        "frames",
        [PathChallengeFrame(h("0001020304050607"))],
        h("05 0001020304050607"),
    ),
    Vector(
        "path response",
        "frames",
        [PathResponseFrame(h("f0f1f2f3f4f5f6f7"))],
        h("06 f0f1f2f3f4f5f6f7"),
    ),
    Vector("data whole", "frames", [DataFrame(0, 0, 5, 0, b"hello")], h("09 00 00 05 68656c6c6f")),
    Vector(
        "fec parity of packets 40, 41 and 43",
        "frames",
        [FecFrame(40, 0b1011, 2, h("0a0b0c0d0e"))],  # first | bitmap | seed | parity
        h("0a 28 0b 02 05 0a0b0c0d0e"),
    ),
    Vector(
        "loss report: 300 received, 7 missing",
        "frames",
        [LossReportFrame(300, 7)],
        h("0b 412c 07"),
    ),
    Vector("data whole empty", "frames", [DataFrame(7, 100, 0, 0, b"")], h("09 07 4064 00")),
    Vector(
        "data fragment",
        "frames",
        [FRAGMENT],  # number 300 | start 70000 | total 1000 | offset 600 | length 3 | "abc"
        h("08 412c 80011170 43e8 4258 03 616263"),
    ),
    Vector(
        "data first fragment",
        "frames",
        [DataFrame(1, 0, 10, 0, b"ab")],
        h("08 01 00 0a 00 02 6162"),
    ),
    Vector(
        "data last fragment", "frames", [DataFrame(1, 0, 10, 8, b"hi")], h("08 01 00 0a 08 02 6869")
    ),
    Vector(
        "several frames",
        "frames",
        [AckFrame(((3, 5),), 24), DataFrame(2, 5, 1, 0, b"x"), PingFrame(), PaddingFrame(2)],
        h("02 05 03 00 02" + "09 02 05 01 78" + "01" + "0000"),
    ),
]


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v.name)
def test_encode_gives_the_golden_bytes(vector: Vector) -> None:
    encode, _decode = CODECS[vector.kind]
    assert encode(vector.value) == vector.data


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v.name)
def test_decode_gives_the_golden_value(vector: Vector) -> None:
    _encode, decode = CODECS[vector.kind]
    assert decode(vector.data) == vector.value


@pytest.mark.parametrize("vector", [v for v in VECTORS if v.kind == "frames"], ids=lambda v: v.name)
def test_frame_size_is_exact(vector: Vector) -> None:
    assert sum(frame_size(frame) for frame in vector.value) == len(vector.data)


def test_handshake_packet_sizes_match_the_layout() -> None:
    sizes = {v.kind: len(v.data) for v in VECTORS}
    assert sizes["initiation"] == INITIATION_BYTES == 141
    assert sizes["response"] == RESPONSE_BYTES == 89
    assert sizes["cookie_reply"] == COOKIE_REPLY_BYTES == 49


def test_data_frame_overhead_excludes_the_payload() -> None:
    assert data_frame_overhead(300, 70_000, 1000, 600, 3) == len(h("08 412c 80011170 43e8 4258 03"))
    assert data_frame_overhead(0, 0, 5, 0, 5) == 4


# --- DATA header and packet numbers (RFC 9000 appendix A.2 / A.3) -------------------------

TAIL = bytes(17)  # the smallest ciphertext a DATA packet may carry
# (dcid, key phase, packet number, largest acked, header bytes)
HEADER_VECTORS = [
    ("deadbeef", 0, 0, None, "70 deadbeef 00"),
    ("deadbeef", 0, 127, None, "70 deadbeef 7f"),  # 128 unacked: 1 byte is just enough
    ("deadbeef", 0, 128, None, "71 deadbeef 0080"),
    ("deadbeef", 1, 0xAC5C02, 0xABE8B3, "79 deadbeef 5c02"),  # RFC A.2: 16 bits
    ("deadbeef", 0, 0xACE8FE, 0xABE8B3, "72 deadbeef ace8fe"),  # RFC A.2: 24 bits
    ("00000000", 1, 0x12345678, None, "7b 00000000 12345678"),
    ("cafef00d", 0, (1 << 40) + 5, 1 << 40, "70 cafef00d 05"),
]


@pytest.mark.parametrize(("dcid", "phase", "pn", "acked", "text"), HEADER_VECTORS)
def test_data_header_golden(dcid: str, phase: int, pn: int, acked: int | None, text: str) -> None:
    data = h(text)
    assert encode_data_header(h(dcid), phase, pn, acked) == data
    length = len(data) - 5
    truncated = pn & ((1 << (8 * length)) - 1)
    assert decode_data_header_untrusted(data + TAIL) == DataHeader(
        phase, h(dcid), truncated, length, data
    )
    assert decode_packet_number(truncated, length, acked) == pn


# (largest received, truncated, length, full packet number)
PN_DECODE_VECTORS = [
    (0xA82F30EA, 0x9B32, 2, 0xA82F9B32),  # RFC 9000 appendix A.3
    (None, 0x00, 1, 0),
    (None, 0x7F, 1, 0x7F),
    (0xFF, 0x00, 1, 0x100),  # crossing a byte boundary forwards
    (0x100, 0xFF, 1, 0xFF),  # a late packet just below the boundary
    (0x1FE, 0x01, 1, 0x201),  # forwards by 3 across the boundary
    (0xABE8B3, 0x5C02, 2, 0xAC5C02),  # RFC A.2 sender's example, decoded
    (0xFFFFFFFF, 0x00000000, 4, 0x100000000),
    ((1 << 62) - 2, 0xFF, 1, (1 << 62) - 1),  # no wrap past 2**62
]


@pytest.mark.parametrize(("largest", "truncated", "length", "full"), PN_DECODE_VECTORS)
def test_packet_number_reconstruction(
    largest: int | None, truncated: int, length: int, full: int
) -> None:
    assert decode_packet_number(truncated, length, largest) == full


@pytest.mark.parametrize(
    ("pn", "acked", "length"),
    [(0, None, 1), (1 << 31, (1 << 31) - 1, 1), (0x7FFF, None, 2), (0x8000, None, 3)],
)
def test_packet_number_length(pn: int, acked: int | None, length: int) -> None:
    assert packet_number_length(pn, acked) == length


@pytest.mark.parametrize(
    ("pn", "acked"),
    [(-1, None), (1 << 62, None), (5, 5), (5, 9), (1 << 31, None), ((1 << 32) + 1, 0)],
)
def test_packet_number_length_refuses(pn: int, acked: int | None) -> None:
    with pytest.raises(LocalProtocolError):
        packet_number_length(pn, acked)


# --- decoders reject exactly what they should -----------------------------------------------

INIT = VECTORS[0].data
BAD_PACKETS = [
    ("empty", b"", DropReason.TRUNCATED),
    ("version 0", h("00") + INIT[1:], DropReason.UNKNOWN_VERSION),
    ("version 2", h("80") + INIT[1:], DropReason.UNKNOWN_VERSION),
    ("version 3", h("c0") + INIT[1:], DropReason.UNKNOWN_VERSION),
    ("response bytes", VECTORS[1].data, DropReason.UNEXPECTED),
    ("low bits", h("41") + INIT[1:], DropReason.MALFORMED),
    ("short", INIT[:-1], DropReason.TRUNCATED),
    ("long", INIT + b"\x00", DropReason.MALFORMED),
]


@pytest.mark.parametrize(("name", "data", "reason"), BAD_PACKETS, ids=[b[0] for b in BAD_PACKETS])
def test_initiation_rejections(name: str, data: bytes, reason: DropReason) -> None:
    with pytest.raises(BadPacket) as info:
        decode_initiation_untrusted(data)
    assert info.value.reason is reason


def test_peek_packet_type() -> None:
    assert [peek_packet_type_untrusted(bytes([b])) for b in (0x40, 0x50, 0x60, 0x7F)] == list(
        PacketType
    )


def test_validate_handshake_refuses_data_type() -> None:
    with pytest.raises(LocalProtocolError):
        validate_handshake_untrusted(INIT, PacketType.DATA)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (h("74 deadbeef 00") + TAIL, DropReason.MALFORMED),  # reserved bit
        (h("70 deadbeef 00") + TAIL[:-1], DropReason.TRUNCATED),
        (h("73 deadbeef 000000") + TAIL, DropReason.TRUNCATED),  # pn claims 4 bytes
        (h("40") + bytes(40), DropReason.UNEXPECTED),
        (h("b0") + bytes(40), DropReason.UNKNOWN_VERSION),
    ],
)
def test_data_header_rejections(data: bytes, reason: DropReason) -> None:
    with pytest.raises(BadPacket) as info:
        decode_data_header_untrusted(data)
    assert info.value.reason is reason


BAD_FRAMES = [
    ("no frames", "", DropReason.MALFORMED),
    ("type 0x07", "07", DropReason.MALFORMED),
    ("type 0x0c", "0c", DropReason.MALFORMED),
    ("fec without its first member", "0a 05 02 00 01 ff", DropReason.MALFORMED),
    ("fec with empty parity", "0a 05 01 00 00", DropReason.MALFORMED),
    ("fec parity cut short", "0a 05 01 00 04 aa bb", DropReason.TRUNCATED),
    ("garbage after ping", "01 ff", DropReason.MALFORMED),
    ("window cut in varint", "03 80", DropReason.TRUNCATED),
    ("ack range below zero", "02 05 00 00 06", DropReason.MALFORMED),
    ("ack gap below zero", "02 05 00 01 00 04 00", DropReason.MALFORMED),
    ("ack length below zero", "02 09 00 01 00 00 08", DropReason.MALFORMED),
    ("ack missing range", "02 05 00 01 00", DropReason.TRUNCATED),
    ("ack huge range count", "02 05 00 bfffffff 00 00 00", DropReason.TRUNCATED),
    ("close unknown code", "04 07 00", DropReason.MALFORMED),
    ("close text too long", "04 00 4100" + "61" * 256, DropReason.MALFORMED),
    ("close bad utf-8", "04 00 02 c328", DropReason.MALFORMED),
    ("close text cut", "04 00 05 6162", DropReason.TRUNCATED),
    ("path challenge cut", "05 01020304", DropReason.TRUNCATED),
    ("path response cut", "06", DropReason.TRUNCATED),
    ("empty fragment", "08 00 00 05 00 00", DropReason.MALFORMED),
    ("fragment past total", "08 00 00 05 04 02 6162", DropReason.MALFORMED),
    ("whole sent as fragment", "08 00 00 02 00 02 6162", DropReason.MALFORMED),
    ("payload cut", "09 00 00 05 6162", DropReason.TRUNCATED),
    ("beyond stream end", "09 00 ffffffffffffffff 01 61", DropReason.MALFORMED),
]


@pytest.mark.parametrize(("name", "text", "reason"), BAD_FRAMES, ids=[b[0] for b in BAD_FRAMES])
def test_frame_rejections(name: str, text: str, reason: DropReason) -> None:
    with pytest.raises(BadPacket) as info:
        decode_frames_untrusted(h(text))
    assert info.value.reason is reason


# --- encoders refuse values no layout can carry ------------------------------------------------

UNENCODABLE_FRAMES = [
    ("padding 0", PaddingFrame(0)),
    ("ack without ranges", AckFrame((), 0)),
    ("ack negative delay", AckFrame(((1, 2),), -8)),
    ("ack reversed range", AckFrame(((3, 2),), 0)),
    ("ack negative range", AckFrame(((-1, 2),), 0)),
    ("ack adjacent ranges", AckFrame(((5, 6), (2, 4)), 0)),
    ("ack overlapping ranges", AckFrame(((5, 6), (2, 5)), 0)),
    ("ack ascending ranges", AckFrame(((1, 2), (5, 6)), 0)),
    ("ack reversed later range", AckFrame(((9, 9), (5, 3)), 0)),
    ("close text over 255 bytes", CloseFrame(CloseReason.NORMAL, "é" * 128)),
    ("close unknown code", CloseFrame(99, "x")),  # type: ignore[arg-type]
    ("close surrogate", CloseFrame(CloseReason.NORMAL, "\ud800")),
    ("path data 7 bytes", PathChallengeFrame(bytes(7))),
    ("path response 9 bytes", PathResponseFrame(bytes(9))),
    ("data past total", DataFrame(0, 0, 2, 1, b"ab")),
    ("data negative offset", DataFrame(0, 0, 2, -1, b"a")),
    ("data empty fragment", DataFrame(0, 0, 2, 1, b"")),
    ("data past stream end", DataFrame(0, (1 << 62) - 1, 1, 0, b"a")),
    ("data negative number", DataFrame(-1, 0, 1, 0, b"a")),
    ("data number too large", DataFrame(1 << 62, 0, 1, 0, b"a")),
    ("window too large", WindowFrame(1 << 62)),
    ("window negative", WindowFrame(-1)),
    ("fec without its first member", FecFrame(4, 0b10, 0, b"x")),
    ("fec span too wide", FecFrame(4, (1 << 62) | 1, 0, b"x")),
    ("fec empty parity", FecFrame(4, 1, 0, b"")),
    ("not a frame", "PING"),
]


@pytest.mark.parametrize(
    ("name", "frame"), UNENCODABLE_FRAMES, ids=[u[0] for u in UNENCODABLE_FRAMES]
)
def test_encode_frames_refuses(name: str, frame: Any) -> None:
    with pytest.raises(LocalProtocolError):
        encode_frames([frame])
    with pytest.raises(LocalProtocolError):
        frame_size(frame)


@pytest.mark.parametrize(
    "call",
    [
        lambda: encode_initiation(replace(VECTORS[0].value, sender_cid=b"abc")),
        lambda: encode_response(Response(b"", b"", b"", b"", b"", b"")),
        lambda: encode_cookie_reply(CookieReply(h(CID), bytes(12), bytes(31))),
        lambda: encode_cookie_reply(CookieReply(h(CID), bytes(12), "x" * 32)),  # type: ignore[arg-type]
        lambda: encode_data_header(b"abc", 0, 1, None),
        lambda: encode_data_header(b"abcd", 2, 1, None),
    ],
)
def test_packet_encoders_refuse(call: Callable[[], bytes]) -> None:
    with pytest.raises(LocalProtocolError):
        call()


# --- the split: framecodec.py owns the frames, wire.py re-exports them ---------------------


def test_wire_reexports_the_frame_codec() -> None:
    for name in framecodec.__all__:
        assert name in wire.__all__
        assert getattr(wire, name) is getattr(framecodec, name)


@pytest.mark.parametrize(
    ("text", "frames"),
    [
        ("00 00 01", [PaddingFrame(2), PingFrame()]),
        ("00 03 05", [PaddingFrame(1), WindowFrame(5)]),
        ("01 00 01 0000", [PingFrame(), PaddingFrame(1), PingFrame(), PaddingFrame(2)]),
    ],
)
def test_padding_ends_at_the_next_frame(text: str, frames: list[Any]) -> None:
    assert decode_frames_untrusted(h(text)) == frames
    assert encode_frames(frames) == h(text)
