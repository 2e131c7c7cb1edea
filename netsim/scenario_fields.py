"""Scenario fields: the one scenario error type and the checks of single values.

What this module owns: `ScenarioError`, the only exception scenario loading lets out, and the
validators every part of the scenario reader shares: `require_table`, `require_text`,
`require_duration` and `require_address`. Each takes the document's name (``source``), the key
path of the value (``hosts.client.address``) and the raw TOML value, and returns the checked
value or raises `ScenarioError`. `netsim.scenario` re-exports `ScenarioError`.

Rules it keeps:

* Every problem is ONE `ScenarioError` line naming the source, the key path and the problem.
* Durations are parsed by `netsim.units` (a number is seconds, text carries a unit).
* Every virtual address lies in 127.0.0.0/8 (project convention: the repository never names an
  address outside loopback).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from netsim.units import parse_duration

__all__ = [
    "ScenarioError",
    "require_address",
    "require_duration",
    "require_table",
    "require_text",
]


class ScenarioError(ValueError):
    """A scenario file (or a trace header's scenario) is unusable; `str()` is one line."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        self.source, self.key, self.problem = source, key, problem
        super().__init__(f"{source}: {key}: {problem}" if key else f"{source}: {problem}")


def require_table(source: str, key: str, value: object) -> Mapping[str, Any]:
    """Return ``value`` if it is a table.

    Raises:
        ScenarioError: it is not a table (mapping).
    """
    if not isinstance(value, Mapping):
        raise ScenarioError(source, key, f"expected a table, got {type(value).__name__}")
    return value


def require_text(source: str, key: str, value: object) -> str:
    """Return ``value`` if it is a string.

    Raises:
        ScenarioError: it is not a string.
    """
    if not isinstance(value, str):
        raise ScenarioError(source, key, f"expected a string, got {type(value).__name__}")
    return value


def require_duration(source: str, key: str, value: object) -> float:
    """Return ``value`` as seconds (a number, or text with a unit such as ``"25ms"``).

    Raises:
        ScenarioError: not a number or text, or not a valid duration.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ScenarioError(source, key, f'expected a duration such as "25ms", got {value!r}')
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ScenarioError(source, key, str(exc)) from None


def require_address(source: str, key: str, value: object) -> str:
    """Return ``value`` as a normalized IPv4 address in 127.0.0.0/8.

    Raises:
        ScenarioError: missing, not an IPv4 address, or outside the loopback range.
    """
    if value is None:
        raise ScenarioError(source, key, "missing (an IPv4 address in 127.0.0.0/8)")
    try:
        address = ipaddress.IPv4Address(value)
    except ValueError:
        raise ScenarioError(source, key, f"{value!r} is not an IPv4 address") from None
    if not address.is_loopback:
        raise ScenarioError(
            source,
            key,
            f"{address} is outside 127.0.0.0/8 (netsim addresses "
            "stay in the loopback range by convention)",
        )
    return str(address)
