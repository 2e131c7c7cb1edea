"""``run_batch`` directly: savepoints only when an op fails, the same outcomes either way.

Savepoints cost two statements per op, and every statement hands the GIL between the
writer thread and the Trio thread; a batch therefore runs without them first and falls
back to one savepoint per op only when some op raises.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.store.shortcuts import mid
from udpim.im.ops import LoadMailbox, StoreMessage
from udpim.store.connection import connect
from udpim.store.hubops import execute_hub_op
from udpim.store.transaction import run_batch


def message(n: int, *, sent_at: int = 1) -> StoreMessage:
    return StoreMessage("alice", "a1", mid(n), "bob", f"body {n}", sent_at)


@pytest.fixture
def traced(tmp_path: Path) -> Iterator[tuple[sqlite3.Connection, list[str]]]:
    conn = connect(tmp_path / "hub.db", "hub")
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    yield conn, statements
    conn.close()


def test_a_batch_without_failures_uses_no_savepoints(
    traced: tuple[sqlite3.Connection, list[str]],
) -> None:
    conn, statements = traced
    outcomes, committed = run_batch(conn, execute_hub_op, [message(n) for n in range(5)])
    assert committed
    assert outcomes == [((seq, True), None) for seq in range(1, 6)]
    assert not [s for s in statements if "SAVEPOINT" in s.upper()]
    assert [s for s in statements if s in ("BEGIN IMMEDIATE", "COMMIT")] == [
        "BEGIN IMMEDIATE",
        "COMMIT",
    ]


def test_a_failing_op_reruns_the_batch_with_a_savepoint_per_op(
    traced: tuple[sqlite3.Connection, list[str]],
) -> None:
    conn, statements = traced
    ops = [message(1), message(2), message(99, sent_at=-1), message(3)]
    outcomes, committed = run_batch(conn, execute_hub_op, ops)
    assert committed
    # seqs stay gapless: the failed op's bump of the mailbox head was rolled back with it,
    # and so was everything the first, optimistic run had written
    assert [outcome for outcome, _ in outcomes] == [(1, True), (2, True), None, (3, True)]
    error = outcomes[2][1]
    assert error is not None
    assert error.startswith("StoreMessage failed: CHECK constraint")
    assert statements.count("ROLLBACK") == 1
    assert len([s for s in statements if s == "SAVEPOINT op"]) == len(ops)
    rows, _ = run_batch(conn, execute_hub_op, [LoadMailbox("bob", 0, 10)])
    mailbox = rows[0][0]
    assert isinstance(mailbox, list)
    assert [(d.seq, d.id) for d in mailbox] == [(1, mid(1)), (2, mid(2)), (3, mid(3))]
