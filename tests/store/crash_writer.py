"""Child process of the crash test: store messages forever, print each acknowledged id.

Run as ``python -m tests.store.crash_writer DB ROUND``. It opens a threaded hub store at
``DB`` and runs ``SUBMITTERS`` concurrent tasks that each store messages in a loop; right
after an op's ``wait()`` returns, the message id is printed (and flushed). The parent kills
this process with SIGKILL at a moment of its choosing and checks that every printed id is
in the database: "acknowledged" must mean "on disk".
"""

from __future__ import annotations

import sys
from pathlib import Path

import trio

from udpim.im.ops import StoreMessage
from udpim.store import SqliteStore

SUBMITTERS = 20


def message_id(round_number: int, submitter: int, count: int) -> str:
    """A 24-hex-char id unique per (round, submitter, count)."""
    return f"{round_number:04x}{submitter:04x}{count:016x}"


async def submit_forever(store: SqliteStore, round_number: int, submitter: int) -> None:
    count = 0
    while True:
        id_ = message_id(round_number, submitter, count)
        op = StoreMessage("alice", "a1", id_, "bob", "x" * 200, 1_700_000_000_000)
        await store.submit(op).wait()
        print(id_, flush=True)
        count += 1


async def main(path: Path, round_number: int) -> None:
    async with await SqliteStore.open(path, "hub") as store, trio.open_nursery() as nursery:
        print("ready", flush=True)
        for submitter in range(SUBMITTERS):
            nursery.start_soon(submit_forever, store, round_number, submitter)


if __name__ == "__main__":
    trio.run(main, Path(sys.argv[1]), int(sys.argv[2]))
