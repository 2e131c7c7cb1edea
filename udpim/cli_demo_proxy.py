"""The demo's lossy links: ``netsim proxy`` run as a subprocess between a daemon and the hub.

What it owns: starting ``python -m netsim proxy`` (udpim never imports netsim, it only runs
its command), learning the address it listens on, and stopping it with SIGINT to collect
its exit report (per-direction packet counters and drops, ``--json``).

Rules it keeps:

* The proxy binds ``127.0.0.1:0`` and announces ``netsim proxy: listening on HOST:PORT,
  relaying to ...`` on stderr; that line is the only thing parsed before it runs.
* Stop = SIGINT, then up to ``STOP_TIMEOUT_S`` for its report and exit; a proxy that does
  not start, or does not stop in time, is killed. The process never outlives the
  ``open_lossy_proxy`` block, whatever happens inside it.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import final

import trio

from udpim.cli_options import CommandFailed
from udpim.settings import Address, format_address

__all__ = ["LinkProfile", "LossyProxy", "open_lossy_proxy"]

START_TIMEOUT_S = 15.0
"""Longest wait for the proxy's "listening on" line."""
STOP_TIMEOUT_S = 5.0
"""Longest wait for the proxy to print its report and exit after SIGINT."""
_LISTENING = re.compile(r"listening on (\d+\.\d+\.\d+\.\d+):(\d+)")


@final
@dataclass(frozen=True, slots=True)
class LinkProfile:
    """The impairment each direction of a demo link gets.

    Attributes:
        loss_percent: Bernoulli loss per datagram, percent.
        delay_ms: added one-way delay.
        jitter_ms: the delay varies uniformly within +-jitter.
        seed: the proxy's random seed.
    """

    loss_percent: float
    delay_ms: int = 20
    jitter_ms: int = 5
    seed: int = 0

    def arguments(self) -> list[str]:
        """The ``netsim proxy`` options for this profile."""
        return [
            "--loss",
            f"{self.loss_percent:g}%",
            "--delay",
            f"{self.delay_ms}ms",
            "--jitter",
            f"{self.jitter_ms}ms",
            "--seed",
            str(self.seed),
        ]


@final
@dataclass(slots=True)
class LossyProxy:
    """A running proxy.

    Attributes:
        address: where clients send (the proxy's listening address).
        target: where it relays to.
        report: its exit report (``netsim proxy --json``), once it stopped; else None.
    """

    address: Address
    target: Address
    report: dict[str, object] | None = field(default=None)

    def counters(self, direction: str) -> dict[str, object]:
        """The report's counters of ``direction`` (``"up"`` or ``"down"``), or {}."""
        found = (self.report or {}).get(direction)
        return dict(found) if isinstance(found, dict) else {}


@asynccontextmanager
async def open_lossy_proxy(target: Address, profile: LinkProfile) -> AsyncIterator[LossyProxy]:
    """Run a ``netsim proxy`` relaying to ``target`` for the duration of the block.

    Yields:
        The running proxy; its ``report`` is filled in when the block ends normally.

    Raises:
        CommandFailed: the proxy did not start (its last stderr line says why).
    """
    command = [
        sys.executable,
        "-m",
        "netsim",
        "proxy",
        "--listen",
        "127.0.0.1:0",
        "--to",
        format_address(target),
        *profile.arguments(),
        "--json",
    ]
    process = await trio.lowlevel.open_process(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        proxy = LossyProxy(await _wait_listening(process), target)
        yield proxy
        proxy.report = await _stop(process)
    finally:
        if process.returncode is None:
            process.kill()
            with trio.CancelScope(shield=True):
                await process.wait()


async def _wait_listening(process: trio.Process) -> Address:
    assert process.stderr is not None
    seen = b""
    with trio.move_on_after(START_TIMEOUT_S):
        while b"\n" not in seen or _LISTENING.search(seen.decode(errors="replace")) is None:
            chunk = await process.stderr.receive_some(4096)
            if not chunk:
                break
            seen += chunk
    match = _LISTENING.search(seen.decode(errors="replace"))
    if match is None:
        lines = seen.decode(errors="replace").strip().splitlines()
        why = lines[-1] if lines else f"no answer within {START_TIMEOUT_S:g}s"
        raise CommandFailed(f"the netsim proxy did not start: {why}")
    return match.group(1), int(match.group(2))


async def _stop(process: trio.Process) -> dict[str, object] | None:
    """SIGINT the proxy; its JSON exit report, or None if it gave none in time."""
    assert process.stdout is not None
    process.send_signal(signal.SIGINT)
    output = b""
    with trio.move_on_after(STOP_TIMEOUT_S):
        while chunk := await process.stdout.receive_some(65536):
            output += chunk
        await process.wait()
    try:
        report = json.loads(output)
    except ValueError:
        return None
    return report if isinstance(report, dict) else None
