"""The wall clock, the one clock the shells read besides ``trio.current_time()``.

Rules (STYLE.md C.4): the wall clock is read only for user-visible timestamps (a
message's ``sent_at``, ``received_at``, receipt times: unix milliseconds) and for the
handshake's replay-protection timestamp. Services take it as an injectable
``wall_clock_ms`` function, so simulations pass a virtual one derived from
``trio.current_time()`` and replay exactly.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["WallClockMs", "handshake_clock_ns", "system_clock_ms"]

WallClockMs = Callable[[], int]
"""Returns the wall clock in unix milliseconds."""


def system_clock_ms() -> int:
    """The system's wall clock in unix milliseconds."""
    return time.time_ns() // 1_000_000


def handshake_clock_ns(wall_clock_ms: WallClockMs | None) -> Callable[[], int]:
    """The clock for handshake timestamps (ns): the system clock, or the injected one.

    An injected millisecond clock is scaled to nanoseconds; initiations sent within one
    millisecond still get increasing timestamps (the dialer adds its elapsed time and
    its retry count).
    """
    if wall_clock_ms is None:
        return time.time_ns
    return lambda: wall_clock_ms() * 1_000_000
