"""Progress display for long simulations: a rich bar on a terminal, plain lines otherwise.

What it owns: turning "virtual time is now t" callbacks into something a person can watch.

Rules it keeps:

* It only *observes*: the runner passes `ProgressDisplay.update` as `Network.on_progress`, which
  the network's scheduler task calls as virtual time advances. No task, no sleep, no clock read
  inside the simulation's trio run other than the wall clock used to rate-limit output, so
  showing progress can never change a run's events.
* rich is used when the stream is a TTY and rich is installed (optional extra ``progress``);
  otherwise one plain line per 10 % of the scenario, e.g.
  ``netsim: lossy-ping 30% (3min of 10min virtual, 1.2s wall)``, starting only once the run has
  taken ``quiet_s`` wall seconds (default 1 s), so short runs stay silent.
"""

from __future__ import annotations

import math
import sys
import time
from types import TracebackType
from typing import Any, TextIO

from netsim.units import format_duration

PLAIN_STEP = 0.1  # a plain line per 10 % of the duration
QUIET_S = 1.0  # no plain line before the run has taken this long (wall seconds)
RICH_REFRESH_S = 0.1  # redraw the bar at most this often (wall seconds)


class ProgressDisplay:
    """A context manager whose `update(virtual_s)` shows how far a run has got.

    Args:
        label: what is running (the scenario name).
        duration_s: the scenario's virtual duration.
        stream: where to draw (default stderr).
        use_rich: force rich on/off; default: rich when ``stream`` is a TTY and rich imports.
        quiet_s: plain lines start only after this many wall seconds.
    """

    def __init__(
        self,
        label: str,
        duration_s: float,
        *,
        stream: TextIO | None = None,
        use_rich: bool | None = None,
        quiet_s: float = QUIET_S,
    ) -> None:
        self.label, self.duration_s = label, duration_s
        self.stream = stream if stream is not None else sys.stderr
        self.use_rich = _rich_available() and self.stream.isatty() if use_rich is None else use_rich
        self.quiet_s = quiet_s
        self._started = time.perf_counter()
        self._next_step = PLAIN_STEP
        self._last_draw = 0.0
        self._rich: Any = None
        self._task: Any = None

    def __enter__(self) -> ProgressDisplay:
        if self.use_rich:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._rich = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[virtual]}"),
                TimeElapsedColumn(),
                console=_console(self.stream),
                transient=True,
            )
            self._rich.start()
            self._task = self._rich.add_task(self.label, total=self.duration_s, virtual="")
        return self

    def update(self, virtual_s: float) -> None:
        """Show that the simulation reached ``virtual_s`` (cheap; called very often)."""
        if self._rich is not None:
            now = time.perf_counter()
            if now - self._last_draw >= RICH_REFRESH_S:
                self._last_draw = now
                virtual = f"{format_duration(virtual_s)} of {format_duration(self.duration_s)}"
                self._rich.update(self._task, completed=virtual_s, virtual=virtual)
            return
        if self.duration_s <= 0 or virtual_s < self._next_step * self.duration_s - 1e-9:
            return
        steps = math.floor(virtual_s / self.duration_s / PLAIN_STEP + 1e-9)
        self._next_step = (steps + 1) * PLAIN_STEP
        if time.perf_counter() - self._started >= self.quiet_s:
            self._plain_line(min(steps * PLAIN_STEP, 1.0))

    def _plain_line(self, fraction: float) -> None:
        wall_s = time.perf_counter() - self._started
        done = fraction * self.duration_s
        self.stream.write(
            f"netsim: {self.label} {round(fraction * 100)}% ({format_duration(done)} of "
            f"{format_duration(self.duration_s)} virtual, {wall_s:.1f}s wall)\n"
        )
        self.stream.flush()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._rich is not None:
            self._rich.stop()
            self._rich = None


def _rich_available() -> bool:
    try:
        import rich.progress  # noqa: F401
    except ImportError:
        return False
    return True


def _console(stream: TextIO) -> Any:
    from rich.console import Console

    return Console(file=stream)
