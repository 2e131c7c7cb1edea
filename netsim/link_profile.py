"""Link profiles: what one link direction does to packets, as a validated value and as data.

What this module owns
---------------------
``LinkProfile`` (every knob of one link direction), its parts ``GilbertElliott`` (burst-loss
parameters) and ``Outage`` (a down window), and the translation between a profile and the
mapping that scenario files, trace headers and ``netsim proxy`` use (``LinkProfile.from_mapping``
and ``LinkProfile.to_mapping``). The pipeline that applies a profile to packets lives in
``netsim.models`` (``LinkDirection``), which re-exports these three classes.

Rules it keeps
--------------
- Values are frozen: every field is checked on construction and a bad one raises ``ValueError``
  naming the field, so an invalid profile can never reach the pipeline.
- Mapping values are parsed with ``netsim.units`` (durations, ratios, sizes, rates); an unknown
  key or a bad value is one ``ValueError`` line naming the scenario key.
- ``to_mapping`` is the inverse of ``from_mapping`` in base units (seconds, bits per second,
  bytes) and omits default values, so an empty mapping is a perfect link and
  ``from_mapping(p.to_mapping()) == p``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from netsim import units
from netsim.mahimahi import MahimahiTrace

__all__ = ["GilbertElliott", "LinkProfile", "Outage"]


def _check_probability(owner: str, name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"bad {owner} {name}={value!r}: expected a probability in [0, 1]")


def _check_non_negative(owner: str, name: str, value: float) -> None:
    if not (math.isfinite(value) and value >= 0.0):
        raise ValueError(f"bad {owner} {name}={value!r}: expected a finite number >= 0")


@dataclass(frozen=True, slots=True)
class GilbertElliott:
    """Parameters of the per-packet two-state burst-loss chain (theory in ``netsim.models``)."""

    p_good_to_bad: float
    p_bad_to_good: float
    loss_good: float = 0.0
    loss_bad: float = 1.0

    def __post_init__(self) -> None:
        for name in ("p_good_to_bad", "p_bad_to_good", "loss_good", "loss_bad"):
            _check_probability("burst", name, getattr(self, name))

    @property
    def mean_burst_packets(self) -> float:
        """Mean number of consecutive packets in the bad state: ``1 / p_bad_to_good``."""
        return math.inf if self.p_bad_to_good == 0 else 1.0 / self.p_bad_to_good

    @property
    def stationary_bad(self) -> float:
        """Long-run fraction of packets in the bad state: ``p_gb / (p_gb + p_bg)``."""
        total = self.p_good_to_bad + self.p_bad_to_good
        return 0.0 if total == 0 else self.p_good_to_bad / total

    @property
    def mean_loss(self) -> float:
        """Long-run loss rate of the chain."""
        bad = self.stationary_bad
        return bad * self.loss_bad + (1.0 - bad) * self.loss_good


@dataclass(frozen=True, slots=True)
class Outage:
    """The link is down for ``start_s <= t < end_s`` (seconds of simulation time)."""

    start_s: float
    end_s: float

    def __post_init__(self) -> None:
        _check_non_negative("outage", "start_s", self.start_s)
        if not self.end_s >= self.start_s:
            raise ValueError(f"bad outage {self.start_s}..{self.end_s}: end is before start")


@dataclass(frozen=True, slots=True)
class LinkProfile:
    """What one direction of a link does to packets (defaults: a perfect link).

    Attributes:
        delay_s: fixed one-way latency.
        jitter_s: latency varies uniformly within ``delay_s +- jitter_s``, clamped >= 0.
        reorder: False keeps FIFO order (clamp); True lets jitter reorder packets.
        loss: Bernoulli loss probability (ignored when ``burst`` is set).
        burst: Gilbert-Elliott burst loss parameters, or None.
        duplicate: probability of one extra copy.
        corrupt: probability of flipping one random bit.
        mtu_bytes: larger packets are dropped; None = no limit.
        rate_bps: bottleneck serialization rate; None = unlimited.
        queue_bytes: drop-tail limit of the rate/trace queue.
        outages: windows during which every packet is dropped.
        trace: trace-driven capacity (replaces ``rate_bps``), or None.
    """

    delay_s: float = 0.0
    jitter_s: float = 0.0
    reorder: bool = False
    loss: float = 0.0
    burst: GilbertElliott | None = None
    duplicate: float = 0.0
    corrupt: float = 0.0
    mtu_bytes: int | None = None
    rate_bps: float | None = None
    queue_bytes: int = 65536
    outages: tuple[Outage, ...] = ()
    trace: MahimahiTrace | None = None

    def __post_init__(self) -> None:
        _check_non_negative("link profile", "delay_s", self.delay_s)
        _check_non_negative("link profile", "jitter_s", self.jitter_s)
        for name in ("loss", "duplicate", "corrupt"):
            _check_probability("link profile", name, getattr(self, name))
        if self.mtu_bytes is not None and self.mtu_bytes <= 0:
            raise ValueError(f"bad link profile mtu_bytes={self.mtu_bytes!r}: expected > 0")
        if self.rate_bps is not None and not (math.isfinite(self.rate_bps) and self.rate_bps > 0):
            raise ValueError(f"bad link profile rate_bps={self.rate_bps!r}: expected > 0")
        if self.queue_bytes < 0:
            raise ValueError(f"bad link profile queue_bytes={self.queue_bytes!r}: expected >= 0")

    def with_changes(self, **changes: object) -> LinkProfile:
        """Return a copy with some fields replaced (``dataclasses.replace``; validated).

        Raises:
            TypeError: an unknown field name.
            ValueError: a bad field value.
        """
        fields: dict[str, Any] = changes
        return dataclasses.replace(self, **fields)

    @classmethod
    def from_mapping(cls, data: Mapping[str, object]) -> LinkProfile:
        """Build a profile from scenario data (TOML/JSON), parsing values with ``netsim.units``.

        Keys: ``delay``, ``jitter`` (durations), ``reorder`` (bool), ``loss``, ``duplicate``,
        ``corrupt`` (ratios), ``burst`` (table of ``p_good_to_bad``, ``p_bad_to_good`` and
        optional ``loss_good``, ``loss_bad``), ``mtu``, ``queue`` (sizes), ``rate`` (rate),
        ``outages`` (``[[start, end], ...]`` or ``[{start=, end=}, ...]``, durations) and
        ``trace`` (a bundled trace name or a path).

        Raises:
            ValueError: one line naming an unknown key or a bad value.
        """
        return cls(**_parse_profile_mapping(data))

    def to_mapping(self) -> dict[str, object]:
        """Return the inverse of ``from_mapping``: JSON/TOML-friendly, base units, defaults omitted.

        Durations are seconds, rates bits per second, sizes bytes; a trace is given by its
        name (bundled name or path). An empty mapping is a perfect link.
        """
        return _profile_to_mapping(self)


# --- scenario mapping <-> LinkProfile ---------------------------------------------------------


def _parse_bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"bad flag {value!r}: expected true or false")  # noqa: TRY004 - bad values are ValueError by contract
    return value


def _parse_burst(value: object) -> GilbertElliott:
    keys = ("p_good_to_bad", "p_bad_to_good", "loss_good", "loss_bad")
    if not isinstance(value, Mapping) or not {"p_good_to_bad", "p_bad_to_good"} <= set(value):
        raise ValueError(f"bad burst {value!r}: expected a table with {', '.join(keys)}")
    unknown = [str(key) for key in value if key not in keys]
    if unknown:
        raise ValueError(f"bad burst key {unknown[0]!r}: expected one of {', '.join(keys)}")
    return GilbertElliott(**{str(key): units.parse_ratio(item) for key, item in value.items()})


def _parse_outage(value: object) -> Outage:
    form = "expected [start, end] or {start = ..., end = ...}"
    if isinstance(value, Mapping) and set(value) == {"start", "end"}:
        start, end = value["start"], value["end"]
    elif isinstance(value, list | tuple) and len(value) == 2:
        start, end = value
    else:
        raise ValueError(f"bad outage {value!r}: {form}")
    if not isinstance(start, str | int | float) or not isinstance(end, str | int | float):
        raise ValueError(f"bad outage {value!r}: {form}")  # noqa: TRY004 - bad values are ValueError by contract
    return Outage(units.parse_duration(start), units.parse_duration(end))


def _parse_outages(value: object) -> tuple[Outage, ...]:
    if not isinstance(value, list | tuple):
        raise ValueError(f"bad outages {value!r}: expected a list of [start, end] pairs")  # noqa: TRY004 - bad values are ValueError by contract
    return tuple(_parse_outage(item) for item in value)


def _parse_trace(value: object) -> MahimahiTrace:
    if not isinstance(value, str):
        raise ValueError(f"bad trace {value!r}: expected a bundled trace name or a path")  # noqa: TRY004 - bad values are ValueError by contract
    return MahimahiTrace.load(value)


def _scalar(parse: Callable[[Any], object]) -> Callable[[object], object]:
    def parse_scalar(value: object) -> object:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError(f"bad value {value!r}: expected a number or text with a unit")  # noqa: TRY004 - bad values are ValueError by contract
        return parse(value)

    return parse_scalar


# scenario key -> (LinkProfile field, parser)
_PROFILE_KEYS: Final[dict[str, tuple[str, Callable[[object], object]]]] = {
    "delay": ("delay_s", _scalar(units.parse_duration)),
    "jitter": ("jitter_s", _scalar(units.parse_duration)),
    "reorder": ("reorder", _parse_bool),
    "loss": ("loss", _scalar(units.parse_ratio)),
    "burst": ("burst", _parse_burst),
    "duplicate": ("duplicate", _scalar(units.parse_ratio)),
    "corrupt": ("corrupt", _scalar(units.parse_ratio)),
    "mtu": ("mtu_bytes", _scalar(units.parse_size)),
    "rate": ("rate_bps", _scalar(units.parse_rate)),
    "queue": ("queue_bytes", _scalar(units.parse_size)),
    "outages": ("outages", _parse_outages),
    "trace": ("trace", _parse_trace),
}


def _parse_profile_mapping(data: Mapping[str, object]) -> dict[str, Any]:
    """Translate scenario keys to ``LinkProfile`` keyword arguments (see ``from_mapping``)."""
    if not isinstance(data, Mapping):
        raise ValueError(f"bad link profile {data!r}: expected a table of impairments")  # noqa: TRY004 - bad values are ValueError by contract
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        entry = _PROFILE_KEYS.get(key)
        if entry is None:
            raise ValueError(
                f"unknown link profile key {key!r}: expected one of {', '.join(_PROFILE_KEYS)}"
            )
        name, parse = entry
        try:
            kwargs[name] = parse(value)
        except ValueError as exc:
            raise ValueError(f"bad link profile {key!r}: {exc}") from None
    return kwargs


def _profile_to_mapping(profile: LinkProfile) -> dict[str, object]:
    """Inverse of ``_parse_profile_mapping`` in base units, omitting default values."""
    default = _DEFAULT_PROFILE
    out: dict[str, object] = {}
    for key, (name, _) in _PROFILE_KEYS.items():
        value = getattr(profile, name)
        if value == getattr(default, name):
            continue
        if isinstance(value, GilbertElliott):
            value = dataclasses.asdict(value)
        elif isinstance(value, MahimahiTrace):
            value = value.name
        elif name == "outages":
            value = [[outage.start_s, outage.end_s] for outage in value]
        out[key] = value
    return out


_DEFAULT_PROFILE: Final = LinkProfile()
