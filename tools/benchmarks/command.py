"""The shape of a benchmark subcommand, and what every subcommand returns.

What it owns: ``Subcommand`` (a name, its help, its own options and how to run it),
``Section`` (a subcommand's report: Markdown for people, a JSON-ready dict for tools)
and ``add_common_options`` (``--quick``, ``--repeat``, ``--seed``, ``--plot``,
``--json``, shared by every subcommand and by ``all``).

How to add a benchmark (``tools/bench NAME``):

1. Write ``tools/benchmarks/NAME.py`` with a ``run(args) -> Section`` function and a
   module-level ``SUBCOMMAND = Subcommand("NAME", "one line of help", add_arguments,
   run)``. ``add_arguments`` adds the options only NAME has; every option needs a
   default, because ``all`` runs NAME with its defaults and the common options.
2. Add ``NAME.SUBCOMMAND`` to ``SUBCOMMANDS`` in ``tools/benchmarks/__main__.py``; the
   order there is the order ``all`` runs them and the order of the report.
3. Honour the common options: ``args.quick`` (a short run to iterate with),
   ``args.repeat`` (run each figure N times and report the median with min..max),
   ``args.seed`` and ``args.plot`` (a directory for figures, or None).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Section", "Subcommand", "add_common_options", "positive_int"]


@dataclass(frozen=True, slots=True)
class Section:
    """One subcommand's report.

    Attributes:
        name: the subcommand (the key of its JSON).
        markdown: tables and notes for people (printed, pasted into docs/BENCHMARKS.md).
        data: the same figures, JSON-ready.
    """

    name: str
    markdown: str
    data: Mapping[str, object]


@dataclass(frozen=True, slots=True)
class Subcommand:
    """A benchmark reachable as ``tools/bench NAME`` (see the module docstring).

    Attributes:
        name: the subcommand's name.
        help: one line for ``--help``.
        add_arguments: adds the subcommand's own options (each with a default).
        run: runs the benchmark with the parsed options; returns its report.
    """

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], Section]


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1.

    Raises:
        argparse.ArgumentTypeError: anything else.
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """Add the options every subcommand (and ``all``) takes."""
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a short run to iterate with (fewer messages, shorter caps); not for the docs",
    )
    parser.add_argument(
        "--repeat",
        type=positive_int,
        default=1,
        metavar="N",
        help="run every cell N times; tables show the median and (min..max) (default 1)",
    )
    parser.add_argument(
        "--seed", type=int, default=1, help="root seed; run r of a cell uses seed + r (default 1)"
    )
    parser.add_argument("--plot", type=Path, metavar="DIR", help="write figures (PNG) into DIR")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON")
