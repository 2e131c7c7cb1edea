"""Arithmetic in GF(2^8) for the FEC code (``fec.py``): scaled sums of byte strings.

The field is GF(2)[x] / (x^8 + x^4 + x^3 + x^2 + 1) (0x11D, the Reed-Solomon polynomial),
with 2 as generator. Addition is XOR. A byte string is multiplied by a field element one
byte at a time with ``bytes.translate`` and a 256-byte table per element (built on first
use), so scaling runs at C speed; sums are XORs of Python ints read little-endian, so
strings of different lengths add as if zero-padded on the right.
"""

from __future__ import annotations

__all__ = ["coefficient", "inverse", "multiply", "scale", "to_int", "to_bytes"]

_EXP = [0] * 510
_LOG = [0] * 256
_value = 1
for _power in range(255):
    _EXP[_power] = _value
    _LOG[_value] = _power
    _value <<= 1
    if _value & 0x100:
        _value ^= 0x11D
for _power in range(255, 510):
    _EXP[_power] = _EXP[_power - 255]

_TABLES: list[bytes | None] = [None] * 256


def multiply(a: int, b: int) -> int:
    """The product of two field elements."""
    if a == 0 or b == 0:
        return 0
    return _EXP[_LOG[a] + _LOG[b]]


def inverse(a: int) -> int:
    """The multiplicative inverse of a non-zero element."""
    if a == 0:
        raise ZeroDivisionError("0 has no inverse in GF(256)")
    return _EXP[255 - _LOG[a]]


def scale(data: bytes, factor: int) -> bytes:
    """``factor`` times every byte of ``data``."""
    if factor == 1:
        return data
    table = _TABLES[factor]
    if table is None:
        table = bytes(multiply(factor, byte) for byte in range(256))
        _TABLES[factor] = table
    return data.translate(table)


def to_int(data: bytes) -> int:
    """``data`` as an int to XOR with others (little-endian: shorter strings zero-pad)."""
    return int.from_bytes(data, "little")


def to_bytes(value: int, length: int) -> bytes:
    """The ``length`` bytes of a sum built with ``to_int``."""
    return value.to_bytes(length, "little")


def coefficient(seed: int, packet_number: int) -> int:
    """The non-zero coefficient of packet ``packet_number`` in repair ``seed``.

    A 32-bit mix of the two numbers (docs/PROTOCOL.md "Forward error correction"), so
    two repairs over the same packets are independent equations with high probability.
    """
    x = ((seed * 0x9E3779B1) ^ (packet_number * 0x85EBCA77)) & 0xFFFFFFFF
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    return 1 + x % 255
