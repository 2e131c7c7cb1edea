"""Notices: what the IM cores tell their shell through ``Notify(event)``.

They are reports, never fed back in. The peer daemon's shell streams them over the
control socket (``udpim send --wait``, ``udpim inbox --follow``) and logs them; the hub's
shell logs them. Names are past tense. All are frozen, slotted and final.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import final

from udpim.im.ops import OutboxState

__all__ = [
    "AccountBound",
    "Event",
    "MessageArrived",
    "OutboxChanged",
    "PresenceChanged",
    "Refused",
    "SessionRefused",
    "SessionWelcomed",
    "StateLoaded",
    "StoreFailed",
    "Welcomed",
]


@final
@dataclass(frozen=True, slots=True)
class StateLoaded:
    """Peer: the daemon's durable state is loaded; it may now connect to the hub.

    ``hub_key`` is the pinned hub key (None: not pinned yet, the shell pins on first use
    with ``PeerCore.pin_hub_key``).
    """

    device: str
    hub_key: bytes | None
    last_seq: int


@final
@dataclass(frozen=True, slots=True)
class Welcomed:
    """Peer: the hub accepted our hello on the current session (``hub_time``: unix ms)."""

    user: str
    device: str
    hub_time: int


@final
@dataclass(frozen=True, slots=True)
class Refused:
    """Peer: the hub refused our hello with ``reason`` and closes the session."""

    reason: str


@final
@dataclass(frozen=True, slots=True)
class OutboxChanged:
    """Peer: message ``id`` to ``to`` reached ``state`` on our disk.

    ``at`` is the receipt time (unix ms, hub clock) for ``delivered``, else None;
    ``reason`` is the hub's reason for ``rejected``, else empty.
    """

    id: str
    to: str
    state: OutboxState
    at: int | None = None
    reason: str = ""


@final
@dataclass(frozen=True, slots=True)
class MessageArrived:
    """Peer: a new message (never seen before) is now stored in the inbox."""

    seq: int
    id: str
    sender: str
    to: str
    body: str
    sent_at: int
    received_at: int


@final
@dataclass(frozen=True, slots=True)
class PresenceChanged:
    """Peer: the hub reported ``user`` online/offline. Hub: ``user`` went online/offline."""

    user: str
    online: bool


@final
@dataclass(frozen=True, slots=True)
class SessionWelcomed:
    """Hub: session ``sid`` is now ``user``'s device ``device``."""

    sid: bytes
    user: str
    device: str


@final
@dataclass(frozen=True, slots=True)
class SessionRefused:
    """Hub: session ``sid`` said hello as ``user`` and was refused with ``reason``."""

    sid: bytes
    user: str
    reason: str


@final
@dataclass(frozen=True, slots=True)
class AccountBound:
    """Hub: trust on first use bound the new name ``user`` to ``key``."""

    user: str
    key: bytes


@final
@dataclass(frozen=True, slots=True)
class StoreFailed:
    """Hub or peer: the store failed op ``op_name`` (``detail``: the error's text)."""

    op_name: str
    detail: str


Event = (
    StateLoaded
    | Welcomed
    | Refused
    | OutboxChanged
    | MessageArrived
    | PresenceChanged
    | SessionWelcomed
    | SessionRefused
    | AccountBound
    | StoreFailed
)
