"""``SqliteStore``: the embedded durable store (stdlib sqlite3) for hubs and daemons.

Rules (the ``Store`` contract of base.py, made concrete):

* One database file per store, of kind ``"hub"`` or ``"peer"`` (schema.py), opened with WAL
  journaling and ``synchronous=FULL`` (connection.py): when ``wait()`` returns, the
  operation's transaction is committed and synced, so it survives a process kill or a power
  loss.
* Operations execute in submission order; each one is atomic (a savepoint), and a failing
  one raises ``StoreError`` from its ``wait()`` and changes nothing.

Two modes, chosen at ``open``:

``threaded=True`` (daemons and hubs in production)
    One writer thread (writer.py) owns the connection and commits every operation queued so
    far as one transaction: group commit, so N concurrent submitters share one fsync.
    ``submit`` never blocks the Trio thread on the disk.

``threaded=False`` (simulations under Trio's ``MockClock``)
    ``submit`` runs the operation at once, on the calling thread, in its own transaction.
    Disk time is invisible to virtual time and runs are deterministic. ``wait()`` then only
    checkpoints.
"""

from __future__ import annotations

import functools
from pathlib import Path
from types import TracebackType
from typing import final

import trio

from udpim.store.base import Pending, StoreError, StoreKind, StoreStatistics
from udpim.store.connection import connect
from udpim.store.hubops import execute_hub_op
from udpim.store.peerops import execute_peer_op
from udpim.store.transaction import Executor, InlineRunner
from udpim.store.writer import BatchWriter

__all__ = ["SqliteStore"]

_EXECUTORS: dict[StoreKind, Executor] = {"hub": execute_hub_op, "peer": execute_peer_op}


@final
class SqliteStore:
    """A hub or peer database behind the ``Store`` interface.

    Create it with ``await SqliteStore.open(...)`` (not the constructor); close it with
    ``await store.aclose()`` or use it as an async context manager.
    """

    def __init__(self, path: Path, kind: StoreKind, backend: BatchWriter | InlineRunner) -> None:
        self._path = path
        self._kind: StoreKind = kind
        self._backend = backend
        self._closed = False

    @classmethod
    async def open(
        cls, path: Path, kind: StoreKind, *, threaded: bool = True, synced: bool = True
    ) -> SqliteStore:
        """Open (creating if absent) the store at ``path`` and migrate it to the latest schema.

        Missing directories are created 0700 and a new database file 0600.

        Args:
            path: the database file.
            kind: ``"hub"`` or ``"peer"``; an existing file must hold that kind.
            threaded: run a writer thread with group commit (True), or execute every op inline
                in ``submit`` (False; deterministic, for simulations).
            synced: fsync every commit (True). False only for simulations, whose
                "crashes" end tasks, not the machine (see ``connection.connect``).

        Returns:
            The open store.

        Raises:
            StoreError: the file cannot be created or opened, holds another kind of data or
                a schema newer than this code, or fails to migrate.
        """
        if kind not in _EXECUTORS:
            raise StoreError(f"unknown store kind {kind!r} (expected 'hub' or 'peer')")
        path = Path(path)
        execute = _EXECUTORS[kind]
        if not threaded:
            await trio.lowlevel.checkpoint()
            return cls(path, kind, InlineRunner(connect(path, kind, synced=synced), execute))
        token = trio.lowlevel.current_trio_token()
        writer = BatchWriter(functools.partial(connect, path, kind, synced=synced), execute, token)
        await writer.start()
        return cls(path, kind, writer)

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    @property
    def kind(self) -> StoreKind:
        """``"hub"`` or ``"peer"``."""
        return self._kind

    @property
    def threaded(self) -> bool:
        """Whether a writer thread executes the operations (else they run inline)."""
        return isinstance(self._backend, BatchWriter)

    def submit(self, op: object) -> Pending:
        """Queue ``op`` (FIFO); in inline mode, execute and commit it now.

        Args:
            op: an operation of ``udpim.im.ops`` for this store's kind. An op of the other
                kind (or anything else) fails through its ``wait()``.

        Returns:
            Its pending completion: ``await pending.wait()`` gives the result once durable.

        Raises:
            StoreError: the store is closed.
        """
        if self._closed:
            raise StoreError("store is closed")
        return self._backend.submit(op)

    async def aclose(self) -> None:
        """Commit every operation already submitted, stop the writer thread (joined), close.

        Idempotent. Shielded from cancellation while the queued operations finish.
        """
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        self._closed = True
        if isinstance(self._backend, BatchWriter):
            await self._backend.stop()
        else:
            self._backend.close()
            await trio.lowlevel.checkpoint()

    def statistics(self) -> StoreStatistics:
        """Operation, transaction and commit counters since open."""
        return self._backend.statistics()

    async def __aenter__(self) -> SqliteStore:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
