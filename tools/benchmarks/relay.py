"""``tools/bench relay``: messages/s from daemon A through the hub to daemon B, with receipts.

What it measures, in one run (TARGETS.md: relay >= 50 % of the raw Trio UDP echo rate):

* **echo**: the raw Trio UDP ceiling. A server process echoes datagrams of the same size
  as a chat message; this process keeps ``--window`` of them in flight and counts round
  trips per second.
* **relay**: three processes, as a deployment runs them: the hub (``python -m udpim
  hub``), bob's daemon (``python -m udpim daemon``, with its control socket, as a user
  runs it), and this process, which runs alice's daemon (``serve_peer``, no control
  socket) and drives it through its ``PeerHandle`` as a local client would. ``--window``
  sender tasks each send one message of 200 bytes to bob and wait for it, so
  ``--window`` messages are outstanding until ``--messages`` are done. A message counts
  when alice's daemon has bob's delivery receipt on disk (``send(wait="delivered")``
  returned). Every step is durable: alice's outbox, the hub's mailbox, bob's inbox, the
  receipt.

All processes use loopback only. This 2-core machine is shared by the three relay
processes (two for the echo), so the ratio compares what one machine can carry.
Benchmarks are not tests: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import trio

from tools.benchmarks.command import Section, Subcommand, positive_int
from tools.benchmarks.daemon_process import daemon_process
from tools.benchmarks.hub_process import HubProcess, hub_process
from udpim.net.errors import UnknownUser
from udpim.net.peer import PeerConfig, PeerInfo, serve_peer

__all__ = ["SUBCOMMAND", "run"]

MESSAGE_BYTES: Final = 200
_ECHO_SERVER: Final = """
import sys, trio, trio.socket
async def main():
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    while True:
        data, addr = await sock.recvfrom(65536)
        await sock.sendto(data, addr)
trio.run(main)
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``relay``'s own options."""
    parser.add_argument(
        "--messages", type=positive_int, default=3000, help="messages per relay run (3000)"
    )
    parser.add_argument(
        "--window", type=positive_int, default=64, help="outstanding messages / datagrams (64)"
    )


def run(args: argparse.Namespace) -> Section:
    """Measure echo and relay ``args.repeat`` times each; report medians and spread."""
    messages = 500 if args.quick else args.messages
    echoes: list[float] = []
    relays: list[float] = []
    for _ in range(args.repeat):
        echoes.append(trio.run(_echo_rate, 20_000 if args.quick else 100_000, args.window))
        relays.append(trio.run(_relay_rate, messages, args.window))
    ratios = [r / e for r, e in zip(relays, echoes, strict=True)]
    data = {
        "echo_round_trips_per_s": _figure(echoes),
        "relay_messages_per_s": _figure(relays),
        "relay_over_echo": _figure(ratios),
        "messages": messages,
        "window": args.window,
    }
    markdown = "\n".join(
        [
            "### Relay throughput: alice -> hub -> bob, with receipts",
            "",
            f"Relay: {messages:,} messages of {MESSAGE_BYTES} bytes, alice -> hub -> bob, "
            f"{args.window} outstanding, each counted when its delivery receipt is on "
            "alice's disk. Three processes: the hub (`python -m udpim hub`), bob's daemon "
            "(`python -m udpim daemon`), and the benchmark's, which runs alice's daemon "
            "(`serve_peer`) and its senders. Echo: two processes, the same window. "
            f"{args.repeat} run(s), median (min..max).",
            "",
            "| figure | median | min..max |",
            "|---|---|---|",
            _row("raw Trio UDP echo, round trips/s", echoes, "{:,.0f}"),
            _row("relay with receipts, messages/s", relays, "{:,.0f}"),
            _row("relay / echo (target >= 0.50)", ratios, "{:.3f}"),
        ]
    )
    return Section("relay", markdown, data)


SUBCOMMAND: Final = Subcommand(
    "relay",
    "messages/s A -> hub -> B with receipts vs the raw Trio UDP echo rate",
    add_arguments,
    run,
)


def _figure(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _row(name: str, values: list[float], form: str) -> str:
    median = form.format(statistics.median(values))
    spread = f"{form.format(min(values))}..{form.format(max(values))}"
    return f"| {name} | {median} | {spread} |"


# --- echo ----------------------------------------------------------------------------------


@contextlib.contextmanager
def _echo_server() -> Iterator[int]:
    process = subprocess.Popen(
        [sys.executable, "-c", _ECHO_SERVER], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        yield int(process.stdout.readline())
    finally:
        process.kill()
        process.wait()


async def _echo_rate(round_trips: int, window: int) -> float:
    with _echo_server() as port:
        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        await sock.bind(("127.0.0.1", 0))
        payload = bytes(MESSAGE_BYTES)
        target = ("127.0.0.1", port)
        done = 0
        with trio.fail_after(120):
            for _ in range(window):
                await sock.sendto(payload, target)
            started = time.perf_counter()
            while done < round_trips:
                await sock.recvfrom(65536)
                done += 1
                await sock.sendto(payload, target)
            elapsed = time.perf_counter() - started
        sock.close()
    return round_trips / elapsed


# --- relay ---------------------------------------------------------------------------------


async def _relay_rate(messages: int, window: int) -> float:
    with (
        tempfile.TemporaryDirectory() as tmp,
        hub_process(Path(tmp) / "hub", stop_timeout_s=10.0) as hub,
        daemon_process(Path(tmp) / "bob", "bob", hub, stop_timeout_s=10.0),
    ):
        return await _relay_through(hub, Path(tmp), messages, window)
    raise AssertionError("a process context swallowed an exception")


async def _relay_through(hub: HubProcess, root: Path, messages: int, window: int) -> float:
    async with trio.open_nursery() as nursery:
        alice: PeerInfo = await nursery.start(_peer, root / "alice", "alice", hub)
        with trio.fail_after(60):  # bob logged in at the hub and reachable before measuring
            await _send_when_known(alice, "bob")
        body = "x" * MESSAGE_BYTES
        left = messages

        async def sender() -> None:
            # one of ``window`` senders: each keeps one message outstanding at a time
            nonlocal left
            while left > 0:
                left -= 1
                await alice.handle.send("bob", body, wait="delivered")

        started = time.perf_counter()
        with trio.fail_after(600):
            async with trio.open_nursery() as senders:
                for _ in range(min(window, messages)):
                    senders.start_soon(sender)
        elapsed = time.perf_counter() - started
        nursery.cancel_scope.cancel()
    return messages / elapsed


async def _send_when_known(sender: PeerInfo, to: str) -> None:
    """Send a first message, retrying while ``to`` has not logged in yet."""
    while True:
        try:
            await sender.handle.send(to, "hello", wait="delivered")
        except UnknownUser:
            await trio.sleep(0.1)
        else:
            return


async def _peer(
    data: Path, user: str, hub: HubProcess, *, task_status: trio.TaskStatus[PeerInfo]
) -> None:
    config = PeerConfig(data, user, hub.address, hub.public_key, listen=("127.0.0.1", 0))
    await serve_peer(config, control=False, task_status=task_status)
