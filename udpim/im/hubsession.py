"""The hub's per-session record, its phases, the records of store ops in flight, and the
hub's statistics.

A session moves AWAITING_HELLO -> (AWAITING_ACCOUNTS) -> AWAITING_DEVICE -> WELCOMED, or
to ENDED from any phase (refused, replaced by a newer session of the same device, bad
frame, store failure, closed). ``_NEXT_PHASES`` is the only place that decides which
moves are legal; ``HubSession.advance`` raises on any other (a hub bug, never input).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final, final

from udpim.core.errors import LocalProtocolError
from udpim.im.mailbox import MailboxFeed, PageRequest
from udpim.im.ops import StoreMessage
from udpim.im.protocol import HelloFrame

__all__ = [
    "Acking",
    "BindingAccount",
    "CheckingAccount",
    "DeletingReceipt",
    "HubCounters",
    "HubSession",
    "HubStatistics",
    "LoadingAccounts",
    "ReloadingAccounts",
    "LoadingPage",
    "LoadingReceipts",
    "PendingOp",
    "SessionPhase",
    "StoringMessage",
    "TouchingDevice",
]


@final
class SessionPhase(Enum):
    """Where a hub session stands."""

    AWAITING_HELLO = "awaiting-hello"
    AWAITING_ACCOUNTS = "awaiting-accounts"  # hello held until LoadAccounts/LoadUserKeys answers
    AWAITING_DEVICE = "awaiting-device"  # TouchDevice submitted; welcome on its result
    WELCOMED = "welcomed"
    ENDED = "ended"  # every later input and store result for it is ignored


_NEXT_PHASES: Final = {
    SessionPhase.AWAITING_HELLO: {
        SessionPhase.AWAITING_ACCOUNTS,
        SessionPhase.AWAITING_DEVICE,
        SessionPhase.ENDED,
    },
    SessionPhase.AWAITING_ACCOUNTS: {SessionPhase.AWAITING_DEVICE, SessionPhase.ENDED},
    SessionPhase.AWAITING_DEVICE: {SessionPhase.WELCOMED, SessionPhase.ENDED},
    SessionPhase.WELCOMED: {SessionPhase.ENDED},
    SessionPhase.ENDED: {SessionPhase.ENDED},
}


@final
@dataclass(slots=True, eq=False)
class HubSession:
    """One session as the hub sees it. Identity matters: a store result applies only if
    its session record is still the one registered (``eq=False``)."""

    sid: bytes
    key: bytes
    phase: SessionPhase = SessionPhase.AWAITING_HELLO
    reachable: bool = True
    user: str = ""
    device: str = ""
    hello: HelloFrame | None = None
    hello_ms: int = 0
    feed: MailboxFeed | None = None
    replaces: HubSession | None = None  # the welcomed session of this device it replaces

    def advance(self, phase: SessionPhase) -> None:
        """Move to ``phase``.

        Raises:
            LocalProtocolError: the move is not in the phase table.
        """
        if phase not in _NEXT_PHASES[self.phase]:
            raise LocalProtocolError(f"hub session: {self.phase.value} -> {phase.value}")
        self.phase = phase

    @property
    def welcomed(self) -> bool:
        """True in phase WELCOMED."""
        return self.phase is SessionPhase.WELCOMED


# Records of store ops in flight, keyed by token in HubCore.


@dataclass(frozen=True, slots=True)
class LoadingAccounts:
    """``LoadAccounts`` at start."""


@dataclass(frozen=True, slots=True)
class ReloadingAccounts:
    """``LoadAccounts`` while running, after a closed hub refused a key
    (``HubCore.reload_accounts``): accounts added meanwhile are merged in."""


@dataclass(frozen=True, slots=True)
class BindingAccount:
    """``BindAccount`` (trust on first use or ``add_account``)."""

    user: str
    key: bytes


@dataclass(frozen=True, slots=True)
class CheckingAccount:
    """``LoadUserKeys`` for a hello the account book would refuse; ``hello`` is judged
    again with the stored keys."""

    session: HubSession
    hello: HelloFrame


@dataclass(frozen=True, slots=True)
class TouchingDevice:
    """``TouchDevice`` for a session waiting for its welcome."""

    session: HubSession


@dataclass(frozen=True, slots=True)
class StoringMessage:
    """``StoreMessage`` from a session's ``send``."""

    session: HubSession
    op: StoreMessage


@dataclass(frozen=True, slots=True)
class LoadingPage:
    """``LoadMailbox`` for a session's feed."""

    session: HubSession
    request: PageRequest


@dataclass(frozen=True, slots=True)
class Acking:
    """``AckMailbox`` for a session's ``ack``."""

    session: HubSession


@dataclass(frozen=True, slots=True)
class LoadingReceipts:
    """``LoadReceipts`` for a newly welcomed session."""

    session: HubSession


@dataclass(frozen=True, slots=True)
class DeletingReceipt:
    """``DeleteReceipt`` after a ``receipt_ack``."""


PendingOp = (
    LoadingAccounts
    | ReloadingAccounts
    | BindingAccount
    | CheckingAccount
    | TouchingDevice
    | StoringMessage
    | LoadingPage
    | Acking
    | LoadingReceipts
    | DeletingReceipt
)


@final
@dataclass(frozen=True, slots=True)
class HubStatistics:
    """Counters and gauges of a ``HubCore`` (``HubCore.statistics()``).

    Attributes:
        sessions: sessions known (any phase but ended-and-closed).
        welcomed_sessions: sessions in phase WELCOMED.
        online_users: users with a live session.
        accounts: user names bound to keys (0 until accounts are loaded).
        messages_stored: ``send`` frames stored as new messages.
        duplicate_sends: ``send`` frames whose (sender, id) was already stored.
        rejected_sends: ``send`` frames to users without an account.
        delivers_pushed: ``deliver`` frames sent.
        receipts_pushed: ``receipt`` frames sent.
        refused_hellos: ``hello`` frames answered with ``refused``.
        bad_frames: session messages that were not acceptable frames (each ended its
            session).
        store_errors: store ops that failed.
        store_ops_pending: store ops submitted and not yet answered.
        keepalives: ``keepalive`` frames received.
        nat_probes: ``nat_probe`` frames received (echo requests).
        unknown_frames: frames of a type this version does not know, ignored
            (docs/IM.md section 3).
        refused_keys: handshakes a closed hub refused (keys bound to no account).
        accounts_reloaded: accounts re-read while running (``reload_accounts``) and
            bound, because they were added after the hub started.
    """

    sessions: int
    welcomed_sessions: int
    online_users: int
    accounts: int
    messages_stored: int
    duplicate_sends: int
    rejected_sends: int
    delivers_pushed: int
    receipts_pushed: int
    refused_hellos: int
    bad_frames: int
    store_errors: int
    store_ops_pending: int
    keepalives: int = 0
    nat_probes: int = 0
    unknown_frames: int = 0
    refused_keys: int = 0
    accounts_reloaded: int = 0


@dataclass(slots=True)
class HubCounters:
    """The mutable counters behind ``HubStatistics``."""

    messages_stored: int = 0
    duplicate_sends: int = 0
    rejected_sends: int = 0
    delivers_pushed: int = 0
    receipts_pushed: int = 0
    refused_hellos: int = 0
    bad_frames: int = 0
    store_errors: int = 0
    keepalives: int = 0
    nat_probes: int = 0
    unknown_frames: int = 0
    refused_keys: int = 0
    accounts_reloaded: int = 0
