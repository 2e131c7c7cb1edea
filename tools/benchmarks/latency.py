"""``tools/bench latency``: delivery latency of small messages under loss, udpim vs raw UDP.

What it measures (issue 6, TARGETS.md): over each cell of the loss grid (0, 2, 10, 30 %
and Gilbert-Elliott bursts, independently in both directions, RTT 50 ms), 2000
messages of 200 bytes at 100 msg/s one way, through netsim's UDP proxy on loopback:

* udpim: a client ``Endpoint`` dials a server ``Endpoint`` through the proxy, each on
  its own trio socket under ``EndpointDriver``; latency is ``send_message`` to
  ``MessageReceived``. p50/p90/p99/max, delivery ratio, in-order delivery, and wire
  bytes (both directions, UDP payload + 28 bytes, at the proxy's input) per payload byte;
* raw UDP, concurrently, through its own proxy for the same cell: the same messages as
  bare datagrams (delivery ratio and latency of what arrives);
* the tail profile of udpim's run, from its decrypted capture (``tail_profile``).

Cells run one after another, each in its own ``trio.run``; a cell takes about 25 s
(``--quick``: 300 messages, about 5 s). ``--repeat N`` reruns every cell with seeds
``seed, seed + 1, ...`` and reports medians with (min..max).
"""

from __future__ import annotations

import argparse
import sys

from tools.benchmarks.cdf_plot import plot_latency_cdfs
from tools.benchmarks.command import Section, Subcommand
from tools.benchmarks.distribution import format_ms
from tools.benchmarks.latency_report import CellResult, latency_json, latency_markdown
from tools.benchmarks.latency_run import LatencyCellRun, run_latency_cell
from tools.benchmarks.link_grid import LOSS_GRID, parse_cells
from tools.benchmarks.session_options import (
    add_session_option,
    session_config,
    session_overrides,
)
from tools.benchmarks.workload import FULL_WORKLOAD, QUICK_WORKLOAD, Workload

__all__ = ["SUBCOMMAND", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The latency benchmark's own options."""
    parser.add_argument(
        "--cells",
        metavar="LIST",
        help="comma-separated cells to run: 0,2,10,30,ge (default: all)",
    )
    parser.add_argument(
        "--messages",
        type=int,
        metavar="N",
        help=f"messages per run (default {FULL_WORKLOAD.messages}; "
        f"{QUICK_WORKLOAD.messages} with --quick)",
    )
    add_session_option(parser)


def _progress(run: LatencyCellRun, index: int, total: int) -> None:
    u, raw = run.udpim, run.raw
    print(
        f"latency {run.cell.label:>22} run {index}/{total} seed {run.seed}: udpim p50 "
        f"{format_ms(u.latency.p50)} p99 {format_ms(u.latency.p99)} ms, delivered "
        f"{u.delivery_ratio:.1%}, wire {u.wire_ratio:.2f}; raw p99 "
        f"{format_ms(raw.latency.p99)} ms, delivered {raw.delivery_ratio:.1%}",
        file=sys.stderr,
        flush=True,
    )


def run(args: argparse.Namespace) -> Section:
    """Run the latency grid (see the module docstring).

    Raises:
        ValueError: a bad ``--cells`` or ``--session`` value.
    """
    cells = parse_cells(args.cells, tuple(cell.name for cell in LOSS_GRID))
    base = QUICK_WORKLOAD if args.quick else FULL_WORKLOAD
    workload = Workload(args.messages or base.messages, base.payload_bytes, base.rate_per_s)
    config = session_config(args.session)
    results = []
    for cell in cells:
        runs = []
        for repetition in range(args.repeat):
            cell_run = run_latency_cell(cell, args.seed + repetition, workload, config)
            _progress(cell_run, repetition + 1, args.repeat)
            runs.append(cell_run)
        results.append(CellResult(cell, tuple(runs)))
    markdown = latency_markdown(results)
    overrides = session_overrides(args.session)
    if overrides:
        markdown += "\n\nudpim session overrides: " + ", ".join(
            f"{key}={value}" for key, value in overrides.items()
        )
    data: dict[str, object] = {
        "workload": {
            "messages": workload.messages,
            "payload_bytes": workload.payload_bytes,
            "rate_per_s": workload.rate_per_s,
        },
        "repeat": args.repeat,
        "session_overrides": overrides,
        **latency_json(results),
    }
    if args.plot is not None:
        written = plot_latency_cdfs(results, args.plot)
        data["plots"] = [str(path) for path in written]
        markdown += "\n\nCDF plots: " + ", ".join(str(path) for path in written)
    return Section("latency", markdown, data)


SUBCOMMAND = Subcommand(
    name="latency",
    help="latency of 200-byte messages under loss: udpim vs raw UDP, with a tail profile",
    add_arguments=add_arguments,
    run=run,
)
