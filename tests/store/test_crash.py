"""Crash safety: whatever ``wait()`` acknowledged survives a SIGKILL of the process.

A child process (crash_writer.py) stores messages through a threaded hub store from many
concurrent tasks and prints each id once its ``wait()`` returned. The parent kills it with
SIGKILL after a seeded-random number of acknowledgements, so the kill lands while other
batches are executing or committing, then reopens the database and checks every printed id
is there, the seqs are gapless and the file is intact. Several rounds reuse the database.
"""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from tests.store.shortcuts import run
from udpim.im.ops import LoadMailbox
from udpim.store import SqliteStore

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 3
BOUND_S = 30.0


async def acknowledged_before_kill(path: Path, round_number: int, kill_after: int) -> set[str]:
    """Run one child, SIGKILL it after ``kill_after`` acknowledgements; every id it printed."""
    command = [sys.executable, "-m", "tests.store.crash_writer", str(path), str(round_number)]
    process = await trio.lowlevel.open_process(command, cwd=ROOT, stdout=subprocess.PIPE)
    assert process.stdout is not None
    buffer = b""
    try:
        while chunk := await process.stdout.receive_some():
            buffer += chunk
            if buffer.count(b"\n") > kill_after and process.returncode is None:
                process.kill()
    finally:
        process.kill()
        with trio.CancelScope(shield=True):
            await process.wait()
        await process.stdout.aclose()
    assert process.returncode == -signal.SIGKILL
    lines = buffer.decode().splitlines()
    assert lines[0] == "ready"
    return set(lines[1:])


@pytest.mark.slow
async def test_acknowledged_ops_survive_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    rng = random.Random(4)
    acknowledged: set[str] = set()
    with trio.fail_after(BOUND_S):
        for round_number in range(ROUNDS):
            kill_after = rng.randrange(50, 1500)
            printed = await acknowledged_before_kill(path, round_number, kill_after)
            assert len(printed) >= kill_after
            acknowledged |= printed
        async with await SqliteStore.open(path, "hub", threaded=False) as store:
            mailbox = await run(store, LoadMailbox("bob", 0, 1_000_000))
    assert isinstance(mailbox, list)
    stored = [d.id for d in mailbox]
    assert acknowledged <= set(stored)
    assert len(stored) == len(set(stored))
    assert [d.seq for d in mailbox] == list(range(1, len(mailbox) + 1))
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
