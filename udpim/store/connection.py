"""Opening a store's SQLite file: permissions, durability pragmas, migration.

Rules:

* Directories this code creates are 0700 and a database file it creates is 0600 (messages
  are private). SQLite creates the ``-wal`` and ``-shm`` files with the database's mode.
* ``journal_mode=WAL`` and ``synchronous=FULL``: a commit returns only after the WAL is
  synced, so a committed operation survives a process kill and a power loss.
  ``foreign_keys=ON`` because the schema relies on them.
* The connection is in autocommit mode (``isolation_level=None``): the store issues
  ``BEGIN IMMEDIATE`` / ``SAVEPOINT`` / ``COMMIT`` itself, so the sqlite3 module never opens or
  commits a transaction behind its back.
* Every failure surfaces as ``StoreError`` with a one-line message.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

from udpim.store.base import StoreError, StoreKind
from udpim.store.schema import migrate

__all__ = ["BUSY_TIMEOUT_MS", "connect", "one_line"]

BUSY_TIMEOUT_MS = 5000
"""How long a write waits for a lock held by another connection before failing."""


def one_line(exc: BaseException) -> str:
    """``exc`` as a single line of text (newlines folded), never empty."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _make_private_dirs(directory: Path) -> None:
    missing: list[Path] = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700)
            os.chmod(path, 0o700)


def _create_private_file(path: Path) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)


def _configure(conn: sqlite3.Connection, synced: bool) -> None:
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise StoreError(f"cannot enable WAL journaling (journal_mode is {mode})")
    conn.execute(f"PRAGMA synchronous = {'FULL' if synced else 'OFF'}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")


def connect(path: Path, kind: StoreKind, *, synced: bool = True) -> sqlite3.Connection:
    """Open (creating if absent) the store database at ``path`` and migrate it.

    The returned connection may be handed to another thread once (``check_same_thread`` is
    off); the store uses it from one thread at a time.

    Args:
        path: the database file.
        kind: ``"hub"`` or ``"peer"``; an existing file must be of this kind.
        synced: ``synchronous=FULL`` (True: every commit is on disk when it returns). False
            (``synchronous=OFF``) is for simulations only: a commit then survives the
            process ending but not a power loss, and no fsync slows a virtual-time run.

    Returns:
        A configured connection in autocommit mode at the latest schema version.

    Raises:
        StoreError: the file cannot be created or opened, is not a udpim store of ``kind``,
            is newer than this code, or fails to migrate.
    """
    try:
        _make_private_dirs(path.parent)
        _create_private_file(path)
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(f"cannot open {kind} store {path}: {one_line(exc)}") from exc
    try:
        _configure(conn, synced)
        migrate(conn, kind)
    except StoreError as exc:
        conn.close()
        raise StoreError(f"{path}: {exc}") from exc
    except sqlite3.Error as exc:
        conn.close()
        raise StoreError(f"cannot open {kind} store {path}: {one_line(exc)}") from exc
    return conn
