"""``tools/bench idle``: memory and heartbeat CPU of one hub process holding many idle sessions.

What it measures (TARGETS.md: 100 000 idle sessions per hub process at <= 2 KB each and
<= 10 % of one core for heartbeats):

* **the hub**: a real hub in its own process (``python -m udpim hub --listen
  127.0.0.1:0 --data DIR``: an open hub, trust on first use), with the default
  ``SessionConfig`` (heartbeat interval 25 s). Linux reports its resident memory
  (``VmRSS``) and its CPU time (user + system, every thread) through ``/proc``.
* **the sessions**: ``idle_clients.ClientFleet`` in this process opens them over
  loopback, each with its own static key, and logs each into the IM layer (``hello``
  as a new user ``idle-N``; up = ``welcome`` received). So one session here is
  everything a hub keeps for an idle logged-in user: the transport session, its
  ``HubSession``, the account (name and key, also written to the hub's database), the
  device, presence, the replay guard's entry. Then nothing but the core's heartbeats:
  each client sends an authenticated PING after 25 s of silence; the hub acknowledges.
* **the schedule** (one hub, sessions added in steps): a *baseline* idle window with
  0 sessions, then for each step (default 10 000, 50 000, 100 000): open sessions up to
  the step, wait until all are welcomed, then an idle window. Windows are whole
  heartbeat intervals, so every idle session sends the same number of heartbeats in
  one whatever its phase: 2 intervals (50 s, ``--window-s``) at the largest step, the
  one the target is about; 1 interval (25 s, ``--step-window-s``) for the baseline and
  the smaller steps, so that the default run stays within 6 minutes (the real hub logs
  in about 550 sessions a second on this machine: 100 000 take 3 minutes).
  Figures per step: hub RSS at the end of the window minus the baseline RSS, per
  session; hub CPU seconds in the window / its wall seconds, as % of one core
  (nothing subtracted; the baseline's own figure is printed beside it).
* **the census**: ``session_census`` measures in this process, with tracemalloc, the
  bytes a hub-side endpoint and its IM core keep per idle welcomed session, split into
  the session layer (``udpim.core``), the IM layer (``udpim.im``) and the rest, and the
  source lines that allocated them, so RSS per session can be split into those and what
  tracemalloc does not see (store, allocator overhead, OpenSSL).

``--repeat N`` runs the whole schedule N times on fresh hubs; figures are medians with
(min..max). Benchmarks are not tests: nothing here asserts a target.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

from tools.benchmarks.command import Section, Subcommand
from tools.benchmarks.distribution import Spread
from tools.benchmarks.hub_process import HubProcess, hub_process
from tools.benchmarks.idle_clients import ClientFleet, FleetCounts
from tools.benchmarks.session_census import Census, census_sessions
from udpim.core.config import SessionConfig

__all__ = ["SUBCOMMAND", "IdleStep", "run"]

TARGET_BYTES_PER_SESSION: Final = 2048
TARGET_CPU_PERCENT: Final = 10.0
HEARTBEAT_INTERVAL_S: Final = SessionConfig().heartbeat_interval_s
DEFAULT_STEPS: Final = (10_000, 50_000, 100_000)
QUICK_STEPS: Final = (2_000,)
QUICK_WINDOW_S: Final = 10.0
LOGIN_TIMEOUT_S: Final = 600.0
"""Give up waiting for a step's logins after this long (reported, not raised)."""
_CLOCK_TICKS_PER_S: Final = os.sysconf("SC_CLK_TCK")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``idle``'s own options."""
    parser.add_argument(
        "--sessions",
        type=_steps,
        default=DEFAULT_STEPS,
        metavar="N,N,...",
        help="session counts measured in turn on one hub (default 10000,50000,100000; "
        "--quick: 2000)",
    )
    parser.add_argument(
        "--window-s",
        type=float,
        default=2 * HEARTBEAT_INTERVAL_S,
        help=f"idle window at the largest step (default {2 * HEARTBEAT_INTERVAL_S:g} s, 2 "
        f"heartbeat intervals; --quick: {QUICK_WINDOW_S:g} s)",
    )
    parser.add_argument(
        "--step-window-s",
        type=float,
        default=HEARTBEAT_INTERVAL_S,
        help=f"idle window of the baseline and the smaller steps (default "
        f"{HEARTBEAT_INTERVAL_S:g} s, 1 heartbeat interval; --quick: {QUICK_WINDOW_S:g} s)",
    )
    parser.add_argument(
        "--census",
        type=int,
        default=2000,
        metavar="N",
        help="sessions in the in-process tracemalloc census (default 2000; 0: none)",
    )


def _steps(text: str) -> tuple[int, ...]:
    try:
        steps = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of integers: {text!r}") from None
    if not steps or any(b <= a for a, b in zip((0, *steps), steps, strict=False)):
        raise argparse.ArgumentTypeError(f"need increasing positive counts, not {text!r}")
    return steps


# --- the hub process ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProcessSample:
    """The hub at one instant: ``time.monotonic()``, resident bytes, CPU seconds so far."""

    at: float
    rss_bytes: int
    cpu_s: float


def sample_process(pid: int) -> ProcessSample:
    """Read ``pid``'s resident memory and CPU time (all threads) from ``/proc``.

    Raises:
        OSError: the process is gone (or this is not Linux).
    """
    at = time.monotonic()
    rss_bytes = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_bytes = int(line.split()[1]) * 1024
            break
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "; state is fields[0]
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return ProcessSample(at, rss_bytes, ticks / _CLOCK_TICKS_PER_S)


# --- one run ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IdleStep:
    """One idle window of one run.

    Attributes:
        sessions: sessions up (welcomed and not closed) at the end of the window.
        login_s: seconds to open and log in this step's new sessions (0 for the baseline).
        rss_bytes: hub RSS at the end of the window.
        cpu_percent: hub CPU time in the window / window wall time, % of one core.
        window_s: the window's wall time.
        heartbeats: datagrams the fleet sent during the window (heartbeats, and acks
            of anything the hub sent).
        client_cpu_percent: the load generator's own CPU in the window, % of one core.
        counts: the fleet's counters at the end of the window.
    """

    sessions: int
    login_s: float
    rss_bytes: int
    cpu_percent: float
    window_s: float
    heartbeats: int
    client_cpu_percent: float
    counts: FleetCounts


def run_once(
    steps: tuple[int, ...], window_s: float, step_window_s: float, seed: int
) -> list[IdleStep]:
    """One hub, a baseline window, then one window per step. Returns baseline first."""
    results: list[IdleStep] = []
    with tempfile.TemporaryDirectory() as tmp, hub_process(Path(tmp) / "hub") as hub:
        fleet = ClientFleet(hub.address, hub.public_key, seed=seed)
        try:
            fleet.run_until(time.monotonic() + 1.0)  # the hub loads its accounts
            results.append(_window(fleet, hub, step_window_s, login_s=0.0))
            for step in steps:
                length_s = window_s if step == steps[-1] else step_window_s
                fleet.target = step
                before, own_cpu_s, up = sample_process(hub.pid), time.process_time(), fleet.sessions
                fleet.run_until(before.at + LOGIN_TIMEOUT_S, until_up=True)
                after, own_cpu_s = sample_process(hub.pid), time.process_time() - own_cpu_s
                login_s = after.at - before.at
                print(
                    f"idle: {fleet.sessions} sessions up in {login_s:.1f} s "
                    f"({(fleet.sessions - up) / login_s:.0f} logins/s; CPU, % of a core: hub "
                    f"{100 * (after.cpu_s - before.cpu_s) / login_s:.0f}, load generator "
                    f"{100 * own_cpu_s / login_s:.0f}); idle window of {length_s:g} s",
                    file=sys.stderr,
                )
                results.append(_window(fleet, hub, length_s, login_s=login_s))
        finally:
            fleet.close()
    return results


def _window(fleet: ClientFleet, hub: HubProcess, window_s: float, *, login_s: float) -> IdleStep:
    sent = fleet.counts.datagrams_sent
    first = sample_process(hub.pid)
    own_cpu_s = time.process_time()
    fleet.run_until(first.at + window_s)
    last = sample_process(hub.pid)
    own_cpu_s = time.process_time() - own_cpu_s
    elapsed = last.at - first.at
    return IdleStep(
        sessions=fleet.sessions,
        login_s=login_s,
        rss_bytes=last.rss_bytes,
        cpu_percent=100 * (last.cpu_s - first.cpu_s) / elapsed,
        window_s=elapsed,
        heartbeats=fleet.counts.datagrams_sent - sent,
        client_cpu_percent=100 * own_cpu_s / elapsed,
        counts=FleetCounts(**asdict(fleet.counts)),
    )


# --- the report -------------------------------------------------------------------------


def run(args: argparse.Namespace) -> Section:
    """Run the schedule ``args.repeat`` times, then the census; report medians."""
    steps = QUICK_STEPS if args.quick and args.sessions == DEFAULT_STEPS else args.sessions
    window_s, step_window_s = args.window_s, args.step_window_s
    if args.quick and window_s == 2 * HEARTBEAT_INTERVAL_S:
        window_s = QUICK_WINDOW_S
    if args.quick and step_window_s == HEARTBEAT_INTERVAL_S:
        step_window_s = QUICK_WINDOW_S
    if not (window_s > 0 and step_window_s > 0):
        raise ValueError("--window-s and --step-window-s must be positive")
    started = time.monotonic()
    runs = [run_once(steps, window_s, step_window_s, args.seed + r) for r in range(args.repeat)]
    census = (
        census_sessions(min(args.census, 2000) if args.quick else args.census)
        if (args.census > 0)
        else None
    )
    wall_s = time.monotonic() - started
    markdown = _markdown(runs, window_s, step_window_s, census, wall_s)
    return Section("idle", markdown, _json(runs, census, wall_s))


def _per_session(runs: list[list[IdleStep]], index: int) -> Spread:
    return Spread.of(
        [(r[index].rss_bytes - r[0].rss_bytes) / max(r[index].sessions, 1) for r in runs]
    )


def _markdown(
    runs: list[list[IdleStep]],
    window_s: float,
    step_window_s: float,
    census: Census | None,
    wall_s: float,
) -> str:
    first = runs[0]
    lines = [
        "### Idle scale: memory and heartbeat CPU of one hub",
        "",
        f"Idle sessions on one hub process (`python -m udpim hub`, open, default "
        f"SessionConfig: heartbeat every {HEARTBEAT_INTERVAL_S:g} s of silence, sent by the "
        f"clients and acknowledged by the hub). A session = a client with its own key, "
        f"handshake done and logged in to the IM layer as a new user (hello -> welcome), "
        f"then idle. Sessions are added in steps on the same hub; each step is measured over "
        f"an idle window after every session is up ({window_s:g} s at the largest step, "
        f"{step_window_s:g} s for the others and the 0-session baseline: whole heartbeat "
        f"intervals, so each idle session sends a heartbeat per interval in them). "
        f"CPU is the hub's user + system time over the window, every thread, nothing "
        f"subtracted. {len(runs)} run(s), "
        f"median (min..max); wall time {wall_s:.0f} s.",
        "",
        "| sessions | login s | hub RSS MiB | RSS growth per session, bytes (target <= "
        f"{TARGET_BYTES_PER_SESSION}) | hub CPU, % of one core (target <= "
        f"{TARGET_CPU_PERCENT:g} at 100 k) | client datagrams in window |",
        "|---|---|---|---|---|---|",
    ]
    for index, step in enumerate(first):
        name = "0 (baseline)" if index == 0 else f"{step.sessions:,}"
        growth = "-" if index == 0 else _per_session(runs, index).format(digits=0)
        lines.append(
            f"| {name} | {Spread.of([r[index].login_s for r in runs]).format()} "
            f"| {Spread.of([r[index].rss_bytes for r in runs]).format(1 / 2**20)} "
            f"| {growth} "
            f"| {Spread.of([r[index].cpu_percent for r in runs]).format(digits=2)} "
            f"| {step.heartbeats:,} |"
        )
    last = first[-1].counts
    lines += [
        "",
        f"Fleet totals (run 1): {last.welcomed:,} welcomed, {last.refused} refused, "
        f"{last.failed} ended before their welcome (replaced), {last.closed} closed after it, "
        f"{last.unreachable} unreachable events, {last.send_errors} send errors. The load "
        f"generator (one process, one thread) used "
        f"{', '.join(f'{step.client_cpu_percent:.0f}' for step in first)} % of a core in "
        f"the windows above.",
    ]
    if census is not None:
        lines += [
            "",
            f"In-process tracemalloc census of a hub-side `Endpoint` and `HubCore` with "
            f"{census.sessions:,} idle welcomed sessions (no driver, no store): "
            f"{census.bytes_per_session:,.0f} bytes and {census.blocks_per_session:.1f} "
            f"allocations per session, of which "
            + ", ".join(f"{layer} {size:,.0f}" for layer, size in census.layer_bytes.items())
            + ". Largest allocation sites, bytes per session:",
            "",
            "| source line | bytes per session |",
            "|---|---|",
            *(f"| `{line}` | {size:,.0f} |" for line, size in census.top_lines),
        ]
    return "\n".join(lines)


def _json(runs: list[list[IdleStep]], census: Census | None, wall_s: float) -> dict[str, object]:
    steps = []
    for index, step in enumerate(runs[0]):
        steps.append(
            {
                "sessions": step.sessions,
                "login_s": Spread.of([r[index].login_s for r in runs]).to_json(),
                "rss_bytes": Spread.of([r[index].rss_bytes for r in runs]).to_json(),
                "rss_growth_bytes_per_session": None
                if index == 0
                else _per_session(runs, index).to_json(),
                "cpu_percent_of_one_core": Spread.of(
                    [r[index].cpu_percent for r in runs]
                ).to_json(),
                "window_s": step.window_s,
                "client_datagrams_in_window": step.heartbeats,
            }
        )
    return {
        "targets": {
            "bytes_per_session": TARGET_BYTES_PER_SESSION,
            "cpu_percent_at_100k": TARGET_CPU_PERCENT,
        },
        "heartbeat_interval_s": HEARTBEAT_INTERVAL_S,
        "steps": steps,
        "census": None if census is None else asdict(census),
        "wall_s": wall_s,
    }


SUBCOMMAND: Final = Subcommand(
    "idle",
    "hub RSS per idle session and hub CPU for heartbeats at 10 k / 50 k / 100 k sessions",
    add_arguments,
    run,
)
