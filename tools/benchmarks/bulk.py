"""``tools/bench bulk``: seconds to deliver one 1 MiB message under loss.

What it measures (issue 6, TARGETS.md): a udpim pair (see ``udpim_pair``) over each
cell of the bulk grid (0, 2, 10 and 30 % loss in both directions, RTT 50 ms, no rate
limit) sends one message of 1 MiB; the figure is the time from ``send_message`` to
``MessageReceived`` on the other side, the handshake excluded. A run that takes longer
than the cap (``--cap-s``, default 60 s; 20 s with ``--quick``) is reported as "did not
finish". Also reported: wire bytes (both directions, UDP payload + 28 bytes, at the
proxy's input) per payload byte, and the sender's packets sent, declared lost and
probes. ``--repeat N`` reruns every cell with seeds ``seed, seed + 1, ...``.

Rules it keeps: cells run one after another, each run in its own ``trio.run``; an
unfinished run counts as infinite time in the median (so the median says "inf" when
most runs did not finish).
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from typing import Final

import trio

from tools.benchmarks.command import Section, Subcommand
from tools.benchmarks.distribution import Spread
from tools.benchmarks.impaired_link import WireCount
from tools.benchmarks.link_grid import BULK_CELLS, LinkCell, parse_cells
from tools.benchmarks.session_options import (
    add_session_option,
    session_config,
    session_overrides,
)
from tools.benchmarks.targets import BULK_ALTERNATIVE_NAMES, BULK_ALTERNATIVES, BULK_TARGETS_S
from tools.benchmarks.udpim_pair import open_udpim_pair
from udpim.core.config import MAX_MESSAGE_BYTES, SessionConfig
from udpim.core.statistics import SessionStatistics

__all__ = ["MESSAGE_BYTES", "SUBCOMMAND", "BulkRun", "run", "run_bulk_cell"]

MESSAGE_BYTES: Final = MAX_MESSAGE_BYTES
"""1 MiB, the largest message udpim carries."""
CAP_S: Final = 60.0
QUICK_CAP_S: Final = 20.0


@dataclass(frozen=True, slots=True)
class BulkRun:
    """One bulk transfer.

    Attributes:
        cell: the link.
        seed: the run's seed.
        seconds: ``send_message`` to ``MessageReceived``; None if it did not finish.
        wire: datagrams and wire bytes during the transfer, both directions.
        sender: the sending session's statistics at the end.
    """

    cell: LinkCell
    seed: int
    seconds: float | None
    wire: WireCount
    sender: SessionStatistics

    @property
    def wire_ratio(self) -> float:
        """Wire bytes per payload byte."""
        return self.wire.wire_bytes / MESSAGE_BYTES


def run_bulk_cell(cell: LinkCell, seed: int, cap_s: float, config: SessionConfig) -> BulkRun:
    """Send one 1 MiB message over ``cell`` once (its own ``trio.run``).

    Args:
        cell: the link.
        seed: root of the run's random choices.
        cap_s: give up after this long.
        config: udpim's session tunables.
    """
    return trio.run(_run_bulk, cell, seed, cap_s, config)


async def _run_bulk(cell: LinkCell, seed: int, cap_s: float, config: SessionConfig) -> BulkRun:
    payload = bytes(MESSAGE_BYTES)
    async with open_udpim_pair(cell, seed, config) as pair:
        wire_before = pair.wire()
        started = pair.send(payload)
        events = pair.events
        done = await events.wait_for(lambda: bool(events.received), started + cap_s)
        seconds = events.received[0].at - started if done else None
        return BulkRun(cell, seed, seconds, pair.wire() - wire_before, pair.session.statistics())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The bulk benchmark's own options."""
    parser.add_argument(
        "--cells", metavar="LIST", help="comma-separated cells: 0,2,10,30,ge (default 0,2,10,30)"
    )
    parser.add_argument(
        "--cap-s",
        type=float,
        metavar="S",
        help=f"give up a transfer after S seconds (default {CAP_S:g}; {QUICK_CAP_S:g} "
        "with --quick)",
    )
    add_session_option(parser)


def _seconds(runs: list[BulkRun]) -> Spread:
    return Spread.of([math.inf if r.seconds is None else r.seconds for r in runs])


def _markdown(results: list[list[BulkRun]], cap_s: float) -> str:
    runs = len(results[0]) if results else 0
    lines = [
        "### Bulk: one 1 MiB message, seconds from send_message to MessageReceived",
        "",
        f"RTT 50 ms, loss in both directions, no rate limit; cap {cap_s:g} s "
        f"(inf = did not finish); {runs} run(s) per cell"
        + (", median (min..max)" if runs > 1 else "")
        + ".",
        "",
        "| loss | udpim s | wire/payload | packets sent / declared lost / probes "
        f"| {' | '.join(BULK_ALTERNATIVE_NAMES)} | target | met |",
        "|---|---|---|---|" + "---|" * len(BULK_ALTERNATIVE_NAMES) + "---|---|",
    ]
    for cell_runs in results:
        cell = cell_runs[0].cell
        seconds = _seconds(cell_runs)
        wire = Spread.of([r.wire_ratio for r in cell_runs])
        middle = sorted(cell_runs, key=lambda r: math.inf if r.seconds is None else r.seconds)
        s = middle[(len(middle) - 1) // 2].sender
        target = BULK_TARGETS_S.get(cell.name)
        target_text = "" if target is None else target[1]
        met = "" if target is None else ("yes" if seconds.median <= target[0] else "no")
        alternatives = BULK_ALTERNATIVES.get(cell.name, ("",) * len(BULK_ALTERNATIVE_NAMES))
        lines.append(
            f"| {cell.label} | **{seconds.format(digits=2)}** | {wire.format(digits=2)} "
            f"| {s.packets_sent} / {s.packets_lost} / {s.probes_sent} "
            f"| {' | '.join(alternatives)} | {target_text} | {met} |"
        )
    return "\n".join(lines)


def _json(results: list[list[BulkRun]], cap_s: float) -> dict[str, object]:
    cells: dict[str, object] = {}
    for cell_runs in results:
        cell = cell_runs[0].cell
        target = BULK_TARGETS_S.get(cell.name)
        cells[cell.name] = {
            "label": cell.label,
            "seconds": _seconds(cell_runs).to_json(),
            "seconds_per_run": [r.seconds for r in cell_runs],
            "seeds": [r.seed for r in cell_runs],
            "wire_ratio": Spread.of([r.wire_ratio for r in cell_runs]).to_json(),
            "packets_sent": [r.sender.packets_sent for r in cell_runs],
            "packets_lost": [r.sender.packets_lost for r in cell_runs],
            "probes_sent": [r.sender.probes_sent for r in cell_runs],
            "target_s": None if target is None else target[0],
            "target_met": None if target is None else _seconds(cell_runs).median <= target[0],
        }
    return {"message_bytes": MESSAGE_BYTES, "cap_s": cap_s, "cells": cells}


def run(args: argparse.Namespace) -> Section:
    """Run the bulk grid (see the module docstring).

    Raises:
        ValueError: a bad ``--cells`` or ``--session`` value.
    """
    cells = parse_cells(args.cells, BULK_CELLS)
    cap_s = args.cap_s or (QUICK_CAP_S if args.quick else CAP_S)
    config = session_config(args.session)
    results: list[list[BulkRun]] = []
    for cell in cells:
        cell_runs = []
        for repetition in range(args.repeat):
            result = run_bulk_cell(cell, args.seed + repetition, cap_s, config)
            seconds = "did not finish" if result.seconds is None else f"{result.seconds:.2f} s"
            print(
                f"bulk {cell.label:>6} run {repetition + 1}/{args.repeat} seed {result.seed}: "
                f"{seconds}, wire {result.wire_ratio:.2f}, lost {result.sender.packets_lost} "
                f"of {result.sender.packets_sent}",
                file=sys.stderr,
                flush=True,
            )
            cell_runs.append(result)
        results.append(cell_runs)
    markdown = _markdown(results, cap_s)
    overrides = session_overrides(args.session)
    if overrides:
        markdown += "\n\nudpim session overrides: " + ", ".join(
            f"{key}={value}" for key, value in overrides.items()
        )
    data = {"repeat": args.repeat, "session_overrides": overrides, **_json(results, cap_s)}
    return Section("bulk", markdown, data)


SUBCOMMAND = Subcommand(
    name="bulk",
    help="seconds to deliver one 1 MiB message under loss",
    add_arguments=add_arguments,
    run=run,
)
