"""Wire format: packet layouts and packet-number truncation (frames: ``framecodec.py``).

This module owns every packet layout udpim puts on the network (docs/PROTOCOL.md
"Packets"). It knows nothing about keys or sessions: ``crypto.py`` seals the frames,
``handshake.py`` and ``cookies.py`` fill the handshake fields. The frame codec lives in
``framecodec.py`` and is re-exported here, as are the varint helpers, so every layout is
importable from ``udpim.core.wire``.

Rules it keeps:

* Every decoder ends in ``_untrusted`` and fails **only** with ``BadPacket`` carrying a
  precise ``DropReason``, for any input bytes whatsoever (the tests feed truncations,
  every single-bit flip and random bytes). Lengths are checked before anything is
  parsed, so no ``struct.error``, ``IndexError`` or construct error can escape.
* Encoders take values from our own code: a value that cannot be encoded (wrong field
  length, packet number out of range, ...) is a bug in the caller and raises
  ``LocalProtocolError``.
* Decoding is strict: version, reserved bits and exact lengths are checked.
* All integers are big-endian.

Theory of operation. The first byte of every packet carries the version (bits 7-6, 0b01)
and the packet type (bits 5-4). The three handshake packets have fixed sizes and are
declared below as compiled ``construct`` structs; the decoder checks the first byte and
the exact length, after which parsing cannot fail. DATA packets carry ``byte0 | dcid[4] |
packet number[1..4]``, then the AEAD ciphertext of the frames. Packet numbers are
truncated as RFC 9000 section 17.1 / appendix A.2 (enough bytes for twice the distance
from the largest acknowledged) and reconstructed as appendix A.3 (closest to the largest
received + 1).

Why the DATA header is not construct. The layout contract asks for construct, compiled
where it is on the hot path. We deviate for the DATA header, the only packet layout
handled for every datagram, because the measured cost is ten times higher: compiled
construct pays a ``BytesIO`` and a ``Container`` per call, 3.6 us to build and 4.3 us
to parse these 6 to 9 bytes (CPython 3.11, timeit), against 0.36 us and 1.2 us by hand
with ``struct`` and ``int.to_bytes`` / ``int.from_bytes`` (0.65 us of the 1.2 is
``DataHeader.__init__``). Construct cost more than the whole frame codec for a 200-byte
message; by hand, ``tools/bench_core.py`` measured header + frames + seal going from
11.0 us to 3.8 us per datagram and open + decode from 11.7 us to 6.1 us. The layout is
three fields, pinned by golden vectors (tests/core/test_wire.py). The handshake
packets, a few per session, keep their declarative compiled construct structs.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final, final

import construct as cs

from udpim.core.config import MAX_DATAGRAM_BYTES  # re-exported: the receive limit
from udpim.core.errors import BadPacket, DropReason, LocalProtocolError
from udpim.core.framecodec import (
    FEC_MAX_SPAN,
    MAX_CLOSE_TEXT_BYTES,
    PATH_DATA_BYTES,
    FrameType,
    data_frame_overhead,
    decode_frames_authenticated,
    decode_frames_untrusted,
    encode_frames,
    frame_size,
)
from udpim.core.varint import MAX_VARINT, decode_varint_untrusted, encode_varint

__all__ = [
    "AEAD_TAG_BYTES",
    "FEC_MAX_SPAN",
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
    "decode_frames_authenticated",
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
MAX_PACKET_NUMBER: Final = MAX_VARINT  # 2**62 - 1, as QUIC


@final
class PacketType(IntEnum):
    """Packet type, bits 5-4 of the first byte."""

    INITIATION = 0
    RESPONSE = 1
    COOKIE_REPLY = 2
    DATA = 3


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
    return _PACKET_TYPES[(data[0] >> 4) & 0x3]


_PACKET_TYPES: Final = tuple(PacketType)
"""Every packet type by its value (0-3): a tuple index, not an enum call, per datagram."""


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
    layout: Any, packet_type: PacketType, value: Initiation | Response | CookieReply
) -> bytes:
    fields: dict[str, Any] = {"first": first_byte(packet_type)}
    for name, size in _LAYOUTS[type(value)]:
        field = getattr(value, name)
        if not isinstance(field, bytes) or len(field) != size:
            raise LocalProtocolError(f"{type(value).__name__}.{name} must be {size} bytes")
        fields[name] = field
    return bytes(layout.build(fields))


def _fields(layout: Any, kind: type, data: bytes) -> list[bytes]:
    parsed = layout.parse(data)
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


# DATA header by hand (see the module docstring): bits 7-4 of byte0 are version 1 and
# type DATA, then key phase, reserved, packet-number length - 1.
_DATA_FIRST_BYTE: Final = (VERSION << 6) | (PacketType.DATA << 4)
_PACK_FIRST_AND_CID: Final = struct.Struct(f">B{CID_BYTES}s").pack


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
    first = _DATA_FIRST_BYTE | (key_phase << 3) | (length - 1)
    truncated = packet_number & ((1 << (8 * length)) - 1)
    return _PACK_FIRST_AND_CID(first, dcid) + truncated.to_bytes(length, "big")


def decode_data_header_untrusted(data: bytes) -> DataHeader:
    """Decode the header of a DATA packet (the whole datagram is passed).

    Raises:
        BadPacket: UNKNOWN_VERSION, UNEXPECTED (not DATA), MALFORMED (reserved bit set)
            or TRUNCATED (shorter than header + 16-byte tag + 1).
    """
    if not data or data[0] & 0xF0 != _DATA_FIRST_BYTE:
        found = peek_packet_type_untrusted(data)  # TRUNCATED or UNKNOWN_VERSION first
        raise BadPacket(DropReason.UNEXPECTED, f"{found.name} where DATA expected")
    first = data[0]
    if first & 0x04:
        raise BadPacket(DropReason.MALFORMED, "reserved bit set")
    pn_length = (first & 0x03) + 1
    header_bytes = 1 + CID_BYTES + pn_length
    if len(data) < header_bytes + MIN_DATA_CIPHERTEXT_BYTES:
        raise BadPacket(DropReason.TRUNCATED, f"DATA of {len(data)} bytes")
    header = bytes(data[:header_bytes])
    truncated = int.from_bytes(header[1 + CID_BYTES :], "big")
    return DataHeader((first >> 3) & 1, header[1 : 1 + CID_BYTES], truncated, pn_length, header)
