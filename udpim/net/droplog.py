"""Rate-limited logging of dropped datagrams and failed sends.

Drops are normal on the Internet (scanners, replays, stale sessions after a restart) and
can come in floods, so they are never logged one by one. ``DropReporter`` counts them
through ``statistics()`` and logs at most one line per ``DROP_LOG_INTERVAL_S``, with the
counts by reason since the previous line, and nothing when nothing was dropped.
"""

from __future__ import annotations

import logging
from typing import Final, final

import trio

from udpim.net.udp import EndpointDriver

__all__ = ["DROP_LOG_INTERVAL_S", "DropReporter"]

DROP_LOG_INTERVAL_S: Final = 60.0


@final
class DropReporter:
    """Logs drop counts by reason, at most once per interval.

    Args:
        driver: whose endpoint's drops (and send errors) are reported.
        log: the logger (``udpim.net.hub``, ``udpim.net.peer``).
        interval_s: the shortest time between two lines.
    """

    def __init__(
        self,
        driver: EndpointDriver,
        log: logging.Logger,
        *,
        interval_s: float = DROP_LOG_INTERVAL_S,
    ) -> None:
        self._driver = driver
        self._log = log
        self._interval_s = interval_s
        self._last: dict[str, int] = {}

    def totals(self) -> dict[str, int]:
        """The endpoint's drop counters by reason, plus ``send-error``."""
        totals = dict(self._driver.endpoint.statistics().drops)
        totals["send-error"] = self._driver.send_errors
        return totals

    def report(self) -> dict[str, int]:
        """Log the counts since the last report (if any); returns them."""
        totals = self.totals()
        delta = {
            reason: count - self._last.get(reason, 0)
            for reason, count in sorted(totals.items())
            if count > self._last.get(reason, 0)
        }
        self._last = totals
        if delta:
            text = ", ".join(f"{reason} {count}" for reason, count in delta.items())
            self._log.info("dropped datagrams in the last %.0f s: %s", self._interval_s, text)
        return delta

    async def run(self) -> None:
        """Report every ``interval_s`` until cancelled."""
        while True:
            await trio.sleep(self._interval_s)
            self.report()
