"""HubAccounts: the hub's account book, kept in step with its store while the hub runs.

What it owns: the ``AccountBook`` (who may log in as whom), whether a closed hub owes a
re-read of its accounts, and the store ops that read and bind accounts, submitted
through the hub's ``PendingOps`` with their records (``hubsession``). ``HubCore`` asks it
for verdicts and acts on the sessions; this module never touches a session.

Rules (docs/IM.md section 5):

* The book is loaded once at start (``LoadAccounts``); until then a closed hub answers
  no handshake and hellos wait.
* ``udpim hub adduser`` writes the store while the hub runs. The book catches up three
  ways: a closed hub that refused a handshake key re-reads every account
  (``reload_accounts``, rate-limited by the shell); a hello the book would refuse is
  first checked against the name's stored keys (``read_keys``); and a first-use binding
  asks the store to bind only a free name (``BindAccount(first_use=True)``), answering
  the name's keys either way (``on_bound``).
* Keys found in the store are merged, never removed: the store only ever adds bindings
  while the hub runs.
"""

from __future__ import annotations

from typing import final

from udpim.im.accounts import AccountBook, Admission
from udpim.im.actions import Store
from udpim.im.hubsession import (
    BindingAccount,
    CheckingAccount,
    HubCounters,
    HubSession,
    LoadingAccounts,
    PendingOp,
    ReloadingAccounts,
)
from udpim.im.ops import BindAccount, LoadAccounts, LoadUserKeys
from udpim.im.pending import PendingOps
from udpim.im.protocol import HelloFrame

__all__ = ["HubAccounts"]


@final
class HubAccounts:
    """The account book and its store ops.

    Args:
        pending: the hub's store ops in flight (their tokens and records).
        counters: the hub's counters (``refused_keys``, ``accounts_reloaded``).
        closed: only pre-registered names may log in.
    """

    __slots__ = ("_book", "_counters", "_pending", "_reload_due")

    def __init__(
        self, pending: PendingOps[PendingOp], counters: HubCounters, *, closed: bool
    ) -> None:
        self._book = AccountBook(closed=closed)
        self._pending = pending
        self._counters = counters
        self._reload_due = False

    def __len__(self) -> int:
        return len(self._book)

    @property
    def loaded(self) -> bool:
        """True once the accounts read at start came back."""
        return self._book.loaded

    def load_at_start(self) -> Store:
        """The ``LoadAccounts`` of the start (again only after it failed)."""
        return self._pending.submit(LoadAccounts(), LoadingAccounts())

    def load(self, accounts: dict[str, list[bytes]]) -> None:
        """Take the accounts read at start."""
        self._book.load(accounts)

    def accept_key(self, key: bytes) -> bool:
        """Whether to answer a handshake from ``key``; a closed hub's refusal makes a
        re-read due (once the accounts were loaded)."""
        if self._book.accepts_key(key):
            return True
        self._counters.refused_keys += 1
        if self._book.loaded:
            self._reload_due = True
        return False

    @property
    def reload_due(self) -> bool:
        """A closed hub refused a key since the accounts were last read."""
        return self._reload_due

    def reload_accounts(self) -> list[Store]:
        """Re-read every account if a key was refused since they were last read."""
        if not self._reload_due:
            return []
        self._reload_due = False
        return [self._pending.submit(LoadAccounts(), ReloadingAccounts())]

    def merge_all(self, accounts: dict[str, list[bytes]]) -> None:
        """Merge a re-read of every account."""
        for user, keys in accounts.items():
            self.merge(user, keys)

    def merge(self, user: str, keys: list[bytes]) -> None:
        """Bind what the store has for ``user`` (an ``adduser`` since the book was read)."""
        for key in keys:
            self._counters.accounts_reloaded += self._book.bind(user, key)

    def check(self, user: str, key: bytes) -> Admission:
        """The book's verdict on a hello as ``user`` from a session with ``key``."""
        return self._book.check(user, key)

    def has_user(self, user: str) -> bool:
        """True if ``user`` is bound to some key."""
        return self._book.has_user(user)

    def read_keys(self, session: HubSession, hello: HelloFrame) -> Store:
        """Read the stored keys of the name ``hello`` asks for, to judge it again."""
        return self._pending.submit(LoadUserKeys(hello.user), CheckingAccount(session, hello))

    def bind(self, user: str, key: bytes, *, first_use: bool = False) -> list[Store]:
        """Bind ``key`` to ``user`` in the book at once and in the store (nothing if it
        already is, or before the accounts are loaded). With ``first_use`` the store
        binds it only while the name is free there (``on_bound`` tells)."""
        if not self._book.bind(user, key):
            return []
        op = BindAccount(user, key, first_use=first_use)
        return [self._pending.submit(op, BindingAccount(user, key))]

    def on_bound(self, user: str, key: bytes, keys: list[bytes]) -> bool:
        """The store answered a ``BindAccount`` with the name's keys. False if ``key`` is
        not among them (a first-use binding found the name taken): the book's binding is
        undone and the stored keys merged."""
        if key in keys:
            return True
        self._book.unbind(user, key)
        self.merge(user, keys)
        return False

    def unbind(self, user: str, key: bytes) -> None:
        """Undo a binding whose ``BindAccount`` failed."""
        self._book.unbind(user, key)
