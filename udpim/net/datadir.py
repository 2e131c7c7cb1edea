"""A service's hold on its data directory: one hub or daemon per directory.

Rules:

* A hub or daemon takes an exclusive ``flock`` on a lock file in its data directory
  (``hub.lock``, ``daemon.lock``) for as long as it runs, before it opens its store or
  its control socket. A second service on the same directory fails at once with
  ``DataDirBusy``; the kernel drops the lock when the holder exits or crashes, so a
  crashed service never blocks its restart.
* Holding the lock is what makes it safe to replace a stale control socket left by a
  crashed daemon: nobody else can be listening on it.
* The lock file is created 0600 inside the 0700 directory (``ensure_private_dir``).
* A service that opens its own store in its directory (``open_owned_store``) hands it to
  its exit stack to close; an injected store stays the caller's.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path
from typing import Final

from udpim.identity import ensure_private_dir
from udpim.net.errors import DataDirBusy
from udpim.store.base import StoreKind
from udpim.store.sqlite import SqliteStore

__all__ = ["DAEMON_LOCK", "HUB_LOCK", "hold_data_dir", "open_owned_store"]

HUB_LOCK: Final = "hub.lock"
DAEMON_LOCK: Final = "daemon.lock"


@contextmanager
def hold_data_dir(data_dir: Path, lock_name: str, what: str) -> Iterator[None]:
    """Hold ``data_dir`` (created 0700 if needed) exclusively while the block runs.

    Args:
        data_dir: the service's data directory.
        lock_name: the lock file's name (``HUB_LOCK`` or ``DAEMON_LOCK``).
        what: the service, for the error message ("hub", "daemon").

    Raises:
        DataDirBusy: another process (or another service in this one) holds it.
        IdentityError: the directory cannot be created or used.
    """
    ensure_private_dir(data_dir)
    path = data_dir / lock_name
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise DataDirBusy(f"cannot open {path}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise DataDirBusy(f"another {what} is already running on {data_dir}") from None
    try:
        yield
    finally:
        os.close(fd)


async def open_owned_store(stack: AsyncExitStack, path: Path, kind: StoreKind) -> SqliteStore:
    """The sqlite store at ``path`` (``SqliteStore.open``), closed when ``stack`` closes.

    Raises:
        StoreError: the database cannot be opened.
    """
    store = await SqliteStore.open(path, kind)
    stack.push_async_callback(store.aclose)
    return store
