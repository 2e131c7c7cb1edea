"""Wire format: packet layouts, packet-number truncation and the frame codec.

This module owns every byte layout udpim puts on the network (docs/PROTOCOL.md "Packets"
and "Frames"). It knows nothing about keys or sessions: ``crypto.py`` seals what
``encode_frames`` produces, ``handshake.py`` and ``cookies.py`` fill the handshake fields.

Rules it keeps:

* Every decoder ends in ``_untrusted`` and fails **only** with ``BadPacket`` carrying a
  precise ``DropReason``, for any input bytes whatsoever (the tests feed truncations,
  every single-bit flip and random bytes). Lengths are checked before anything is sliced,
  so no ``struct.error``, ``IndexError``, ``UnicodeDecodeError`` or construct error can
  escape.
* Encoders take values from our own code: a value that cannot be encoded (negative
  number, overlapping ACK ranges, CLOSE text over 255 bytes, ...) is a bug in the caller
  and raises ``LocalProtocolError``.
* Decoding is strict: reserved bits, unknown frame types, unknown close codes, invalid
  UTF-8, inconsistent DATA lengths, non-canonical DATA fragments and trailing bytes are
  all rejected, so every accepted payload re-encodes to a value the encoder accepts.
* All integers are big-endian; varints are QUIC's (RFC 9000 section 16, ``varint.py``).

Theory of operation. The first byte of every packet carries the version (bits 7-6, 0b01)
and the packet type (bits 5-4). The three handshake packets have fixed sizes and are
declared below as compiled ``construct`` structs; the decoder checks the first byte and
the exact length, after which parsing cannot fail. DATA packets carry ``byte0 | dcid[4] |
packet number[1..4]`` (also compiled construct structs, one per packet-number length),
then the AEAD ciphertext of the frames. Packet numbers are truncated as RFC 9000
section 17.1 / appendix A.2 (enough bytes for twice the distance from the largest
acknowledged) and reconstructed as appendix A.3 (closest to the largest received + 1).
An ACK's delay travels in units of 8 us (``ack_delay_us >> 3``): decoded delays are
multiples of 8.

Frame codec choice: frames are hand-written over the ``varint.py`` helpers, not
construct. Frames are varint sequences decoded on every datagram; a dispatch table of
small functions is the fastest option measured and a direct transcription of the table
in PROTOCOL.md. Compiled construct pays a ``BytesIO`` and a ``Container`` per call:
about 3.5 us to build and 4.3 us to parse even the 6-byte DATA header (slicing by hand:
0.4 / 1.1 us), against about 2.4 us to encode and 2.5 us to decode a 200-byte DATA
frame by hand. The DATA header still uses compiled construct, as the layout contract
asks; it is the first thing to hand-write if profiles show per-datagram overhead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final, final

import construct as cs

from udpim.core.errors import BadPacket, DropReason, LocalProtocolError
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
from udpim.core.varint import (
    MAX_VARINT,
    data_frame_size,
    decode_varint_untrusted,
    encode_varint,
)

__all__ = [
    "AEAD_TAG_BYTES",
    "CID_BYTES",
    "COOKIE_REPLY_BYTES",
    "INITIATION_BYTES",
    "INITIATION_MAC1_OFFSET",
    "INITIATION_MAC2_OFFSET",
    "MAX_CLOSE_TEXT_BYTES",
    "MAX_DATAGRAM_BYTES",
    "MAX_PACKET_NUMBER",
    "MIN_DATA_CIPHERTEXT_BYTES",
    "PATH_DATA_BYTES",
    "RESPONSE_BYTES",
    "RESPONSE_MAC1_OFFSET",
    "RESPONSE_MAC2_OFFSET",
    "VERSION",
    "CookieReply",
    "DataHeader",
    "FrameType",
    "Initiation",
    "PacketType",
    "Response",
    "data_frame_overhead",
    "decode_cookie_reply_untrusted",
    "decode_data_header_untrusted",
    "decode_frames_untrusted",
    "decode_initiation_untrusted",
    "decode_packet_number",
    "decode_response_untrusted",
    "decode_varint_untrusted",
    "encode_cookie_reply",
    "encode_data_header",
    "encode_frames",
    "encode_initiation",
    "encode_response",
    "encode_varint",
    "first_byte",
    "frame_size",
    "packet_number_length",
    "peek_packet_type_untrusted",
    "validate_handshake_untrusted",
]

VERSION: Final = 1
CID_BYTES: Final = 4
AEAD_TAG_BYTES: Final = 16
INITIATION_BYTES: Final = 141
RESPONSE_BYTES: Final = 89
COOKIE_REPLY_BYTES: Final = 49
INITIATION_MAC1_OFFSET: Final = 109  # mac1 covers initiation[:109]
INITIATION_MAC2_OFFSET: Final = 125  # mac2 covers initiation[:125]
RESPONSE_MAC1_OFFSET: Final = 57
RESPONSE_MAC2_OFFSET: Final = 73
MIN_DATA_CIPHERTEXT_BYTES: Final = AEAD_TAG_BYTES + 1  # at least one frame byte
# Largest datagram accepted (Ethernet MTU); larger ones are dropped OVERSIZED, unread.
# SessionConfig.max_datagram_bytes (what a side sends) must not exceed it.
MAX_DATAGRAM_BYTES: Final = 1500
MAX_PACKET_NUMBER: Final = MAX_VARINT  # 2**62 - 1, as QUIC
MAX_CLOSE_TEXT_BYTES: Final = 255
PATH_DATA_BYTES: Final = 8


@final
class PacketType(IntEnum):
    """Packet type, bits 5-4 of the first byte."""

    INITIATION = 0
    RESPONSE = 1
    COOKIE_REPLY = 2
    DATA = 3


@final
class FrameType(IntEnum):
    """Frame type byte (docs/PROTOCOL.md "Frames")."""

    PADDING = 0x00
    PING = 0x01
    ACK = 0x02
    WINDOW = 0x03
    CLOSE = 0x04
    PATH_CHALLENGE = 0x05
    PATH_RESPONSE = 0x06
    DATA_FRAGMENT = 0x08
    DATA_WHOLE = 0x09


@final
@dataclass(frozen=True, slots=True)
class Initiation:
    """Handshake message 1 (initiator -> responder), fields as on the wire."""

    sender_cid: bytes
    ephemeral: bytes
    enc_static: bytes
    enc_timestamp: bytes
    mac1: bytes
    mac2: bytes


@final
@dataclass(frozen=True, slots=True)
class Response:
    """Handshake message 2 (responder -> initiator), fields as on the wire."""

    sender_cid: bytes
    receiver_cid: bytes
    ephemeral: bytes
    enc_empty: bytes
    mac1: bytes
    mac2: bytes


@final
@dataclass(frozen=True, slots=True)
class CookieReply:
    """Stateless answer to an initiation under load (see ``cookies.py``)."""

    receiver_cid: bytes
    nonce: bytes
    enc_cookie: bytes


@final
@dataclass(frozen=True, slots=True)
class DataHeader:
    """The cleartext header of a DATA packet.

    Attributes:
        key_phase: bit 3 of the first byte (0 or 1).
        dcid: the receiver's connection ID.
        truncated_pn: the packet number as sent (``pn_length`` bytes).
        pn_length: 1..4.
        header: the raw header bytes; the AEAD associated data. The ciphertext starts
            at ``len(header)``.
    """

    key_phase: int
    dcid: bytes
    truncated_pn: int
    pn_length: int
    header: bytes


# --- packet layouts (construct) ---------------------------------------------------------

# (field, size) in wire order after the first byte; the structs and the encoders'
# length checks both come from here (compiled construct does not check lengths).
_LAYOUTS: Final[dict[type, tuple[tuple[str, int], ...]]] = {
    Initiation: (
        ("sender_cid", CID_BYTES),
        ("ephemeral", 32),
        ("enc_static", 32 + AEAD_TAG_BYTES),
        ("enc_timestamp", 8 + AEAD_TAG_BYTES),
        ("mac1", 16),
        ("mac2", 16),
    ),
    Response: (
        ("sender_cid", CID_BYTES),
        ("receiver_cid", CID_BYTES),
        ("ephemeral", 32),
        ("enc_empty", AEAD_TAG_BYTES),
        ("mac1", 16),
        ("mac2", 16),
    ),
    CookieReply: (("receiver_cid", CID_BYTES), ("nonce", 12), ("enc_cookie", 16 + AEAD_TAG_BYTES)),
}


def _struct(layout: tuple[tuple[str, int], ...]) -> Any:
    return cs.Struct("first" / cs.Int8ub, *(name / cs.Bytes(size) for name, size in layout))


_INITIATION: Final[Any] = _struct(_LAYOUTS[Initiation]).compile()
_RESPONSE: Final[Any] = _struct(_LAYOUTS[Response]).compile()
_COOKIE_REPLY: Final[Any] = _struct(_LAYOUTS[CookieReply]).compile()
_PN_FIELDS: Final = (cs.Int8ub, cs.Int16ub, cs.Int24ub, cs.Int32ub)
_DATA_HEADERS: Final[tuple[Any, ...]] = tuple(
    cs.Struct("first" / cs.Int8ub, "dcid" / cs.Bytes(CID_BYTES), "pn" / field).compile()
    for field in _PN_FIELDS
)
_HANDSHAKE_BYTES: Final = {
    PacketType.INITIATION: INITIATION_BYTES,
    PacketType.RESPONSE: RESPONSE_BYTES,
    PacketType.COOKIE_REPLY: COOKIE_REPLY_BYTES,
}


def first_byte(packet_type: PacketType) -> int:
    """The first byte of a packet of this type: version 1 and the type, low bits zero."""
    return (VERSION << 6) | (packet_type << 4)


def peek_packet_type_untrusted(data: bytes) -> PacketType:
    """Return the packet type from the first byte, after checking the version.

    Raises:
        BadPacket: TRUNCATED for an empty datagram, UNKNOWN_VERSION if bits 7-6 are not
            version 1.
    """
    if not data:
        raise BadPacket(DropReason.TRUNCATED, "empty datagram")
    if data[0] >> 6 != VERSION:
        raise BadPacket(DropReason.UNKNOWN_VERSION, f"version bits {data[0] >> 6}")
    return PacketType((data[0] >> 4) & 0x3)


def validate_handshake_untrusted(data: bytes, packet_type: PacketType) -> None:
    """Check the first byte and exact length of a handshake packet, without parsing it.

    ``cookies.verify_mac1_untrusted`` uses this to reject garbage before any work.

    Args:
        data: the datagram.
        packet_type: the handshake type expected (INITIATION, RESPONSE, COOKIE_REPLY).

    Raises:
        BadPacket: TRUNCATED, UNKNOWN_VERSION, UNEXPECTED (another packet type), or
            MALFORMED (low bits of the first byte set, or longer than the layout).
        LocalProtocolError: if ``packet_type`` is DATA.
    """
    size = _HANDSHAKE_BYTES.get(packet_type)
    if size is None:
        raise LocalProtocolError("DATA is not a handshake packet type")
    found = peek_packet_type_untrusted(data)
    if found != packet_type:
        raise BadPacket(DropReason.UNEXPECTED, f"{found.name} where {packet_type.name} expected")
    if data[0] & 0x0F:
        raise BadPacket(DropReason.MALFORMED, "handshake low bits not zero")
    if len(data) != size:
        reason = DropReason.TRUNCATED if len(data) < size else DropReason.MALFORMED
        raise BadPacket(reason, f"{packet_type.name} of {len(data)} bytes, not {size}")


def _build(
    struct: Any, packet_type: PacketType, value: Initiation | Response | CookieReply
) -> bytes:
    fields: dict[str, Any] = {"first": first_byte(packet_type)}
    for name, size in _LAYOUTS[type(value)]:
        field = getattr(value, name)
        if not isinstance(field, bytes) or len(field) != size:
            raise LocalProtocolError(f"{type(value).__name__}.{name} must be {size} bytes")
        fields[name] = field
    return bytes(struct.build(fields))


def _fields(struct: Any, kind: type, data: bytes) -> list[bytes]:
    parsed = struct.parse(data)
    return [parsed[name] for name, _size in _LAYOUTS[kind]]


def encode_initiation(message: Initiation) -> bytes:
    """Encode an INITIATION packet (141 bytes).

    Raises:
        LocalProtocolError: if a field does not have its fixed length.
    """
    return _build(_INITIATION, PacketType.INITIATION, message)


def decode_initiation_untrusted(data: bytes) -> Initiation:
    """Decode an INITIATION packet; ``mac1``/``mac2`` are returned, not checked.

    Raises:
        BadPacket: TRUNCATED, UNKNOWN_VERSION, UNEXPECTED (another packet type) or
            MALFORMED (low bits set, too long).
    """
    validate_handshake_untrusted(data, PacketType.INITIATION)
    return Initiation(*_fields(_INITIATION, Initiation, data))


def encode_response(message: Response) -> bytes:
    """Encode a RESPONSE packet (89 bytes).

    Raises:
        LocalProtocolError: if a field does not have its fixed length.
    """
    return _build(_RESPONSE, PacketType.RESPONSE, message)


def decode_response_untrusted(data: bytes) -> Response:
    """Decode a RESPONSE packet; nothing cryptographic is checked here.

    Raises:
        BadPacket: as ``decode_initiation_untrusted``.
    """
    validate_handshake_untrusted(data, PacketType.RESPONSE)
    return Response(*_fields(_RESPONSE, Response, data))


def encode_cookie_reply(message: CookieReply) -> bytes:
    """Encode a COOKIE_REPLY packet (49 bytes).

    Raises:
        LocalProtocolError: if a field does not have its fixed length.
    """
    return _build(_COOKIE_REPLY, PacketType.COOKIE_REPLY, message)


def decode_cookie_reply_untrusted(data: bytes) -> CookieReply:
    """Decode a COOKIE_REPLY packet; the cookie stays encrypted.

    Raises:
        BadPacket: as ``decode_initiation_untrusted``.
    """
    validate_handshake_untrusted(data, PacketType.COOKIE_REPLY)
    return CookieReply(*_fields(_COOKIE_REPLY, CookieReply, data))


# --- packet numbers (RFC 9000 section 17.1, appendix A.2 / A.3) -------------------------


def packet_number_length(packet_number: int, largest_acked: int | None) -> int:
    """Bytes needed to send ``packet_number`` (RFC 9000 appendix A.2).

    The encoding covers at least twice the distance from the largest acknowledged
    packet number (``packet_number + 1`` when nothing was acknowledged yet).

    Raises:
        LocalProtocolError: if the number is out of range, not above ``largest_acked``,
            or more than 2**31 numbers are unacknowledged (4 bytes cannot cover them).
    """
    if not 0 <= packet_number <= MAX_PACKET_NUMBER:
        raise LocalProtocolError(f"packet number {packet_number} out of range")
    unacked = packet_number + 1 if largest_acked is None else packet_number - largest_acked
    if unacked < 1:
        raise LocalProtocolError(f"packet number {packet_number} <= largest acked")
    # Smallest n with 2**(8n - 1) >= unacked, i.e. ceil((log2(unacked) + 1) / 8).
    length = ((unacked - 1).bit_length() + 8) // 8
    if length > 4:
        raise LocalProtocolError(f"{unacked} unacknowledged packet numbers")
    return length


def decode_packet_number(truncated: int, pn_length: int, largest_received: int | None) -> int:
    """Reconstruct a full packet number (RFC 9000 appendix A.3).

    Args:
        truncated: the packet number as received.
        pn_length: its length in bytes (1..4).
        largest_received: the largest packet number authenticated so far, if any.

    Returns:
        The candidate closest to ``largest_received + 1``.
    """
    expected = 0 if largest_received is None else largest_received + 1
    window = 1 << (8 * pn_length)
    half_window = window >> 1
    candidate = (expected & ~(window - 1)) | truncated
    if candidate <= expected - half_window and candidate < (1 << 62) - window:
        return candidate + window
    if candidate > expected + half_window and candidate >= window:
        return candidate - window
    return candidate


def encode_data_header(
    dcid: bytes, key_phase: int, packet_number: int, largest_acked: int | None
) -> bytes:
    """Encode a DATA header: ``byte0 | dcid[4] | truncated packet number``.

    Raises:
        LocalProtocolError: bad dcid length, key phase not 0/1, or a packet number
            ``packet_number_length`` refuses.
    """
    if len(dcid) != CID_BYTES or key_phase not in (0, 1):
        raise LocalProtocolError("dcid must be 4 bytes and key phase 0 or 1")
    length = packet_number_length(packet_number, largest_acked)
    first = first_byte(PacketType.DATA) | (key_phase << 3) | (length - 1)
    mask = (1 << (8 * length)) - 1
    fields = {"first": first, "dcid": dcid, "pn": packet_number & mask}
    return bytes(_DATA_HEADERS[length - 1].build(fields))


def decode_data_header_untrusted(data: bytes) -> DataHeader:
    """Decode the header of a DATA packet (the whole datagram is passed).

    Raises:
        BadPacket: UNKNOWN_VERSION, UNEXPECTED (not DATA), MALFORMED (reserved bit set)
            or TRUNCATED (shorter than header + 16-byte tag + 1).
    """
    found = peek_packet_type_untrusted(data)
    if found != PacketType.DATA:
        raise BadPacket(DropReason.UNEXPECTED, f"{found.name} where DATA expected")
    first = data[0]
    if first & 0x04:
        raise BadPacket(DropReason.MALFORMED, "reserved bit set")
    pn_length = (first & 0x03) + 1
    header_bytes = 1 + CID_BYTES + pn_length
    if len(data) < header_bytes + MIN_DATA_CIPHERTEXT_BYTES:
        raise BadPacket(DropReason.TRUNCATED, f"DATA of {len(data)} bytes")
    header = bytes(data[:header_bytes])
    fields = _DATA_HEADERS[pn_length - 1].parse(header)
    return DataHeader((first >> 3) & 1, fields["dcid"], fields["pn"], pn_length, header)


# --- frames --------------------------------------------------------------------------------


def _encode_ack(frame: AckFrame) -> bytes:
    ranges = frame.ranges
    if not ranges or frame.ack_delay_us < 0:
        raise LocalProtocolError("ACK needs at least one range and a delay >= 0")
    low, high = ranges[0]
    if not 0 <= low <= high:
        raise LocalProtocolError(f"bad ACK range {ranges[0]}")
    parts = [b"\x02", encode_varint(high), encode_varint(frame.ack_delay_us >> 3)]
    parts += [encode_varint(len(ranges) - 1), encode_varint(high - low)]
    for next_low, next_high in ranges[1:]:
        gap = low - next_high - 2
        if gap < 0 or not 0 <= next_low <= next_high:
            raise LocalProtocolError(f"ACK ranges overlap, touch or are not descending: {ranges}")
        parts += [encode_varint(gap), encode_varint(next_high - next_low)]
        low = next_low
    return b"".join(parts)


def _encode_close(frame: CloseFrame) -> bytes:
    text = frame.text.encode("utf-8")
    if len(text) > MAX_CLOSE_TEXT_BYTES:
        raise LocalProtocolError(f"CLOSE text of {len(text)} bytes (max 255)")
    return b"\x04" + encode_varint(CloseReason(frame.code)) + encode_varint(len(text)) + text


def _encode_path(kind: bytes, data: bytes) -> bytes:
    if len(data) != PATH_DATA_BYTES:
        raise LocalProtocolError("path challenge data must be 8 bytes")
    return kind + data


def _check_data(frame: DataFrame) -> None:
    offset, length, total = frame.fragment_offset, len(frame.payload), frame.total_length
    if offset < 0 or offset + length > total or frame.message_start + total > MAX_VARINT:
        raise LocalProtocolError("DATA fragment does not fit its message")
    if length == 0 and total != 0:
        raise LocalProtocolError("empty DATA fragment")


def _encode_data(frame: DataFrame) -> bytes:
    _check_data(frame)
    payload = frame.payload
    length = len(payload)
    head = encode_varint(frame.message_number) + encode_varint(frame.message_start)
    if length == frame.total_length:  # offset is 0: the whole message in one frame
        return b"\x09" + head + encode_varint(length) + payload
    tail = encode_varint(frame.total_length) + encode_varint(frame.fragment_offset)
    return b"\x08" + head + tail + encode_varint(length) + payload


def _encode_padding(frame: PaddingFrame) -> bytes:
    if frame.length < 1:
        raise LocalProtocolError("PADDING length must be >= 1")
    return bytes(frame.length)


_ENCODERS: Final[dict[type, Callable[[Any], bytes]]] = {
    DataFrame: _encode_data,
    AckFrame: _encode_ack,
    PingFrame: lambda frame: b"\x01",
    PaddingFrame: _encode_padding,
    WindowFrame: lambda frame: b"\x03" + encode_varint(frame.max_data),
    CloseFrame: _encode_close,
    PathChallengeFrame: lambda frame: _encode_path(b"\x05", frame.data),
    PathResponseFrame: lambda frame: _encode_path(b"\x06", frame.data),
}


def encode_frames(frames: Iterable[Frame]) -> bytes:
    """Encode frames one after another (the plaintext of a DATA packet).

    Raises:
        LocalProtocolError: if a frame holds a value its layout cannot carry.
    """
    try:
        return b"".join([_ENCODERS[type(frame)](frame) for frame in frames])
    except (ValueError, KeyError) as exc:  # varint range, unknown close code or frame
        raise LocalProtocolError(f"cannot encode frame: {exc!r}") from exc


def frame_size(frame: Frame) -> int:
    """Exact number of bytes ``encode_frames([frame])`` produces.

    Raises:
        LocalProtocolError: if the frame cannot be encoded.
    """
    if type(frame) is not DataFrame:
        return len(encode_frames([frame]))
    _check_data(frame)
    try:
        return data_frame_size(
            frame.message_number,
            frame.message_start,
            frame.total_length,
            frame.fragment_offset,
            len(frame.payload),
        )
    except ValueError as exc:  # a varint out of range
        raise LocalProtocolError(f"cannot encode frame: {exc}") from exc


def data_frame_overhead(
    message_number: int, message_start: int, total_length: int, fragment_offset: int, length: int
) -> int:
    """Bytes a DATA frame adds around a ``length``-byte payload (type and varints)."""
    size = data_frame_size(message_number, message_start, total_length, fragment_offset, length)
    return size - length


_Decoded = tuple[Frame, int]


def _decode_ack(buf: bytes, pos: int) -> _Decoded:
    largest, pos = decode_varint_untrusted(buf, pos)
    delay, pos = decode_varint_untrusted(buf, pos)
    count, pos = decode_varint_untrusted(buf, pos)
    first, pos = decode_varint_untrusted(buf, pos)
    low = largest - first
    if low < 0:
        raise BadPacket(DropReason.MALFORMED, "ACK range below zero")
    ranges = [(low, largest)]
    for _ in range(count):  # a huge count runs out of bytes: each range is >= 2 bytes
        gap, pos = decode_varint_untrusted(buf, pos)
        length, pos = decode_varint_untrusted(buf, pos)
        high = low - gap - 2
        low = high - length
        if low < 0:
            raise BadPacket(DropReason.MALFORMED, "ACK range below zero")
        ranges.append((low, high))
    return AckFrame(tuple(ranges), delay << 3), pos


def _decode_window(buf: bytes, pos: int) -> _Decoded:
    max_data, pos = decode_varint_untrusted(buf, pos)
    return WindowFrame(max_data), pos


def _decode_close(buf: bytes, pos: int) -> _Decoded:
    code, pos = decode_varint_untrusted(buf, pos)
    length, pos = decode_varint_untrusted(buf, pos)
    if code not in _CLOSE_CODES:
        raise BadPacket(DropReason.MALFORMED, f"unknown close code {code}")
    if length > MAX_CLOSE_TEXT_BYTES:
        raise BadPacket(DropReason.MALFORMED, f"CLOSE text of {length} bytes")
    end = pos + length
    if end > len(buf):
        raise BadPacket(DropReason.TRUNCATED, "CLOSE text past end")
    try:
        text = bytes(buf[pos:end]).decode("utf-8")
    except UnicodeDecodeError:
        raise BadPacket(DropReason.MALFORMED, "CLOSE text is not UTF-8") from None
    return CloseFrame(CloseReason(code), text), end


def _decode_path(
    buf: bytes, pos: int, kind: type[PathChallengeFrame] | type[PathResponseFrame]
) -> _Decoded:
    end = pos + PATH_DATA_BYTES
    if end > len(buf):
        raise BadPacket(DropReason.TRUNCATED, "path data past end")
    return kind(bytes(buf[pos:end])), end


def _decode_data(buf: bytes, pos: int, whole: bool) -> _Decoded:
    number, pos = decode_varint_untrusted(buf, pos)
    start, pos = decode_varint_untrusted(buf, pos)
    if whole:
        length, pos = decode_varint_untrusted(buf, pos)
        total, offset = length, 0
    else:
        total, pos = decode_varint_untrusted(buf, pos)
        offset, pos = decode_varint_untrusted(buf, pos)
        length, pos = decode_varint_untrusted(buf, pos)
        if length == 0 or offset + length > total or (offset == 0 and length == total):
            raise BadPacket(DropReason.MALFORMED, "DATA fragment inconsistent with its message")
    end = pos + length
    if end > len(buf):
        raise BadPacket(DropReason.TRUNCATED, "DATA payload past end")
    if start + total > MAX_VARINT:
        raise BadPacket(DropReason.MALFORMED, "DATA beyond the largest stream offset")
    return DataFrame(number, start, total, offset, bytes(buf[pos:end])), end


_CLOSE_CODES: Final = frozenset(int(code) for code in CloseReason)
_PING: Final = PingFrame()
_DECODERS: Final[dict[int, Callable[[bytes, int], _Decoded]]] = {
    FrameType.PING: lambda buf, pos: (_PING, pos),
    FrameType.ACK: _decode_ack,
    FrameType.WINDOW: _decode_window,
    FrameType.CLOSE: _decode_close,
    FrameType.PATH_CHALLENGE: lambda buf, pos: _decode_path(buf, pos, PathChallengeFrame),
    FrameType.PATH_RESPONSE: lambda buf, pos: _decode_path(buf, pos, PathResponseFrame),
    FrameType.DATA_FRAGMENT: lambda buf, pos: _decode_data(buf, pos, whole=False),
    FrameType.DATA_WHOLE: lambda buf, pos: _decode_data(buf, pos, whole=True),
}


def decode_frames_untrusted(payload: bytes) -> list[Frame]:
    """Decode the plaintext of a DATA packet into its frames (at least one).

    Consecutive zero bytes decode to a single ``PaddingFrame(length=n)``.

    Raises:
        BadPacket: MALFORMED (no frames, unknown type, a field out of range) or
            TRUNCATED (a frame runs past the end).
    """
    end = len(payload)
    if end == 0:
        raise BadPacket(DropReason.MALFORMED, "no frames")
    frames: list[Frame] = []
    pos = 0
    while pos < end:
        kind = payload[pos]
        if kind == FrameType.PADDING:
            rest = payload[pos:]
            count = len(rest) - len(rest.lstrip(b"\x00"))
            frames.append(PaddingFrame(count))
            pos += count
            continue
        decoder = _DECODERS.get(kind)
        if decoder is None:
            raise BadPacket(DropReason.MALFORMED, f"unknown frame type {kind:#04x}")
        frame, pos = decoder(payload, pos + 1)
        frames.append(frame)
    return frames
