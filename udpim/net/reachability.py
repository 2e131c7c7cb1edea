"""Reachability: whether the hub can push to a daemon right now, and what happened when.

What it owns:

* ``HubReachability``: the hub's view. Each session's keepalive figures (from
  ``SetLiveness``: the daemon's heartbeat interval and learned NAT timeout) and the
  reachability gaps of closed sessions. A session is **reachable now** when it is
  established (not ``PeerUnreachable``) and its last authenticated packet is more recent
  than the daemon's learned NAT timeout, or than the session's dead-peer timeout when
  no NAT timeout was announced: after that long a NAT may have forgotten the mapping, so
  a push could die there. A **reachability gap** is data the hub had sent that was still
  unacknowledged, a PTO or more later, when the daemon re-appeared (after a silence or on
  a new path: the mapping had died or been rebound); its length is the time from the
  first send to the packet that restored the path (``SessionStatistics.reachability_*``,
  docs/PROTOCOL.md 7.8). Computed on demand: no timer, no task, O(sessions) per report.
* ``ReachabilityHistory``: the daemon's last ``HISTORY_LENGTH`` events (reachable,
  unreachable, disconnected, path changed) with wall-clock times, for ``udpim status``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, final

from udpim.core.session import Session
from udpim.core.state import SessionState
from udpim.im.actions import SetLiveness

__all__ = ["HISTORY_LENGTH", "HubReachability", "ReachabilityHistory", "ReachabilityReport"]

HISTORY_LENGTH: Final = 32
"""Events a daemon's ``ReachabilityHistory`` keeps."""


@final
@dataclass(frozen=True, slots=True)
class ReachabilityReport:
    """The hub's reachability figures at one moment.

    Attributes:
        sessions: established or unreachable sessions.
        reachable_now: of those, the ones a push would reach now (see the module doc).
        announced: sessions that sent a ``keepalive``.
        gaps: reachability gaps so far (closed and live sessions).
        gap_total_s: their summed length.
        gap_max_s: the longest.
    """

    sessions: int
    reachable_now: int
    announced: int
    gaps: int
    gap_total_s: float
    gap_max_s: float


@final
class HubReachability:
    """The hub's reachability book (see the module docstring)."""

    def __init__(self) -> None:
        self._liveness: dict[bytes, SetLiveness] = {}
        self._gaps = 0
        self._gap_total_s = 0.0
        self._gap_max_s = 0.0

    def on_liveness(self, action: SetLiveness) -> None:
        """A session announced its keepalive (the shell already applied the timeouts)."""
        self._liveness[action.sid] = action

    def on_closed(self, session: Session) -> None:
        """``session`` ended: keep its gaps, forget its figures."""
        self._liveness.pop(session.local_cid, None)
        stats = session.statistics()
        self._gaps += stats.reachability_gaps
        self._gap_total_s += stats.reachability_gap_total_s
        self._gap_max_s = max(self._gap_max_s, stats.reachability_gap_max_s)

    def reachable_now(self, session: Session, now: float) -> bool:
        """Whether a push on ``session`` would reach its daemon now."""
        if session.state is not SessionState.ESTABLISHED:
            return False
        announced = self._liveness.get(session.local_cid)
        limit_s = announced.nat_timeout_s if announced is not None else None
        if limit_s is None:
            limit_s = session.statistics().dead_peer_timeout_s
        return session.silent_for_s(now) < limit_s

    def report(self, sessions: Iterable[Session], now: float) -> ReachabilityReport:
        """The figures over ``sessions`` (the endpoint's) at ``now``."""
        live = [
            s for s in sessions if s.state in (SessionState.ESTABLISHED, SessionState.UNREACHABLE)
        ]
        gaps, total_s, max_s = self._gaps, self._gap_total_s, self._gap_max_s
        for session in live:
            stats = session.statistics()
            gaps += stats.reachability_gaps
            total_s += stats.reachability_gap_total_s
            max_s = max(max_s, stats.reachability_gap_max_s)
        return ReachabilityReport(
            sessions=len(live),
            reachable_now=sum(1 for s in live if self.reachable_now(s, now)),
            announced=sum(1 for s in live if s.local_cid in self._liveness),
            gaps=gaps,
            gap_total_s=total_s,
            gap_max_s=max_s,
        )


@final
class ReachabilityHistory:
    """A daemon's recent reachability events, newest last (bounded)."""

    def __init__(self, length: int = HISTORY_LENGTH) -> None:
        self._events: deque[dict[str, object]] = deque(maxlen=length)

    def record(self, at_ms: int, event: str, detail: str = "") -> None:
        """Add ``event`` (``reachable``, ``unreachable``, ``disconnected``,
        ``path-changed``) at wall-clock ``at_ms`` (unix ms)."""
        self._events.append({"at": at_ms, "event": event, "detail": detail})

    def events(self) -> list[dict[str, object]]:
        """The events, oldest first (JSON-ready copies)."""
        return [dict(event) for event in self._events]
