"""The figures udpim is measured against, copied from /work/shared/TARGETS.md.

What it owns: the alternatives' published figures and udpim's targets, as data, so the
tables can print them beside udpim's measured rows and say whether a target holds.

Rules it keeps:

* These are TARGETS.md's numbers, verbatim (that file wins over older issues). They
  were measured once, on one of these 2-core machines, through a TUN forwarder between
  two network namespaces; ours go through netsim's proxy on loopback. Same link
  parameters, not the same emulator: compare orders of magnitude and shapes, and
  re-measure before claiming a few milliseconds.
* Alternatives are kept as text ("86.2 / 1.71", "fails") because some cells are not
  numbers; targets are numbers (None where TARGETS.md sets none).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = [
    "ALTERNATIVES",
    "BULK_ALTERNATIVES",
    "BULK_ALTERNATIVE_NAMES",
    "BULK_TARGETS_S",
    "LATENCY_REFERENCES",
    "LATENCY_TARGETS",
    "LatencyTarget",
    "ONEWAY_ALTERNATIVES",
    "ONEWAY_TARGET_PER_S",
]


@dataclass(frozen=True, slots=True)
class LatencyTarget:
    """udpim's target for one latency cell: p99 (seconds) and wire bytes / payload bytes."""

    p99_s: float
    wire_ratio: float


ALTERNATIVES: Final[tuple[str, ...]] = (
    "TCP (trio, NODELAY, BBR)",
    "QUIC (aioquic)",
    "KCP (fast mode)",
    "ENet",
)

# cell name -> the alternatives' "p99 ms / wire ratio", in ALTERNATIVES order.
LATENCY_REFERENCES: Final[dict[str, tuple[str, ...]]] = {
    "0": ("26.0 / 1.54", "26.3 / 1.66", "25.7 / 1.65", "25.6 / 1.39"),
    "2": ("95.1 / 1.57", "89.1 / 1.68", "86.2 / 1.71", "135.3 / 1.43"),
    "10": ("157.6 / 1.70", "157.5 / 1.83", "105.5 / 2.18", "3425 / 1.66"),
    "30": ("1906 / 1.94", "2401 / 1.94", "225.8 / 3.10", "fails"),
    "ge": ("177 (1 msg stuck > 30 s)", "119 / 1.71", "126 / 1.93", "225 / 1.53"),
}

LATENCY_TARGETS: Final[dict[str, LatencyTarget]] = {
    "0": LatencyTarget(0.0265, 1.5),
    "2": LatencyTarget(0.060, 1.7),
    "10": LatencyTarget(0.080, 2.0),
    "30": LatencyTarget(0.200, 3.0),
    "ge": LatencyTarget(0.090, 1.8),
}

BULK_ALTERNATIVES: Final[dict[str, tuple[str, ...]]] = {
    # cell name -> seconds for TCP, KCP, QUIC
    "0": ("0.35", "0.39", "0.37"),
    "2": ("0.47", "0.55", "4.0"),
    "10": ("0.68", "0.96", "16.3"),
    "30": ("19.5", "4.32", "did not finish"),
}
BULK_ALTERNATIVE_NAMES: Final[tuple[str, ...]] = ("TCP", "KCP", "QUIC")

BULK_TARGETS_S: Final[dict[str, tuple[float, str]]] = {
    # cell name -> (seconds, the target as TARGETS.md words it)
    "0": (0.35, "<= TCP (0.35 s)"),
    "2": (0.55, "<= KCP (0.55 s)"),
    "10": (0.96, "<= KCP (0.96 s)"),
    "30": (3.0, "<= 3 s (beat KCP)"),
}

ONEWAY_ALTERNATIVES: Final[tuple[tuple[str, int], ...]] = (
    # (transport, delivered messages/s) one way on loopback, 100 000 x 200 B
    ("TCP", 78_000),
    ("QUIC (aioquic, pure Python)", 38_000),
    ("KCP (C core)", 169_000),
    ("ENet (C core)", 586_000),
)
ONEWAY_TARGET_PER_S: Final = 40_000
"""udpim >= 40 k messages/s one way with encryption on (beat the pure-Python QUIC)."""
