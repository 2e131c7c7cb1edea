"""Units: parse and format the human quantities used in scenarios, CLI flags and reports.

What this module owns
---------------------
The one place where text such as ``"25ms"``, ``"10%"``, ``"1mbit"``, ``"64KiB"`` or
``"127.0.0.1:9000"`` becomes a number in base units, and where numbers become short human text
again for reports.

Rules it keeps
--------------
- Base units everywhere else in netsim: seconds, bits per second, bytes, ratios in [0, 1].
- A bare number (``int``/``float`` or a string without unit) is already in the base unit.
- Units are case-insensitive; whitespace between number and unit is allowed (``"25 ms"``).
- Every parse function raises only ``ValueError``, with one line naming the bad value and the
  expected form, e.g. ``bad duration '25 parsecs': expected a number with unit us, ms, s, min
  or h``. ``bool`` is rejected where a number is expected (TOML ``true`` is not ``1``).
- Prefixes: rates use decimal prefixes (``kbit`` = 1000 bit/s). Note that ``mbps`` means megabits
  per second here (as in everyday speech), not megabytes as in Linux ``tc``. Sizes accept decimal
  (``kB`` = 1000, ``MB``, ``GB``) and binary (``KiB`` = 1024, ``MiB``, ``GiB``) prefixes.
- ``format_*`` produce text that the matching ``parse_*`` reads back (to 6 significant digits).
"""

from __future__ import annotations

import ipaddress
import math
import re
from typing import Final

__all__ = [
    "format_duration",
    "format_rate",
    "format_size",
    "parse_duration",
    "parse_endpoint",
    "parse_rate",
    "parse_ratio",
    "parse_size",
]

_QUANTITY: Final = re.compile(r"\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*(\S*?)\s*")

_DURATION_UNITS: Final[dict[str, float]] = {
    "": 1.0,
    "us": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "min": 60.0,
    "h": 3600.0,
}
_RATE_PREFIXES: Final = (("", 1.0), ("k", 1e3), ("m", 1e6), ("g", 1e9))
_RATE_UNITS: Final[dict[str, float]] = {"": 1.0} | {
    prefix + unit: scale for prefix, scale in _RATE_PREFIXES for unit in ("bit", "bps", "bit/s")
}
_SIZE_UNITS: Final[dict[str, int]] = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}

_DURATION_FORM: Final = "a number with unit us, ms, s, min or h"
_RATIO_FORM: Final = "a number in [0, 1] or a percentage in [0%, 100%]"
_RATE_FORM: Final = "a positive number with unit bit, kbit, mbit or gbit (bits per second)"
_SIZE_FORM: Final = "a whole number of bytes with optional unit B, kB, MB, GB, KiB, MiB or GiB"
_ENDPOINT_FORM: Final = "an IPv4 address and port 0..65535, like 127.0.0.1:9000"


def _split(value: str | int | float, kind: str, form: str) -> tuple[float, str]:
    """Split ``value`` into a finite number and a lower-case unit (``""`` if none).

    Raises:
        ValueError: not a number with an optional unit, a bool, or not finite.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"bad {kind} {value!r}: expected {form}")  # noqa: TRY004 - bad values are ValueError by contract
    if isinstance(value, int | float):
        number, unit = float(value), ""
    else:
        match = _QUANTITY.fullmatch(value)
        if match is None:
            raise ValueError(f"bad {kind} {value!r}: expected {form}")
        number, unit = float(match.group(1)), match.group(2).lower()
    if not math.isfinite(number):
        raise ValueError(f"bad {kind} {value!r}: expected {form}")
    return number, unit


def parse_duration(value: str | int | float) -> float:
    """Parse a duration such as ``"25ms"``, ``"1.5s"``, ``"2min"``, ``"1h"`` or ``"250us"``.

    Args:
        value: text with unit us, ms, s, min or h, or a bare number of seconds.

    Returns:
        The duration in seconds (>= 0).

    Raises:
        ValueError: unknown unit, not a number, or negative.
    """
    number, unit = _split(value, "duration", _DURATION_FORM)
    scale = _DURATION_UNITS.get(unit)
    if scale is None or number < 0:
        raise ValueError(f"bad duration {value!r}: expected {_DURATION_FORM}")
    return number * scale


def parse_ratio(value: str | int | float) -> float:
    """Parse a probability or fraction: ``"10%"`` or ``"0.1"`` or ``0.1`` all give ``0.1``.

    Args:
        value: a number in [0, 1], or text ending in ``%`` between 0% and 100%.

    Returns:
        The ratio in [0, 1].

    Raises:
        ValueError: not a number, unknown suffix, or out of range.
    """
    number, unit = _split(value, "ratio", _RATIO_FORM)
    if unit == "%":
        number /= 100.0
    elif unit:
        raise ValueError(f"bad ratio {value!r}: expected {_RATIO_FORM}")
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"bad ratio {value!r}: expected {_RATIO_FORM}")
    return number


def parse_rate(value: str | int | float) -> float:
    """Parse a bit rate such as ``"1mbit"``, ``"500kbit"``, ``"10mbps"``, ``"2gbit"``.

    Units bit, bps and bit/s are the same; prefixes k, m and g are decimal (x1000).

    Args:
        value: text with a rate unit, or a bare number of bits per second.

    Returns:
        The rate in bits per second (> 0).

    Raises:
        ValueError: unknown unit, not a number, or not positive.
    """
    number, unit = _split(value, "rate", _RATE_FORM)
    scale = _RATE_UNITS.get(unit)
    if scale is None or number <= 0:
        raise ValueError(f"bad rate {value!r}: expected {_RATE_FORM}")
    return number * scale


def parse_size(value: str | int) -> int:
    """Parse a size in bytes such as ``"1500"``, ``"64KiB"``, ``"1MiB"``, ``"64kB"``, ``"1MB"``.

    Args:
        value: text with unit B, kB, MB, GB, KiB, MiB or GiB, or a bare number of bytes.

    Returns:
        The size in bytes (a non-negative integer).

    Raises:
        ValueError: unknown unit, not a number, negative, or not a whole number of bytes.
    """
    if isinstance(value, float):
        raise ValueError(f"bad size {value!r}: expected {_SIZE_FORM}")  # noqa: TRY004 - bad values are ValueError by contract
    number, unit = _split(value, "size", _SIZE_FORM)
    scale = _SIZE_UNITS.get(unit)
    if scale is None or number < 0:
        raise ValueError(f"bad size {value!r}: expected {_SIZE_FORM}")
    size = number * scale
    if size != math.floor(size):
        raise ValueError(f"bad size {value!r}: expected {_SIZE_FORM}")
    return int(size)


def parse_endpoint(value: str) -> tuple[str, int]:
    """Parse ``"127.0.0.1:9000"`` into ``("127.0.0.1", 9000)``.

    Args:
        value: an IPv4 literal (dotted quad, no leading zeros), a colon and a port 0..65535.

    Returns:
        ``(address, port)`` with the address in canonical dotted-quad form.

    Raises:
        ValueError: not an IPv4 literal with a port in range.
    """
    if not isinstance(value, str):
        raise ValueError(f"bad endpoint {value!r}: expected {_ENDPOINT_FORM}")  # noqa: TRY004 - bad values are ValueError by contract
    host, sep, port_text = value.strip().rpartition(":")
    if not sep or not port_text.isdecimal() or not port_text.isascii():
        raise ValueError(f"bad endpoint {value!r}: expected {_ENDPOINT_FORM}")
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError:
        raise ValueError(f"bad endpoint {value!r}: expected {_ENDPOINT_FORM}") from None
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"bad endpoint {value!r}: expected {_ENDPOINT_FORM}")
    return str(address), port


def _scaled(value: float, steps: tuple[tuple[float, str], ...]) -> str:
    """Format ``value`` with the largest unit in ``steps`` (ascending) not exceeding it."""
    magnitude = abs(value)
    scale, unit = steps[0]
    for step_scale, step_unit in steps:
        if magnitude >= step_scale:
            scale, unit = step_scale, step_unit
    return f"{value / scale:.6g}{unit}"


def format_duration(seconds: float) -> str:
    """Format seconds for humans: 0.025 -> ``"25ms"``, 1.5 -> ``"1.5s"``, 120 -> ``"2min"``.

    Args:
        seconds: a duration in seconds.

    Returns:
        Short text with unit us, ms, s, min or h that ``parse_duration`` reads back.
    """
    if seconds == 0:
        return "0s"
    return _scaled(seconds, ((1e-6, "us"), (1e-3, "ms"), (1.0, "s"), (60.0, "min"), (3600.0, "h")))


def format_rate(bps: float) -> str:
    """Format a bit rate: 1e6 -> ``"1mbit"``, 1.5e3 -> ``"1.5kbit"``, 800 -> ``"800bit"``.

    Args:
        bps: a rate in bits per second.

    Returns:
        Short text with unit bit, kbit, mbit or gbit that ``parse_rate`` reads back.
    """
    return _scaled(bps, ((1.0, "bit"), (1e3, "kbit"), (1e6, "mbit"), (1e9, "gbit")))


def format_size(size_bytes: int) -> str:
    """Format a byte count: ``1500`` -> ``"1500B"``, ``65536`` -> ``"64KiB"``.

    Binary units are used only when they give a whole number, so the text reads back exactly.

    Args:
        size_bytes: a number of bytes.

    Returns:
        Short text with unit B, KiB, MiB or GiB that ``parse_size`` reads back.
    """
    for scale, unit in ((1024**3, "GiB"), (1024**2, "MiB"), (1024, "KiB")):
        if size_bytes and size_bytes % scale == 0:
            return f"{size_bytes // scale}{unit}"
    return f"{size_bytes}B"
