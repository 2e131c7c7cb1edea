"""The hub and peer database schemas, as ordered lists of migrations.

Rules:

* A database's schema version is ``PRAGMA user_version``; version N means migrations
  ``1..N`` of its kind have run. ``PRAGMA application_id`` tells a hub database from a peer
  one (and both from any other SQLite file), so a store never runs on the wrong file.
* Migrations are append-only: a released migration is never edited, a schema change is a new
  function at the end of the list. Each one runs in its own transaction together with the
  ``user_version`` bump, so a crash mid-migration leaves the previous version intact.
* A database newer than this code (a downgrade) is refused with ``StoreError``: old code
  cannot know what the new columns mean.

Hub schema (latest):
    ``accounts``  (name, key): the keys bound to each user name.
    ``mailboxes`` (user, head_seq): one per recipient user; ``head_seq`` is the last seq given.
    ``devices``   (user, device, cursor): the last seq each device acknowledged.
    ``messages``  (recipient, seq, sender, sender_device, id, body, sent_at, delivered_at):
                  unique (recipient, seq) and (sender, id); ``delivered_at`` is set when the
                  first device of the recipient acknowledges it.
    ``receipts``  (sender, sender_device, id, recipient, at): owed to the sending device;
                  rowid order is creation order.

Peer schema (latest):
    ``meta``   one row: device id (NULL until the first ``LoadPeerState``), pinned hub key,
               last mailbox seq stored.
    ``outbox`` messages this daemon sends, in ``position`` order, with their state.
    ``inbox``  messages received, unique (sender, id), in ``position`` (rowid) order.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from udpim.store.base import StoreError, StoreKind

__all__ = ["APPLICATION_IDS", "MIGRATIONS", "Migration", "latest_version", "migrate"]

Migration = Callable[[sqlite3.Connection], None]

APPLICATION_IDS: dict[StoreKind, int] = {"hub": 0x75696D48, "peer": 0x75696D50}
"""``PRAGMA application_id`` of each kind: ASCII "uimH" and "uimP"."""


def _run(conn: sqlite3.Connection, *statements: str) -> None:
    for statement in statements:
        conn.execute(statement)


def _hub_v1_routing(conn: sqlite3.Connection) -> None:
    """Accounts, mailboxes with per-recipient seqs, device cursors, stored messages."""
    _run(
        conn,
        """CREATE TABLE accounts (
            name TEXT NOT NULL,
            key BLOB NOT NULL CHECK (length(key) = 32),
            PRIMARY KEY (name, key)
        ) WITHOUT ROWID""",
        """CREATE TABLE mailboxes (
            user TEXT PRIMARY KEY,
            head_seq INTEGER NOT NULL CHECK (head_seq >= 0)
        ) WITHOUT ROWID""",
        """CREATE TABLE devices (
            user TEXT NOT NULL REFERENCES mailboxes (user),
            device TEXT NOT NULL,
            cursor INTEGER NOT NULL CHECK (cursor >= 0),
            PRIMARY KEY (user, device)
        ) WITHOUT ROWID""",
        """CREATE TABLE messages (
            recipient TEXT NOT NULL REFERENCES mailboxes (user),
            seq INTEGER NOT NULL CHECK (seq > 0),
            sender TEXT NOT NULL,
            sender_device TEXT NOT NULL,
            id TEXT NOT NULL,
            body TEXT NOT NULL,
            sent_at INTEGER NOT NULL CHECK (sent_at >= 0),
            UNIQUE (recipient, seq),
            UNIQUE (sender, id)
        )""",
    )


def _hub_v2_receipts(conn: sqlite3.Connection) -> None:
    """Delivery receipts: first-device acknowledgement time and receipts owed to senders."""
    _run(
        conn,
        "ALTER TABLE messages ADD COLUMN delivered_at INTEGER",
        """CREATE TABLE receipts (
            sender TEXT NOT NULL,
            sender_device TEXT NOT NULL,
            id TEXT NOT NULL,
            recipient TEXT NOT NULL,
            at INTEGER NOT NULL CHECK (at >= 0),
            PRIMARY KEY (sender, sender_device, id),
            FOREIGN KEY (sender, id) REFERENCES messages (sender, id)
        )""",
    )


def _peer_v1_boxes(conn: sqlite3.Connection) -> None:
    """Device metadata, the outbox with states, the inbox deduplicated by (sender, id)."""
    _run(
        conn,
        """CREATE TABLE meta (
            singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
            device TEXT,
            hub_key BLOB CHECK (hub_key IS NULL OR length(hub_key) = 32),
            last_seq INTEGER NOT NULL CHECK (last_seq >= 0)
        )""",
        "INSERT INTO meta (singleton, device, hub_key, last_seq) VALUES (1, NULL, NULL, 0)",
        """CREATE TABLE outbox (
            position INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            recipient TEXT NOT NULL,
            body TEXT NOT NULL,
            sent_at INTEGER NOT NULL CHECK (sent_at >= 0),
            state TEXT NOT NULL
                CHECK (state IN ('queued', 'accepted', 'delivered', 'rejected'))
        )""",
        """CREATE TABLE inbox (
            position INTEGER PRIMARY KEY AUTOINCREMENT,
            seq INTEGER NOT NULL CHECK (seq >= 0),
            id TEXT NOT NULL,
            sender TEXT NOT NULL,
            recipient TEXT NOT NULL,
            body TEXT NOT NULL,
            sent_at INTEGER NOT NULL CHECK (sent_at >= 0),
            received_at INTEGER NOT NULL CHECK (received_at >= 0),
            UNIQUE (sender, id)
        )""",
    )


def _peer_v2_pending_index(conn: sqlite3.Connection) -> None:
    """A partial index so loading the unsettled outbox does not scan delivered history."""
    _run(
        conn,
        "CREATE INDEX outbox_unsettled ON outbox (position) WHERE state IN ('queued', 'accepted')",
    )


MIGRATIONS: dict[StoreKind, tuple[Migration, ...]] = {
    "hub": (_hub_v1_routing, _hub_v2_receipts),
    "peer": (_peer_v1_boxes, _peer_v2_pending_index),
}
"""Migration ``i`` (0-based) takes a database of its kind from version ``i`` to ``i + 1``."""


def latest_version(kind: StoreKind) -> int:
    """The schema version this code writes for ``kind``."""
    return len(MIGRATIONS[kind])


def _check_identity(conn: sqlite3.Connection, kind: StoreKind, version: int) -> None:
    application_id = conn.execute("PRAGMA application_id").fetchone()[0]
    if version == 0 and application_id == 0:
        tables = conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0]
        if tables:
            raise StoreError(f"not a udpim {kind} store: it already holds other tables")
        return
    if application_id != APPLICATION_IDS[kind]:
        others = [other for other, value in APPLICATION_IDS.items() if value == application_id]
        found = f"a udpim {others[0]} store" if others else "another application's database"
        raise StoreError(f"not a udpim {kind} store: the file is {found}")
    if version > latest_version(kind):
        raise StoreError(
            f"{kind} store schema version {version} is newer than this udpim supports "
            f"({latest_version(kind)}); upgrade udpim"
        )


def migrate(conn: sqlite3.Connection, kind: StoreKind, *, target_version: int | None = None) -> int:
    """Bring the database on ``conn`` to ``target_version`` (default: the latest).

    ``conn`` must be in autocommit mode (``isolation_level=None``) with no open transaction.
    Each migration commits on its own.

    Args:
        conn: an open connection to a new or existing database of ``kind``.
        kind: which schema the database holds.
        target_version: stop at this version (tests build old databases with it).

    Returns:
        The schema version of the database afterwards.

    Raises:
        StoreError: the file is not a udpim store of this kind, or its version is newer than
            this code, or a migration failed (the database stays at the version before it).
    """
    target = latest_version(kind) if target_version is None else target_version
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    _check_identity(conn, kind, version)
    for index in range(version, target):
        migration = MIGRATIONS[kind][index]
        conn.execute("BEGIN IMMEDIATE")
        try:
            if index == 0:
                conn.execute(f"PRAGMA application_id = {APPLICATION_IDS[kind]}")
            migration(conn)
            conn.execute(f"PRAGMA user_version = {index + 1}")
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            conn.execute("ROLLBACK")
            raise StoreError(
                f"{kind} store migration to version {index + 1} failed: {exc}"
            ) from exc
    return max(version, target)
