"""PendingOps: the store ops a core has in flight, by token.

Every ``Store(token, op)`` a core emits is paired with a record of what to do with the
result. Tokens count up from 1 and are never reused. A result for an unknown token (one
already answered, or never issued) finds no record and is ignored by the cores: this is
what makes duplicated completions harmless.
"""

from __future__ import annotations

import itertools
from typing import Generic, TypeVar, final

from udpim.im.actions import Store
from udpim.im.ops import Op

__all__ = ["PendingOps"]

R = TypeVar("R")


@final
class PendingOps(Generic[R]):
    """Token -> record of a store op in flight."""

    __slots__ = ("_records", "_tokens")

    def __init__(self) -> None:
        self._records: dict[int, R] = {}
        self._tokens = itertools.count(1)

    def submit(self, op: Op, record: R) -> Store:
        """The ``Store`` action for ``op``; ``record`` waits for its result."""
        token = next(self._tokens)
        self._records[token] = record
        return Store(token, op)

    def pop(self, token: int) -> R | None:
        """The record of ``token`` (None if unknown or already answered)."""
        return self._records.pop(token, None)

    def __len__(self) -> int:
        return len(self._records)
