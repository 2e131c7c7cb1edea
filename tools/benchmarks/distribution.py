"""Summaries of samples: percentiles of one run, medians and spreads across repeated runs.

What it owns: ``percentile`` (nearest rank), ``Percentiles`` (p50/p90/p99/max of one
run), ``Spread`` (median and min..max of one figure over ``--repeat`` runs) and the
text forms the tables use.

Rules it keeps:

* Nearest rank, no interpolation: p99 of 2000 samples is the 1980th smallest, a latency
  some message really had. An infinite sample (a message never delivered) sorts last,
  so percentiles stay honest when delivery is incomplete.
* Spreads are medians of per-run figures (not figures of pooled samples), as the issue
  asks for a noisy shared machine.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Percentiles", "Spread", "format_ms", "percentile"]


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of ascending ``ordered`` samples.

    Args:
        ordered: samples sorted ascending (may contain ``math.inf``).
        fraction: 0 < fraction <= 1 (0.99 for p99).

    Returns:
        The smallest sample with at least ``fraction`` of the samples at or below it;
        NaN when there are no samples.
    """
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True, slots=True)
class Percentiles:
    """p50/p90/p99/max of one run's samples, in seconds."""

    p50: float
    p90: float
    p99: float
    max: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Percentiles:
        """The percentiles of ``samples`` (any order)."""
        ordered = sorted(samples)
        return cls(
            percentile(ordered, 0.50),
            percentile(ordered, 0.90),
            percentile(ordered, 0.99),
            ordered[-1] if ordered else math.nan,
        )


@dataclass(frozen=True, slots=True)
class Spread:
    """One figure over repeated runs: median, min and max."""

    median: float
    low: float
    high: float
    runs: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        """The spread of ``values`` (one per run; at least one)."""
        return cls(statistics.median(values), min(values), max(values), len(values))

    def format(self, scale: float = 1.0, digits: int = 1) -> str:
        """``median`` alone for one run, ``median (low..high)`` for several."""
        text = _number(self.median * scale, digits)
        if self.runs == 1:
            return text
        return f"{text} ({_number(self.low * scale, digits)}..{_number(self.high * scale, digits)})"

    def to_json(self, scale: float = 1.0, digits: int = 4) -> dict[str, float | int | None]:
        """``{"median", "min", "max", "runs"}`` scaled, infinities as None."""
        return {
            "median": _json_number(self.median * scale, digits),
            "min": _json_number(self.low * scale, digits),
            "max": _json_number(self.high * scale, digits),
            "runs": self.runs,
        }


def _number(value: float, digits: int) -> str:
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "inf"
    return f"{value:,.{digits}f}"


def _json_number(value: float, digits: int) -> float | None:
    return None if math.isinf(value) or math.isnan(value) else round(value, digits)


def format_ms(seconds: float, digits: int = 1) -> str:
    """``seconds`` as milliseconds text ("inf" for never, "n/a" for no sample)."""
    return _number(seconds * 1000, digits)
