"""Store operations: what the IM cores ask a durable store to do, and what it answers.

The cores (``HubCore``, ``PeerCore``) never touch a database. They emit
``Store(token, op)`` actions carrying one of the frozen dataclasses below; the shell
hands the op to a ``udpim.store`` implementation, and feeds the op's result back with
``core.on_store_result(token, result)`` (or ``on_store_error(token, error)``).

Rules every store keeps (docs/IM.md, "Durability"):

* Ops execute and commit in submission order (FIFO). A result is handed back only after
  the op's transaction committed, so a result means "this is on disk".
* One op is atomic: it commits whole or not at all (a failing op raises ``StoreError``
  and changes nothing).
* Results are exactly the types named in each op's docstring, built from the result
  dataclasses at the bottom of this module (or ``None``, ``int``, ``bool``, tuples and
  lists/dicts of them).
* Times are unix milliseconds (``int``) supplied by the shell's wall clock through the
  cores; stores never read a clock for a value they return. Names, ids and keys use the
  formats of ``udpim.im.protocol`` (names ``[a-z0-9_.-]{1,32}``, device ids 16 hex chars,
  message ids 24 hex chars, keys 32 raw bytes).

Hub database (one per hub): accounts, devices with their cursors, one mailbox per
recipient user (seq 1, 2, 3, ... per user), receipts owed to sending devices.
Peer database (one per daemon data dir): meta (device id, pinned hub key, last seq),
outbox, inbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import final

__all__ = [
    "AckMailbox",
    "BindAccount",
    "DeleteReceipt",
    "Delivery",
    "EnqueueOutbox",
    "HubOp",
    "InboxEntry",
    "LoadAccounts",
    "LoadInbox",
    "LoadMailbox",
    "LoadPeerState",
    "LoadReceipts",
    "LoadUserKeys",
    "Op",
    "OutboxCounts",
    "OutboxEntry",
    "OutboxState",
    "PeerOp",
    "PeerState",
    "PinHubKey",
    "ReceiptDue",
    "SetOutboxState",
    "StoreInbox",
    "StoreMessage",
    "TouchDevice",
]


@final
class OutboxState(StrEnum):
    """The state of one message in a daemon's outbox. A ``str`` subclass: it stores as text.

    ``queued`` -> ``accepted`` (the hub has it on disk) -> ``delivered`` (a device of the
    recipient has it on disk). ``rejected``: the hub will never accept it (the recipient
    has no account); final, like ``delivered``. A state never moves backwards.
    """

    QUEUED = "queued"
    ACCEPTED = "accepted"
    DELIVERED = "delivered"
    REJECTED = "rejected"


# --------------------------------------------------------------------------- results


@final
@dataclass(frozen=True, slots=True)
class Delivery:
    """One mailbox row (hub): message ``id`` from user ``sender`` at mailbox ``seq`` of ``to``."""

    seq: int
    id: str
    sender: str
    to: str
    body: str
    sent_at: int


@final
@dataclass(frozen=True, slots=True)
class ReceiptDue:
    """A stored receipt (hub): message ``id`` of (``sender``, ``sender_device``) reached a
    device of ``to`` at ``at`` (unix ms, the time of that device's ack)."""

    sender: str
    sender_device: str
    id: str
    to: str
    at: int


@final
@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One outbox row (peer). ``state`` is an ``OutboxState`` (a plain ``str`` also works)."""

    id: str
    to: str
    body: str
    sent_at: int
    state: OutboxState


@final
@dataclass(frozen=True, slots=True)
class InboxEntry:
    """One inbox row (peer); ``rowid`` increases in arrival order (the ``inbox`` cursor)."""

    rowid: int
    id: str
    sender: str
    to: str
    body: str
    sent_at: int
    received_at: int


@final
@dataclass(frozen=True, slots=True)
class PeerState:
    """What a daemon loads at start.

    Attributes:
        device: this data dir's device id (16 hex chars).
        hub_key: the pinned hub public key (32 bytes), or None before the first pin.
        outbox: every outbox entry whose state is ``queued`` or ``accepted``, in enqueue
            order (oldest first).
        last_seq: the highest mailbox seq stored by ``StoreInbox`` (0 if none).
    """

    device: str
    hub_key: bytes | None
    outbox: list[OutboxEntry]
    last_seq: int


# --------------------------------------------------------------------------- hub ops


@final
@dataclass(frozen=True, slots=True)
class LoadAccounts:
    """Every account. Result: ``dict[str, list[bytes]]`` (user name -> its public keys)."""


@final
@dataclass(frozen=True, slots=True)
class BindAccount:
    """Bind ``key`` to ``user`` (``udpim hub adduser``, or trust on first use).

    Adding a key already bound to the user is a no-op. With ``first_use`` the key is
    bound only if no key is bound to ``user`` yet, in the same transaction as the check,
    so an open hub's first-use binding cannot take a name that ``udpim hub adduser``
    bound while the hub ran. Result: ``list[bytes]``, the keys bound to ``user`` after
    the op (without ``key`` when ``first_use`` found the name taken).
    """

    user: str
    key: bytes
    first_use: bool = False


@final
@dataclass(frozen=True, slots=True)
class LoadUserKeys:
    """The keys bound to ``user``, as the store has them now (a hub checks a hello it
    would refuse against them: an ``adduser`` may have added one since the hub read its
    accounts). Result: ``list[bytes]``, empty when the name is bound to nothing.
    """

    user: str


@final
@dataclass(frozen=True, slots=True)
class TouchDevice:
    """Register device ``device`` of ``user`` if new, and return its cursor.

    A device first seen is created with its cursor at the user's mailbox head (the
    highest seq stored for ``user``, 0 if none): it receives only messages stored after
    its first login. Result: ``int``, the device's cursor (last acked seq).
    """

    user: str
    device: str


@final
@dataclass(frozen=True, slots=True)
class StoreMessage:
    """Store message ``id`` of ``sender`` (sent from ``sender_device``) in ``to``'s mailbox.

    Uniqueness is per (``sender``, ``id``): if that pair is already stored, nothing is
    written. Result: ``tuple[int, bool]`` = (the message's mailbox seq, True if it was
    stored now / False if it was a duplicate). New messages get seq = mailbox head + 1.
    """

    sender: str
    sender_device: str
    id: str
    to: str
    body: str
    sent_at: int


@final
@dataclass(frozen=True, slots=True)
class LoadMailbox:
    """Up to ``limit`` rows of ``user``'s mailbox with seq > ``after_seq``, by seq.

    Result: ``list[Delivery]`` (ascending seq; shorter than ``limit`` means "this was the
    end of the mailbox when the op ran").
    """

    user: str
    after_seq: int
    limit: int


@final
@dataclass(frozen=True, slots=True)
class AckMailbox:
    """Device ``device`` of ``user`` durably stored every message up to ``seq``.

    Advances the device's cursor to ``max(cursor, seq)``. For every message with
    old cursor < seq <= new cursor that no other device of ``user`` had acked before
    (the message's FIRST ack), creates a receipt owed to the message's sending device,
    with time ``at`` (unix ms, the hub's wall clock when the ack arrived), and returns it.
    Result: ``list[ReceiptDue]`` (the receipts created now, by seq).
    """

    user: str
    device: str
    seq: int
    at: int


@final
@dataclass(frozen=True, slots=True)
class LoadReceipts:
    """Every receipt owed to device ``device`` of ``user`` (as sender).

    Result: ``list[ReceiptDue]`` (``sender == user``, ``sender_device == device``),
    oldest first.
    """

    user: str
    device: str


@final
@dataclass(frozen=True, slots=True)
class DeleteReceipt:
    """Forget the receipt for message ``id`` owed to device ``device`` of ``user`` (the
    sender). Deleting a receipt that does not exist is a no-op. Result: ``None``."""

    user: str
    device: str
    id: str


# --------------------------------------------------------------------------- peer ops


@final
@dataclass(frozen=True, slots=True)
class LoadPeerState:
    """Load the daemon's state. Result: ``PeerState``.

    If this data dir has no device id yet, ``new_device`` (16 hex chars, drawn by the
    core from its injected rng) is stored as the device id and returned; otherwise the
    stored id is returned and ``new_device`` is ignored.
    """

    new_device: str


@final
@dataclass(frozen=True, slots=True)
class PinHubKey:
    """Record ``key`` (32 bytes) as the hub's public key. Result: ``None``."""

    key: bytes


@final
@dataclass(frozen=True, slots=True)
class EnqueueOutbox:
    """Append message ``id`` to the outbox in state ``queued``.

    Enqueueing an id already present is a no-op. Result: ``None``.
    """

    id: str
    to: str
    body: str
    sent_at: int


@final
@dataclass(frozen=True, slots=True)
class SetOutboxState:
    """Set the state of outbox message ``id`` (unknown ids: no-op).

    A state never moves backwards: ``delivered`` and ``rejected`` are final, and
    ``accepted`` does not overwrite them. Result: ``None``.
    """

    id: str
    state: OutboxState


@final
@dataclass(frozen=True, slots=True)
class StoreInbox:
    """Store a delivered message, deduplicated by (``sender``, ``id``).

    Also records ``last_seq = max(last_seq, seq)``. Result: ``bool``, True if the
    message was new (a row was added), False if (sender, id) was already stored.
    """

    seq: int
    id: str
    sender: str
    to: str
    body: str
    sent_at: int
    received_at: int


@final
@dataclass(frozen=True, slots=True)
class LoadInbox:
    """Up to ``limit`` inbox rows with rowid > ``after_rowid``, oldest first.

    Result: ``list[InboxEntry]``.
    """

    after_rowid: int
    limit: int


@final
@dataclass(frozen=True, slots=True)
class OutboxCounts:
    """Count outbox rows by state. Result: ``dict[str, int]`` (state value -> count;
    states with no rows may be absent)."""


HubOp = (
    LoadAccounts
    | BindAccount
    | LoadUserKeys
    | TouchDevice
    | StoreMessage
    | LoadMailbox
    | AckMailbox
    | LoadReceipts
    | DeleteReceipt
)
PeerOp = (
    LoadPeerState
    | PinHubKey
    | EnqueueOutbox
    | SetOutboxState
    | StoreInbox
    | LoadInbox
    | OutboxCounts
)
Op = HubOp | PeerOp
