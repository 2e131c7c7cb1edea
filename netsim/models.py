"""Link impairment models: the pure, seeded per-packet decisions of one link direction.

What this module owns
---------------------
``LinkDirection`` (the stateful pipeline of one direction of one link), its results
(``Verdict``, ``Delivery``, ``LinkStatistics``), the ``DropReason`` vocabulary used by every drop
anywhere in netsim, and ``derive_rng``, the only source of randomness. The same code serves the
virtual network under a Trio ``MockClock``, the pure discrete-event harness and the real UDP
impairment proxy. The profile a direction applies (``LinkProfile``, ``GilbertElliott``,
``Outage``) is a value defined in ``netsim.link_profile`` and re-exported here.

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
from dataclasses import dataclass, field
from typing import Final

from netsim.link_profile import GilbertElliott, LinkProfile, Outage
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
