"""Benchmark of durable messages/s through the hub store (a measurement, never a test).

Measures, in one process and one run, with ``time.perf_counter``:

(a) ``store_cN``: a threaded hub ``SqliteStore`` (WAL, synchronous=FULL, one writer thread
    with group commit) storing ``StoreMessage`` ops with 200-byte bodies, from N = 1, 10
    and 100 concurrent Trio tasks that each submit one op and wait for it to be durable,
    in a loop. The rate is messages whose ``wait()`` returned, per second of wall time;
    "ops/commit" is how many messages shared one fsync on average;
(b) the baseline: plain ``sqlite3`` on a table of the same shape (two unique indexes),
    WAL and synchronous=FULL, inserting 200-byte rows with one commit per row
    (``sqlite_commit_each``) and with 100 rows per transaction (``sqlite_batch_100``).

Every case runs in a fresh database in a temporary directory (``--dir`` picks where: the
figures are the disk's fsync rate as much as this code's). Each figure is the median over
``--repetitions`` rounds with the spread (min..max); the cases run interleaved in every
round, and ``x commit_each`` is the median of per-round ratios to ``sqlite_commit_each``.

Run: ``.venv/bin/python tools/bench_store.py [--json]`` (about 15 s).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import trio

from udpim.im.ops import StoreMessage
from udpim.store import SqliteStore

BODY = "m" * 200
SENT_AT_MS = 1_700_000_000_000
CONCURRENCY = (1, 10, 100)
BATCH_ROWS = 100
CASES = (
    "sqlite_commit_each",
    "sqlite_batch_100",
    *(f"store_c{n}" for n in CONCURRENCY),
)
BASELINE = "sqlite_commit_each"


@dataclass(frozen=True, slots=True)
class Sample:
    """One timed run of one case."""

    messages_per_s: float
    ops_per_commit: float


@dataclass(frozen=True, slots=True)
class Summary:
    """One case over all rounds."""

    case: str
    median: float
    low: float
    high: float
    ratio: float
    ops_per_commit: float


def message_id(submitter: int, count: int) -> str:
    return f"{submitter:08x}{count:016x}"


async def _store_round(path: Path, concurrency: int, messages: int) -> Sample:
    per_task = max(1, messages // concurrency)

    async def submitter(store: SqliteStore, index: int) -> None:
        for count in range(per_task):
            op = StoreMessage("alice", "a1", message_id(index, count), "bob", BODY, SENT_AT_MS)
            await store.submit(op).wait()

    async with await SqliteStore.open(path, "hub") as store:
        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for index in range(concurrency):
                nursery.start_soon(submitter, store, index)
        elapsed_s = time.perf_counter() - started
        stats = store.statistics()
    total = per_task * concurrency
    if stats.ops != total or stats.failed:
        raise RuntimeError(f"store ran {stats.ops} ops ({stats.failed} failed), expected {total}")
    return Sample(total / elapsed_s, stats.ops / max(1, stats.commits))


def store_case(concurrency: int, messages: int) -> Callable[[Path], Sample]:
    def run(directory: Path) -> Sample:
        return trio.run(_store_round, directory / "hub.db", concurrency, messages)

    return run


def _plain_connection(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute(
        "CREATE TABLE messages (recipient TEXT NOT NULL, seq INTEGER NOT NULL, "
        "sender TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL, sent_at INTEGER NOT NULL, "
        "UNIQUE (recipient, seq), UNIQUE (sender, id))"
    )
    return conn


def sqlite_case(rows_per_commit: int, rows: int) -> Callable[[Path], Sample]:
    def run(directory: Path) -> Sample:
        conn = _plain_connection(directory / "plain.db")
        insert = "INSERT INTO messages VALUES ('bob', ?, 'alice', ?, ?, ?)"
        started = time.perf_counter()
        for first in range(0, rows, rows_per_commit):
            conn.execute("BEGIN IMMEDIATE")
            for seq in range(first, min(rows, first + rows_per_commit)):
                conn.execute(insert, (seq + 1, message_id(0, seq), BODY, SENT_AT_MS))
            conn.execute("COMMIT")
        elapsed_s = time.perf_counter() - started
        conn.close()
        return Sample(rows / elapsed_s, float(rows_per_commit))

    return run


def runners(messages: int) -> dict[str, Callable[[Path], Sample]]:
    """Every case; one-at-a-time cases do a fifth of the work (they are the slow ones)."""
    slow = max(10, messages // 5)
    cases: dict[str, Callable[[Path], Sample]] = {
        "sqlite_commit_each": sqlite_case(1, slow),
        "sqlite_batch_100": sqlite_case(BATCH_ROWS, messages),
    }
    for concurrency in CONCURRENCY:
        count = slow if concurrency == 1 else messages
        cases[f"store_c{concurrency}"] = store_case(concurrency, count)
    return cases


def run(repetitions: int, messages: int, directory: Path | None) -> list[Summary]:
    """Run every case ``repetitions`` times, interleaved, after a warm-up round."""
    cases = runners(messages)
    samples: dict[str, list[Sample]] = {case: [] for case in CASES}
    for repetition in range(repetitions + 1):
        for case, runner in cases.items():
            with tempfile.TemporaryDirectory(dir=directory) as scratch:
                sample = runner(Path(scratch))
            if repetition:  # round 0 warms up imports, caches and the disk
                samples[case].append(sample)
    baseline = [s.messages_per_s for s in samples[BASELINE]]
    summaries = []
    for case in CASES:
        rates = [s.messages_per_s for s in samples[case]]
        ratios = [rate / base for rate, base in zip(rates, baseline, strict=True)]
        summaries.append(
            Summary(
                case,
                statistics.median(rates),
                min(rates),
                max(rates),
                statistics.median(ratios),
                statistics.median(s.ops_per_commit for s in samples[case]),
            )
        )
    return summaries


def format_table(summaries: list[Summary]) -> str:
    lines = [
        f"{'case':<20} {'median msg/s':>13} {'min..max msg/s':>20} {'ops/commit':>11} "
        f"{'x commit_each':>14}"
    ]
    for s in summaries:
        spread = f"{s.low:,.0f}..{s.high:,.0f}"
        lines.append(
            f"{s.case:<20} {s.median:>13,.0f} {spread:>20} {s.ops_per_commit:>11.1f} "
            f"{s.ratio:>14.2f}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--repetitions", type=int, default=5, help="rounds (default 5)")
    parser.add_argument(
        "--messages", type=int, default=10_000, help="messages per batched case per round"
    )
    parser.add_argument("--dir", type=Path, default=None, help="where the databases go")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    if args.repetitions < 1 or args.messages < 100:
        parser.error("need --repetitions >= 1 and --messages >= 100")
    summaries = run(args.repetitions, args.messages, args.dir)
    if args.json:
        document = {
            "body_bytes": len(BODY),
            "repetitions": args.repetitions,
            "messages": args.messages,
            "python": sys.version.split()[0],
            "sqlite": sqlite3.sqlite_version,
            "cases": {
                s.case: {
                    "messages_per_s": round(s.median),
                    "min": round(s.low),
                    "max": round(s.high),
                    "ops_per_commit": round(s.ops_per_commit, 1),
                    "ratio_to_commit_each": round(s.ratio, 2),
                }
                for s in summaries
            },
        }
        print(json.dumps(document, indent=2))
    else:
        print(format_table(summaries))
    return 0


if __name__ == "__main__":
    sys.exit(main())
