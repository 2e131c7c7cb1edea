"""The errors the Trio shells raise, each with a one-line message for the CLI.

Rules:

* Every error a service (``serve_hub``, ``serve_peer``) or the control client raises on
  purpose is a ``UdpimError`` subclass whose ``str()`` is one line, fit to print as is.
* Services raise them plain, never wrapped in an ``ExceptionGroup``: ``plain_errors``
  unwraps a nursery's group that holds exactly one ``UdpimError`` (and nothing else but
  cancellations), so ``trio.run(serve_peer, config)`` raises e.g. ``PeerRefused`` itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import final

import trio

from udpim.core.errors import UdpimError

__all__ = [
    "ControlError",
    "DaemonNotRunning",
    "DataDirBusy",
    "HubKeyMismatch",
    "ListenError",
    "PeerRefused",
    "SendTimeout",
    "ServiceFailed",
    "UnknownUser",
    "plain_errors",
]


class ControlError(UdpimError):
    """The control socket cannot be used, or the daemon answered with an error.

    Attributes:
        response: the daemon's error object (``{"ok": false, "error": ...}``), if any.
    """

    def __init__(self, message: str, response: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.response = response


@final
class DaemonNotRunning(ControlError):
    """Nothing listens on the control socket (no daemon, or one that crashed)."""


@final
class DataDirBusy(UdpimError):
    """Another hub or daemon already runs on this data directory."""


@final
class ListenError(UdpimError):
    """A socket cannot be bound (address in use, not available, ...)."""


@final
class PeerRefused(UdpimError):
    """The hub refused this daemon's hello (name taken, unknown user, ...): it stops."""


@final
class HubKeyMismatch(UdpimError):
    """The hub presents a key other than the one this daemon dials: it stops."""


@final
class ServiceFailed(UdpimError):
    """A service cannot continue (its store failed to load its state, ...)."""


@final
class UnknownUser(UdpimError):
    """The hub rejected a message: the recipient has no account."""


@final
class SendTimeout(UdpimError):
    """A ``send`` with ``wait`` did not reach the wanted state in time (it stays queued)."""


@contextmanager
def plain_errors() -> Iterator[None]:
    """Re-raise a lone ``UdpimError`` out of the exception groups trio nurseries raise.

    Cancellations beside it are ignored (they are the other tasks being cancelled
    because of it); any other mix propagates unchanged.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        errors = _leaves(group)
        own = [exc for exc in errors if isinstance(exc, UdpimError)]
        rest = [exc for exc in errors if not isinstance(exc, UdpimError | trio.Cancelled)]
        if len(own) == 1 and not rest:
            raise own[0] from None
        raise


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            found += _leaves(exc)
        else:
            found.append(exc)
    return found
