"""One latency cell: the workload through udpim and, at the same time, as raw UDP.

What it owns: ``run_latency_cell`` and its results (``UdpimLatency``, ``RawLatency``,
``LatencyCellRun``): for one grid cell and one seed, a udpim pair and the raw-UDP
baseline each get their own proxy for the same link, run the same paced workload
concurrently in one Trio run, and are measured.

Rules it keeps:

* The udpim pair is established before the clock of the workload starts; both streams
  start ``START_DELAY_S`` later, together.
* udpim's run ends when every message was received and acknowledged, or
  ``DRAIN_TIMEOUT_S`` after the last send (undelivered messages count as infinite
  latency), plus at most ``ACK_GRACE_S`` for the last acknowledgements.
* Wire bytes count from the start of the workload to its end (the handshake excluded).
* The run's capture is decrypted and profiled afterwards (``tail_profile``), outside
  the measured time.
* Raw UDP runs beside udpim rather than after it: it costs the loop about 200
  datagrams/s, and it halves the suite's wall time (each cell is 20 s at 100 msg/s).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Final

import trio

from tools.benchmarks.distribution import Percentiles
from tools.benchmarks.impaired_link import WireCount
from tools.benchmarks.link_grid import LinkCell
from tools.benchmarks.packet_log import decrypt_capture
from tools.benchmarks.raw_udp import RawRun, run_raw_udp
from tools.benchmarks.tail_profile import TailProfile, profile_tail
from tools.benchmarks.udpim_pair import UdpimPair, open_udpim_pair
from tools.benchmarks.workload import Workload, pace
from udpim.core.config import SessionConfig
from udpim.core.statistics import SessionStatistics

__all__ = [
    "ACK_GRACE_S",
    "DRAIN_TIMEOUT_S",
    "LatencyCellRun",
    "RawLatency",
    "UdpimLatency",
    "run_latency_cell",
]

START_DELAY_S: Final = 0.1
DRAIN_TIMEOUT_S: Final = 30.0
ACK_GRACE_S: Final = 2.0
RAW_SEED_OFFSET: Final = 1_000_003
"""The raw baseline's proxy is seeded ``seed + RAW_SEED_OFFSET``: its own loss pattern."""


@dataclass(frozen=True, slots=True)
class UdpimLatency:
    """udpim's figures for one run of one cell.

    Attributes:
        latency: percentiles over every message (never delivered = infinite).
        samples: each message's latency in seconds, by message number (inf: never).
        delivery_ratio: messages received / messages sent.
        in_order: every message arrived exactly once and in send order.
        wire: datagrams and wire bytes during the workload, both directions.
        wire_ratio: wire bytes / payload bytes.
        profile: where the tail came from (decrypted capture).
        sender: the client session's statistics at the end.
    """

    latency: Percentiles
    samples: tuple[float, ...]
    delivery_ratio: float
    in_order: bool
    wire: WireCount
    wire_ratio: float
    profile: TailProfile
    sender: SessionStatistics


@dataclass(frozen=True, slots=True)
class RawLatency:
    """The raw-UDP baseline's figures for one run of one cell.

    Attributes:
        latency: percentiles over the datagrams that arrived.
        samples: latency of each arrival in seconds, in arrival order.
        delivery_ratio: datagrams received / sent.
        in_order: arrivals kept send order (gaps allowed: lost is lost).
        wire_ratio: wire bytes / payload bytes.
    """

    latency: Percentiles
    samples: tuple[float, ...]
    delivery_ratio: float
    in_order: bool
    wire_ratio: float


@dataclass(frozen=True, slots=True)
class LatencyCellRun:
    """One run of one cell: both transports, same link, same workload, same time."""

    cell: LinkCell
    seed: int
    workload: Workload
    udpim: UdpimLatency
    raw: RawLatency


def run_latency_cell(
    cell: LinkCell, seed: int, workload: Workload, config: SessionConfig | None = None
) -> LatencyCellRun:
    """Run one cell once (its own ``trio.run``).

    Args:
        cell: the link.
        seed: root of the run's random choices.
        workload: what to send.
        config: udpim's session tunables (default ``SessionConfig()``).

    Returns:
        Both transports' figures.
    """
    return trio.run(_run_cell, cell, seed, workload, config or SessionConfig())


async def _run_cell(
    cell: LinkCell, seed: int, workload: Workload, config: SessionConfig
) -> LatencyCellRun:
    raw_result: list[RawRun] = []
    async with open_udpim_pair(cell, seed, config) as pair:
        start_at = trio.current_time() + START_DELAY_S
        wire_before = pair.wire()

        async def send(payload: bytes) -> float:
            return pair.send(payload)

        async def raw() -> None:
            raw_seed = seed + RAW_SEED_OFFSET
            raw_result.append(await run_raw_udp(cell, raw_seed, workload, start_at))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(raw)
            queued_at = await pace(workload, start_at, send)
            await _drain(pair, workload.messages)
            wire = pair.wire() - wire_before
            sender = pair.session.statistics()
    udpim = _udpim_figures(pair, workload, queued_at, wire, sender)
    return LatencyCellRun(cell, seed, workload, udpim, _raw_figures(raw_result[0], workload))


async def _drain(pair: UdpimPair, messages: int) -> None:
    events = pair.events
    deadline = trio.current_time() + DRAIN_TIMEOUT_S
    await events.wait_for(lambda: len(events.received) >= messages, deadline)
    grace = trio.current_time() + ACK_GRACE_S
    await events.wait_for(lambda: events.delivered >= messages, grace)


def _udpim_figures(
    pair: UdpimPair,
    workload: Workload,
    queued_at: list[float],
    wire: WireCount,
    sender: SessionStatistics,
) -> UdpimLatency:
    received = pair.events.received
    delivered_at = {r.message_number: r.at for r in received}
    samples = tuple(
        delivered_at[n] - queued if n in delivered_at else math.inf
        for n, queued in enumerate(queued_at)
    )
    numbers = [r.message_number for r in received]
    sizes_ok = all(r.payload_bytes == workload.payload_bytes for r in received)
    in_order = sizes_ok and numbers == list(range(len(numbers)))
    log = decrypt_capture(pair.client_socket, pair.server_socket, pair.server_key, pair.server_rng)
    return UdpimLatency(
        latency=Percentiles.of(samples),
        samples=samples,
        delivery_ratio=len(delivered_at) / workload.messages,
        in_order=in_order,
        wire=wire,
        wire_ratio=wire.wire_bytes / workload.total_payload_bytes,
        profile=profile_tail(log, queued_at, delivered_at),
        sender=sender,
    )


def _raw_figures(run: RawRun, workload: Workload) -> RawLatency:
    samples = tuple(at - run.sent_at[index] for at, index in run.arrivals)
    indices = [index for _, index in run.arrivals]
    return RawLatency(
        latency=Percentiles.of(samples),
        samples=samples,
        delivery_ratio=len(set(indices)) / workload.messages,
        in_order=all(a < b for a, b in itertools.pairwise(indices)),
        wire_ratio=run.wire.wire_bytes / workload.total_payload_bytes,
    )
