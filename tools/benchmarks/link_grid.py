"""The emulated links every network benchmark runs over: the loss grid of TARGETS.md.

What it owns: ``LinkCell`` (one point of the grid: its name, how it is written in tables,
and the ``netsim`` ``LinkProfile`` applied to *each* direction), the grid itself
(``LOSS_GRID``) and the parsing of ``--cells``.

Rules it keeps:

* Every cell is RTT 50 ms: 25 ms fixed one-way delay in each direction, no jitter, no
  reordering, no rate limit (the alternatives in TARGETS.md were measured the same way).
* Loss is applied independently in both directions: the proxy gives each direction its
  own ``LinkDirection`` with its own seeded generator, and the same profile.
* The Gilbert-Elliott cell is TARGETS.md's bursts: good -> bad 0.02, bad -> good 0.3,
  80 % loss in the bad state, none in the good one (mean loss 5 %, mean burst 3.3
  packets in the bad state).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from netsim.models import GilbertElliott, LinkProfile

__all__ = [
    "BULK_CELLS",
    "GE_BURSTS",
    "LOSS_GRID",
    "ONE_WAY_DELAY_S",
    "LinkCell",
    "parse_cells",
]

ONE_WAY_DELAY_S: Final = 0.025
"""Fixed one-way delay of every cell (RTT 50 ms)."""

GE_BURSTS: Final = GilbertElliott(
    p_good_to_bad=0.02, p_bad_to_good=0.3, loss_good=0.0, loss_bad=0.8
)
"""TARGETS.md's burst-loss chain."""


@dataclass(frozen=True, slots=True)
class LinkCell:
    """One emulated link of the grid.

    Attributes:
        name: the key used on the command line and in JSON (``"0"``, ``"10"``, ``"ge"``).
        label: how tables write it (``"10 %"``, ``"Gilbert-Elliott bursts"``).
        profile: what each direction does to packets (applied to both directions).
    """

    name: str
    label: str
    profile: LinkProfile

    @property
    def mean_loss(self) -> float:
        """Long-run loss probability of one direction."""
        burst = self.profile.burst
        return burst.mean_loss if burst is not None else self.profile.loss


def _bernoulli(percent: int) -> LinkCell:
    return LinkCell(
        name=str(percent),
        label=f"{percent} %",
        profile=LinkProfile(delay_s=ONE_WAY_DELAY_S, loss=percent / 100),
    )


LOSS_GRID: Final[tuple[LinkCell, ...]] = (
    _bernoulli(0),
    _bernoulli(2),
    _bernoulli(10),
    _bernoulli(30),
    LinkCell(
        name="ge",
        label="Gilbert-Elliott bursts",
        profile=LinkProfile(delay_s=ONE_WAY_DELAY_S, burst=GE_BURSTS),
    ),
)
"""The latency grid, in table order."""

BULK_CELLS: Final[tuple[str, ...]] = ("0", "2", "10", "30")
"""The cells the bulk benchmark runs by default (TARGETS.md has no burst figure for it)."""


def parse_cells(text: str | None, default: tuple[str, ...]) -> tuple[LinkCell, ...]:
    """The cells named in a comma-separated ``--cells`` value, in grid order.

    Args:
        text: e.g. ``"0,10,ge"``; None or empty selects ``default``.
        default: the names used when ``text`` selects nothing.

    Returns:
        The selected cells, in the order of ``LOSS_GRID``.

    Raises:
        ValueError: a name that is not in the grid.
    """
    names = [part.strip() for part in (text or "").split(",") if part.strip()] or list(default)
    known = {cell.name for cell in LOSS_GRID}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"unknown cell {unknown[0]!r}: expected one of {', '.join(sorted(known))}")
    return tuple(cell for cell in LOSS_GRID if cell.name in names)
