"""Executors of the hub operations (``udpim.im.ops``) on the hub schema (schema.py).

Rules:

* Each executor runs inside a transaction (and a savepoint) opened by its caller; it reads
  and writes, and returns the op's documented result as plain values: no cursor or row
  object escapes. Raising (``StoreError`` or ``sqlite3.Error``) rolls the op back.
* Seqs: ``mailboxes.head_seq`` is the last seq given in a user's mailbox; a new message gets
  ``head_seq + 1``. Seqs are never reused, even if rows were ever deleted.
* (sender, id) is unique: storing it again writes nothing and answers the stored seq.
* A device's cursor starts at its user's mailbox head and only moves forward. An ack beyond
  the head counts as the head (a device cannot pre-acknowledge messages not stored yet).
* A receipt is created exactly once per message: when the first device of the recipient
  acknowledges it (``messages.delivered_at`` goes from NULL to the ack time).
"""

from __future__ import annotations

import sqlite3

from udpim.im.ops import (
    AckMailbox,
    BindAccount,
    DeleteReceipt,
    Delivery,
    LoadAccounts,
    LoadMailbox,
    LoadReceipts,
    LoadUserKeys,
    ReceiptDue,
    StoreMessage,
    TouchDevice,
)
from udpim.store.base import StoreError

__all__ = ["execute_hub_op"]


def _load_accounts(conn: sqlite3.Connection) -> dict[str, list[bytes]]:
    accounts: dict[str, list[bytes]] = {}
    for name, key in conn.execute("SELECT name, key FROM accounts ORDER BY name, key"):
        accounts.setdefault(name, []).append(bytes(key))
    return accounts


def _bind_account(conn: sqlite3.Connection, op: BindAccount) -> list[bytes]:
    if op.first_use:  # only while the name is free: checked and bound in one statement
        conn.execute(
            "INSERT INTO accounts (name, key) SELECT ?, ?"
            " WHERE NOT EXISTS (SELECT 1 FROM accounts WHERE name = ?)"
            " ON CONFLICT (name, key) DO NOTHING",
            (op.user, op.key, op.user),
        )
    else:
        conn.execute(
            "INSERT INTO accounts (name, key) VALUES (?, ?) ON CONFLICT (name, key) DO NOTHING",
            (op.user, op.key),
        )
    return _user_keys(conn, op.user)


def _user_keys(conn: sqlite3.Connection, user: str) -> list[bytes]:
    rows = conn.execute("SELECT key FROM accounts WHERE name = ? ORDER BY key", (user,))
    return [bytes(key) for (key,) in rows]


def _mailbox_head(conn: sqlite3.Connection, user: str) -> int:
    """The user's mailbox head seq, creating an empty mailbox if the user has none."""
    conn.execute(
        "INSERT INTO mailboxes (user, head_seq) VALUES (?, 0) ON CONFLICT (user) DO NOTHING",
        (user,),
    )
    row = conn.execute("SELECT head_seq FROM mailboxes WHERE user = ?", (user,)).fetchone()
    return int(row[0])


def _touch_device(conn: sqlite3.Connection, op: TouchDevice) -> int:
    row = conn.execute(
        "SELECT cursor FROM devices WHERE user = ? AND device = ?", (op.user, op.device)
    ).fetchone()
    if row is not None:
        return int(row[0])
    head = _mailbox_head(conn, op.user)
    conn.execute(
        "INSERT INTO devices (user, device, cursor) VALUES (?, ?, ?)", (op.user, op.device, head)
    )
    return head


def _store_message(conn: sqlite3.Connection, op: StoreMessage) -> tuple[int, bool]:
    row = conn.execute(
        "SELECT seq FROM messages WHERE sender = ? AND id = ?", (op.sender, op.id)
    ).fetchone()
    if row is not None:
        return int(row[0]), False
    (seq,) = conn.execute(
        "INSERT INTO mailboxes (user, head_seq) VALUES (?, 1) "
        "ON CONFLICT (user) DO UPDATE SET head_seq = head_seq + 1 RETURNING head_seq",
        (op.to,),
    ).fetchone()
    conn.execute(
        "INSERT INTO messages (recipient, seq, sender, sender_device, id, body, sent_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (op.to, seq, op.sender, op.sender_device, op.id, op.body, op.sent_at),
    )
    return int(seq), True


def _check_limit(limit: int) -> None:
    if limit < 0:
        raise StoreError(f"limit must be >= 0, not {limit}")


def _load_mailbox(conn: sqlite3.Connection, op: LoadMailbox) -> list[Delivery]:
    _check_limit(op.limit)
    rows = conn.execute(
        "SELECT seq, id, sender, recipient, body, sent_at FROM messages "
        "WHERE recipient = ? AND seq > ? ORDER BY seq LIMIT ?",
        (op.user, op.after_seq, op.limit),
    )
    return [Delivery(*row) for row in rows]


def _ack_mailbox(conn: sqlite3.Connection, op: AckMailbox) -> list[ReceiptDue]:
    row = conn.execute(
        "SELECT devices.cursor, mailboxes.head_seq FROM devices "
        "JOIN mailboxes ON mailboxes.user = devices.user "
        "WHERE devices.user = ? AND devices.device = ?",
        (op.user, op.device),
    ).fetchone()
    if row is None:
        raise StoreError(f"unknown device {op.device} of user {op.user}")
    cursor, head = int(row[0]), int(row[1])
    new_cursor = max(cursor, min(op.seq, head))
    if new_cursor == cursor:
        return []
    conn.execute(
        "UPDATE devices SET cursor = ? WHERE user = ? AND device = ?",
        (new_cursor, op.user, op.device),
    )
    firsts = conn.execute(
        "UPDATE messages SET delivered_at = ? "
        "WHERE recipient = ? AND seq > ? AND seq <= ? AND delivered_at IS NULL "
        "RETURNING seq, sender, sender_device, id",
        (op.at, op.user, cursor, new_cursor),
    ).fetchall()
    firsts.sort()
    receipts = [
        ReceiptDue(sender, device, id_, op.user, op.at) for _, sender, device, id_ in firsts
    ]
    conn.executemany(
        "INSERT INTO receipts (sender, sender_device, id, recipient, at) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (sender, sender_device, id) DO NOTHING",
        [(r.sender, r.sender_device, r.id, r.to, r.at) for r in receipts],
    )
    return receipts


def _load_receipts(conn: sqlite3.Connection, op: LoadReceipts) -> list[ReceiptDue]:
    rows = conn.execute(
        "SELECT sender, sender_device, id, recipient, at FROM receipts "
        "WHERE sender = ? AND sender_device = ? ORDER BY rowid",
        (op.user, op.device),
    )
    return [ReceiptDue(*row) for row in rows]


def _delete_receipt(conn: sqlite3.Connection, op: DeleteReceipt) -> None:
    conn.execute(
        "DELETE FROM receipts WHERE sender = ? AND sender_device = ? AND id = ?",
        (op.user, op.device, op.id),
    )


def execute_hub_op(conn: sqlite3.Connection, op: object) -> object:
    """Execute one hub operation inside the caller's transaction.

    Args:
        conn: a connection to a hub database, inside a transaction.
        op: one of the hub ops of ``udpim.im.ops``.

    Returns:
        The result documented on the op's class.

    Raises:
        StoreError: ``op`` is not a hub op, or it is invalid for the stored data (unknown
            device, negative limit).
        sqlite3.Error: a constraint or I/O failure.
    """
    match op:
        case StoreMessage():
            return _store_message(conn, op)
        case AckMailbox():
            return _ack_mailbox(conn, op)
        case LoadMailbox():
            return _load_mailbox(conn, op)
        case TouchDevice():
            return _touch_device(conn, op)
        case LoadReceipts():
            return _load_receipts(conn, op)
        case DeleteReceipt():
            _delete_receipt(conn, op)
            return None
        case BindAccount():
            return _bind_account(conn, op)
        case LoadUserKeys():
            return _user_keys(conn, op.user)
        case LoadAccounts():
            return _load_accounts(conn)
    raise StoreError(f"a hub store cannot execute {type(op).__name__}")
