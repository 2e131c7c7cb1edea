"""IM frames: one dataclass per frame type (docs/IM.md section 3).

Frames are values: frozen, slotted, final. ``udpim.im.protocol`` encodes and decodes
them; the cores build them only from validated values. The JSON member ``from`` of
``deliver`` is the attribute ``sender`` (``from`` is a Python keyword).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, final

__all__ = [
    "DELIVERED",
    "PROTOCOL_VERSION",
    "AckFrame",
    "AcceptedFrame",
    "ClientFrame",
    "DeliverFrame",
    "Frame",
    "HelloFrame",
    "HubFrame",
    "KeepaliveFrame",
    "NatProbeFrame",
    "PresenceFrame",
    "ReceiptAckFrame",
    "ReceiptFrame",
    "RefusedFrame",
    "RejectedFrame",
    "SendFrame",
    "WatchFrame",
    "WelcomeFrame",
]

PROTOCOL_VERSION: Final = 1
DELIVERED: Final = "delivered"
"""The one receipt state of version 1."""

# Client (daemon) -> hub


@final
@dataclass(frozen=True, slots=True)
class HelloFrame:
    """``hello``: first frame of every session; claims ``user`` and names this ``device``."""

    user: str
    device: str
    v: int = PROTOCOL_VERSION


@final
@dataclass(frozen=True, slots=True)
class SendFrame:
    """``send``: message ``id`` to user ``to``; ``sent_at`` is the sender's clock (unix ms)."""

    id: str
    to: str
    body: str
    sent_at: int


@final
@dataclass(frozen=True, slots=True)
class AckFrame:
    """``ack``: every message delivered on this session up to ``seq`` is durably stored."""

    seq: int


@final
@dataclass(frozen=True, slots=True)
class ReceiptAckFrame:
    """``receipt_ack``: the receipt for our message ``id`` is stored; the hub may forget it."""

    id: str


@final
@dataclass(frozen=True, slots=True)
class WatchFrame:
    """``watch``: subscribe to the presence of ``users`` (replaces the previous set)."""

    users: tuple[str, ...]


@final
@dataclass(frozen=True, slots=True)
class KeepaliveFrame:
    """``keepalive``: we send a heartbeat after ``interval_ms`` of silence; our NAT keeps
    an idle mapping at least ``nat_timeout_ms`` (0: not known). The hub sets the
    session's liveness from it (docs/IM.md section 16)."""

    interval_ms: int
    nat_timeout_ms: int = 0


@final
@dataclass(frozen=True, slots=True)
class NatProbeFrame:
    """``nat_probe``: ``delay_ms`` from now, echo ``token`` (16 hex chars) to the address
    the hub saw it come from in an *observe* datagram (docs/IM.md section 16)."""

    token: str
    delay_ms: int


# Hub -> client


@final
@dataclass(frozen=True, slots=True)
class WelcomeFrame:
    """``welcome``: hello accepted; ``hub_time`` is the hub's clock (unix ms)."""

    user: str
    device: str
    hub_time: int


@final
@dataclass(frozen=True, slots=True)
class RefusedFrame:
    """``refused``: hello refused; the hub closes the session next."""

    reason: str


@final
@dataclass(frozen=True, slots=True)
class AcceptedFrame:
    """``accepted``: the hub stored message ``id`` durably (may repeat; idempotent)."""

    id: str


@final
@dataclass(frozen=True, slots=True)
class RejectedFrame:
    """``rejected``: the hub will never accept message ``id`` (e.g. unknown recipient)."""

    id: str
    reason: str


@final
@dataclass(frozen=True, slots=True)
class DeliverFrame:
    """``deliver``: mailbox entry ``seq`` of user ``to``: message ``id`` from ``from``."""

    seq: int
    id: str
    sender: str
    to: str
    body: str
    sent_at: int


@final
@dataclass(frozen=True, slots=True)
class ReceiptFrame:
    """``receipt``: our message ``id`` to ``to`` reached a device of ``to`` at ``at``."""

    id: str
    to: str
    at: int
    state: str = DELIVERED


@final
@dataclass(frozen=True, slots=True)
class PresenceFrame:
    """``presence``: ``user`` is online (some device session is up) or not."""

    user: str
    online: bool


ClientFrame = (
    HelloFrame
    | SendFrame
    | AckFrame
    | ReceiptAckFrame
    | WatchFrame
    | KeepaliveFrame
    | NatProbeFrame
)
HubFrame = (
    WelcomeFrame
    | RefusedFrame
    | AcceptedFrame
    | RejectedFrame
    | DeliverFrame
    | ReceiptFrame
    | PresenceFrame
)
Frame = ClientFrame | HubFrame
