"""WatchList: whose presence a daemon follows.

Rules (docs/IM.md, "Presence"):

* The list is the explicit names (``PeerCore.watch``) followed by every correspondent
  seen since the daemon started (recipients of our sends, including those still in the
  stored outbox, and senders of our deliveries), without duplicates, our own name
  excluded, cut to ``MAX_WATCH_USERS`` names.
* Each change is sent whole (a ``watch`` frame replaces the hub's previous set), and the
  list is sent again after every welcome.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import final

from udpim.im.protocol import MAX_WATCH_USERS

__all__ = ["WatchList"]


@final
class WatchList:
    """Explicit names plus correspondents, in first-seen order.

    Args:
        user: our own name (never watched as a contact).
    """

    __slots__ = ("_contacts", "_explicit", "_user")

    def __init__(self, user: str) -> None:
        self._user = user
        self._explicit: list[str] = []
        self._contacts: dict[str, None] = {}

    def set_explicit(self, users: Iterable[str]) -> None:
        """Replace the explicit names."""
        self._explicit = list(dict.fromkeys(users))

    def add_contacts(self, users: Iterable[str]) -> bool:
        """Note correspondents. Returns True if any was new."""
        fresh = [u for u in users if u not in self._contacts and u != self._user]
        self._contacts.update(dict.fromkeys(fresh))
        return bool(fresh)

    def users(self) -> list[str]:
        """The names to watch, at most ``MAX_WATCH_USERS``."""
        merged = dict.fromkeys(self._explicit)
        merged.update(self._contacts)
        return list(merged)[:MAX_WATCH_USERS]
