"""The latency workload of TARGETS.md: N messages of 200 bytes at 100 messages/s, one way.

What it owns: ``Workload`` (how many messages, how big, how fast), the payload of message
``i`` and the pacing loop shared by the udpim run and the raw-UDP baseline, so both send
exactly the same bytes on exactly the same schedule.

Rules it keeps:

* Message ``i`` leaves at ``start_at + i / rate_per_s`` (``trio.sleep_until``), so a late
  wake-up never shifts the messages after it (no drift).
* The first 8 bytes of a payload are its index (big-endian); the rest are zeros. The
  raw-UDP receiver reads the index from them; udpim numbers messages itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

import trio

__all__ = ["FULL_WORKLOAD", "INDEX_BYTES", "QUICK_WORKLOAD", "Workload", "pace"]

INDEX_BYTES: Final = 8


@dataclass(frozen=True, slots=True)
class Workload:
    """A paced one-way message stream.

    Attributes:
        messages: how many messages.
        payload_bytes: size of each message (at least ``INDEX_BYTES``).
        rate_per_s: messages per second.
    """

    messages: int = 2000
    payload_bytes: int = 200
    rate_per_s: float = 100.0

    def __post_init__(self) -> None:
        if self.messages < 1 or self.payload_bytes < INDEX_BYTES or not self.rate_per_s > 0:
            raise ValueError(
                f"need messages >= 1, payload_bytes >= {INDEX_BYTES} and a positive rate"
            )

    @property
    def duration_s(self) -> float:
        """Time from the first send to the last."""
        return (self.messages - 1) / self.rate_per_s

    @property
    def total_payload_bytes(self) -> int:
        """Application bytes offered by the whole workload."""
        return self.messages * self.payload_bytes

    def payload(self, index: int) -> bytes:
        """The bytes of message ``index``."""
        return index.to_bytes(INDEX_BYTES, "big") + bytes(self.payload_bytes - INDEX_BYTES)


FULL_WORKLOAD: Final = Workload()
"""TARGETS.md: 2000 messages of 200 bytes at 100 messages/s (20 s)."""
QUICK_WORKLOAD: Final = Workload(messages=300)
"""``--quick``: the same stream cut to 300 messages (3 s), for iterating."""


async def pace(
    workload: Workload, start_at: float, send: Callable[[bytes], Awaitable[float]]
) -> list[float]:
    """Send every message of ``workload`` on schedule.

    Args:
        workload: what to send.
        start_at: the Trio time of message 0.
        send: sends one payload and returns the Trio time it was handed over (taken
            before any await, so a slow socket shows up as latency).

    Returns:
        The send time of each message, by index.
    """
    sent_at: list[float] = []
    for index in range(workload.messages):
        await trio.sleep_until(start_at + index / workload.rate_per_s)
        sent_at.append(await send(workload.payload(index)))
    return sent_at
