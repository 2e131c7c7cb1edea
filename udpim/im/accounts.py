"""AccountBook: the hub's user names, the keys bound to them, and who may log in.

Rules (docs/IM.md, "Accounts"):

* A user name is bound to one or more static public keys. Only a session whose
  authenticated key is bound to the name may log in as that name.
* Open hub (trust on first use): a name nobody has used yet is bound to the first key
  that says hello with it. Closed hub: names are bound only by ``udpim hub adduser``,
  and a handshake from a key bound to no name gets no answer at all.
* The book mirrors the store: the hub binds in memory at once (so a second key racing
  for the same name is refused) and undoes the binding if its ``BindAccount`` fails.
"""

from __future__ import annotations

from enum import Enum
from typing import final

__all__ = ["AccountBook", "Admission"]


@final
class Admission(Enum):
    """The verdict on a hello's (user, key)."""

    KNOWN = "known"  # the key is bound to the name
    NEW_NAME = "new-name"  # free name on an open hub: bind it to this key
    TAKEN = "taken"  # the name is bound to other keys
    UNKNOWN = "unknown"  # free name on a closed hub


@final
class AccountBook:
    """Names and keys, loaded from the store at start.

    Args:
        closed: only pre-registered names may log in.
    """

    __slots__ = ("_accounts", "_closed", "_keys")

    def __init__(self, *, closed: bool) -> None:
        self._closed = closed
        # name -> its keys: a tuple (nearly always of one), not a list (88 bytes per name)
        self._accounts: dict[str, tuple[bytes, ...]] | None = None
        self._keys: dict[bytes, int] = {}  # key -> how many names it is bound to

    @property
    def loaded(self) -> bool:
        """True once ``load`` was called."""
        return self._accounts is not None

    def __len__(self) -> int:
        return len(self._accounts or {})

    def load(self, accounts: dict[str, list[bytes]]) -> None:
        """Take the stored accounts (``LoadAccounts`` result)."""
        self._accounts = {}
        self._keys = {}
        for user, keys in accounts.items():
            for key in keys:
                self.bind(user, key)

    def accepts_key(self, key: bytes) -> bool:
        """Whether a handshake from ``key`` gets an answer (closed hubs: bound keys only)."""
        return not self._closed or key in self._keys

    def has_user(self, user: str) -> bool:
        """True if ``user`` is bound to some key."""
        return self._accounts is not None and user in self._accounts

    def check(self, user: str, key: bytes) -> Admission:
        """Judge a hello as ``user`` from a session authenticated with ``key``."""
        keys = (self._accounts or {}).get(user)
        if keys is None:
            return Admission.UNKNOWN if self._closed else Admission.NEW_NAME
        return Admission.KNOWN if key in keys else Admission.TAKEN

    def bind(self, user: str, key: bytes) -> bool:
        """Bind ``key`` to ``user``. Returns False if it already was (or not loaded)."""
        if self._accounts is None:
            return False
        keys = self._accounts.get(user, ())
        if key in keys:
            return False
        self._accounts[user] = (*keys, key)
        self._keys[key] = self._keys.get(key, 0) + 1
        return True

    def unbind(self, user: str, key: bytes) -> None:
        """Undo ``bind(user, key)`` (its ``BindAccount`` failed)."""
        keys = (self._accounts or {}).get(user)
        if keys is None or key not in keys:
            return
        rest = tuple(other for other in keys if other != key)
        if rest:
            (self._accounts or {})[user] = rest
        else:
            del (self._accounts or {})[user]
        self._keys[key] -= 1
        if not self._keys[key]:
            del self._keys[key]
