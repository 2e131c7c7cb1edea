"""``udpim demo``: a hub and two daemons chatting over lossy links, in one command.

What it runs, all on loopback and in temporary data directories (removed at the end):
a hub (``serve_hub``) and two daemons, alice and bob (``serve_peer``), as Trio tasks in
this process; and for each daemon one ``netsim proxy`` SUBPROCESS between it and the hub
(``cli_demo_proxy``), which drops, delays and jitters every datagram in both directions.
Nothing is simulated on the udpim side: real sockets, real handshakes, real encryption,
real retransmissions, real sqlite stores with fsync.

What it shows: each message arriving (time since start, sender, text, how long after it
was sent), the delivery receipts coming back, then the figures (RTT, packets lost and
retransmitted, the proxies' drop counts) and a summary. It exits 0 only if every message
was delivered exactly once and in order, with a receipt, within ``DEMO_TIMEOUT_S``.

Rules it keeps: udpim does not import netsim (the proxy is a command); every process and
directory it creates is gone when it returns, whatever happened.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, final

import trio

from udpim.cli_demo_output import DemoReporter, print_summary
from udpim.cli_demo_proxy import LinkProfile, LossyProxy, open_lossy_proxy
from udpim.cli_options import CommandFailed, UsageError, open_context
from udpim.im.events import Event, MessageArrived, OutboxChanged, Welcomed
from udpim.im.ops import OutboxState
from udpim.net.hub import HubConfig, serve_hub
from udpim.net.peer import PeerConfig, PeerHandle, PeerInfo, serve_peer
from udpim.settings import format_address

__all__ = ["DemoResult", "add_demo_arguments", "command_demo"]

USERS: Final = ("alice", "bob")
DEFAULT_MESSAGES: Final = 5
DEFAULT_LOSS_PERCENT: Final = 10.0
DEFAULT_SEED: Final = 1
MAX_MESSAGES: Final = 200
DEMO_TIMEOUT_S: Final = 40.0
"""The exchange must be complete this long after the daemons started."""
SEND_INTERVAL_S: Final = 0.15
"""Pause between two messages of one sender (so arrivals interleave visibly)."""
_LOOPBACK_ANY_PORT: Final = ("127.0.0.1", 0)


def add_demo_arguments(demo: argparse.ArgumentParser) -> None:
    """Declare ``--messages``, ``--loss`` and ``--seed``."""
    demo.add_argument(
        "--messages",
        metavar="N",
        default=str(DEFAULT_MESSAGES),
        help=f"messages each user sends (default {DEFAULT_MESSAGES})",
    )
    demo.add_argument(
        "--loss",
        metavar="PCT",
        default=f"{DEFAULT_LOSS_PERCENT:g}",
        help="datagram loss on each link, each direction, in percent "
        f"(default {DEFAULT_LOSS_PERCENT:g})",
    )
    demo.add_argument(
        "--seed",
        metavar="N",
        default=str(DEFAULT_SEED),
        help=f"the proxies' random seed (default {DEFAULT_SEED})",
    )


@final
@dataclass(frozen=True, slots=True)
class DemoPlan:
    """What one demo run does."""

    messages: int
    loss_percent: float
    seed: int

    def link(self, index: int) -> LinkProfile:
        """The impairment of daemon ``index``'s link (each link its own seed)."""
        return LinkProfile(self.loss_percent, seed=self.seed + index)


@final
@dataclass(slots=True)
class DemoResult:
    """What happened, for the summary.

    Attributes:
        inboxes: per user, the texts in its inbox (durable), oldest first.
        receipts: per user, how many of its messages got a delivery receipt.
        latencies_ms: sent -> stored by the recipient, per message (wall clock).
        status: per user, the daemon's status snapshot at the end.
        links: per user, the proxy's exit report (None if it gave none).
        elapsed_s: from start to the end of the exchange.
    """

    inboxes: dict[str, list[str]] = field(default_factory=dict)
    receipts: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[int] = field(default_factory=list)
    status: dict[str, Mapping[str, object]] = field(default_factory=dict)
    links: dict[str, LossyProxy] = field(default_factory=dict)
    elapsed_s: float = 0.0

    def problems(self, plan: DemoPlan) -> list[str]:
        """What went wrong (empty: every message arrived once, in order, with a receipt)."""
        found = []
        for index, user in enumerate(USERS):
            sender = USERS[1 - index]
            expected = [
                message_text(sender, user, n, plan.messages) for n in range(1, plan.messages + 1)
            ]
            got = self.inboxes.get(user, [])
            if got != expected:
                found.append(
                    f"{user} holds {len(got)} of {len(expected)} messages from {sender}"
                    + (" (out of order or duplicated)" if len(got) >= len(expected) else "")
                )
            if self.receipts.get(sender, 0) != plan.messages:
                found.append(
                    f"{sender} got {self.receipts.get(sender, 0)} of "
                    f"{plan.messages} delivery receipts"
                )
        return found

    def latency_figures(self) -> dict[str, float | None]:
        """Median and maximum delivery latency in ms (None without messages)."""
        if not self.latencies_ms:
            return {"median_ms": None, "max_ms": None}
        return {
            "median_ms": statistics.median(self.latencies_ms),
            "max_ms": float(max(self.latencies_ms)),
        }


def message_text(sender: str, to: str, number: int, total: int) -> str:
    """The text of message ``number`` from ``sender`` to ``to``."""
    return f"hi {to}, {sender} here ({number}/{total})"


def command_demo(args: argparse.Namespace) -> int:
    """``udpim demo [--messages N] [--loss PCT] [--seed N]``."""
    context = open_context(args, "user", read_config=False)
    plan = DemoPlan(
        messages=_integer(args.messages, "--messages", 1, MAX_MESSAGES),
        loss_percent=_percent(args.loss),
        seed=_integer(args.seed, "--seed", 0, 2**32 - 1),
    )
    report = DemoReporter(json_output=context.json)
    report.header(plan.messages, plan.loss_percent, plan.seed)
    with tempfile.TemporaryDirectory(prefix="udpim-demo-") as scratch:
        result = trio.run(_run_demo, plan, Path(scratch), report)
    problems = result.problems(plan)
    print_summary(report, plan.messages, result, problems)
    if problems:
        raise CommandFailed("demo failed: " + "; ".join(problems))
    return 0


def _integer(text: str, flag: str, low: int, high: int) -> int:
    if not text.strip().isdigit() or not low <= int(text) <= high:
        raise UsageError(f"bad {flag} {text!r}: expected a whole number {low}..{high}")
    return int(text)


def _percent(text: str) -> float:
    cleaned = text.strip().removesuffix("%")
    try:
        value = float(cleaned)
    except ValueError:
        value = -1.0
    if not 0 <= value < 100:
        raise UsageError(f"bad --loss {text!r}: expected a percentage 0..99, e.g. 10")
    return value


async def _run_demo(plan: DemoPlan, scratch: Path, report: DemoReporter) -> DemoResult:
    """Hub, proxies, daemons, exchange, figures; everything stopped before it returns."""
    result = DemoResult()
    report.start(trio.current_time())
    async with trio.open_nursery() as services:
        hub = await services.start(serve_hub, HubConfig(scratch / "hub", _LOOPBACK_ANY_PORT))
        report.hub(format_address(hub.address), hub.public_key.hex())
        async with (
            open_lossy_proxy(hub.address, plan.link(0)) as link_a,
            open_lossy_proxy(hub.address, plan.link(1)) as link_b,
        ):
            links = dict(zip(USERS, (link_a, link_b), strict=True))
            for index, (user, link) in enumerate(links.items()):
                report.link(user, format_address(link.address), plan.link(index))
            async with trio.open_nursery() as daemons:
                peers: dict[str, PeerInfo] = {}
                for user, link in links.items():
                    config = PeerConfig(
                        scratch / user, user, link.address, hub.public_key, _LOOPBACK_ANY_PORT
                    )
                    peers[user] = await daemons.start(
                        functools.partial(serve_peer, control=False), config
                    )
                    report.daemon(user, peers[user].device, format_address(link.address))
                await _exchange(plan, peers, report, result)
                for user, info in peers.items():
                    result.inboxes[user] = [entry.body for entry in await info.handle.inbox()]
                    result.status[user] = await info.handle.status()
                daemons.cancel_scope.cancel()
        result.links = links
        services.cancel_scope.cancel()
    return result


async def _exchange(
    plan: DemoPlan, peers: dict[str, PeerInfo], report: DemoReporter, result: DemoResult
) -> None:
    """Both users send; wait for every arrival and receipt (or ``DEMO_TIMEOUT_S``)."""
    expected = 2 * plan.messages
    arrived = 0
    complete = trio.Event()
    numbers: dict[str, str] = {}  # message id -> "n/N", for the receipt lines

    def count(event: Event, user: str) -> None:
        nonlocal arrived
        if isinstance(event, MessageArrived):
            arrived += 1
            result.latencies_ms.append(event.received_at - event.sent_at)
        elif isinstance(event, OutboxChanged) and event.state is OutboxState.DELIVERED:
            result.receipts[user] = result.receipts.get(user, 0) + 1
        if arrived == sum(result.receipts.values()) == expected:
            complete.set()

    with trio.move_on_after(DEMO_TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            logged_in = [
                await nursery.start(_watch, user, info.handle, report, count, numbers)
                for user, info in peers.items()
            ]
            for event in logged_in:  # the hub knows a user once it logged in: wait for both
                await event.wait()
            for index, user in enumerate(USERS):
                to = USERS[1 - index]
                nursery.start_soon(_send_all, peers[user].handle, user, to, plan, index, numbers)
            await complete.wait()
            nursery.cancel_scope.cancel()
    result.elapsed_s = report.elapsed_s(trio.current_time())


async def _watch(
    user: str,
    handle: PeerHandle,
    report: DemoReporter,
    count: Callable[[Event, str], None],
    numbers: Mapping[str, str],
    *,
    task_status: trio.TaskStatus[trio.Event] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Report what ``user``'s daemon notices: login, arrivals, receipts.

    Reports (``task_status``) an event that is set once ``user`` logged in to the hub.
    """
    logged_in = trio.Event()
    with handle.subscribe() as events:
        if (await handle.status()).get("welcomed") is True:
            report.welcomed(trio.current_time(), user)
            logged_in.set()
        task_status.started(logged_in)
        async for event in events:
            now = trio.current_time()
            if isinstance(event, Welcomed) and not logged_in.is_set():
                report.welcomed(now, user)
                logged_in.set()
            elif isinstance(event, MessageArrived):
                report.arrived(
                    now, user, event.sender, event.body, event.received_at - event.sent_at
                )
            elif isinstance(event, OutboxChanged) and event.state is OutboxState.DELIVERED:
                report.receipt(now, user, event.to, event.id, numbers.get(event.id, "?"))
            elif isinstance(event, OutboxChanged) and event.state is OutboxState.REJECTED:
                report.rejected(now, user, event.to, numbers.get(event.id, "?"), event.reason)
            count(event, user)


async def _send_all(
    handle: PeerHandle,
    user: str,
    to: str,
    plan: DemoPlan,
    offset: int,
    numbers: dict[str, str],
) -> None:
    """Queue ``plan.messages`` messages, one every ``SEND_INTERVAL_S``."""
    await trio.sleep(offset * SEND_INTERVAL_S / 2)
    for number in range(1, plan.messages + 1):
        queued = await handle.send(to, message_text(user, to, number, plan.messages))
        numbers[queued.id] = f"{number}/{plan.messages}"
        await trio.sleep(SEND_INTERVAL_S)
