"""The store's writer thread: group commit of queued operations, results handed back to Trio.

Rules:

* Exactly one writer thread per threaded store. It opens the connection itself, is started
  by ``SqliteStore.open`` and joined by ``aclose``; nothing else touches the connection.
* ``submit`` (Trio thread) appends to a FIFO queue under a lock and wakes the writer if it was
  idle. It never blocks on the disk.
* The writer takes EVERY operation queued so far, up to ``max_batch_ops``, and runs them as
  one transaction (``transaction.run_batch``): one savepoint per operation, one commit, one
  sync to disk shared by all of them. While it syncs, new submissions queue up and form the
  next batch; so the more concurrent submitters, the more operations share a sync.
* Outcomes go back to the Trio thread through ``TrioToken.run_sync_soon``, one callback per
  batch, which completes the pendings in submission order. Completion order is therefore
  submission order, and no waiter is woken before its operation's COMMIT returned.
* The writer never depends on a waiter: a cancelled ``wait()`` just leaves an unobserved
  result behind. If the Trio run is gone, results are dropped; the data is committed anyway.
* ``stop`` lets the writer finish everything already queued, then it closes the
  connection and exits.

Theory of operation: with synchronous=FULL each COMMIT costs one fsync of the WAL (a few
hundred microseconds to milliseconds), which dwarfs the cost of executing an operation. One
operation per transaction caps throughput at the fsync rate; batching makes throughput grow
with the number of concurrent submitters until CPU bound, at no latency cost when idle (a
lone operation is committed as soon as the writer sees it).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections import deque
from collections.abc import Callable
from typing import final

import trio

from udpim.store.base import StoreError, StoreStatistics
from udpim.store.connection import one_line
from udpim.store.transaction import Counters, Executor, Outcome, run_batch

__all__ = ["MAX_BATCH_OPS", "THREAD_NAME", "BatchWriter", "ThreadedPending"]

MAX_BATCH_OPS = 512
"""The most operations one transaction holds; more queued ones form the next batch."""

THREAD_NAME = "udpim-store-writer"
"""Name of every writer thread (so a test can check none is left running)."""


@final
class ThreadedPending:
    """Completion of an operation run by the writer thread."""

    __slots__ = ("_error", "_event", "_result")

    def __init__(self) -> None:
        self._event = trio.Event()
        self._result: object = None
        self._error: str | None = None

    def complete(self, outcome: Outcome) -> None:
        """Record the outcome and wake the waiter (Trio thread only)."""
        self._result, self._error = outcome
        self._event.set()

    async def wait(self) -> object:
        """Wait until the operation committed (or failed) and return its result.

        Raises:
            StoreError: the operation failed and was rolled back.
        """
        await self._event.wait()
        return self.result_nowait()

    def result_nowait(self) -> object:
        """The result if the operation committed (or failed) already.

        Raises:
            trio.WouldBlock: not finished yet.
            StoreError: the operation failed and was rolled back.
        """
        if not self._event.is_set():
            raise trio.WouldBlock
        if self._error is not None:
            raise StoreError(self._error)
        return self._result


_Job = tuple[object, ThreadedPending]


@final
class BatchWriter:
    """The writer thread and its queue.

    Args:
        open_connection: opens the database (runs on the writer thread).
        execute: runs one operation.
        token: the Trio run to hand outcomes back to.
        max_batch_ops: the most operations per transaction.
    """

    def __init__(
        self,
        open_connection: Callable[[], sqlite3.Connection],
        execute: Executor,
        token: trio.lowlevel.TrioToken,
        *,
        max_batch_ops: int = MAX_BATCH_OPS,
    ) -> None:
        self._open_connection = open_connection
        self._execute = execute
        self._token = token
        self._max_batch_ops = max_batch_ops
        self._cond = threading.Condition()
        self._queue: deque[_Job] = deque()
        self._stopping = False
        self._counters = Counters()
        self._ready = trio.Event()
        self._stopped = trio.Event()
        self._open_error: str | None = None
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)

    async def start(self) -> None:
        """Start the thread and wait until its connection is open and migrated.

        The wait is shielded: opening is bounded, and a half-started thread must not leak.

        Raises:
            StoreError: the database could not be opened (the thread has exited).
        """
        self._thread.start()
        with trio.CancelScope(shield=True):
            await self._ready.wait()
            if self._open_error is not None:
                await self._stopped.wait()
                self._thread.join()
                raise StoreError(self._open_error)

    def submit(self, op: object) -> ThreadedPending:
        """Queue ``op`` for the writer.

        Raises:
            StoreError: the writer is stopping or stopped.
        """
        pending = ThreadedPending()
        with self._cond:
            if self._stopping:
                raise StoreError("store is closed")
            self._queue.append((op, pending))
            if len(self._queue) == 1:
                self._cond.notify()
        return pending

    async def stop(self) -> None:
        """Let the writer finish every queued operation, then join it (shielded)."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        with trio.CancelScope(shield=True):
            await self._stopped.wait()
        self._thread.join()

    def statistics(self) -> StoreStatistics:
        """Counters since open."""
        with self._cond:
            return self._counters.snapshot(queued=len(self._queue))

    # -- the writer thread ------------------------------------------------------------------

    def _report(self, callback: Callable[..., object], *args: object) -> None:
        # if the run is over nobody is waiting any more; committed data stays committed
        with contextlib.suppress(trio.RunFinishedError):
            self._token.run_sync_soon(callback, *args)

    def _run(self) -> None:
        try:
            conn = self._open_connection()
        except Exception as exc:  # report any failure to open instead of dying silently
            self._open_error = str(exc) if isinstance(exc, StoreError) else one_line(exc)
            self._report(self._ready.set)
            self._report(self._stopped.set)
            return
        self._report(self._ready.set)
        try:
            while (batch := self._take_batch()) is not None:
                outcomes, committed = _run_batch_guarded(conn, self._execute, batch)
                with self._cond:
                    self._counters.record(outcomes, committed)
                self._report(_complete, [pending for _, pending in batch], outcomes)
        finally:
            conn.close()
            self._report(self._stopped.set)

    def _take_batch(self) -> list[_Job] | None:
        with self._cond:
            while not self._queue and not self._stopping:
                self._cond.wait()
            count = min(len(self._queue), self._max_batch_ops)
            if count == 0:
                return None
            return [self._queue.popleft() for _ in range(count)]


def _run_batch_guarded(
    conn: sqlite3.Connection, execute: Executor, batch: list[_Job]
) -> tuple[list[Outcome], bool]:
    """``run_batch``, plus a last line of defence: the writer must outlive any bug.

    ``run_batch`` does not raise by contract; if it ever does, the batch fails as a whole
    (rolled back) instead of the thread dying and leaving every waiter hanging.
    """
    try:
        return run_batch(conn, execute, [op for op, _ in batch])
    except Exception as exc:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        message = f"store writer failed: {type(exc).__name__}: {one_line(exc)}"
        return [(None, message) for _ in batch], False


def _complete(pendings: list[ThreadedPending], outcomes: list[Outcome]) -> None:
    for pending, outcome in zip(pendings, outcomes, strict=True):
        pending.complete(outcome)
