"""``tools/bench oneway``: the maximum one-way message rate on loopback, udpim vs raw Trio UDP.

What it measures (TARGETS.md: 100 000 messages of 200 bytes one way, delivered
messages/s; target >= 40 k with encryption on), in one run:

* **udpim**: this process dials a receiver process (``oneway_receiver udpim``); both
  are an ``Endpoint`` under ``udpim.net.udp.EndpointDriver`` on a real trio UDP socket
  on 127.0.0.1, default ``SessionConfig`` (encrypted, congestion-controlled). After the
  handshake, this process sends ``--messages`` messages of 200 bytes as fast as flow
  control lets it. The rate is messages / (first ``send_message`` to the receiver's
  last ``MessageReceived``).
* **raw Trio UDP**: the same count and size as bare datagrams, one ``await
  sock.sendto`` each, to a receiver process (``oneway_receiver raw``) that reads them
  with ``await sock.recvfrom``. Nothing is acknowledged or repeated: what the socket
  buffer cannot hold is lost, so the figure is datagrams received / (first send to
  last arrival), with the share delivered beside it.

Why the receiver is another process: a one-way rate is set by the slower end, and each
end is one Python thread. In one process the sender and the receiver would share one
core and the figure would be their sum of costs; on this 2-core machine two processes
give each end its own core, as the alternatives' figures in TARGETS.md (TCP, aioquic,
KCP, ENet: separate sender and receiver) assume. The baseline gets the same layout.
Both ends read ``time.monotonic()`` (Linux ``CLOCK_MONOTONIC``, shared by processes).

How the sender respects flow control: ``send_message`` never refuses a message (the
session queues it), so the sender keeps at most ``--ahead`` messages queued or
unacknowledged (default: the receiver's initial flow-control credit,
``INITIAL_MAX_DATA_BYTES``, in 200-byte messages) and tops up as ``MessageDelivered``
events arrive. The core itself never sends beyond the peer's window or congestion
window; the limit only keeps the send buffer bounded, as an application should.

``--repeat N`` alternates raw and udpim runs N times (seeds ``seed + r``) and reports
medians with (min..max); the ratio is per run. About 15 s a run pair (``--quick``:
20 000 messages). Benchmarks are not tests: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import trio

from tools.benchmarks.capture import LOOPBACK, bind_loopback_udp
from tools.benchmarks.command import Section, Subcommand, positive_int
from tools.benchmarks.distribution import Spread
from tools.benchmarks.oneway_receiver import Reception
from tools.benchmarks.targets import ONEWAY_ALTERNATIVES as ALTERNATIVES
from tools.benchmarks.targets import ONEWAY_TARGET_PER_S
from tools.benchmarks.udpim_pair import PairEvents
from udpim.core.config import INITIAL_MAX_DATA_BYTES, EndpointConfig
from udpim.core.crypto import StaticKey
from udpim.core.endpoint import Endpoint
from udpim.core.session import Session
from udpim.net.udp import EndpointDriver

__all__ = ["SUBCOMMAND", "OnewayRun", "run"]

MESSAGE_BYTES: Final = 200
MESSAGES: Final = 100_000
QUICK_MESSAGES: Final = 20_000
AHEAD: Final = INITIAL_MAX_DATA_BYTES // MESSAGE_BYTES
"""Default messages queued or unacknowledged at once: the receiver's initial credit."""
RUN_TIMEOUT_S: Final = 300.0
HANDSHAKE_TIMEOUT_S: Final = 30.0
ROOT: Final = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, slots=True)
class OnewayRun:
    """One run of either kind.

    Attributes:
        sent: messages sent.
        reception: what the receiver process saw.
        started_at: ``time.monotonic()`` just before the first send.
        datagrams_sent: datagrams the sender sent while sending the messages.
    """

    sent: int
    reception: Reception
    started_at: float
    datagrams_sent: int

    @property
    def rate_per_s(self) -> float:
        """Messages received per second, first send to last arrival."""
        elapsed = self.reception.last_at - self.started_at
        return self.reception.received / elapsed if elapsed > 0 else 0.0

    @property
    def delivered(self) -> float:
        """The share of the messages sent that arrived."""
        return self.reception.received / self.sent


# --- the receiver process --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Receiver:
    process: subprocess.Popen[str]
    address: tuple[str, int]
    public_key: bytes

    async def wait_reception(self) -> Reception:
        assert self.process.stdout is not None
        line = await trio.to_thread.run_sync(self.process.stdout.readline, abandon_on_cancel=True)
        if not line:
            raise RuntimeError(f"the receiver exited ({self.process.wait()}) without a report")
        return Reception(**json.loads(line))


@contextlib.contextmanager
def _receiver(mode: str, messages: int, seed: int) -> Iterator[_Receiver]:
    """Start ``oneway_receiver MODE``; yield once it listens; kill it at the end."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tools.benchmarks.oneway_receiver", mode, str(messages), str(seed)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        port, key = [*process.stdout.readline().split(), ""][:2]
        yield _Receiver(process, (LOOPBACK, int(port)), bytes.fromhex(key))
    finally:
        process.kill()
        process.wait()


# --- the two senders -------------------------------------------------------------------------


async def _raw_run(messages: int, seed: int) -> OnewayRun:
    with _receiver("raw", messages, seed) as receiver, await bind_loopback_udp() as sock:
        payload = bytes(MESSAGE_BYTES)
        with trio.fail_after(RUN_TIMEOUT_S):
            started_at = time.monotonic()
            for _ in range(messages):
                await sock.sendto(payload, receiver.address)
            reception = await receiver.wait_reception()
    return OnewayRun(messages, reception, started_at, messages)


async def _udpim_run(messages: int, seed: int, ahead: int) -> OnewayRun:
    rng = random.Random(seed + 0x5EED).randbytes
    events = PairEvents()  # on_client_event counts establishment and deliveries
    with _receiver("udpim", messages, seed) as receiver, await bind_loopback_udp() as sock:
        endpoint = Endpoint(EndpointConfig(), StaticKey.generate(rng), rng)
        driver = EndpointDriver(endpoint, sock, events.on_client_event)
        async with trio.open_nursery() as nursery:
            await nursery.start(driver.serve)
            session = driver.connect(receiver.public_key, receiver.address)
            deadline = trio.current_time() + HANDSHAKE_TIMEOUT_S
            if not await events.wait_for(lambda: "client" in events.established, deadline):
                raise TimeoutError(f"no session within {HANDSHAKE_TIMEOUT_S:g} s")
            datagrams_before = driver.datagrams_sent
            with trio.fail_after(RUN_TIMEOUT_S):
                started_at = time.monotonic()
                await _send_flow_controlled(driver, session, events, messages, ahead)
                reception = await receiver.wait_reception()
            nursery.cancel_scope.cancel()
    return OnewayRun(messages, reception, started_at, driver.datagrams_sent - datagrams_before)


async def _send_flow_controlled(
    driver: EndpointDriver, session: Session, events: PairEvents, messages: int, ahead: int
) -> None:
    """Send ``messages``, never more than ``ahead`` of them queued or unacknowledged."""
    payload = bytes(MESSAGE_BYTES)
    sent = 0

    def room() -> bool:
        return sent - events.delivered < ahead

    while True:
        for _ in range(min(messages - sent, ahead - (sent - events.delivered))):
            driver.send_message(session, payload)
            sent += 1
        if sent == messages:
            return
        await events.wait_for(room, math.inf)


# --- the subcommand ---------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``oneway``'s own options."""
    parser.add_argument(
        "--messages",
        type=positive_int,
        metavar="N",
        help=f"messages per run (default {MESSAGES:,}; {QUICK_MESSAGES:,} with --quick)",
    )
    parser.add_argument(
        "--ahead",
        type=positive_int,
        default=AHEAD,
        metavar="N",
        help=f"udpim messages queued or unacknowledged at once (default {AHEAD:,}: the "
        "receiver's initial flow-control credit)",
    )


def _progress(kind: str, index: int, total: int, result: OnewayRun) -> None:
    print(
        f"oneway {kind} run {index}/{total}: {result.rate_per_s:,.0f} messages/s, "
        f"{result.delivered:.1%} delivered, {result.datagrams_sent:,} datagrams sent",
        file=sys.stderr,
        flush=True,
    )


def run(args: argparse.Namespace) -> Section:
    """Alternate raw and udpim runs ``args.repeat`` times; report medians and spreads."""
    messages = args.messages or (QUICK_MESSAGES if args.quick else MESSAGES)
    raws: list[OnewayRun] = []
    udpims: list[OnewayRun] = []
    for index in range(args.repeat):
        seed = args.seed + index
        raws.append(trio.run(_raw_run, messages, seed))
        _progress("raw", index + 1, args.repeat, raws[-1])
        udpims.append(trio.run(_udpim_run, messages, seed, args.ahead))
        _progress("udpim", index + 1, args.repeat, udpims[-1])
    return Section("oneway", _markdown(messages, args.ahead, raws, udpims), _json(raws, udpims))


def _spreads(raws: list[OnewayRun], udpims: list[OnewayRun]) -> dict[str, Spread]:
    return {
        "udpim_messages_per_s": Spread.of([r.rate_per_s for r in udpims]),
        "raw_messages_per_s": Spread.of([r.rate_per_s for r in raws]),
        "udpim_over_raw": Spread.of(
            [u.rate_per_s / r.rate_per_s for u, r in zip(udpims, raws, strict=True)]
        ),
        "raw_delivered": Spread.of([r.delivered for r in raws]),
        "udpim_datagrams_per_message": Spread.of([u.datagrams_sent / u.sent for u in udpims]),
        "udpim_acks_per_message": Spread.of([u.reception.datagrams_sent / u.sent for u in udpims]),
    }


def _markdown(messages: int, ahead: int, raws: list[OnewayRun], udpims: list[OnewayRun]) -> str:
    spread = _spreads(raws, udpims)
    udpim = spread["udpim_messages_per_s"]
    several = "; median (min..max)" if len(udpims) > 1 else ""
    lines = [
        "### One-way message rate on loopback, encrypted (messages/s)",
        "",
        f"One way on loopback: {messages:,} messages of {MESSAGE_BYTES} bytes from this "
        f"process to a receiver process, {len(udpims)} run(s){several}. udpim: default "
        f"SessionConfig (encrypted), at most {ahead:,} messages queued or unacknowledged; "
        "first send_message to the last MessageReceived. Raw Trio UDP: one datagram per "
        "message, nothing repeated; first send to the last arrival.",
        "",
        "| figure | messages/s |",
        "|---|---|",
        f"| **udpim** | **{udpim.format(digits=0)}** |",
        f"| raw Trio UDP ({spread['raw_delivered'].format(100, 1)} % delivered) "
        f"| {spread['raw_messages_per_s'].format(digits=0)} |",
        f"| udpim / raw | {spread['udpim_over_raw'].format(digits=3)} |",
        f"| target (TARGETS.md) | >= {ONEWAY_TARGET_PER_S:,} "
        f"({'met' if udpim.median >= ONEWAY_TARGET_PER_S else 'not met'}) |",
        *(f"| {name} (TARGETS.md; not this run) | {rate:,} |" for name, rate in ALTERNATIVES),
        "",
        f"udpim datagrams per message: {spread['udpim_datagrams_per_message'].format(digits=3)} "
        f"sent, {spread['udpim_acks_per_message'].format(digits=3)} back (acknowledgements).",
    ]
    return "\n".join(lines)


def _json(raws: list[OnewayRun], udpims: list[OnewayRun]) -> dict[str, object]:
    return {
        "messages": udpims[0].sent,
        "message_bytes": MESSAGE_BYTES,
        **{name: value.to_json(digits=4) for name, value in _spreads(raws, udpims).items()},
        "target_messages_per_s": ONEWAY_TARGET_PER_S,
        "alternatives_messages_per_s": dict(ALTERNATIVES),
    }


SUBCOMMAND: Final = Subcommand(
    "oneway",
    "maximum one-way rate, 100 000 x 200 B on loopback: udpim vs raw Trio UDP",
    add_arguments,
    run,
)
