"""One transaction of store operations: a savepoint per operation, one commit for all.

Rules:

* ``run_batch`` runs a list of operations inside ONE ``BEGIN IMMEDIATE ... COMMIT``; they
  commit together and share one sync to disk (group commit).
* A failing operation leaves no trace and the batch goes on with the next one. The batch
  first runs optimistically, with no savepoints (they cost two more statements per
  operation, and every statement hands the GIL back and forth with the Trio thread). If
  an operation raises, the whole transaction is rolled back and the batch runs again
  from the start, each operation inside its own ``SAVEPOINT`` that is rolled back if it
  raises. Operations only read and write the database, so the second run computes the
  same results from the same state; only the failed operations differ.
* An operation's outcome is final only after the commit: if ``BEGIN`` or ``COMMIT`` itself
  fails (disk full, I/O error, lock timeout), nothing in the batch took effect and every
  operation of the batch gets the error.
* Outcomes are ``(result, None)`` or ``(None, one-line error message)``, in batch order.
* This module knows nothing about threads or Trio. The writer thread (writer.py) and the
  inline mode (``InlineRunner``, below) both drive it.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import final

import trio

from udpim.store.base import StoreError, StoreStatistics
from udpim.store.connection import one_line

__all__ = ["Counters", "DonePending", "Executor", "InlineRunner", "Outcome", "run_batch"]

Executor = Callable[[sqlite3.Connection, object], object]
"""Runs one operation on a connection inside an open transaction and returns its result."""

Outcome = tuple[object, str | None]
"""``(result, None)`` for a committed operation, ``(None, message)`` for a failed one."""


@final
@dataclass(slots=True)
class Counters:
    """Mutable counters behind ``StoreStatistics`` (guarded by the owner's lock, if any)."""

    ops: int = 0
    failed: int = 0
    batches: int = 0
    commits: int = 0
    max_batch: int = 0

    def record(self, outcomes: Sequence[Outcome], committed: bool) -> None:
        """Count one transaction of ``outcomes``."""
        self.ops += len(outcomes)
        self.failed += sum(1 for _, error in outcomes if error is not None)
        self.batches += 1
        self.commits += int(committed)
        self.max_batch = max(self.max_batch, len(outcomes))

    def snapshot(self, queued: int) -> StoreStatistics:
        """The counters as a frozen value."""
        return StoreStatistics(
            ops=self.ops,
            failed=self.failed,
            batches=self.batches,
            commits=self.commits,
            max_batch=self.max_batch,
            queued=queued,
        )


def _describe(op: object, exc: Exception) -> str:
    if isinstance(exc, StoreError | sqlite3.Error):
        return f"{type(op).__name__} failed: {one_line(exc)}"
    return f"{type(op).__name__} failed: {type(exc).__name__}: {one_line(exc)}"


def _run_in_savepoint(conn: sqlite3.Connection, execute: Executor, op: object) -> Outcome:
    conn.execute("SAVEPOINT op")
    try:
        result = execute(conn, op)
    except Exception as exc:  # any failure of one op must roll back that op alone
        conn.execute("ROLLBACK TO op")
        conn.execute("RELEASE op")
        return None, _describe(op, exc)
    conn.execute("RELEASE op")
    return result, None


def run_batch(
    conn: sqlite3.Connection, execute: Executor, ops: Sequence[object]
) -> tuple[list[Outcome], bool]:
    """Run ``ops`` in one transaction and commit (see the module docstring).

    Args:
        conn: an autocommit-mode connection with no open transaction.
        execute: runs one operation.
        ops: the operations, in submission order.

    Returns:
        The outcome of each operation in order, and whether the transaction committed.
        Never raises: a failed ``BEGIN``/``COMMIT`` becomes an error outcome for every op.
    """
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            outcomes: list[Outcome] = [(execute(conn, op), None) for op in ops]
        except Exception:  # some op failed: start over, isolating each op in a savepoint
            if conn.in_transaction:  # an I/O error may have ended it already
                conn.execute("ROLLBACK")
            conn.execute("BEGIN IMMEDIATE")
            outcomes = [_run_in_savepoint(conn, execute, op) for op in ops]
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        if conn.in_transaction:
            # the transaction is gone either way; the message below says why
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        message = f"store transaction failed: {one_line(exc)}"
        return [(None, message) for _ in ops], False
    return outcomes, True


@final
class DonePending:
    """A pending whose outcome is already known (inline mode)."""

    __slots__ = ("_error", "_result")

    def __init__(self, outcome: Outcome) -> None:
        self._result, self._error = outcome

    async def wait(self) -> object:
        """Return the result after a checkpoint.

        Raises:
            StoreError: the operation failed.
        """
        await trio.lowlevel.checkpoint()
        return self.result_nowait()

    def result_nowait(self) -> object:
        """Return the result at once (it is known since ``submit``).

        Raises:
            StoreError: the operation failed.
        """
        if self._error is not None:
            raise StoreError(self._error)
        return self._result


@final
class InlineRunner:
    """Runs each submitted operation at once, in its own transaction, on the caller's thread.

    Deterministic: no thread, no waiting, so simulations on Trio's ``MockClock`` see the disk
    take no virtual time and the same inputs always give the same schedule.
    """

    def __init__(self, conn: sqlite3.Connection, execute: Executor) -> None:
        self._conn = conn
        self._execute = execute
        self._counters = Counters()
        self._closed = False

    def submit(self, op: object) -> DonePending:
        """Run ``op`` now and return its completed pending.

        Raises:
            StoreError: the store is closed.
        """
        if self._closed:
            raise StoreError("store is closed")
        outcomes, committed = run_batch(self._conn, self._execute, (op,))
        self._counters.record(outcomes, committed)
        return DonePending(outcomes[0])

    def close(self) -> None:
        """Close the connection; later submits raise ``StoreError``."""
        if not self._closed:
            self._closed = True
            self._conn.close()

    def statistics(self) -> StoreStatistics:
        """Counters since open."""
        return self._counters.snapshot(queued=0)
