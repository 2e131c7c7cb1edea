"""``python -m tools.benchmarks`` (``tools/bench``): the benchmark suite's one entry point.

What it owns: the list of subcommands (``SUBCOMMANDS``; ``all`` runs them in this order),
the command line, and the output: the Markdown report on stdout (machine description
first), progress lines on stderr, and with ``--json PATH`` the same figures as JSON.

To add a benchmark, see ``tools.benchmarks.command``: write its module with a
``SUBCOMMAND`` and add it to ``SUBCOMMANDS`` below.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Final

from tools.benchmarks import bulk, latency, relay
from tools.benchmarks.command import Section, Subcommand, add_common_options
from tools.benchmarks.machine import describe_machine, machine_markdown

__all__ = ["SUBCOMMANDS", "main"]

SUBCOMMANDS: Final[tuple[Subcommand, ...]] = (
    latency.SUBCOMMAND,
    bulk.SUBCOMMAND,
    relay.SUBCOMMAND,
)
"""Every benchmark, in the order ``all`` runs them and the report shows them."""


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
    every.set_defaults(chosen=SUBCOMMANDS)
    return parser, parsers


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
    machine = describe_machine()
    sections: list[Section] = []
    for subcommand in args.chosen:
        try:
            sections.append(subcommand.run(_arguments_for(subcommand, args, parsers)))
        except ValueError as exc:
            parser.error(str(exc))
    report = "\n\n".join([machine_markdown(machine), *(section.markdown for section in sections)])
    print(report)
    if args.json is not None:
        document = {
            "machine": machine,
            "command": ["tools/bench", *(argv if argv is not None else sys.argv[1:])],
            **{section.name: section.data for section in sections},
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
