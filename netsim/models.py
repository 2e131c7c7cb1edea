"""Link impairment models: the pure, seeded per-packet decisions of one link direction.

What this module owns
---------------------
``LinkProfile`` (what a link does to packets), ``LinkDirection`` (the stateful pipeline of one
direction of one link), the ``DropReason`` vocabulary used by every drop anywhere in netsim, and
``derive_rng``, the only source of randomness. The same code serves the virtual network under a
Trio ``MockClock``, the pure discrete-event harness and the real UDP impairment proxy.

Rules it keeps
--------------
- No Trio, no clock, no global ``random``: every decision is a function of the direction's own
  ``random.Random`` (``derive_rng(seed, "link", host, "up"|"down")``), the packet and ``now``
  (seconds, passed in). Same seed and same calls give the same verdicts in every process.
- A probability of 0 consumes no random draw, so an unimpaired link costs no randomness.
- ``transmit`` never raises for any packet; ``LinkProfile`` validates itself on construction
  (``ValueError``) so a bad profile cannot reach the pipeline.

Decision order of ``LinkDirection.transmit(data, now)``
-------------------------------------------------------
1. **Outage**: dropped (``OUTAGE``) if some ``Outage`` has ``start_s <= now < end_s``. Only the
   send time matters; packets already in flight are still delivered.
2. **MTU**: dropped (``MTU``) if ``len(data) > mtu_bytes``.
3. **Loss**: with ``burst`` set, the Gilbert-Elliott chain steps once for this packet (below)
   and the packet is lost with the new state's loss probability (``BURST_LOSS`` if lost in the
   bad state, ``LOSS`` in the good state). Otherwise Bernoulli: lost (``LOSS``) with
   probability ``loss``, independently per packet.
4. **Corruption**: with probability ``corrupt`` one bit, uniform over all bits of the packet,
   is flipped (empty packets are never corrupted).
5. **Queue**: with ``trace`` or ``rate_bps`` set, the packet joins a FIFO bottleneck queue and
   leaves at its *departure* time; otherwise departure = ``now``. Drop-tail: the queue holds the
   bytes of every accepted packet that has not yet departed, including the one being
   serialized; a packet that would make it exceed ``queue_bytes`` is dropped (``QUEUE``), so a
   packet larger than ``queue_bytes`` never passes. Rate: departure =
   ``max(now, previous departure) + size * 8 / rate_bps``, so queueing plus serialization delay
   never exceeds ``queue_bytes * 8 / rate_bps`` and grows with the backlog (bufferbloat).
   Trace: departure is the opportunity the packet is sent in (see ``netsim.mahimahi``); a trace
   replaces ``rate_bps``. Backlog bookkeeping is a deque of ``(departure, size)`` pruned as time
   passes (O(1) amortized).
6. **Latency**: delivery = departure + ``delay_s`` + U, U uniform on ``[-jitter_s, +jitter_s]``,
   clamped so latency >= 0 (with jitter > delay some packets get exactly 0). With ``reorder``
   False (FIFO clamp) a delivery is never earlier than any earlier delivery of this direction:
   ``at = max(at, latest at so far)``; equal times keep send order if the scheduler breaks ties
   by scheduling order. With ``reorder`` True the jittered times stand and packets may overtake.
7. **Duplication**: with probability ``duplicate`` one extra copy, with the same data (and the
   same corruption), the same departure and its own latency sample, is delivered too.

Gilbert-Elliott burst loss
--------------------------
A two-state Markov chain stepped once per packet that reaches the loss stage. Before deciding a
packet's fate the chain moves: good -> bad with probability ``p_good_to_bad``, bad -> good with
``p_bad_to_good``. The packet is then lost with ``loss_bad`` (bad) or ``loss_good`` (good). The
chain starts good and keeps its state across ``set_profile``. The number of consecutive packets
spent in the bad state is geometric with mean ``1 / p_bad_to_good`` (``mean_burst_packets``);
the long-run fraction of bad packets is ``p_gb / (p_gb + p_bg)`` (``stationary_bad``) and the
mean loss is ``stationary_bad * loss_bad + (1 - stationary_bad) * loss_good``.

Profile changes
---------------
``set_profile`` applies to packets sent from then on; the queue backlog, the burst state and the
FIFO clamp carry over, so a timeline of changes behaves like one link whose knobs are turned.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import math
import random
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from netsim import units
from netsim.mahimahi import BYTES_PER_OPPORTUNITY, MahimahiTrace

__all__ = [
    "Delivery",
    "DropReason",
    "GilbertElliott",
    "GilbertElliottState",
    "LinkDirection",
    "LinkProfile",
    "LinkStatistics",
    "Outage",
    "Verdict",
    "bernoulli",
    "derive_rng",
    "flip_random_bit",
    "sample_latency",
]


def derive_rng(seed: int, *labels: str) -> random.Random:
    """Return a ``random.Random`` seeded from ``sha256(f"{seed}/" + "/".join(labels))``.

    The seed is the whole digest read as a big-endian integer, so the stream is identical in
    every process and on every platform (no ``PYTHONHASHSEED`` dependence).

    Args:
        seed: the scenario seed.
        labels: what the generator is for, e.g. ``("link", "alice", "up")``.

    Returns:
        A fresh generator; different labels give independent streams.
    """
    text = f"{seed}/" + "/".join(labels)
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest, "big"))


class DropReason(enum.StrEnum):
    """Why a packet was dropped; every drop anywhere in netsim is one of these."""

    OUTAGE = "outage"
    PARTITION = "partition"
    MTU = "mtu"
    LOSS = "loss"
    BURST_LOSS = "burst-loss"
    QUEUE = "queue"  # rate/trace queue full (drop-tail)
    NAT_NO_MAPPING = "nat-no-mapping"
    NAT_FILTERED = "nat-filtered"
    NAT_EXPIRED = "nat-expired"
    NO_ROUTE = "no-route"  # no host at that address (e.g. host moved away)
    PORT_UNREACHABLE = "port-unreachable"  # no socket bound to that port
    RCVBUF = "rcvbuf"  # receiving socket's buffer full
    FILTER = "filter"  # a user-installed PacketFilter dropped it


def _check_probability(owner: str, name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"bad {owner} {name}={value!r}: expected a probability in [0, 1]")


def _check_non_negative(owner: str, name: str, value: float) -> None:
    if not (math.isfinite(value) and value >= 0.0):
        raise ValueError(f"bad {owner} {name}={value!r}: expected a finite number >= 0")


@dataclass(frozen=True, slots=True)
class GilbertElliott:
    """Parameters of the per-packet two-state burst-loss chain (see the module docstring)."""

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


@dataclass(frozen=True, slots=True)
class Delivery:
    """One copy of a packet leaving the link at ``at`` (seconds)."""

    at: float
    data: bytes
    corrupted: bool = False
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class Verdict:
    """The fate of one transmitted packet: deliveries is empty iff it was dropped."""

    deliveries: tuple[Delivery, ...]
    dropped: DropReason | None = None


_DROPPED: Final = {reason: Verdict((), reason) for reason in DropReason}


@dataclass(slots=True)
class LinkStatistics:
    """Counters of one link direction. ``packets_out`` counts delivered copies (with duplicates);
    ``corrupted`` counts delivered packets that had a bit flipped (a duplicate shares it)."""

    packets_in: int = 0
    packets_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    duplicated: int = 0
    corrupted: int = 0
    drops: dict[DropReason, int] = field(default_factory=dict)

    @property
    def packets_dropped(self) -> int:
        """Total packets dropped, all reasons."""
        return sum(self.drops.values())


def bernoulli(rng: random.Random, p: float) -> bool:
    """Return True with probability ``p``; draws nothing when ``p`` is 0 or 1."""
    if p <= 0.0:
        return False
    return p >= 1.0 or rng.random() < p


def sample_latency(rng: random.Random, profile: LinkProfile) -> float:
    """Return ``delay_s + U(-jitter_s, +jitter_s)`` clamped >= 0 (no draw without jitter)."""
    jitter = profile.jitter_s
    if jitter <= 0.0:
        return profile.delay_s
    latency = profile.delay_s + (2.0 * rng.random() - 1.0) * jitter
    return latency if latency > 0.0 else 0.0


def flip_random_bit(rng: random.Random, data: bytes) -> bytes:
    """Return ``data`` with one bit, chosen uniformly, inverted (empty data is returned as is)."""
    if not data:
        return data
    bit = rng.randrange(len(data) * 8)
    buffer = bytearray(data)
    buffer[bit >> 3] ^= 1 << (bit & 7)
    return bytes(buffer)


class GilbertElliottState:
    """The mutable state of one Gilbert-Elliott chain; ``bad`` is False initially."""

    __slots__ = ("bad",)

    def __init__(self, bad: bool = False) -> None:
        self.bad = bad

    def step(self, rng: random.Random, params: GilbertElliott) -> bool:
        """Move the chain for one packet, then decide its loss in the new state.

        Returns:
            True if the packet is lost.
        """
        if self.bad:
            if bernoulli(rng, params.p_bad_to_good):
                self.bad = False
        elif bernoulli(rng, params.p_good_to_bad):
            self.bad = True
        return bernoulli(rng, params.loss_bad if self.bad else params.loss_good)


class _Bottleneck:
    """The FIFO rate/trace queue of one direction: backlog bytes and departure times."""

    __slots__ = ("_backlog", "_backlog_bytes", "_last_departure", "_trace", "_trace_at",
                 "_trace_budget", "_trace_index")  # fmt: skip

    def __init__(self) -> None:
        self._backlog: deque[tuple[float, int]] = deque()
        self._backlog_bytes = 0
        self._last_departure = -math.inf
        self._trace: MahimahiTrace | None = None  # the trace _trace_index refers to
        self._trace_index = 0  # absolute index of the opportunity used last
        self._trace_at = -math.inf  # its time
        self._trace_budget = 0  # bytes still free in it

    def backlog_bytes(self, now: float) -> int:
        backlog = self._backlog
        while backlog and backlog[0][0] <= now:
            self._backlog_bytes -= backlog.popleft()[1]
        return self._backlog_bytes

    def enqueue(self, profile: LinkProfile, size: int, now: float) -> float | None:
        """Return the departure time of a packet, or None if drop-tail refuses it."""
        if self.backlog_bytes(now) + size > profile.queue_bytes:
            return None
        trace = profile.trace
        if trace is not None:
            departure = self._trace_departure(trace, size, now)
        else:
            rate_bps = profile.rate_bps or math.inf
            self._trace = None
            start = now if now > self._last_departure else self._last_departure
            departure = start + size * 8.0 / rate_bps
        self._last_departure = departure
        self._backlog.append((departure, size))
        self._backlog_bytes += size
        return departure

    def _trace_departure(self, trace: MahimahiTrace, size: int, now: float) -> float:
        if trace is self._trace:
            if self._trace_at >= now and size <= self._trace_budget:
                self._trace_budget -= size
                return self._trace_at
            index = self._trace_index + 1 if self._trace_at >= now else trace.index_at(now)
        else:
            self._trace = trace
            index = trace.index_at(max(now, self._last_departure))
        needed = max(1, -(-size // BYTES_PER_OPPORTUNITY))
        self._trace_index = index + needed - 1
        self._trace_at = trace.time_at(self._trace_index)
        self._trace_budget = needed * BYTES_PER_OPPORTUNITY - size
        return self._trace_at


class LinkDirection:
    """Stateful impairment pipeline of ONE direction of ONE link. Decision order:
    outage -> MTU -> loss (burst or Bernoulli) -> corruption -> queue (rate or trace, drop-tail)
    -> latency (delay + jitter; FIFO clamp unless reorder) -> duplication.

    See the module docstring for the exact semantics of each stage.

    Args:
        profile: the initial impairments.
        rng: this direction's own generator (from ``derive_rng``).
    """

    __slots__ = ("_burst", "_last_at", "_profile", "_queue", "_rng", "_stats")

    def __init__(self, profile: LinkProfile, rng: random.Random) -> None:
        self._profile = profile
        self._rng = rng
        self._burst = GilbertElliottState()
        self._queue = _Bottleneck()
        self._last_at = -math.inf  # latest delivery time so far (for the FIFO clamp)
        self._stats = LinkStatistics()

    @property
    def profile(self) -> LinkProfile:
        """The profile applied to packets sent now."""
        return self._profile

    def set_profile(self, profile: LinkProfile) -> None:
        """Change the impairments for later packets; queue, burst and FIFO state carry over."""
        self._profile = profile

    def backlog_bytes(self, now: float) -> int:
        """Bytes waiting in (or being serialized by) the rate/trace queue at ``now``."""
        return self._queue.backlog_bytes(now)

    def transmit(self, data: bytes, now: float) -> Verdict:
        """Decide the fate of one packet sent at ``now``; never raises.

        Args:
            data: the packet.
            now: the send time in seconds (non-decreasing across calls).

        Returns:
            The deliveries (time, data, flags), or no delivery and the drop reason.
        """
        profile = self._profile
        rng = self._rng
        stats = self._stats
        size = len(data)
        stats.packets_in += 1
        stats.bytes_in += size
        if profile.outages and any(o.start_s <= now < o.end_s for o in profile.outages):
            return self._drop(DropReason.OUTAGE)
        if profile.mtu_bytes is not None and size > profile.mtu_bytes:
            return self._drop(DropReason.MTU)
        if profile.burst is not None:
            if self._burst.step(rng, profile.burst):
                return self._drop(DropReason.BURST_LOSS if self._burst.bad else DropReason.LOSS)
        elif profile.loss > 0.0 and bernoulli(rng, profile.loss):
            return self._drop(DropReason.LOSS)
        corrupted = size > 0 and profile.corrupt > 0.0 and bernoulli(rng, profile.corrupt)
        if corrupted:
            data = flip_random_bit(rng, data)
        departure = now
        if profile.trace is not None or profile.rate_bps is not None:
            queued = self._queue.enqueue(profile, size, now)
            if queued is None:
                return self._drop(DropReason.QUEUE)
            departure = queued
        if corrupted:
            stats.corrupted += 1
        first = Delivery(self._delivery_time(profile, departure), data, corrupted)
        if profile.duplicate > 0.0 and bernoulli(rng, profile.duplicate):
            second = Delivery(self._delivery_time(profile, departure), data, corrupted, True)
            stats.duplicated += 1
            stats.packets_out += 2
            stats.bytes_out += 2 * size
            return Verdict((first, second))
        stats.packets_out += 1
        stats.bytes_out += size
        return Verdict((first,))

    def statistics(self) -> LinkStatistics:
        """Return a snapshot of the counters."""
        return dataclasses.replace(self._stats, drops=dict(self._stats.drops))

    def _delivery_time(self, profile: LinkProfile, departure: float) -> float:
        at = departure + sample_latency(self._rng, profile)
        if at >= self._last_at:
            self._last_at = at
        elif not profile.reorder:
            at = self._last_at
        return at

    def _drop(self, reason: DropReason) -> Verdict:
        drops = self._stats.drops
        drops[reason] = drops.get(reason, 0) + 1
        return _DROPPED[reason]


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
