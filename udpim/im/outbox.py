"""Outbox: a daemon's unfinished outgoing messages, and which to transmit next.

Rules (docs/IM.md, "Outbox"):

* The outbox holds every message in state ``queued`` or ``accepted``, in enqueue order.
  ``delivered`` and ``rejected`` messages leave it (their state is final).
* A ``send`` frame goes out only once its ``EnqueueOutbox`` committed (``durable``), and
  never ahead of an earlier queued message: transmission stops at the first message
  not yet on disk. This is what keeps per-recipient order across restarts.
* After every welcome the whole ``queued`` outbox is transmitted again, in order (the
  hub answers duplicates with ``accepted``). At most ``window`` messages are
  transmitted and not yet accepted on one connection.
* Accepted messages drop their body: only delivery receipts remain to come for them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import final

from udpim.im.ops import OutboxEntry, OutboxState

__all__ = ["Outbox", "OutboxItem"]


@final
@dataclass(slots=True, eq=False)
class OutboxItem:
    """One message in the outbox (mutable: its state and flags change)."""

    id: str
    to: str
    body: str
    sent_at: int
    state: OutboxState
    durable: bool
    sent_on: int = 0  # connection generation that last transmitted it (0: none)


@final
class Outbox:
    """The in-memory outbox of one daemon.

    Args:
        window: most messages transmitted and not yet accepted per connection.
    """

    __slots__ = ("_connection", "_in_flight", "_items", "_queue", "_window")

    def __init__(self, *, window: int) -> None:
        self._items: dict[str, OutboxItem] = {}
        self._queue: deque[str] = deque()
        self._window = window
        self._in_flight = 0
        self._connection = 0

    def __contains__(self, message_id: str) -> bool:
        return message_id in self._items

    def load(self, entries: list[OutboxEntry]) -> None:
        """Put the stored entries (oldest first) ahead of any added before the load."""
        later = self._items
        self._items = {}
        for entry in entries:
            state = OutboxState(entry.state)
            if state in (OutboxState.QUEUED, OutboxState.ACCEPTED):
                body = entry.body if state is OutboxState.QUEUED else ""
                item = OutboxItem(entry.id, entry.to, body, entry.sent_at, state, durable=True)
                self._items[entry.id] = item
        for message_id, item in later.items():
            self._items.setdefault(message_id, item)

    def add(self, message_id: str, to: str, body: str, sent_at: int) -> None:
        """A new message, not yet on disk (``mark_durable`` follows)."""
        item = OutboxItem(message_id, to, body, sent_at, OutboxState.QUEUED, durable=False)
        self._items[message_id] = item
        self._queue.append(message_id)

    def mark_durable(self, message_id: str) -> OutboxItem | None:
        """Its ``EnqueueOutbox`` committed. Returns the item (None if it left meanwhile)."""
        item = self._items.get(message_id)
        if item is not None:
            item.durable = True
        return item

    def discard(self, message_id: str) -> OutboxItem | None:
        """Drop a message that never reached the disk (its enqueue failed)."""
        item = self._items.pop(message_id, None)
        if item is not None and item.sent_on == self._connection and item.sent_on:
            self._in_flight -= 1
        return item

    def restart(self, connection: int) -> None:
        """A connection (generation ``connection``) was welcomed: transmit all queued."""
        self._connection = connection
        self._in_flight = 0
        self._queue = deque(
            message_id
            for message_id, item in self._items.items()
            if item.state is OutboxState.QUEUED
        )

    def take_sendable(self) -> list[OutboxItem]:
        """The messages to transmit now, in order (marked as transmitted)."""
        out: list[OutboxItem] = []
        while self._queue and self._in_flight < self._window:
            item = self._items.get(self._queue[0])
            if item is None or item.state is not OutboxState.QUEUED:
                self._queue.popleft()
                continue
            if not item.durable:
                break
            self._queue.popleft()
            item.sent_on = self._connection
            self._in_flight += 1
            out.append(item)
        return out

    def _release(self, item: OutboxItem) -> None:
        if item.state is OutboxState.QUEUED and item.sent_on == self._connection and item.sent_on:
            self._in_flight -= 1

    def on_accepted(self, message_id: str) -> OutboxItem | None:
        """The hub accepted it. Returns the item if this moved it queued -> accepted."""
        item = self._items.get(message_id)
        if item is None or item.state is not OutboxState.QUEUED:
            return None
        self._release(item)
        item.state = OutboxState.ACCEPTED
        item.body = ""
        return item

    def finish(self, message_id: str, state: OutboxState) -> OutboxItem | None:
        """It reached a final state (delivered/rejected). Returns the item if it was here."""
        item = self._items.get(message_id)
        if item is None or not item.durable:
            return None
        self._release(item)
        del self._items[message_id]
        item.state = state
        return item

    def counts(self) -> dict[str, int]:
        """Messages per state held in memory (``queued``, ``accepted``)."""
        counts = {OutboxState.QUEUED.value: 0, OutboxState.ACCEPTED.value: 0}
        for item in self._items.values():
            counts[item.state.value] += 1
        return counts

    def __len__(self) -> int:
        return len(self._items)

    def recipients(self) -> list[str]:
        """The distinct recipients, in first-enqueued order."""
        return list(dict.fromkeys(item.to for item in self._items.values()))
