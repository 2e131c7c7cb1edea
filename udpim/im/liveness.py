"""Session liveness from an announced heartbeat interval (docs/IM.md section 16).

A daemon that learned its NAT's mapping timeout may send heartbeats far less often than
the session layer's default 25 s. Both ends must then wait longer before they call the
other side dead, or presence flaps between two heartbeats. The rule, the same on both
ends, for a heartbeat interval ``h``:

    dead_peer_timeout = 2 x h + 10 s          (two heartbeats lost, plus slack)
    idle_timeout      = max(configured idle timeout, 4 x h)

The hub bounds an announced interval to ``MIN_INTERVAL_S .. MAX_INTERVAL_S`` (a client
cannot keep a vanished session "online" for days), and an interval of 0 means "not
known" (the frame changes nothing).
"""

from __future__ import annotations

from typing import Final

from udpim.im.actions import SetLiveness
from udpim.im.frames import KeepaliveFrame

__all__ = [
    "DEAD_PEER_MARGIN_S",
    "IDLE_HEARTBEATS",
    "MAX_INTERVAL_S",
    "MIN_INTERVAL_S",
    "dead_peer_timeout_s",
    "idle_timeout_s",
    "liveness_for",
]

DEAD_PEER_MARGIN_S: Final = 10.0
"""Added to two heartbeat intervals: the dead-peer timeout's slack for delay and loss."""
IDLE_HEARTBEATS: Final = 4
"""The idle timeout is at least this many heartbeat intervals."""
MIN_INTERVAL_S: Final = 1.0
MAX_INTERVAL_S: Final = 3600.0
"""Bounds the hub applies to an announced heartbeat interval."""


def dead_peer_timeout_s(interval_s: float) -> float:
    """The dead-peer timeout for a heartbeat interval of ``interval_s``."""
    return 2 * interval_s + DEAD_PEER_MARGIN_S


def idle_timeout_s(interval_s: float, configured_s: float) -> float:
    """The idle timeout for a heartbeat interval of ``interval_s``: at least ``configured_s``."""
    return max(configured_s, IDLE_HEARTBEATS * interval_s)


def liveness_for(sid: bytes, frame: KeepaliveFrame, configured_idle_s: float) -> SetLiveness | None:
    """The ``SetLiveness`` action a ``keepalive`` frame on session ``sid`` calls for.

    Args:
        sid: the session the frame came on.
        frame: the daemon's announcement.
        configured_idle_s: the hub's own idle timeout (the floor of the new one).

    Returns:
        None if the frame's interval is 0 (unknown), else the action, with the interval
        bounded to ``MIN_INTERVAL_S .. MAX_INTERVAL_S``.
    """
    if frame.interval_ms == 0:
        return None
    interval_s = min(MAX_INTERVAL_S, max(MIN_INTERVAL_S, frame.interval_ms / 1000))
    nat_timeout_s = frame.nat_timeout_ms / 1000 if frame.nat_timeout_ms else None
    return SetLiveness(
        sid,
        dead_peer_timeout_s(interval_s),
        idle_timeout_s(interval_s, configured_idle_s),
        interval_s,
        nat_timeout_s,
    )
