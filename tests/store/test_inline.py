"""Inline mode (``threaded=False``): ops run inside ``submit``, no thread, no virtual time."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import trio

from tests.store.shortcuts import mid, run
from udpim.im.ops import LoadMailbox, StoreMessage, TouchDevice
from udpim.store import SqliteStore, StoreError, StoreStatistics
from udpim.store.writer import THREAD_NAME


def message(n: int) -> StoreMessage:
    return StoreMessage("alice", "a1", mid(n), "bob", f"body {n}", n)


async def test_submit_commits_before_returning(
    autojump_clock: trio.testing.MockClock, hub_store: SqliteStore
) -> None:
    assert not hub_store.threaded
    pending = hub_store.submit(message(1))
    assert hub_store.statistics() == StoreStatistics(
        ops=1, failed=0, batches=1, commits=1, max_batch=1, queued=0
    )
    second = hub_store.submit(message(2))
    assert hub_store.statistics().commits == 2
    assert await second.wait() == (2, True)
    assert await pending.wait() == (1, True)
    assert await pending.wait() == (1, True)  # a pending can be awaited again


async def test_no_thread_and_no_virtual_time(
    autojump_clock: trio.testing.MockClock, hub_store: SqliteStore
) -> None:
    start = trio.current_time()
    for n in range(50):
        await run(hub_store, message(n))
    assert trio.current_time() == start
    assert not [t for t in threading.enumerate() if t.name == THREAD_NAME]


async def test_a_failing_op_raises_from_wait_only(
    autojump_clock: trio.testing.MockClock, hub_store: SqliteStore
) -> None:
    await run(hub_store, message(1))
    bad = hub_store.submit(StoreMessage("alice", "a1", mid(2), "bob", "negative time", -5))
    with pytest.raises(StoreError, match=r"^StoreMessage failed: CHECK constraint failed"):
        bad.result_nowait()  # known at once in inline mode
    with pytest.raises(StoreError, match=r"^StoreMessage failed: CHECK constraint failed"):
        await bad.wait()
    assert hub_store.submit(message(3)).result_nowait() == (2, True)  # no seq was burnt
    assert hub_store.statistics().failed == 1


async def test_a_cancelled_wait_keeps_the_op(
    autojump_clock: trio.testing.MockClock, hub_store: SqliteStore
) -> None:
    with trio.CancelScope() as scope:
        scope.cancel()
        await hub_store.submit(message(1)).wait()
    assert scope.cancelled_caught
    assert await run(hub_store, message(1)) == (1, False)


async def test_closed_store_refuses_ops(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    store = await SqliteStore.open(tmp_path / "hub.db", "hub", threaded=False)
    await run(store, TouchDevice("bob", "b1"))
    await store.aclose()
    await store.aclose()  # idempotent
    with pytest.raises(StoreError, match="store is closed"):
        store.submit(LoadMailbox("bob", 0, 10))
