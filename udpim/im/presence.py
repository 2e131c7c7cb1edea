"""PresenceBoard: who is online on the hub, and which sessions watch whom.

Rules (docs/IM.md, "Presence"):

* A user is online while at least one of its welcomed device sessions is live:
  established and not reported ``PeerUnreachable``.
* A session's watch set is replaced by each ``watch`` frame and dropped when the
  session ends.
* The board only answers questions and reports changes; ``HubCore`` sends the frames.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import final

__all__ = ["PresenceBoard"]


@final
class PresenceBoard:
    """Live sessions per user and watchers per user."""

    __slots__ = ("_live", "_watched_by", "_watching")

    def __init__(self) -> None:
        # user -> its live sessions: a tuple, as a user has one or a few (a set costs 216
        # bytes even with one member, and a hub holds 100 000 online users)
        self._live: dict[str, tuple[bytes, ...]] = {}
        # dicts, not sets: iteration order must not depend on hash seeds (replayable runs)
        self._watched_by: dict[str, dict[bytes, None]] = {}
        self._watching: dict[bytes, frozenset[str]] = {}

    def is_online(self, user: str) -> bool:
        """True if ``user`` has a live session."""
        return user in self._live

    @property
    def online_count(self) -> int:
        """How many users are online."""
        return len(self._live)

    def set_live(self, user: str, sid: bytes, live: bool) -> bool:
        """Record whether session ``sid`` of ``user`` is live.

        Returns:
            True if this changed whether ``user`` is online.
        """
        sessions = self._live.get(user, ())
        if live and sid not in sessions:
            self._live[user] = (*sessions, sid)
        elif not live and sid in sessions:
            rest = tuple(other for other in sessions if other != sid)
            if rest:
                self._live[user] = rest
            else:
                del self._live[user]
        return bool(sessions) != (user in self._live)

    def watch(self, sid: bytes, users: Iterable[str]) -> list[str]:
        """Replace the watch set of ``sid``. Returns the users, deduplicated, in order."""
        self.unwatch(sid)
        ordered = list(dict.fromkeys(users))
        self._watching[sid] = frozenset(ordered)
        for user in ordered:
            self._watched_by.setdefault(user, {})[sid] = None
        return ordered

    def unwatch(self, sid: bytes) -> None:
        """Drop the watch set of ``sid`` (the session ended)."""
        for user in self._watching.pop(sid, frozenset()):
            watchers = self._watched_by[user]
            watchers.pop(sid, None)
            if not watchers:
                del self._watched_by[user]

    def watchers(self, user: str) -> list[bytes]:
        """The sessions watching ``user``, in the order they started watching."""
        return list(self._watched_by.get(user, ()))
