"""NAT configuration: the RFC 4787 behaviours of one NAT as a validated value and as data.

What this module owns
---------------------
The vocabulary a NAT is described in (``Behaviour`` for mapping and filtering,
``PortAllocation``) and ``NatConfig``, the frozen value holding one NAT's behaviours, timeout
and port range, with its translation from and to scenario data (``NatConfig.from_mapping`` and
``NatConfig.to_mapping``). The translation table that acts on a config is ``netsim.nat.Nat``;
``netsim.nat`` re-exports everything defined here, and its docstring explains each behaviour.

Rules it keeps
--------------
- A ``NatConfig`` is valid or does not exist: ``timeout_s > 0`` and
  ``1 <= port_min <= port_max <= 65535`` are checked on construction (``ValueError``).
- Scenario data accepts the RFC names (``endpoint-independent``...) and the usual short forms
  (``eim``/``eif``, ``adm``/``adf``, ``apdm``/``apdf``, ``symmetric``), case-insensitively; an
  unknown key or a bad value is one ``ValueError`` line naming the key.
- ``to_mapping`` writes every key (timeout in seconds) and round-trips through ``from_mapping``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from netsim import units

__all__ = ["Behaviour", "NatConfig", "PortAllocation"]


class Behaviour(enum.StrEnum):
    """RFC 4787 mapping or filtering behaviour."""

    ENDPOINT_INDEPENDENT = "endpoint-independent"
    ADDRESS_DEPENDENT = "address-dependent"
    ADDRESS_AND_PORT_DEPENDENT = "address-and-port-dependent"


class PortAllocation(enum.StrEnum):
    """How a NAT picks the external port of a new mapping."""

    SEQUENTIAL = "sequential"
    RANDOM = "random"
    PRESERVE = "preserve"


_ALIASES: Final = {
    "eim": Behaviour.ENDPOINT_INDEPENDENT,
    "eif": Behaviour.ENDPOINT_INDEPENDENT,
    "adm": Behaviour.ADDRESS_DEPENDENT,
    "adf": Behaviour.ADDRESS_DEPENDENT,
    "apdm": Behaviour.ADDRESS_AND_PORT_DEPENDENT,
    "apdf": Behaviour.ADDRESS_AND_PORT_DEPENDENT,
    "symmetric": Behaviour.ADDRESS_AND_PORT_DEPENDENT,
}
_CONFIG_KEYS: Final = ("mapping", "filtering", "timeout", "refresh_on_inbound", "ports",
                       "port_allocation")  # fmt: skip


def _parse_behaviour(value: object) -> Behaviour:
    text = str(value).lower()
    if text in _ALIASES:
        return _ALIASES[text]
    try:
        return Behaviour(text)
    except ValueError:
        names = ", ".join([*Behaviour, *_ALIASES])
        raise ValueError(f"bad behaviour {value!r}: expected one of {names}") from None


def _parse_ports(value: object) -> tuple[int, int]:
    form = "expected 'MIN-MAX' or [MIN, MAX] with 1 <= MIN <= MAX <= 65535"
    parts: list[object]
    if isinstance(value, str):
        parts = list(value.split("-"))
    elif isinstance(value, list | tuple):
        parts = list(value)
    else:
        raise ValueError(f"bad ports {value!r}: {form}")  # noqa: TRY004 - bad values are ValueError by contract
    if len(parts) != 2:
        raise ValueError(f"bad ports {value!r}: {form}")
    bounds: list[int] = []
    for part in parts:
        if isinstance(part, int) and not isinstance(part, bool):
            bounds.append(part)
        elif isinstance(part, str) and part.strip().isdecimal() and part.strip().isascii():
            bounds.append(int(part))
        else:
            raise ValueError(f"bad ports {value!r}: {form}")
    return bounds[0], bounds[1]


@dataclass(frozen=True, slots=True)
class NatConfig:
    """Behaviour of one NAT (each behaviour is explained in ``netsim.nat``).

    Attributes:
        mapping: when outbound packets share an external endpoint.
        filtering: which inbound packets a mapping lets in.
        timeout_s: idle time after which a mapping (and a permission) is dead.
        refresh_on_inbound: inbound packets let in also refresh the mapping.
        port_allocation: how new external ports are chosen.
        port_min: lowest external port handed out.
        port_max: highest external port handed out.
    """

    mapping: Behaviour = Behaviour.ENDPOINT_INDEPENDENT
    filtering: Behaviour = Behaviour.ADDRESS_AND_PORT_DEPENDENT
    timeout_s: float = 120.0
    refresh_on_inbound: bool = False
    port_allocation: PortAllocation = PortAllocation.SEQUENTIAL
    port_min: int = 20000
    port_max: int = 60999

    def __post_init__(self) -> None:
        if not self.timeout_s > 0:
            raise ValueError(f"bad NAT timeout_s={self.timeout_s!r}: expected > 0")
        if not 1 <= self.port_min <= self.port_max <= 65535:
            raise ValueError(
                f"bad NAT ports {self.port_min}-{self.port_max}:"
                " expected 1 <= port_min <= port_max <= 65535"
            )

    @classmethod
    def from_mapping(cls, data: Mapping[str, object]) -> NatConfig:
        """Build a config from scenario data (TOML/JSON).

        Keys: ``mapping``, ``filtering`` (behaviour names or eim/adm/apdm, eif/adf/apdf),
        ``timeout`` (duration), ``refresh_on_inbound`` (bool), ``ports`` (``"20000-60999"`` or
        ``[20000, 60999]``), ``port_allocation`` (sequential, random or preserve).

        Raises:
            ValueError: one line naming an unknown key or a bad value.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"bad NAT config {data!r}: expected a table")  # noqa: TRY004 - bad values are ValueError by contract
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            try:
                kwargs.update(_parse_config_item(key, value))
            except ValueError as exc:
                raise ValueError(f"bad NAT config {key!r}: {exc}") from None
        return cls(**kwargs)

    def to_mapping(self) -> dict[str, object]:
        """Return the inverse of ``from_mapping`` (every key; timeout in seconds)."""
        return {
            "mapping": str(self.mapping),
            "filtering": str(self.filtering),
            "timeout": self.timeout_s,
            "refresh_on_inbound": self.refresh_on_inbound,
            "ports": [self.port_min, self.port_max],
            "port_allocation": str(self.port_allocation),
        }


def _parse_config_item(key: str, value: object) -> dict[str, object]:
    if key in ("mapping", "filtering"):
        return {key: _parse_behaviour(value)}
    if key == "timeout":
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError(f"bad duration {value!r}: expected a number with a unit")
        return {"timeout_s": units.parse_duration(value)}
    if key == "refresh_on_inbound":
        if not isinstance(value, bool):
            raise ValueError(f"bad flag {value!r}: expected true or false")
        return {key: value}
    if key == "ports":
        port_min, port_max = _parse_ports(value)
        return {"port_min": port_min, "port_max": port_max}
    if key == "port_allocation":
        try:
            return {key: PortAllocation(str(value).lower())}
        except ValueError:
            names = ", ".join(PortAllocation)
            raise ValueError(f"bad port allocation {value!r}: expected one of {names}") from None
    raise ValueError(f"unknown key: expected one of {', '.join(_CONFIG_KEYS)}")
