"""Actions: what an IM core asks its shell to do. Outputs only.

Every core input method returns ``list[Action]``; the shell executes them IN ORDER:

* ``Send(sid, payload)``: ``driver.send_message(session with local_cid == sid, payload)``.
  If that session is gone, drop it (the core learns through ``on_closed``).
* ``Close(sid, reason)``: close that session (after the frames already sent to it, so a
  ``refused`` frame goes out first), then report ``on_closed(sid)`` as usual.
* ``Store(token, op)``: ``pending = store.submit(op)`` synchronously (FIFO), then a single
  completion task awaits the pendings in submission order and feeds
  ``core.on_store_result(token, result)`` or ``core.on_store_error(token, error)``.
* ``Notify(event)``: hand the ``udpim.im.events`` notice to whoever listens (control
  socket subscribers, logs). Never fed back into the core.
* ``SetLiveness(sid, ...)`` (hub): ``Session.set_liveness`` on that session (then
  ``Endpoint.touch``), and remember its keepalive figures for reachability.
* ``ScheduleEcho(sid, token, delay_s)`` (hub): hand the request to the hub's one echo
  scheduler (``udpim.net.natprobe``); a session gone meanwhile cancels it there.

``sid`` is the session's local connection ID (``Session.local_cid``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import final

from udpim.im.events import Event
from udpim.im.ops import Op

__all__ = ["Action", "Close", "Notify", "ScheduleEcho", "Send", "SetLiveness", "Store"]


@final
@dataclass(frozen=True, slots=True)
class Send:
    """Send ``payload`` (one encoded IM frame) as one message on session ``sid``."""

    sid: bytes
    payload: bytes


@final
@dataclass(frozen=True, slots=True)
class Close:
    """Close session ``sid``; ``reason`` is a short text for the peer and the logs."""

    sid: bytes
    reason: str


@final
@dataclass(frozen=True, slots=True)
class Store:
    """Submit ``op`` to the store; report its result with ``token``."""

    token: int
    op: Op


@final
@dataclass(frozen=True, slots=True)
class Notify:
    """Report ``event`` to the shell's listeners."""

    event: Event


@final
@dataclass(frozen=True, slots=True)
class SetLiveness:
    """Session ``sid`` announced its keepalive (``keepalive`` frame): apply these timeouts.

    Attributes:
        sid: the session.
        dead_peer_timeout_s: ``2 x heartbeat_interval_s + 10 s``.
        idle_timeout_s: ``max(the hub's idle timeout, 4 x heartbeat_interval_s)``.
        heartbeat_interval_s: the daemon's interval (as the hub bounds it).
        nat_timeout_s: the daemon's learned NAT mapping timeout, or None if unknown.
    """

    sid: bytes
    dead_peer_timeout_s: float
    idle_timeout_s: float
    heartbeat_interval_s: float
    nat_timeout_s: float | None


@final
@dataclass(frozen=True, slots=True)
class ScheduleEcho:
    """Session ``sid`` asked (``nat_probe``) for an echo of ``token`` in ``delay_s``."""

    sid: bytes
    token: bytes
    delay_s: float


Action = Send | Close | Store | Notify | SetLiveness | ScheduleEcho
