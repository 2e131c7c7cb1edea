"""Where udpim's tail latency comes from: each message's story, told from the decrypted capture.

What it owns: ``MessageTimeline`` (one message: queued, first sent, each transmission and
its fate, arrival, delivery), ``TailProfile`` (the aggregate the report prints) and
``profile_tail``, which builds both from a ``PacketLog``.

A message's latency splits exactly into three parts::

    latency = sender_wait + network + hol_wait
      sender_wait  send_message -> its first transmission left the client socket
                   (congestion window full, or the loop was busy)
      network      first transmission -> the first copy that reached the server
                   (25 ms if it got through at once; plus one retransmission delay
                   per lost copy)
      hol_wait     that arrival -> MessageReceived (head-of-line blocking: an earlier
                   message was still missing)

Rules it keeps:

* ``attempts`` counts transmissions up to and including the first that arrived (1 =
  no loss). A copy sent after the message had already arrived is *spurious* (its ACK
  was lost or late): it costs wire bytes, not latency.
* A message delivered before any copy of its data reached the server was *rebuilt* by
  forward error correction: a repair is the only other way its bytes could get there.
  Its arrival is taken as its delivery (the rebuild happened no later; its HOL wait is
  counted as 0), so copies sent after the rebuild are spurious, and it is counted under
  ``rebuilt``, not under ``attempts``.
* A retransmission is *ACK-triggered* when it is the client's first send within
  ``ACK_TRIGGER_WINDOW_S`` after a server packet arrived (loss detected by the packet
  or time threshold while processing an ACK); otherwise *timer-triggered* (the loss
  timer or a PTO probe). The classification is by timing, so a timer firing within the
  window of an unrelated ACK is miscounted; at 50 ACKs/s that is about 5 %.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from tools.benchmarks.distribution import Percentiles, percentile
from tools.benchmarks.packet_log import LoggedPacket, PacketLog
from udpim.core.frames import AckFrame, DataFrame

__all__ = [
    "ACK_TRIGGER_WINDOW_S",
    "DELAYED_ACK_S",
    "MessageTimeline",
    "TailProfile",
    "TailSlice",
    "profile_tail",
]

ACK_TRIGGER_WINDOW_S: Final = 0.001
DELAYED_ACK_S: Final = 0.005
"""An ACK whose reported delay is at least this long waited for the delayed-ACK timer or
a second packet (``ack_eliciting_threshold``); below it, it went out at once."""
HOL_THRESHOLD_S: Final = 0.002
"""A message waited on head-of-line blocking when delivery trailed arrival by this much."""


@dataclass(frozen=True, slots=True)
class MessageTimeline:
    """One message from ``send_message`` to ``MessageReceived`` (Trio times, seconds).

    Attributes:
        queued_at: ``send_message`` was called.
        sends: when each copy of its data left the client, and when (if) it arrived.
        delivered_at: ``MessageReceived`` at the server (None: never).
    """

    queued_at: float
    sends: tuple[tuple[float, float | None], ...]
    delivered_at: float | None

    @property
    def copy_arrival(self) -> float | None:
        """When a copy of its data first reached the server."""
        arrived = [at for _, at in self.sends if at is not None]
        return min(arrived) if arrived else None

    @property
    def rebuilt(self) -> bool:
        """Delivered before any copy arrived: an FEC repair rebuilt it."""
        if self.delivered_at is None or not self.sends:
            return False
        copy = self.copy_arrival
        return copy is None or self.delivered_at < copy

    @property
    def arrival(self) -> float | None:
        """When its data first reached the server: a copy's arrival, or for a rebuilt
        message its delivery (the rebuild came no later)."""
        return self.delivered_at if self.rebuilt else self.copy_arrival

    @property
    def attempts(self) -> int:
        """Transmissions up to the first that arrived (all of them if none did)."""
        for index, (_, arrived_at) in enumerate(self.sends, start=1):
            if arrived_at is not None:
                return index
        return len(self.sends)

    @property
    def latency(self) -> float | None:
        """``delivered_at - queued_at``."""
        return None if self.delivered_at is None else self.delivered_at - self.queued_at

    def parts(self) -> tuple[float, float, float] | None:
        """``(sender_wait, network, hol_wait)``; None unless sent, arrived and delivered."""
        arrival = self.arrival
        if not self.sends or arrival is None or self.delivered_at is None:
            return None
        first = self.sends[0][0]
        return first - self.queued_at, arrival - first, self.delivered_at - arrival


@dataclass(frozen=True, slots=True)
class TailSlice:
    """The messages at or above one latency percentile, and what made them late.

    Attributes:
        threshold_s: the percentile's latency.
        messages: how many messages are at or above it.
        attempts: how many of them (not rebuilt) needed 1, 2, 3... transmissions.
        rebuilt: how many of them an FEC repair rebuilt before any copy arrived.
        hol_only: how many arrived at the first attempt and waited only on an earlier one.
        mean_sender_wait_s, mean_network_s, mean_hol_wait_s: the mean latency parts.
    """

    threshold_s: float
    messages: int
    attempts: dict[int, int]
    rebuilt: int
    hol_only: int
    mean_sender_wait_s: float
    mean_network_s: float
    mean_hol_wait_s: float


@dataclass(frozen=True, slots=True)
class TailProfile:
    """The retransmission story of one latency run (see the module docstring).

    Attributes:
        messages: messages sent.
        attempts: messages not rebuilt, by transmissions needed (1 = no loss).
        latency_by_attempts: latency percentiles of each ``attempts`` group.
        rebuilt: messages an FEC repair rebuilt before any copy of them arrived.
        latency_rebuilt: their latency percentiles.
        hol_blocked: messages delivered ``HOL_THRESHOLD_S`` or more after they arrived.
        first_retransmit_gap: time from a lost first copy to the second copy.
        second_retransmit_gap: time from a lost second copy to the third.
        retransmit_triggers: ``{"ack": n, "timer": n}`` over all retransmissions.
        spurious_copies: copies sent after their message had arrived.
        sender_wait: percentiles of ``send_message`` -> first transmission.
        packets_per_message: packets that carried a message's first copy, per message
            (below 1: messages shared packets, e.g. while the window was full).
        acks: server packets carrying an ACK frame.
        delayed_acks: of those, how many reported ``DELAYED_ACK_S`` or more of delay.
        up_lost, down_lost: DATA packets lost each way.
        p90, p99: the slices at and above p90 and p99.
    """

    messages: int
    attempts: dict[int, int]
    latency_by_attempts: dict[int, Percentiles]
    rebuilt: int
    latency_rebuilt: Percentiles
    hol_blocked: int
    first_retransmit_gap: Percentiles
    second_retransmit_gap: Percentiles
    retransmit_triggers: dict[str, int]
    spurious_copies: int
    sender_wait: Percentiles
    packets_per_message: float
    acks: int
    delayed_acks: int
    up_lost: int
    down_lost: int
    p90: TailSlice
    p99: TailSlice


def timelines(
    log: PacketLog, queued_at: Sequence[float], delivered_at: dict[int, float]
) -> list[MessageTimeline]:
    """Each message's timeline, by message number.

    Args:
        log: the decrypted capture.
        queued_at: ``send_message`` time of each message, by number.
        delivered_at: ``MessageReceived`` time by message number.
    """
    sends: list[list[tuple[float, float | None]]] = [[] for _ in queued_at]
    for packet in log.up:
        for frame in packet.frames:
            if isinstance(frame, DataFrame) and frame.message_number < len(sends):
                sends[frame.message_number].append((packet.sent_at, packet.arrived_at))
    return [
        MessageTimeline(queued, tuple(copies), delivered_at.get(number))
        for number, (queued, copies) in enumerate(zip(queued_at, sends, strict=True))
    ]


def _slice(stories: Sequence[MessageTimeline], threshold_s: float) -> TailSlice:
    late = [m for m in stories if m.latency is None or m.latency >= threshold_s]
    parts: list[tuple[float, float, float]] = []
    hol_only = 0
    for story in late:
        split = story.parts()
        if split is None:
            continue
        parts.append(split)
        hol_only += not story.rebuilt and story.attempts == 1 and split[2] >= HOL_THRESHOLD_S
    count = max(len(parts), 1)
    return TailSlice(
        threshold_s=threshold_s,
        messages=len(late),
        attempts=dict(sorted(Counter(m.attempts for m in late if not m.rebuilt).items())),
        rebuilt=sum(1 for m in late if m.rebuilt),
        hol_only=hol_only,
        mean_sender_wait_s=sum(p[0] for p in parts) / count,
        mean_network_s=sum(p[1] for p in parts) / count,
        mean_hol_wait_s=sum(p[2] for p in parts) / count,
    )


def _retransmit_gaps(stories: Sequence[MessageTimeline], copy: int) -> list[float]:
    """Time from a lost copy ``copy - 1`` (0-based) to copy ``copy``."""
    return [
        m.sends[copy][0] - m.sends[copy - 1][0]
        for m in stories
        if len(m.sends) > copy and m.sends[copy - 1][1] is None
    ]


def _spurious(stories: Sequence[MessageTimeline]) -> int:
    count = 0
    for story in stories:
        arrival = story.arrival
        if arrival is not None:
            count += sum(1 for sent_at, _ in story.sends if sent_at > arrival)
    return count


def _triggers(stories: Sequence[MessageTimeline], down: Sequence[LoggedPacket]) -> dict[str, int]:
    arrivals = sorted(p.arrived_at for p in down if p.arrived_at is not None)
    counts = {"ack": 0, "timer": 0}
    for story in stories:
        for sent_at, _ in story.sends[1:]:
            index = bisect.bisect_right(arrivals, sent_at)
            recent = index > 0 and sent_at - arrivals[index - 1] <= ACK_TRIGGER_WINDOW_S
            counts["ack" if recent else "timer"] += 1
    return counts


def profile_tail(
    log: PacketLog, queued_at: Sequence[float], delivered_at: dict[int, float]
) -> TailProfile:
    """Aggregate the timelines of one run (see ``TailProfile``).

    Args:
        log: the decrypted capture of the run.
        queued_at: ``send_message`` time of each message, by number.
        delivered_at: ``MessageReceived`` time by message number.
    """
    stories = timelines(log, queued_at, delivered_at)
    latencies = sorted(m.latency if m.latency is not None else float("inf") for m in stories)
    by_attempts: dict[int, list[float]] = {}
    rebuilt: list[float] = []
    for story in stories:
        if story.latency is not None and story.rebuilt:
            rebuilt.append(story.latency)
        elif story.latency is not None:
            by_attempts.setdefault(story.attempts, []).append(story.latency)
    parts = [p for m in stories if (p := m.parts()) is not None]
    first_sends = {m.sends[0][0] for m in stories if m.sends}  # one send time per packet
    acks = [f for p in log.down for f in p.frames if isinstance(f, AckFrame)]
    return TailProfile(
        messages=len(stories),
        attempts=dict(sorted(Counter(m.attempts for m in stories if not m.rebuilt).items())),
        latency_by_attempts={k: Percentiles.of(v) for k, v in sorted(by_attempts.items())},
        rebuilt=len(rebuilt),
        latency_rebuilt=Percentiles.of(rebuilt),
        hol_blocked=sum(1 for p in parts if p[2] >= HOL_THRESHOLD_S),
        first_retransmit_gap=Percentiles.of(_retransmit_gaps(stories, 1)),
        second_retransmit_gap=Percentiles.of(_retransmit_gaps(stories, 2)),
        retransmit_triggers=_triggers(stories, log.down),
        spurious_copies=_spurious(stories),
        sender_wait=Percentiles.of([p[0] for p in parts]),
        packets_per_message=len(first_sends) / max(len(stories), 1),
        acks=len(acks),
        delayed_acks=sum(1 for f in acks if f.ack_delay_us >= DELAYED_ACK_S * 1e6),
        up_lost=sum(1 for p in log.up if p.arrived_at is None),
        down_lost=sum(1 for p in log.down if p.arrived_at is None),
        p90=_slice(stories, percentile(latencies, 0.90)),
        p99=_slice(stories, percentile(latencies, 0.99)),
    )
