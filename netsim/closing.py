"""``Closing``: ``with obj:`` for netsim objects that have a ``close()`` method.

What it owns: the context-manager protocol shared by virtual sockets, trace readers and
trace recorders. ``with obj as same:`` gives ``obj`` itself and calls ``obj.close()`` when
the block ends, however it ends; an exception from the block propagates unchanged.
"""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self

__all__ = ["Closing"]


class _HasClose(Protocol):
    def close(self) -> None: ...


class Closing:
    """Mixin: ``__enter__`` returns the object, ``__exit__`` calls its ``close()``."""

    __slots__ = ()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self: _HasClose,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
