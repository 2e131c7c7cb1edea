"""Threaded mode: one writer thread, group commit, per-op savepoints, FIFO, clean shutdown.

These run on the real clock (the writer thread does real disk I/O); every wait is bounded
by ``trio.fail_after`` and no sleep decides a result.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
import trio

from tests.store.shortcuts import mid, run
from udpim.im.ops import (
    AckMailbox,
    LoadMailbox,
    LoadReceipts,
    StoreMessage,
    TouchDevice,
)
from udpim.store import Pending, SqliteStore, StoreError
from udpim.store.writer import THREAD_NAME

BOUND_S = 20.0


def writer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == THREAD_NAME]


def message(n: int, *, sender: str = "alice", sent_at: int = 1) -> StoreMessage:
    return StoreMessage(sender, "a1", mid(n), "bob", f"body {n}", sent_at)


async def test_open_starts_one_writer_and_aclose_joins_it(tmp_path: Path) -> None:
    assert writer_threads() == []
    with trio.fail_after(BOUND_S):
        store = await SqliteStore.open(tmp_path / "hub.db", "hub")
        assert store.threaded
        assert len(writer_threads()) == 1
        assert await run(store, TouchDevice("bob", "b1")) == 0
        await store.aclose()
    assert writer_threads() == []
    with pytest.raises(StoreError, match="store is closed"):
        store.submit(TouchDevice("bob", "b1"))


async def test_concurrent_submitters_share_commits(tmp_path: Path) -> None:
    submitters, per_submitter = 100, 10
    seqs: list[int] = []

    async def submitter(index: int, store: SqliteStore) -> None:
        for k in range(per_submitter):
            result = await run(store, message(index * per_submitter + k))
            assert isinstance(result, tuple)
            seqs.append(result[0])

    with trio.fail_after(BOUND_S):
        async with await SqliteStore.open(tmp_path / "hub.db", "hub") as store:
            async with trio.open_nursery() as nursery:
                for index in range(submitters):
                    nursery.start_soon(submitter, index, store)
            stats = store.statistics()
    assert sorted(seqs) == list(range(1, submitters * per_submitter + 1))
    assert stats.ops == submitters * per_submitter
    assert stats.failed == 0
    assert stats.commits == stats.batches
    assert stats.commits * 5 <= stats.ops, stats
    assert stats.max_batch > 10, stats


async def test_ops_execute_in_submission_order(tmp_path: Path) -> None:
    with trio.fail_after(BOUND_S):
        async with await SqliteStore.open(tmp_path / "hub.db", "hub") as store:
            pendings = [store.submit(message(n)) for n in range(300)]
            results = [await p.wait() for p in pendings]
            stats = store.statistics()
    assert results == [(seq, True) for seq in range(1, 301)]
    assert stats.commits < 30, stats


async def test_a_failing_op_rolls_back_alone_within_its_batch(tmp_path: Path) -> None:
    bad = StoreMessage("alice", "a1", mid(999), "bob", "negative time", -1)
    with trio.fail_after(BOUND_S):
        async with await SqliteStore.open(tmp_path / "hub.db", "hub") as store:
            pendings: list[Pending] = [store.submit(message(n)) for n in range(20)]
            failing = store.submit(bad)
            pendings += [store.submit(message(n)) for n in range(20, 40)]
            results = [await p.wait() for p in pendings]
            with pytest.raises(StoreError, match="StoreMessage failed: CHECK constraint") as caught:
                await failing.wait()
            stats = store.statistics()
            mailbox = await run(store, LoadMailbox("bob", 0, 100))
    assert "\n" not in str(caught.value)
    # The failed op had already bumped the mailbox head inside its savepoint: the seqs of
    # the others stay gapless only because that bump was rolled back with it.
    assert results == [(seq, True) for seq in range(1, 41)]
    assert isinstance(mailbox, list)
    assert [d.id for d in mailbox] == [mid(n) for n in range(40)]
    assert stats.failed == 1
    assert stats.commits < stats.ops, stats


async def test_a_cancelled_waiter_does_not_disturb_the_writer(tmp_path: Path) -> None:
    with trio.fail_after(BOUND_S):
        async with await SqliteStore.open(tmp_path / "hub.db", "hub") as store:
            with trio.CancelScope() as scope:
                scope.cancel()
                await store.submit(message(1)).wait()
            assert scope.cancelled_caught
            async with trio.open_nursery() as nursery:
                for n in range(2, 20):
                    nursery.start_soon(store.submit(message(n)).wait)
                nursery.cancel_scope.cancel()
            assert await run(store, message(20)) == (20, True)
            assert await run(store, message(1)) == (1, False)


async def test_aclose_commits_everything_submitted_before_it(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    with trio.fail_after(BOUND_S):
        store = await SqliteStore.open(path, "hub")
        pendings = [store.submit(message(n)) for n in range(100)]
        with trio.CancelScope() as scope:
            scope.cancel()
            await store.aclose()  # shielded: finishes even when cancelled
        assert writer_threads() == []
        assert [await p.wait() for p in pendings] == [(seq, True) for seq in range(1, 101)]
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 100
    conn.close()


async def test_open_failure_leaves_no_thread(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    path.write_bytes(b"not a database at all\n" * 100)
    with trio.fail_after(BOUND_S), pytest.raises(StoreError, match="cannot open hub store"):
        await SqliteStore.open(path, "hub")
    assert writer_threads() == []


async def test_threaded_and_inline_give_the_same_results(tmp_path: Path) -> None:
    script: list[object] = [
        TouchDevice("bob", "b1"),
        message(1),
        message(2, sender="carol"),
        message(1),
        TouchDevice("bob", "b2"),
        message(3),
        AckMailbox("bob", "b2", 3, 900),
        AckMailbox("bob", "b1", 3, 950),
        AckMailbox("bob", "b9", 3, 990),
        LoadReceipts("alice", "a1"),
        LoadMailbox("bob", 1, 10),
    ]

    async def play(threaded: bool) -> list[object]:
        name = "threaded.db" if threaded else "inline.db"
        outcomes: list[object] = []
        async with await SqliteStore.open(tmp_path / name, "hub", threaded=threaded) as store:
            pendings = [store.submit(op) for op in script]
            for pending in pendings:
                try:
                    outcomes.append(await pending.wait())
                except StoreError as exc:
                    outcomes.append(str(exc))
        return outcomes

    with trio.fail_after(BOUND_S):
        threaded, inline = await play(True), await play(False)
    assert threaded == inline
    assert inline[8] == "AckMailbox failed: unknown device b9 of user bob"


async def test_result_nowait_before_and_after_the_commit(tmp_path: Path) -> None:
    bad = StoreMessage("alice", "a1", mid(999), "bob", "negative time", -1)
    with trio.fail_after(BOUND_S):
        async with await SqliteStore.open(tmp_path / "hub.db", "hub") as store:
            pending = store.submit(message(1))
            failing = store.submit(bad)
            # outcomes come back through the Trio loop, which has not run since
            for waiting in (pending, failing):
                with pytest.raises(trio.WouldBlock):
                    waiting.result_nowait()
            assert await pending.wait() == (1, True)
            assert pending.result_nowait() == (1, True)
            with pytest.raises(StoreError, match="CHECK constraint"):
                await failing.wait()
            with pytest.raises(StoreError, match="CHECK constraint"):
                failing.result_nowait()
