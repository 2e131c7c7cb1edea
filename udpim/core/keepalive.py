"""Heartbeat, dead-peer and idle deadlines: what keeps a long connection alive.

Rules:

* A heartbeat (an authenticated PING, which the peer acknowledges) is due when this side
  has sent nothing at all for ``heartbeat_interval_s``. Any packet we send, even an
  ACK-only one, refreshes our NAT mapping, so any packet suppresses the heartbeat.
* By default only the initiator (the peer daemon, the side behind NAT) sends heartbeats;
  the responder (the hub) answers them. A hub with 100 000 idle sessions then spends
  nothing on timers of its own beyond one idle/dead-peer check per session.
* Liveness is judged only on *authenticated* input: ``dead_peer_deadline`` and
  ``idle_deadline`` count from the last packet that decrypted. Forged or replayed bytes
  cannot keep a dead session alive, and cannot kill a live one.
* The interval can be changed at run time (``set_heartbeat_interval``), so a daemon that
  learns its NAT's mapping timeout can settle on a cheaper interval; and so can the
  liveness timeouts (``set_liveness``), so the side that hears those heartbeats does not
  declare a peer with a long interval dead between two of them (docs/PROTOCOL.md 8.1).

This object only computes deadlines; the session decides what to do when they pass.
"""

from __future__ import annotations

from typing import final

from udpim.core.config import SessionConfig

__all__ = ["Keepalive"]


@final
class Keepalive:
    """Deadlines derived from when we last sent and last heard from the peer.

    Args:
        config: supplies ``heartbeat_interval_s``, ``dead_peer_timeout_s`` and
            ``idle_timeout_s``.
        now: creation time; counts as both last sent and last received.
        heartbeats: whether this side sends heartbeats at all.
    """

    __slots__ = (
        "dead_peer_timeout_s",
        "heartbeat_interval_s",
        "heartbeats",
        "heartbeats_sent",
        "idle_timeout_s",
        "last_received",
        "last_sent",
    )

    def __init__(self, config: SessionConfig, now: float, *, heartbeats: bool) -> None:
        self.heartbeat_interval_s = config.heartbeat_interval_s
        self.dead_peer_timeout_s = config.dead_peer_timeout_s
        self.idle_timeout_s = config.idle_timeout_s
        self.heartbeats = heartbeats
        self.last_sent = now
        self.last_received = now
        self.heartbeats_sent = 0

    def set_heartbeat_interval(self, interval_s: float) -> None:
        """Change the heartbeat interval from now on (adaptive keepalive).

        Raises:
            ValueError: if the interval is not positive.
        """
        if not interval_s > 0:
            raise ValueError(f"heartbeat interval must be positive, not {interval_s}")
        self.heartbeat_interval_s = interval_s

    def set_liveness(self, dead_peer_timeout_s: float, idle_timeout_s: float) -> None:
        """Change the dead-peer and idle timeouts from now on (counted, as always, from
        the last authenticated packet).

        Raises:
            ValueError: if either timeout is not positive (nothing is changed).
        """
        if not dead_peer_timeout_s > 0:
            raise ValueError(f"dead-peer timeout must be positive, not {dead_peer_timeout_s}")
        if not idle_timeout_s > 0:
            raise ValueError(f"idle timeout must be positive, not {idle_timeout_s}")
        self.dead_peer_timeout_s = dead_peer_timeout_s
        self.idle_timeout_s = idle_timeout_s

    def on_sent(self, now: float) -> None:
        """Record that a packet (of any kind) left for the peer."""
        self.last_sent = now

    def on_heartbeat_sent(self, now: float) -> None:
        """Record that the packet just sent was a heartbeat."""
        self.heartbeats_sent += 1
        self.last_sent = now

    def on_authenticated(self, now: float) -> None:
        """Record that an authenticated packet arrived from the peer."""
        self.last_received = now

    def heartbeat_deadline(self) -> float | None:
        """When a heartbeat is due, or None if this side does not send them."""
        if not self.heartbeats:
            return None
        return self.last_sent + self.heartbeat_interval_s

    def dead_peer_deadline(self) -> float:
        """When the peer should be declared unreachable if nothing arrives."""
        return self.last_received + self.dead_peer_timeout_s

    def idle_deadline(self) -> float:
        """When the session should be closed if nothing arrives."""
        return self.last_received + self.idle_timeout_s

    def silent_for_s(self, now: float) -> float:
        """How long the peer has been silent."""
        return now - self.last_received
