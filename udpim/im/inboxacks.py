"""AckTracker: when a daemon may ack delivered messages, and with which seq.

Rules (docs/IM.md, "Acks"):

* ``ack {seq}`` means "every message delivered on this session up to seq is on my
  disk", so a seq is acked only once it and every deliver received before it on this
  session have committed (store results may come back in any order).
* Acks are coalesced: one goes out when no stored deliver is left waiting, or after
  ``every`` deliveries since the last ack, whichever comes first.
* ``reset()`` starts a new session: slots of the old one are ignored.
"""

from __future__ import annotations

from collections import deque
from typing import final

__all__ = ["AckTracker"]


@final
class AckTracker:
    """Cumulative, coalesced acks for one session at a time.

    Args:
        every: ack at least every this many committed delivers.
    """

    __slots__ = ("_base", "_every", "_since_ack", "_slots", "_top")

    def __init__(self, *, every: int) -> None:
        self._every = every
        self._slots: deque[list[int]] = deque()  # [seq, committed 0/1], in arrival order
        self._base = 0  # absolute slot number of _slots[0]
        self._since_ack = 0
        self._top = 0  # highest seq committed in order and not yet acked

    def reset(self) -> None:
        """A new session begins; forget every slot of the previous one."""
        self._base += len(self._slots)
        self._slots.clear()
        self._since_ack = 0
        self._top = 0

    def received(self, seq: int) -> int:
        """A deliver with ``seq`` arrived and is being stored. Returns its slot number."""
        self._slots.append([seq, 0])
        return self._base + len(self._slots) - 1

    def committed(self, slot: int) -> int | None:
        """Slot ``slot``'s store op committed. Returns the seq to ack now, or None."""
        index = slot - self._base
        if not 0 <= index < len(self._slots):
            return None
        self._slots[index][1] = 1
        while self._slots and self._slots[0][1]:
            seq, _ = self._slots.popleft()
            self._base += 1
            self._since_ack += 1
            self._top = max(self._top, seq)
        if self._since_ack and (not self._slots or self._since_ack >= self._every):
            self._since_ack = 0
            return self._top
        return None
