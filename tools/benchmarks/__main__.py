"""``python -m tools.benchmarks`` (``tools/bench``): the benchmark suite's one entry point.

What it owns: the list of subcommands (``SUBCOMMANDS``; ``all`` runs them in this order),
the command line, and the output: the Markdown report on stdout (machine description
first, the wall time of each subcommand last), progress lines on stderr, and with
``--json PATH`` the same figures as JSON.

``all`` also keeps its results: the report in ``OUT/report.md`` and the JSON in
``OUT/report.json`` (``--out``, default ``out/bench`` in the checkout, which git ignores;
``--json PATH`` moves the JSON), and it redraws the latency CDF plots that
docs/BENCHMARKS.md shows, in ``docs/img`` (with ``--quick``: in ``OUT/img``, so a short
run never replaces them; ``--plot DIR`` chooses).

To add a benchmark, see ``tools.benchmarks.command``: write its module with a
``SUBCOMMAND`` and add it to ``SUBCOMMANDS`` below.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from tools.benchmarks import bulk, core, idle, latency, oneway, relay, simspeed
from tools.benchmarks.command import Section, Subcommand, add_common_options
from tools.benchmarks.machine import describe_machine, machine_markdown

__all__ = ["SUBCOMMANDS", "main"]

SUBCOMMANDS: Final[tuple[Subcommand, ...]] = (
    latency.SUBCOMMAND,
    bulk.SUBCOMMAND,
    oneway.SUBCOMMAND,
    relay.SUBCOMMAND,
    idle.SUBCOMMAND,
    simspeed.SUBCOMMAND,
    core.SUBCOMMAND,
)
"""Every benchmark, in the order ``all`` runs them and the report shows them."""
ROOT: Final = Path(__file__).resolve().parents[2]
ALL_OUT: Final = ROOT / "out" / "bench"
"""Where ``all`` writes report.md and report.json unless ``--out`` says otherwise."""
DOCS_IMG: Final = ROOT / "docs" / "img"
"""The plots docs/BENCHMARKS.md shows; ``all`` redraws them (not with ``--quick``)."""


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The command line, and each subcommand's own parser (for ``all``'s defaults)."""
    parser = argparse.ArgumentParser(
        prog="tools/bench",
        description="udpim's benchmark suite (loopback only). Benchmarks are measurements, "
        "never tests: they print figures beside the targets and the baselines of the same run.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parsers: dict[str, argparse.ArgumentParser] = {}
    for subcommand in SUBCOMMANDS:
        sub = commands.add_parser(subcommand.name, help=subcommand.help)
        add_common_options(sub)
        subcommand.add_arguments(sub)
        sub.set_defaults(chosen=(subcommand,))
        parsers[subcommand.name] = sub
    every = commands.add_parser(
        "all", help="every benchmark above with its defaults: " + ", ".join(parsers)
    )
    add_common_options(every)
    every.add_argument(
        "--out",
        type=Path,
        default=ALL_OUT,
        metavar="DIR",
        help="write report.md and report.json into DIR (default out/bench in the checkout); "
        "plots go to docs/img (DIR/img with --quick) unless --plot says otherwise",
    )
    every.set_defaults(chosen=SUBCOMMANDS)
    return parser, parsers


def _all_outputs(args: argparse.Namespace) -> Path | None:
    """For ``all``: fill in the JSON and plot paths; return where the report goes."""
    if args.command != "all":
        return None
    out: Path = args.out
    if args.json is None:
        args.json = out / "report.json"
    if args.plot is None:
        args.plot = out / "img" if args.quick else DOCS_IMG
    return out / "report.md"


def _arguments_for(
    subcommand: Subcommand, args: argparse.Namespace, parsers: dict[str, argparse.ArgumentParser]
) -> argparse.Namespace:
    """``args`` if the subcommand was named; for ``all``, its defaults plus the common options."""
    if args.command == subcommand.name:
        return args
    own = parsers[subcommand.name].parse_args([])
    for name in ("quick", "repeat", "seed", "plot", "json"):
        setattr(own, name, getattr(args, name))
    return own


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen benchmarks; print the report; write the JSON if asked.

    Returns:
        0, or 2 for a bad option value.
    """
    parser, parsers = build_parser()
    args = parser.parse_args(argv)
    markdown_path = _all_outputs(args)
    machine = describe_machine()
    sections: list[Section] = []
    wall_s: dict[str, float] = {}
    for subcommand in args.chosen:
        started = time.perf_counter()
        try:
            sections.append(subcommand.run(_arguments_for(subcommand, args, parsers)))
        except ValueError as exc:
            parser.error(str(exc))
        wall_s[subcommand.name] = round(time.perf_counter() - started, 1)
        print(f"{subcommand.name}: done in {wall_s[subcommand.name]:.0f} s", file=sys.stderr)
    report = "\n\n".join(
        [
            machine_markdown(machine),
            *(section.markdown for section in sections),
            _wall_markdown(wall_s),
        ]
    )
    print(report)
    if markdown_path is not None:
        markdown_path.parent.mkdir(parents=True, exist_ok=True)
        markdown_path.write_text(report + "\n")
    if args.json is not None:
        document = {
            "machine": machine,
            "command": ["tools/bench", *(argv if argv is not None else sys.argv[1:])],
            "wall_s": wall_s,
            **{section.name: section.data for section in sections},
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    return 0


def _wall_markdown(wall_s: dict[str, float]) -> str:
    """One line: how long each subcommand took (and the total, for several)."""
    parts = [f"{name} {_duration(seconds)}" for name, seconds in wall_s.items()]
    if len(wall_s) > 1:
        parts.append(f"total {_duration(sum(wall_s.values()))}")
    return "Wall time: " + ", ".join(parts) + "."


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


if __name__ == "__main__":
    sys.exit(main())
