"""The receiving process of ``tools/bench oneway``: counts messages, reports when they stopped.

Run as ``python -m tools.benchmarks.oneway_receiver MODE MESSAGES SEED`` by ``oneway``,
never by hand. It binds a socket on ``127.0.0.1`` port 0 (``bind_loopback_udp``), prints
one line ``PORT PUBLIC_KEY_HEX`` and receives until ``MESSAGES`` arrived or nothing
arrived for ``SILENCE_END_S`` after the first; then it prints one JSON line (a
``Reception``) and exits.

MODE is ``udpim`` (an ``Endpoint`` under ``EndpointDriver``, default ``SessionConfig``,
cookies never asked for; a message is a ``MessageReceived``) or ``raw`` (a bare
Trio ``recvfrom`` loop; a message is a datagram, and the public key printed is empty).

Rules it keeps:

* Times are ``time.monotonic()``: Linux's ``CLOCK_MONOTONIC``, one clock for every
  process on the machine, so the sender's "first send" and this process's "last
  arrival" can be subtracted. (Trio's own clock adds a per-run random offset.)
* The event handler only counts; the end of the run is noticed by a watchdog task, so
  the per-message path is the driver's and the core's alone.
* Keys and handshake randomness come from ``random.Random(seed)``: runs repeat.
"""

from __future__ import annotations

import json
import random
import sys
import time
from dataclasses import asdict, dataclass
from typing import Final

import trio

from tools.benchmarks.capture import bind_loopback_udp
from udpim.core.config import CookieMode, EndpointConfig, SessionConfig
from udpim.core.crypto import StaticKey
from udpim.core.endpoint import Endpoint
from udpim.core.events import Event, MessageReceived
from udpim.core.session import Session
from udpim.net.udp import RECEIVE_BUFFER_BYTES, EndpointDriver

__all__ = ["MODES", "SILENCE_END_S", "Reception", "main"]

MODES: Final = ("udpim", "raw")
SILENCE_END_S: Final = 2.0
"""Stop this long after the last arrival (raw UDP loses what the socket buffer cannot hold)."""
WATCH_S: Final = 0.1
"""How often the watchdog looks at the count."""


@dataclass(frozen=True, slots=True)
class Reception:
    """What the receiver saw (the JSON line it prints).

    Attributes:
        received: messages received (udpim: ``MessageReceived`` events; raw: datagrams).
        payload_bytes: their payload bytes.
        first_at: ``time.monotonic()`` of the first arrival (0.0 if none).
        last_at: ``time.monotonic()`` of the last arrival (0.0 if none).
        datagrams_received: datagrams read from the socket.
        datagrams_sent: datagrams sent (udpim: handshake and acknowledgements; raw: 0).
    """

    received: int = 0
    payload_bytes: int = 0
    first_at: float = 0.0
    last_at: float = 0.0
    datagrams_received: int = 0
    datagrams_sent: int = 0


class _Count:
    """Arrivals so far; ``arrive`` is the only per-message work."""

    __slots__ = ("first_at", "last_at", "payload_bytes", "received")

    def __init__(self) -> None:
        self.received = 0
        self.payload_bytes = 0
        self.first_at = 0.0
        self.last_at = 0.0

    def arrive(self, size: int) -> None:
        now = time.monotonic()
        if not self.received:
            self.first_at = now
        self.last_at = now
        self.received += 1
        self.payload_bytes += size


async def _watch(count: _Count, messages: int) -> None:
    """Return once ``messages`` arrived, or ``SILENCE_END_S`` passed since the last one."""
    while count.received < messages:
        await trio.sleep(WATCH_S)
        if count.received and time.monotonic() - count.last_at > SILENCE_END_S:
            return


def _announce(sock: trio.socket.SocketType, public_key: bytes) -> None:
    print(sock.getsockname()[1], public_key.hex(), flush=True)


async def _receive_udpim(messages: int, seed: int) -> Reception:
    rng = random.Random(seed).randbytes
    key = StaticKey.generate(rng)
    config = EndpointConfig(session=SessionConfig(), cookie_mode=CookieMode.NEVER)
    count = _Count()

    def on_event(session: Session, event: Event) -> None:
        if isinstance(event, MessageReceived):
            count.arrive(len(event.payload))

    with await bind_loopback_udp() as sock:
        driver = EndpointDriver(Endpoint(config, key, rng), sock, on_event)
        async with trio.open_nursery() as nursery:
            await nursery.start(driver.serve)
            _announce(sock, key.public)
            await _watch(count, messages)
            nursery.cancel_scope.cancel()
    return Reception(
        count.received,
        count.payload_bytes,
        count.first_at,
        count.last_at,
        driver.datagrams_received,
        driver.datagrams_sent,
    )


async def _receive_raw(messages: int) -> Reception:
    count = _Count()

    async def receive(sock: trio.socket.SocketType) -> None:
        while True:
            data, _ = await sock.recvfrom(RECEIVE_BUFFER_BYTES)
            count.arrive(len(data))

    with await bind_loopback_udp() as sock:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(receive, sock)
            _announce(sock, b"")
            await _watch(count, messages)
            nursery.cancel_scope.cancel()
    return Reception(
        count.received, count.payload_bytes, count.first_at, count.last_at, count.received, 0
    )


def main(argv: list[str]) -> int:
    """``MODE MESSAGES SEED``: receive, then print the ``Reception`` as one JSON line.

    Returns:
        0, or 2 for bad arguments.
    """
    if len(argv) != 3 or argv[0] not in MODES:
        print(f"usage: oneway_receiver {{{','.join(MODES)}}} MESSAGES SEED", file=sys.stderr)
        return 2
    mode, messages, seed = argv[0], int(argv[1]), int(argv[2])
    if mode == "udpim":
        reception = trio.run(_receive_udpim, messages, seed)
    else:
        reception = trio.run(_receive_raw, messages)
    print(json.dumps(asdict(reception)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
