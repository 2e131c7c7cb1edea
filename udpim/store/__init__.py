"""udpim's durable stores: they execute the operations of ``udpim.im.ops``.

``Store`` (base.py) is the interface the Trio shells use: ``submit(op) -> Pending``
(synchronous, FIFO), ``await pending.wait()`` (the result, once durable), ``aclose()``.
``SqliteStore`` (sqlite.py) implements it on the stdlib's sqlite3 for both the hub database
and a daemon's database, with a group-committing writer thread or, for simulations, inline.
"""

from udpim.store.base import Pending, Store, StoreError, StoreKind, StoreStatistics
from udpim.store.sqlite import SqliteStore

__all__ = ["Pending", "SqliteStore", "Store", "StoreError", "StoreKind", "StoreStatistics"]
