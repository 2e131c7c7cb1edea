"""Executors of the peer (daemon) operations (``udpim.im.ops``) on the peer schema.

Rules:

* Each executor runs inside a transaction (and a savepoint) opened by its caller and returns
  the op's documented result as plain values. Raising rolls the op back.
* ``meta`` has exactly one row (created by the first migration). Its device id is NULL
  until the first ``LoadPeerState`` stores the core's ``new_device``; it never changes after.
* The outbox keeps enqueue order (``position``); an outbox state only moves forward:
  ``queued`` -> ``accepted`` -> ``delivered``, and ``queued``/``accepted`` -> ``rejected``.
  ``delivered`` and ``rejected`` are final. Any other request is a no-op, as is one for an
  unknown id (a late receipt after the data dir was reset must not fail the session).
* The inbox is unique on (sender, id); its rowid (``position``) gives arrival order and is
  the cursor ``LoadInbox`` pages by. ``last_seq`` only grows, duplicates included (the
  daemon acknowledges cumulatively, and a duplicate is as stored as a new row).
"""

from __future__ import annotations

import sqlite3
from typing import Final

from udpim.im.ops import (
    EnqueueOutbox,
    InboxEntry,
    LoadInbox,
    LoadPeerState,
    OutboxCounts,
    OutboxEntry,
    OutboxState,
    PeerState,
    PinHubKey,
    SetOutboxState,
    StoreInbox,
)
from udpim.store.base import StoreError

__all__ = ["STATE_PREDECESSORS", "execute_peer_op"]

STATE_PREDECESSORS: dict[OutboxState, tuple[OutboxState, ...]] = {
    OutboxState.QUEUED: (),
    OutboxState.ACCEPTED: (OutboxState.QUEUED,),
    OutboxState.DELIVERED: (OutboxState.QUEUED, OutboxState.ACCEPTED),
    OutboxState.REJECTED: (OutboxState.QUEUED, OutboxState.ACCEPTED),
}
"""The states an outbox row may be in for a ``SetOutboxState`` to that state to apply."""

_UNSETTLED = (OutboxState.QUEUED.value, OutboxState.ACCEPTED.value)


def _load_peer_state(conn: sqlite3.Connection, op: LoadPeerState) -> PeerState:
    conn.execute("UPDATE meta SET device = ? WHERE device IS NULL", (op.new_device,))
    device, hub_key, last_seq = conn.execute(
        "SELECT device, hub_key, last_seq FROM meta"
    ).fetchone()
    rows = conn.execute(
        "SELECT id, recipient, body, sent_at, state FROM outbox "
        "WHERE state IN (?, ?) ORDER BY position",
        _UNSETTLED,
    )
    outbox = [
        OutboxEntry(id_, to, body, sent_at, OutboxState(state))
        for id_, to, body, sent_at, state in rows
    ]
    return PeerState(
        device=device,
        hub_key=None if hub_key is None else bytes(hub_key),
        outbox=outbox,
        last_seq=int(last_seq),
    )


def _pin_hub_key(conn: sqlite3.Connection, op: PinHubKey) -> None:
    conn.execute("UPDATE meta SET hub_key = ?", (op.key,))


def _enqueue_outbox(conn: sqlite3.Connection, op: EnqueueOutbox) -> None:
    conn.execute(
        "INSERT INTO outbox (id, recipient, body, sent_at, state) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (id) DO NOTHING",
        (op.id, op.to, op.body, op.sent_at, OutboxState.QUEUED.value),
    )


def _state_update(state: OutboxState) -> tuple[str, tuple[str, ...]] | None:
    """The UPDATE that moves a row to ``state`` and its trailing parameters (None: no-op)."""
    predecessors = tuple(s.value for s in STATE_PREDECESSORS[state])
    if not predecessors:
        return None
    marks = ", ".join("?" * len(predecessors))
    return f"UPDATE outbox SET state = ? WHERE id = ? AND state IN ({marks})", predecessors


_STATE_UPDATES: Final = {state: _state_update(state) for state in OutboxState}
"""Each state's UPDATE, built once (``SetOutboxState`` runs for every message twice)."""


def _set_outbox_state(conn: sqlite3.Connection, op: SetOutboxState) -> None:
    try:
        state = OutboxState(op.state)
    except ValueError:
        raise StoreError(f"unknown outbox state {op.state!r}") from None
    update = _STATE_UPDATES[state]
    if update is not None:
        sql, predecessors = update
        conn.execute(sql, (state.value, op.id, *predecessors))


def _store_inbox(conn: sqlite3.Connection, op: StoreInbox) -> bool:
    cursor = conn.execute(
        "INSERT INTO inbox (seq, id, sender, recipient, body, sent_at, received_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (sender, id) DO NOTHING",
        (op.seq, op.id, op.sender, op.to, op.body, op.sent_at, op.received_at),
    )
    conn.execute("UPDATE meta SET last_seq = max(last_seq, ?)", (op.seq,))
    return cursor.rowcount == 1


def _load_inbox(conn: sqlite3.Connection, op: LoadInbox) -> list[InboxEntry]:
    if op.limit < 0:
        raise StoreError(f"limit must be >= 0, not {op.limit}")
    rows = conn.execute(
        "SELECT position, id, sender, recipient, body, sent_at, received_at FROM inbox "
        "WHERE position > ? ORDER BY position LIMIT ?",
        (op.after_rowid, op.limit),
    )
    return [InboxEntry(*row) for row in rows]


def _outbox_counts(conn: sqlite3.Connection) -> dict[str, int]:
    counts = {state.value: 0 for state in OutboxState}
    for state, count in conn.execute("SELECT state, count(*) FROM outbox GROUP BY state"):
        counts[state] = int(count)
    return counts


def execute_peer_op(conn: sqlite3.Connection, op: object) -> object:
    """Execute one peer operation inside the caller's transaction.

    Args:
        conn: a connection to a peer database, inside a transaction.
        op: one of the peer ops of ``udpim.im.ops``.

    Returns:
        The result documented on the op's class (``OutboxCounts`` lists every state, zeros
        included).

    Raises:
        StoreError: ``op`` is not a peer op, or it carries an invalid value (unknown outbox
            state, negative limit).
        sqlite3.Error: a constraint or I/O failure.
    """
    match op:
        case StoreInbox():
            return _store_inbox(conn, op)
        case EnqueueOutbox():
            _enqueue_outbox(conn, op)
            return None
        case SetOutboxState():
            _set_outbox_state(conn, op)
            return None
        case LoadInbox():
            return _load_inbox(conn, op)
        case OutboxCounts():
            return _outbox_counts(conn)
        case LoadPeerState():
            return _load_peer_state(conn, op)
        case PinHubKey():
            _pin_hub_key(conn, op)
            return None
    raise StoreError(f"a peer store cannot execute {type(op).__name__}")
