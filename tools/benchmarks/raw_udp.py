"""The raw-UDP baseline: the latency workload as bare datagrams through the same link.

What it owns: ``run_raw_udp`` and its result ``RawRun``. A sender socket sends each
message of the workload as one datagram to an ``ImpairmentProxy`` for the same grid cell,
which relays to a receiver socket; nothing is acknowledged or repeated.

Rules it keeps:

* Same process, same Trio clock, same pacing (``workload.pace``) and same payloads as the
  udpim run; latency is receive time minus send time.
* What is lost stays lost: the figures of interest are the delivery ratio, the latency
  of what arrives (one-way delay plus the proxy's and the loop's own cost: the floor
  every transport pays here) and whether arrivals kept send order.
* The run ends ``DRAIN_S`` after the last send; with a fixed 25 ms delay and no jitter,
  nothing is still in flight by then.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import trio

from tools.benchmarks.capture import bind_loopback_udp
from tools.benchmarks.impaired_link import WireCount, open_impaired_link, wire_count
from tools.benchmarks.link_grid import LinkCell
from tools.benchmarks.workload import INDEX_BYTES, Workload, pace

__all__ = ["DRAIN_S", "RawRun", "run_raw_udp"]

DRAIN_S: Final = 1.0
"""How long the receiver keeps listening after the last send."""

RECEIVE_BYTES: Final = 65536


@dataclass(frozen=True, slots=True)
class RawRun:
    """One raw-UDP run.

    Attributes:
        sent_at: send time of each message, by index.
        arrivals: ``(receive time, index)`` of every datagram received, in arrival order.
        wire: what entered the proxy during the run (both directions; only "up" has any).
    """

    sent_at: tuple[float, ...]
    arrivals: tuple[tuple[float, int], ...]
    wire: WireCount


async def run_raw_udp(cell: LinkCell, seed: int, workload: Workload, start_at: float) -> RawRun:
    """Send ``workload`` as bare datagrams through a proxy for ``cell``.

    Args:
        cell: the link.
        seed: the proxy's seed.
        workload: what to send.
        start_at: the Trio time of message 0.

    Returns:
        The send times, the arrivals and the wire account.

    Raises:
        OSError: a socket cannot be bound.
    """
    receiver = await bind_loopback_udp()
    sender = await bind_loopback_udp()
    arrivals: list[tuple[float, int]] = []

    async def receive() -> None:
        while True:
            data, _ = await receiver.recvfrom(RECEIVE_BYTES)
            arrivals.append((trio.current_time(), int.from_bytes(data[:INDEX_BYTES], "big")))

    with receiver, sender:
        host, port = receiver.getsockname()[:2]
        async with (
            open_impaired_link(cell, (str(host), int(port)), seed) as (proxy, address),
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(receive)

            async def send(payload: bytes) -> float:
                now = trio.current_time()
                await sender.sendto(payload, address)
                return now

            sent_at = await pace(workload, start_at, send)
            await trio.sleep(DRAIN_S)
            nursery.cancel_scope.cancel()
            wire = wire_count(proxy.statistics())
    return RawRun(tuple(sent_at), tuple(arrivals), wire)
