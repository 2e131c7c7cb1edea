"""The ``netsim`` command: run, replay and report simulations; run the real UDP proxy.

What it owns: argument parsing, the text/JSON output of each subcommand and exit codes. Every
subcommand is one small function; the work is done by `netsim.runner`, `netsim.report`,
`netsim.plot` and `netsim.proxy_cli`.

Rules it keeps:

* ``main(argv=None) -> int`` never raises: a bad command line or input file prints ONE line on
  stderr and returns 2; a run that fails (the app raised, a replay diverged, a plot could not be
  drawn) returns 1. ``--debug`` adds the traceback.
* Nothing here changes a simulation: wall-clock timing and progress are observation only.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

import netsim
from netsim.app import AppSpecError
from netsim.mahimahi import MahimahiTrace, bundled_traces
from netsim.plot import PlotUnavailable, plot_trace
from netsim.progress import ProgressDisplay
from netsim.proxy_cli import add_proxy_arguments, run_proxy_command
from netsim.report import render_json, render_text, summarize
from netsim.runner import AppFailedError, replay_trace, run_scenario
from netsim.scenario import ScenarioError, bundled_scenarios, load_scenario
from netsim.trace import TraceError, read_events, read_header, trace_hash
from netsim.units import format_duration, format_rate, parse_duration

EXAMPLES = """\
examples:
  netsim run lossy-ping                         bundled scenario, its default app
  netsim run my.toml --app mypkg.apps:MyApp --seed 7 --record run.trace.gz
  netsim run ten-hosts --duration 10min --json
  netsim replay run.trace.gz                    re-run and verify the trace hash
  netsim report run.trace.gz --plot run.png     figures + time-sequence/latency plots
  netsim proxy --listen 127.0.0.1:9000 --to 127.0.0.1:9001 --loss 2% --delay 25ms
  netsim scenarios | netsim traces              list bundled scenarios / link traces
"""


class UsageError(Exception):
    """A bad command-line value (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump) and no ``sys.exit`` surprises."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (try --help)", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    """The full ``netsim`` argument parser."""
    parser = _Parser(
        prog="netsim",
        description="Deterministic UDP network simulator for Trio; real UDP impairment proxy.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"netsim {netsim.__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    debug = _Parser(add_help=False)
    debug.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, summary, description, declare, handler in _commands():
        sub = commands.add_parser(
            name,
            parents=[debug],
            help=summary,
            description=description,
            epilog=EXAMPLES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        declare(sub)
        sub.set_defaults(handler=handler)
    return parser


Declare = Callable[[argparse.ArgumentParser], None]
Handler = Callable[[argparse.Namespace], int]


def _commands() -> list[tuple[str, str, str, Declare, Handler]]:
    """(name, help, description, declare arguments, handler) of every subcommand."""
    return [
        ("run", "run a scenario under virtual time",
         "Run a scenario with an app under virtual time; print the report.",
         _run_arguments, command_run),
        ("replay", "re-run a trace and verify it",
         "Re-run the scenario, seed and app recorded in a trace; exit 0 if the same trace "
         "comes out, 1 at the first divergence.",
         _trace_arguments, command_replay),
        ("report", "figures of a recorded trace",
         "Per-flow packets, loss, drops and delay; app messages, delivery, latency and "
         "retransmissions; optional plots.",
         _report_arguments, command_report),
        ("proxy", "real UDP impairment proxy",
         "Relay real UDP datagrams between clients and one server through netsim's "
         "impairment models.",
         add_proxy_arguments, run_proxy_command),
        ("scenarios", "list bundled scenarios", "List the bundled scenarios.",
         _no_arguments, command_scenarios),
        ("traces", "list bundled link traces", "List the bundled Mahimahi link traces.",
         _no_arguments, command_traces),
    ]  # fmt: skip


def _run_arguments(run: argparse.ArgumentParser) -> None:
    run.add_argument(
        "scenario", metavar="SCENARIO", help="scenario file, or a bundled name (netsim scenarios)"
    )
    run.add_argument(
        "--app", metavar="MODULE:FACTORY", help="app factory (default: the scenario's app key)"
    )
    run.add_argument("--seed", metavar="N", help="override the scenario's seed")
    run.add_argument("--duration", metavar="D", help="override the duration, e.g. 30s or 10min")
    run.add_argument("--record", metavar="TRACE", help="write the trace there (.gz: compressed)")
    run.add_argument("--json", action="store_true", help="print the report as one JSON object")
    run.add_argument("--no-progress", action="store_true", help="no progress display on stderr")


def _trace_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("trace", metavar="TRACE", help="a trace written by netsim run --record")
    parser.add_argument("--json", action="store_true", help="print the outcome as JSON")


def _report_arguments(report: argparse.ArgumentParser) -> None:
    _trace_arguments(report)
    report.add_argument("--plot", metavar="PNG", help="also draw time-sequence and latency plots")


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    """Listing commands take no arguments."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``netsim`` command line; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version or a usage error already printed
        return exc.code if isinstance(exc.code, int) else 2
    handler: Handler = args.handler
    try:
        return handler(args)
    except (UsageError, ScenarioError, AppSpecError, TraceError, OSError, ValueError) as exc:
        return _fail(args, exc, 2)
    except (AppFailedError, PlotUnavailable) as exc:
        return _fail(args, exc, 1)
    except Exception as exc:  # a bug: still one line, the traceback with --debug
        return _fail(
            args,
            RuntimeError(
                f"internal error: {type(exc).__name__}: {exc} (--debug shows the traceback)"
            ),
            1,
            exc,
        )
    except KeyboardInterrupt:
        print("netsim: interrupted", file=sys.stderr)
        return 130


def command_run(args: argparse.Namespace) -> int:
    """``netsim run``: run a scenario, print its report (text or JSON)."""
    scenario = load_scenario(args.scenario)
    seed = _seed(args.seed)
    if args.duration is not None:
        scenario = scenario.with_overrides(duration_s=_duration(args.duration))
    started = time.perf_counter()
    display = ProgressDisplay(scenario.name, scenario.duration_s)
    if args.no_progress:
        result = run_scenario(scenario, args.app, seed=seed, record_path=args.record)
    else:
        with display:
            result = run_scenario(
                scenario, args.app, seed=seed, record_path=args.record, progress=display.update
            )
    wall_s = time.perf_counter() - started
    summary = result.summary()
    speed = result.end_s / wall_s if wall_s > 0 else float("inf")
    facts = {
        "scenario": result.scenario.name,
        "seed": result.seed,
        "app": result.app,
        "trace_hash": result.trace_hash,
        "virtual_s": result.end_s,
        "wall_s": round(wall_s, 3),
        "speed": round(speed, 1),
        "record": str(result.record_path) if result.record_path else None,
    }
    if args.json:
        print(render_json(summary, facts))
        return 0
    title = (
        f"scenario {result.scenario.name} (seed {result.seed}, app {result.app})\n"
        f"trace hash {result.trace_hash}"
    )
    print(render_text(summary, title))
    print(
        f"\nsimulated {format_duration(result.end_s)} in {wall_s:.2f}s wall "
        f"({speed:,.0f}x real time)" + (f"; trace written to {args.record}" if args.record else "")
    )
    return 0


def command_replay(args: argparse.Namespace) -> int:
    """``netsim replay``: re-run a recorded trace; 0 if identical, 1 at a divergence."""
    result = replay_trace(args.trace)
    if args.json:
        divergence = result.divergence
        print(
            json.dumps(
                {
                    "ok": result.ok,
                    "scenario": result.scenario,
                    "seed": result.seed,
                    "app": result.app,
                    "expected_hash": result.expected_hash,
                    "actual_hash": result.actual_hash,
                    "divergence": None
                    if divergence is None
                    else {
                        "index": divergence.index,
                        "expected": divergence.expected,
                        "actual": divergence.actual,
                    },
                }
            )
        )
    elif result.ok:
        print(
            f"replay OK: scenario {result.scenario}, seed {result.seed}, app {result.app}, "
            f"trace hash {result.actual_hash}"
        )
    else:
        print(f"replay FAILED: scenario {result.scenario}, seed {result.seed}, app {result.app}")
        if result.recorded_version != netsim.__version__:
            print(
                f"  recorded with netsim {result.recorded_version}, replayed with "
                f"{netsim.__version__}"
            )
        if result.divergence is not None:
            print("  " + result.divergence.describe().replace("\n", "\n  "))
        print(f"  expected hash {result.expected_hash}\n  actual hash   {result.actual_hash}")
    return 0 if result.ok else 1


def command_report(args: argparse.Namespace) -> int:
    """``netsim report``: figures of a trace (text or JSON), optionally plots."""
    header = read_header(args.trace)
    events = list(read_events(args.trace))
    summary = summarize(events)
    meta = header.metadata
    scenario = meta.get("scenario")
    name = scenario.get("name") if isinstance(scenario, dict) else None
    facts = {
        "trace": args.trace,
        "scenario": name,
        "seed": header.seed,
        "app": meta.get("app"),
        "trace_hash": trace_hash(args.trace),
    }
    if args.plot:
        plot_trace(events, Path(args.plot), title=f"{name or args.trace} (seed {header.seed})")
    if args.json:
        print(render_json(summary, {**facts, "plot": args.plot}))
        return 0
    title = (
        f"trace {args.trace}: scenario {name}, seed {header.seed}, app {meta.get('app')}\n"
        f"trace hash {facts['trace_hash']}"
    )
    print(render_text(summary, title))
    if args.plot:
        print(f"\nplots written to {args.plot}")
    return 0


def command_scenarios(args: argparse.Namespace) -> int:
    """``netsim scenarios``: bundled scenarios with their descriptions."""
    for name in bundled_scenarios():
        scenario = load_scenario(name)
        print(f"{name:<18} {format_duration(scenario.duration_s):>6}  {scenario.description}")
    return 0


def command_traces(args: argparse.Namespace) -> int:
    """``netsim traces``: bundled Mahimahi link traces with their mean rate and period."""
    for name in bundled_traces():
        trace = MahimahiTrace.load(name)
        print(
            f"{name:<28} mean {format_rate(trace.mean_rate_bps()):>10}, "
            f"repeats every {format_duration(trace.period_ms / 1000)}"
        )
    return 0


def _seed(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        seed = int(value)
    except ValueError:
        seed = -1
    if seed < 0:
        raise UsageError(f"bad --seed {value!r}: expected a non-negative integer")
    return seed


def _duration(value: str) -> float:
    try:
        duration_s = parse_duration(value)
    except ValueError as exc:
        raise UsageError(f"bad --duration: {exc}") from None
    if duration_s <= 0:
        raise UsageError(f"bad --duration {value!r}: must be more than 0s")
    return duration_s


def _fail(
    args: argparse.Namespace, exc: BaseException, code: int, original: BaseException | None = None
) -> int:
    if getattr(args, "debug", False):
        traceback.print_exception(original or exc.__cause__ or exc)
    message = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and exc.filename is not None:
        message = f"{exc.filename}: {exc.strerror}"
    trace = getattr(args, "trace", None)
    if isinstance(exc, TraceError) and trace is not None and not message.startswith(trace):
        message = f"{trace}: {message}"
    print(f"netsim {args.command}: error: {message}", file=sys.stderr)
    return code
