"""Dict-backed executors of udpim.im.ops, for the pure IM tests.

They keep the store contract of ops.py (FIFO, atomic ops, the documented results) with
plain dicts; "what is on disk" is exactly their contents, so a crash is modelled by
discarding a core while keeping its store.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from udpim.im.ops import (
    AckMailbox,
    BindAccount,
    DeleteReceipt,
    Delivery,
    EnqueueOutbox,
    InboxEntry,
    LoadAccounts,
    LoadInbox,
    LoadMailbox,
    LoadPeerState,
    LoadReceipts,
    LoadUserKeys,
    Op,
    OutboxCounts,
    OutboxEntry,
    OutboxState,
    PeerState,
    PinHubKey,
    ReceiptDue,
    SetOutboxState,
    StoreInbox,
    StoreMessage,
    TouchDevice,
)


class FakeStoreError(Exception):
    """A store op failed (injected by a test)."""


@dataclass
class _Row:
    delivery: Delivery
    sender_device: str
    first_acked: bool = False


@dataclass
class FakeHubStore:
    """The hub database."""

    accounts: dict[str, list[bytes]] = field(default_factory=dict)
    cursors: dict[tuple[str, str], int] = field(default_factory=dict)
    mailboxes: dict[str, list[_Row]] = field(default_factory=dict)
    message_seq: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict)
    receipts: dict[tuple[str, str], dict[str, ReceiptDue]] = field(default_factory=dict)

    def mailbox(self, user: str) -> list[Delivery]:
        """Every stored message for ``user``, by seq."""
        return [row.delivery for row in self.mailboxes.get(user, [])]

    def execute(self, op: Op) -> object:
        if isinstance(op, LoadAccounts):
            return {user: list(keys) for user, keys in self.accounts.items()}
        if isinstance(op, BindAccount):
            keys = self.accounts.get(op.user, [])
            if op.key not in keys and not (op.first_use and keys):
                self.accounts[op.user] = keys = [*keys, op.key]
            return sorted(keys)
        if isinstance(op, LoadUserKeys):
            return sorted(self.accounts.get(op.user, []))
        if isinstance(op, TouchDevice):
            head = len(self.mailboxes.get(op.user, []))
            return self.cursors.setdefault((op.user, op.device), head)
        if isinstance(op, StoreMessage):
            return self._store_message(op)
        if isinstance(op, LoadMailbox):
            rows = self.mailboxes.get(op.user, [])
            return [row.delivery for row in rows[op.after_seq : op.after_seq + op.limit]]
        if isinstance(op, AckMailbox):
            return self._ack(op)
        if isinstance(op, LoadReceipts):
            return list(self.receipts.get((op.user, op.device), {}).values())
        if isinstance(op, DeleteReceipt):
            self.receipts.get((op.user, op.device), {}).pop(op.id, None)
            return None
        raise AssertionError(f"not a hub op: {op!r}")

    def _store_message(self, op: StoreMessage) -> tuple[int, bool]:
        known = self.message_seq.get((op.sender, op.id))
        if known is not None:
            return known[1], False
        rows = self.mailboxes.setdefault(op.to, [])
        seq = len(rows) + 1
        delivery = Delivery(seq, op.id, op.sender, op.to, op.body, op.sent_at)
        rows.append(_Row(delivery, op.sender_device))
        self.message_seq[op.sender, op.id] = (op.to, seq)
        return seq, True

    def _ack(self, op: AckMailbox) -> list[ReceiptDue]:
        old = self.cursors[op.user, op.device]
        new = max(old, op.seq)
        self.cursors[op.user, op.device] = new
        created: list[ReceiptDue] = []
        for row in self.mailboxes.get(op.user, [])[old:new]:
            if row.first_acked:
                continue
            row.first_acked = True
            d = row.delivery
            receipt = ReceiptDue(d.sender, row.sender_device, d.id, d.to, op.at)
            self.receipts.setdefault((d.sender, row.sender_device), {})[d.id] = receipt
            created.append(receipt)
        return created


@dataclass
class FakePeerStore:
    """One daemon's database."""

    device: str | None = None
    hub_key: bytes | None = None
    outbox: dict[str, OutboxEntry] = field(default_factory=dict)
    inbox: list[InboxEntry] = field(default_factory=list)
    last_seq: int = 0

    def inbox_ids(self) -> list[tuple[str, str]]:
        """(sender, id) of every inbox row, oldest first."""
        return [(entry.sender, entry.id) for entry in self.inbox]

    def bodies(self) -> list[str]:
        """Inbox bodies, oldest first."""
        return [entry.body for entry in self.inbox]

    def states(self) -> dict[str, str]:
        """Outbox id -> state value."""
        return {entry.id: str(entry.state) for entry in self.outbox.values()}

    def execute(self, op: Op) -> object:
        if isinstance(op, LoadPeerState):
            if self.device is None:
                self.device = op.new_device
            live = (OutboxState.QUEUED, OutboxState.ACCEPTED)
            outbox = [e for e in self.outbox.values() if e.state in live]
            return PeerState(self.device, self.hub_key, outbox, self.last_seq)
        if isinstance(op, PinHubKey):
            self.hub_key = op.key
            return None
        if isinstance(op, EnqueueOutbox):
            entry = OutboxEntry(op.id, op.to, op.body, op.sent_at, OutboxState.QUEUED)
            self.outbox.setdefault(op.id, entry)
            return None
        if isinstance(op, SetOutboxState):
            self._set_state(op)
            return None
        if isinstance(op, StoreInbox):
            return self._store_inbox(op)
        if isinstance(op, LoadInbox):
            return [e for e in self.inbox if e.rowid > op.after_rowid][: op.limit]
        if isinstance(op, OutboxCounts):
            counts: dict[str, int] = {}
            for entry in self.outbox.values():
                counts[str(entry.state)] = counts.get(str(entry.state), 0) + 1
            return counts
        raise AssertionError(f"not a peer op: {op!r}")

    def _set_state(self, op: SetOutboxState) -> None:
        entry = self.outbox.get(op.id)
        if entry is None:
            return
        rank = {"queued": 0, "accepted": 1, "delivered": 2, "rejected": 2}
        if rank[str(entry.state)] >= rank[str(op.state)]:
            return
        self.outbox[op.id] = OutboxEntry(entry.id, entry.to, entry.body, entry.sent_at, op.state)

    def _store_inbox(self, op: StoreInbox) -> bool:
        self.last_seq = max(self.last_seq, op.seq)
        if (op.sender, op.id) in self.inbox_ids():
            return False
        rowid = len(self.inbox) + 1
        self.inbox.append(
            InboxEntry(rowid, op.id, op.sender, op.to, op.body, op.sent_at, op.received_at)
        )
        return True
