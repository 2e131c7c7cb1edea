"""QUIC variable-length integers (RFC 9000 section 16) and the sizes they give frames.

The two most significant bits of the first byte give the encoded length (1, 2, 4 or 8
bytes); the rest is the value, big-endian. Values up to 2**62 - 1 fit. Every decoder
here is ``*_untrusted`` and fails only with ``BadPacket``; encoders raise
``LocalProtocolError`` for values no varint holds (a caller bug, never peer input).
"""

from __future__ import annotations

import struct

from udpim.core.errors import BadPacket, DropReason, LocalProtocolError

__all__ = [
    "MAX_VARINT",
    "append_varint",
    "data_frame_size",
    "decode_varint_untrusted",
    "encode_varint",
    "read_varint",
    "varint_size",
]

MAX_VARINT = (1 << 62) - 1

_PACK_2 = struct.Struct(">H").pack
_PACK_4 = struct.Struct(">I").pack
_PACK_8 = struct.Struct(">Q").pack


def varint_size(value: int) -> int:
    """Return how many bytes ``encode_varint(value)`` produces.

    Raises:
        LocalProtocolError: if value is negative or above ``MAX_VARINT``.
    """
    if 0 <= value < 0x40:
        return 1
    if 0x40 <= value < 0x4000:
        return 2
    if 0x4000 <= value < 0x4000_0000:
        return 4
    if 0x4000_0000 <= value <= MAX_VARINT:
        return 8
    raise LocalProtocolError(f"varint cannot hold {value}")


def append_varint(out: bytearray, value: int) -> None:
    """Append ``value`` to ``out`` in the shortest varint form (the encoders' hot path).

    Raises:
        LocalProtocolError: if value is negative or above ``MAX_VARINT``.
    """
    if value < 0x40:
        if value < 0:
            raise LocalProtocolError(f"varint cannot hold {value}")
        out.append(value)
    elif value < 0x4000:
        out += _PACK_2(value | 0x4000)
    elif value < 0x4000_0000:
        out += _PACK_4(value | 0x8000_0000)
    elif value <= MAX_VARINT:
        out += _PACK_8(value | 0xC000_0000_0000_0000)
    else:
        raise LocalProtocolError(f"varint cannot hold {value}")


def encode_varint(value: int) -> bytes:
    """Encode ``value`` in the shortest QUIC varint form.

    Raises:
        LocalProtocolError: if value is negative or above ``MAX_VARINT``.
    """
    out = bytearray()
    append_varint(out, value)
    return bytes(out)


def read_varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Read the varint at ``buf[pos]``, for decoders that map ``IndexError`` to TRUNCATED.

    Returns:
        ``(value, position just past it)``.

    Raises:
        IndexError: if ``pos`` is at or past the end of ``buf``.
        BadPacket: TRUNCATED if the buffer ends inside the varint.
    """
    first = buf[pos]
    if first < 0x40:
        return first, pos + 1
    if first < 0x80:
        return ((first & 0x3F) << 8) | buf[pos + 1], pos + 2
    end = pos + (4 if first < 0xC0 else 8)
    if end > len(buf):
        raise BadPacket(DropReason.TRUNCATED, "varint past end")
    mask = 0x3FFF_FFFF if first < 0xC0 else MAX_VARINT
    return int.from_bytes(buf[pos:end], "big") & mask, end


def decode_varint_untrusted(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Decode the varint starting at ``buf[pos]``.

    Returns:
        ``(value, position just past it)``.

    Raises:
        BadPacket: TRUNCATED if the buffer ends before or inside the varint.
    """
    try:
        return read_varint(buf, pos)
    except IndexError:
        raise BadPacket(DropReason.TRUNCATED, "varint past end") from None


def data_frame_size(
    message_number: int,
    message_start: int,
    total_length: int,
    fragment_offset: int,
    payload_length: int,
) -> int:
    """Exact encoded size of a DATA frame with these fields (docs/PROTOCOL.md "Frames").

    A message sent in one piece uses the compact "whole" form (type 0x09, no total or
    offset); a fragment uses type 0x08 with all five fields.

    Raises:
        LocalProtocolError: if a field it encodes is negative or above ``MAX_VARINT``.
    """
    whole = fragment_offset == 0 and payload_length == total_length
    size = 1 + varint_size(message_number) + varint_size(message_start)
    size += varint_size(payload_length) + payload_length
    if not whole:
        size += varint_size(total_length) + varint_size(fragment_offset)
    return size
