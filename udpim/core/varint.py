"""QUIC variable-length integers (RFC 9000 section 16) and the sizes they give frames.

The two most significant bits of the first byte give the encoded length (1, 2, 4 or 8
bytes); the rest is the value, big-endian. Values up to 2**62 - 1 fit. Every decoder
here is ``*_untrusted`` and fails only with ``BadPacket``.
"""

from __future__ import annotations

from udpim.core.errors import BadPacket, DropReason

__all__ = [
    "MAX_VARINT",
    "data_frame_size",
    "decode_varint_untrusted",
    "encode_varint",
    "varint_size",
]

MAX_VARINT = (1 << 62) - 1

_LIMITS = ((1 << 6, 1, 0x00), (1 << 14, 2, 0x40), (1 << 30, 4, 0x80), (1 << 62, 8, 0xC0))


def varint_size(value: int) -> int:
    """Return how many bytes ``encode_varint(value)`` produces.

    Raises:
        ValueError: if value is negative or above ``MAX_VARINT``.
    """
    if value < 0:
        raise ValueError(f"varint cannot hold {value}")
    for limit, size, _prefix in _LIMITS:
        if value < limit:
            return size
    raise ValueError(f"varint cannot hold {value}")


def encode_varint(value: int) -> bytes:
    """Encode ``value`` in the shortest QUIC varint form.

    Raises:
        ValueError: if value is negative or above ``MAX_VARINT``.
    """
    size = varint_size(value)
    encoded = bytearray(value.to_bytes(size, "big"))
    encoded[0] |= {1: 0x00, 2: 0x40, 4: 0x80, 8: 0xC0}[size]
    return bytes(encoded)


def decode_varint_untrusted(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Decode the varint starting at ``buf[pos]``.

    Returns:
        ``(value, position just past it)``.

    Raises:
        BadPacket: TRUNCATED if the buffer ends inside the varint.
    """
    if pos >= len(buf):
        raise BadPacket(DropReason.TRUNCATED, "varint past end")
    first = buf[pos]
    size = 1 << (first >> 6)
    end = pos + size
    if end > len(buf):
        raise BadPacket(DropReason.TRUNCATED, "varint past end")
    value = first & 0x3F
    for i in range(pos + 1, end):
        value = (value << 8) | buf[i]
    return value, end


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
    """
    whole = fragment_offset == 0 and payload_length == total_length
    size = 1 + varint_size(message_number) + varint_size(message_start)
    size += varint_size(payload_length) + payload_length
    if not whole:
        size += varint_size(total_length) + varint_size(fragment_offset)
    return size
