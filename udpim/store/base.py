"""The store interface the Trio shells program against, and its one error type.

Rules:

* A store executes the operations of ``udpim.im.ops`` (frozen dataclasses the sans-IO cores
  emit). ``submit(op)`` is synchronous and returns a ``Pending`` at once; operations execute
  and become durable in submission order (FIFO), and their pendings complete in that order.
* ``await pending.wait()`` returns the operation's documented result only once the result is
  durable (committed and synced); a failed operation raises ``StoreError`` with a one-line
  message and has no effect at all.
* ``pending.result_nowait()`` returns the same result without waiting once it is
  durable, and raises ``trio.WouldBlock`` before.
* Cancelling a ``wait()`` drops the result, never the operation: a submitted operation still
  executes and commits.
* ``aclose()`` finishes every operation submitted before it, then releases the backend. A
  ``submit`` after ``aclose`` raises ``StoreError``.

``SqliteStore`` (udpim/store/sqlite.py) is the embedded backend. The interface is kept this
small so that a distributed backend can be added later without touching the cores or shells.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, final

from udpim.core.errors import UdpimError

__all__ = ["Pending", "Store", "StoreError", "StoreKind", "StoreStatistics"]

StoreKind = Literal["hub", "peer"]
"""Which schema a store holds: the hub's accounts and mailboxes, or a daemon's outbox/inbox."""


@final
class StoreError(UdpimError):
    """A store operation failed (and had no effect), or the store cannot be opened or used.

    The message is always one line, fit for a log line or a CLI error.
    """


class Pending(Protocol):
    """The completion of one submitted operation."""

    async def wait(self) -> object:
        """Wait until the operation is durable and return its result.

        Raises:
            StoreError: the operation failed and was rolled back.
        """
        ...

    def result_nowait(self) -> object:
        """The result if the operation is already durable, without waiting.

        A consumer of many completions (``ActionRunner``) awaits the first one with
        ``wait()`` and then takes every one already finished with this, in one go,
        instead of paying a scheduler round trip per operation.

        Raises:
            trio.WouldBlock: the operation has not finished yet.
            StoreError: the operation failed and was rolled back.
        """
        ...


class Store(Protocol):
    """Executes store operations durably, in submission order."""

    def submit(self, op: object) -> Pending:
        """Queue ``op`` (FIFO) and return its pending completion.

        Raises:
            StoreError: the store is closed.
        """
        ...

    async def aclose(self) -> None:
        """Finish every submitted operation, then release the backend."""
        ...


@final
@dataclass(frozen=True, slots=True)
class StoreStatistics:
    """Counters of a store since it was opened.

    Attributes:
        ops: operations executed (successful or failed).
        failed: operations that failed and were rolled back.
        batches: transactions attempted (each holds one or more operations).
        commits: transactions committed (one sync to disk each).
        max_batch: the largest number of operations one transaction held.
        queued: operations submitted and not yet executed.
    """

    ops: int
    failed: int
    batches: int
    commits: int
    max_batch: int
    queued: int
