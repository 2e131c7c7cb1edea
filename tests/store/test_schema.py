"""Opening store files: permissions, WAL, schema versions, migrations, refusing wrong files."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest
import trio

from tests.store.shortcuts import mid, run
from udpim.im.ops import (
    AckMailbox,
    LoadMailbox,
    LoadPeerState,
    LoadReceipts,
    OutboxState,
    PeerState,
    ReceiptDue,
    StoreMessage,
    TouchDevice,
)
from udpim.store import SqliteStore, StoreError, StoreKind
from udpim.store.connection import connect
from udpim.store.schema import latest_version, migrate


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def pragma(path: Path, name: str) -> object:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]
    finally:
        conn.close()


def build_old(path: Path, kind: StoreKind, version: int, *rows: str) -> None:
    """A database of ``kind`` at schema ``version`` holding ``rows`` (SQL statements)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        assert migrate(conn, kind, target_version=version) == version
        for statement in rows:
            conn.execute(statement)
    finally:
        conn.close()


def test_connections_are_durable_and_enforce_foreign_keys(tmp_path: Path) -> None:
    conn = connect(tmp_path / "peer.db", "peer")
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.isolation_level is None
    finally:
        conn.close()


def test_simulation_stores_skip_the_fsync(tmp_path: Path) -> None:
    conn = connect(tmp_path / "peer.db", "peer", synced=False)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 0  # OFF
    finally:
        conn.close()


async def test_new_store_is_private_and_in_wal_mode(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    path = tmp_path / "made" / "here" / "hub.db"
    async with await SqliteStore.open(path, "hub", threaded=False) as store:
        await run(store, StoreMessage("alice", "a1", mid(1), "bob", "hi", 1))
        assert mode(path) == 0o600
        assert mode(path.with_name("hub.db-wal")) == 0o600
    assert mode(tmp_path / "made") == 0o700
    assert mode(tmp_path / "made" / "here") == 0o700
    assert pragma(path, "journal_mode") == "wal"
    assert pragma(path, "user_version") == latest_version("hub")


@pytest.mark.parametrize("kind", ["hub", "peer"])
async def test_reopening_keeps_the_data(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, kind: StoreKind
) -> None:
    path = tmp_path / f"{kind}.db"
    op: object = TouchDevice("bob", "b1") if kind == "hub" else LoadPeerState("0123456789abcdef")
    async with await SqliteStore.open(path, kind, threaded=False) as store:
        first = await run(store, op)
    async with await SqliteStore.open(path, kind, threaded=False) as store:
        assert await run(store, op) == first


async def test_hub_store_migrates_from_version_1(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    path = tmp_path / "hub.db"
    build_old(
        path,
        "hub",
        1,
        "INSERT INTO mailboxes VALUES ('bob', 2)",
        "INSERT INTO devices VALUES ('bob', 'b1', 0)",
        f"INSERT INTO messages VALUES ('bob', 1, 'alice', 'a1', '{mid(1)}', 'one', 10)",
        f"INSERT INTO messages VALUES ('bob', 2, 'alice', 'a1', '{mid(2)}', 'two', 20)",
    )
    assert pragma(path, "user_version") == 1
    async with await SqliteStore.open(path, "hub", threaded=False) as store:
        mailbox = await run(store, LoadMailbox("bob", 0, 10))
        assert isinstance(mailbox, list)
        assert [d.body for d in mailbox] == ["one", "two"]
        assert await run(store, AckMailbox("bob", "b1", 2, 500)) == [
            ReceiptDue("alice", "a1", mid(1), "bob", 500),
            ReceiptDue("alice", "a1", mid(2), "bob", 500),
        ]
        owed = await run(store, LoadReceipts("alice", "a1"))
        assert isinstance(owed, list)
        assert len(owed) == 2
        assert await run(store, StoreMessage("carol", "c1", mid(3), "bob", "3", 30)) == (3, True)
    assert pragma(path, "user_version") == 2


async def test_peer_store_migrates_from_version_1(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    path = tmp_path / "peer.db"
    build_old(
        path,
        "peer",
        1,
        "UPDATE meta SET device = '00000000000000aa', last_seq = 7",
        f"INSERT INTO outbox VALUES (NULL, '{mid(1)}', 'bob', 'x', 1, 'delivered')",
        f"INSERT INTO outbox VALUES (NULL, '{mid(2)}', 'bob', 'y', 2, 'accepted')",
    )
    async with await SqliteStore.open(path, "peer", threaded=False) as store:
        state = await run(store, LoadPeerState("ffffffffffffffff"))
    assert pragma(path, "user_version") == 2
    assert isinstance(state, PeerState)
    assert state.device == "00000000000000aa"
    assert state.last_seq == 7
    assert [(e.id, e.state) for e in state.outbox] == [(mid(2), OutboxState.ACCEPTED)]


@pytest.mark.parametrize("kind", ["hub", "peer"])
async def test_a_store_newer_than_the_code_is_refused(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, kind: StoreKind
) -> None:
    path = tmp_path / "store.db"
    build_old(path, kind, latest_version(kind))
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {latest_version(kind) + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer than this udpim supports") as caught:
        await SqliteStore.open(path, kind, threaded=False)
    assert "\n" not in str(caught.value)


async def test_a_store_of_the_other_kind_is_refused(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    path = tmp_path / "peer.db"
    async with await SqliteStore.open(path, "peer", threaded=False):
        pass
    with pytest.raises(StoreError, match="not a udpim hub store: the file is a udpim peer store"):
        await SqliteStore.open(path, "hub", threaded=False)


async def test_a_foreign_database_is_refused(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (text TEXT)")
    conn.close()
    with pytest.raises(StoreError, match="already holds other tables"):
        await SqliteStore.open(path, "hub", threaded=False)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA application_id = 42")
    conn.close()
    with pytest.raises(StoreError, match="another application's database"):
        await SqliteStore.open(path, "peer", threaded=False)


async def test_a_file_that_is_not_a_database_is_refused(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not sqlite\n" * 100)
    with pytest.raises(StoreError, match="cannot open hub store"):
        await SqliteStore.open(path, "hub", threaded=False)


async def test_an_unknown_kind_is_refused(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    with pytest.raises(StoreError, match="unknown store kind"):
        await SqliteStore.open(tmp_path / "x.db", "relay", threaded=False)  # type: ignore[arg-type]
    assert not (tmp_path / "x.db").exists()
