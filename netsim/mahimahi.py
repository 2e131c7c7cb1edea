"""Trace-driven links in Mahimahi format, and the traces bundled in ``netsim/traces/``.

What this module owns
---------------------
``MahimahiTrace``: an immutable schedule of *delivery opportunities*, the loader for bundled
traces and files, and the arithmetic that maps a time to the next opportunity. The queue that
spends the opportunities lives in ``netsim.models`` (``LinkDirection``).

File format (Mahimahi, Netravali et al., USENIX ATC 2015)
---------------------------------------------------------
One integer per line: a time in milliseconds from the start of the trace at which one
1500-byte packet (``BYTES_PER_OPPORTUNITY``) may cross the link. A repeated time means several
opportunities in that millisecond. Times must not decrease, the last one must be > 0, blank
lines are ignored. Anything else is refused with one ``ValueError`` line naming the trace, the
line number and the offending text.

Trace semantics
---------------
- The trace starts at simulation time 0 (nothing before) and repeats forever with period
  ``period_ms`` (= the last timestamp), exactly as Mahimahi's ``LinkQueue`` does: opportunity
  ``i`` of cycle ``c`` is at ``c * period_ms + opportunities_ms[i]``. (So a trace ending at
  140000 and starting at 0 has two opportunities at 140000 ms, one from each cycle.) Callers
  with another time origin (a real proxy) pass times relative to their own start.
- Opportunities are numbered by an absolute *index* ``k = c * len(opportunities_ms) + i``;
  ``index_at(t_s)`` is the first ``k`` whose time is >= ``t_s`` (times within 1 ns before an
  opportunity count as at it, to absorb float rounding), ``time_at(k)`` is its time in seconds.
- Each opportunity carries up to 1500 bytes. Queued packets leave in FIFO order; several small
  packets may share one opportunity's budget; a packet that does not fit in the remaining budget
  waits for the next opportunity (the rest of the budget is wasted, as in Mahimahi when the
  queue is empty). A packet larger than 1500 bytes starts at a fresh opportunity and uses
  ``ceil(size / 1500)`` consecutive ones; it leaves at the last of them.
- An opportunity that finds the queue empty is lost: a trace link cannot "save up" capacity.
- ``mean_rate_bps`` = ``len(opportunities_ms) * 1500 * 8 / period``.
"""

from __future__ import annotations

import functools
import math
from bisect import bisect_left
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Final

__all__ = ["BYTES_PER_OPPORTUNITY", "MahimahiTrace", "bundled_traces"]

BYTES_PER_OPPORTUNITY: Final = 1500
_TIE_MS: Final = 1e-6  # arrivals this close before an opportunity count as at it (1 ns)
_README: Final = "README.md"


def bundled_traces() -> list[str]:
    """Return the names of the traces bundled in ``netsim/traces/`` (sorted, without README).

    Returns:
        File names such as ``"Verizon-LTE-short.down"``, usable with ``MahimahiTrace.load``.
    """
    folder = resources.files("netsim") / "traces"
    return sorted(
        entry.name for entry in folder.iterdir() if entry.is_file() and entry.name != _README
    )


@dataclass(frozen=True, slots=True)
class MahimahiTrace:
    """A repeating schedule of 1500-byte delivery opportunities (see the module docstring).

    Attributes:
        name: the bundled name or the path it was loaded from (``load(name)`` reloads it).
        opportunities_ms: non-decreasing opportunity times in ms within one period.
        period_ms: the length of one period in ms (= the last timestamp; > 0).
    """

    name: str
    opportunities_ms: tuple[int, ...]
    period_ms: int

    def __post_init__(self) -> None:
        if not self.opportunities_ms or self.period_ms <= 0:
            raise ValueError(f"bad trace {self.name!r}: expected opportunities and a period > 0")
        if self.opportunities_ms[-1] != self.period_ms:
            raise ValueError(f"bad trace {self.name!r}: period must equal the last timestamp")

    @classmethod
    def load(cls, name_or_path: str | Path) -> MahimahiTrace:
        """Load a bundled trace by file name, or a trace file by path.

        A string without a path separator that names a bundled trace is the bundled trace;
        anything else is a path. Loaded traces are cached, so loading twice is cheap and
        returns the same object.

        Args:
            name_or_path: e.g. ``"Verizon-LTE-short.down"`` or ``"traces/my.up"``.

        Returns:
            The parsed trace.

        Raises:
            ValueError: no such bundled trace or readable file, or the file is malformed.
        """
        text = str(name_or_path)
        is_name = isinstance(name_or_path, str) and "/" not in text and "\\" not in text
        if is_name and text in bundled_traces():
            return _load_bundled(text)
        return _load_path(text)

    @classmethod
    def parse_untrusted(cls, text: str, name: str) -> MahimahiTrace:
        """Parse the text of a Mahimahi trace file.

        Args:
            text: the file contents (one integer millisecond per line).
            name: the name to give the trace (used in error messages).

        Returns:
            The parsed trace.

        Raises:
            ValueError: one line naming the trace and the first bad line.
        """
        times: list[int] = []
        last = 0
        for number, line in enumerate(text.splitlines(), start=1):
            field = line.strip()
            if not field:
                continue
            if not (field.isascii() and field.isdecimal()):
                raise ValueError(
                    f"bad trace {name!r} line {number}: expected a whole number of milliseconds,"
                    f" got {field[:40]!r}"
                )
            value = int(field)
            if value < last:
                raise ValueError(
                    f"bad trace {name!r} line {number}: timestamp {value} is before {last}"
                )
            times.append(value)
            last = value
        if not times or last <= 0:
            raise ValueError(f"bad trace {name!r}: expected at least one timestamp > 0")
        return cls(name=name, opportunities_ms=tuple(times), period_ms=last)

    def index_at(self, t_s: float) -> int:
        """Return the absolute index of the first opportunity at or after ``t_s``.

        Args:
            t_s: a time in seconds (0 = start of the first period; earlier times count as 0).

        Returns:
            The smallest ``k >= 0`` with ``time_at(k) >= t_s`` (less 1 ns).
        """
        opportunities = self.opportunities_ms
        x_ms = t_s * 1000.0 - _TIE_MS
        cycle = math.floor(x_ms / self.period_ms)
        offset_ms = x_ms - cycle * self.period_ms
        # The trace starts at time 0: there is no cycle -1 whose last opportunity would be at 0.
        return max(0, cycle * len(opportunities) + bisect_left(opportunities, offset_ms))

    def time_at(self, index: int) -> float:
        """Return the time in seconds of the opportunity with absolute index ``index``."""
        cycle, i = divmod(index, len(self.opportunities_ms))
        return (cycle * self.period_ms + self.opportunities_ms[i]) / 1000.0

    def next_opportunity(self, t_s: float) -> float:
        """Return the time in seconds of the first opportunity at or after ``t_s``."""
        return self.time_at(self.index_at(t_s))

    def opportunities_between(self, start_s: float, end_s: float) -> int:
        """Return how many opportunities fall in ``[start_s, end_s)`` (repeating the trace)."""
        if end_s <= start_s:
            return 0
        return self.index_at(end_s) - self.index_at(start_s)

    def mean_rate_bps(self) -> float:
        """Return the mean capacity of the link in bits per second over one period."""
        bits = len(self.opportunities_ms) * BYTES_PER_OPPORTUNITY * 8
        return bits * 1000.0 / self.period_ms


@functools.cache
def _load_bundled(name: str) -> MahimahiTrace:
    text = (resources.files("netsim") / "traces" / name).read_text(encoding="ascii")
    return MahimahiTrace.parse_untrusted(text, name)


@functools.lru_cache(maxsize=16)
def _load_path(path: str) -> MahimahiTrace:
    try:
        text = Path(path).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        bundled = ", ".join(bundled_traces())
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ValueError(
            f"bad trace {path!r}: not a bundled trace ({bundled}) nor a readable file ({reason})"
        ) from None
    return MahimahiTrace.parse_untrusted(text, path)
