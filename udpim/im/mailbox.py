"""MailboxFeed: which mailbox entries one device session gets pushed, and when.

One feed per welcomed device session on the hub. It owns no messages and emits no
actions; ``HubCore`` asks it questions and acts on the answers.

Rules (docs/IM.md, "Mailboxes and cursors"):

* Entries are pushed in seq order, each at most once per session: ``pushed`` only grows.
* At most ``window`` entries (and about ``window_bytes`` of bodies) are pushed and not yet
  acked; beyond that, the feed waits for acks. This bounds what one session holds.
* A new message is pushed live only when it is exactly the next seq and the feed is
  caught up; otherwise the feed is marked ``behind`` and catches up by loading pages of
  the mailbox (``LoadMailbox(after=pushed)``), one load at a time.
* Store results may arrive late or out of order: ``head`` (the highest seq seen for the
  user) makes a short page that missed a later message still count as behind.

Theory: a session starts behind at its durable cursor. Loads run while there is room;
a page shorter than asked means the mailbox ended there when the op ran. Once caught up
the feed follows new messages live, and falls back to loading whenever it misses one
(window full, results out of order).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import final

from udpim.im.ops import Delivery

__all__ = ["MailboxFeed", "PageRequest"]


@final
@dataclass(frozen=True, slots=True)
class PageRequest:
    """Load up to ``limit`` entries with seq > ``after_seq``."""

    after_seq: int
    limit: int


@final
class MailboxFeed:
    """The push state of one device session.

    Args:
        cursor: the device's durable cursor (last acked seq) when the session was welcomed.
        window: most entries pushed and not yet acked.
        window_bytes: stop pushing once unacked bodies reach this many UTF-8 bytes.
        page_size: entries per ``LoadMailbox``.
    """

    __slots__ = (
        "_behind",
        "_head",
        "_in_flight",
        "_loading",
        "_page",
        "_wbytes",
        "_window",
        "acked",
        "in_flight_bytes",
        "pushed",
    )

    def __init__(self, cursor: int, *, window: int, window_bytes: int, page_size: int) -> None:
        self.acked = cursor
        self.pushed = cursor
        self.in_flight_bytes = 0
        # (seq, body bytes) pushed and not acked. None while empty, which an idle session
        # nearly always is: an empty deque still holds a 64-slot block (about 760 bytes).
        self._in_flight: deque[tuple[int, int]] | None = None
        self._window = window
        self._wbytes = window_bytes
        self._page = page_size
        self._head = cursor
        self._behind = True
        self._loading = False

    def _has_room(self) -> bool:
        return self.pushed - self.acked < self._window and self.in_flight_bytes < self._wbytes

    def _record_push(self, seq: int, body_bytes: int) -> None:
        self.pushed = seq
        if self._in_flight is None:
            self._in_flight = deque()
        self._in_flight.append((seq, body_bytes))
        self.in_flight_bytes += body_bytes

    def on_stored(self, delivery: Delivery, body_bytes: int) -> bool:
        """A new message was stored in this user's mailbox.

        Returns:
            True if the caller must push ``delivery`` now (recorded as pushed).
        """
        seq = delivery.seq
        self._head = max(self._head, seq)
        if seq <= self.pushed:
            return False
        if not self._loading and not self._behind and seq == self.pushed + 1 and self._has_room():
            self._record_push(seq, body_bytes)
            return True
        self._behind = True
        return False

    def next_page(self) -> PageRequest | None:
        """A load to start now, or None (caught up, a load is running, or no room).

        A returned request counts as running until ``on_page`` is called.
        """
        if not self._behind or self._loading or not self._has_room():
            return None
        self._loading = True
        room = self._window - (self.pushed - self.acked)
        return PageRequest(after_seq=self.pushed, limit=min(self._page, room))

    def on_page(
        self, request: PageRequest, rows: list[Delivery], sizes: list[int]
    ) -> list[Delivery]:
        """The result of ``request``: returns the rows to push now, in order.

        Args:
            request: the request this answers.
            rows: the ``LoadMailbox`` result.
            sizes: the UTF-8 body size of each row.
        """
        self._loading = False
        out: list[Delivery] = []
        for row, size in zip(rows, sizes, strict=True):
            if row.seq > self.pushed:  # seqs are contiguous; a gap must not stall the feed
                self._record_push(row.seq, size)
                out.append(row)
        if rows:
            self._head = max(self._head, rows[-1].seq)
        complete = len(rows) < request.limit and len(out) == len(rows)
        self._behind = not complete or self._head > self.pushed
        return out

    def on_ack(self, seq: int) -> int | None:
        """The device acked up to ``seq``. Returns the new acked seq, or None if unchanged.

        An ack beyond what was pushed on this session is capped at ``pushed``.
        """
        seq = min(seq, self.pushed)
        if seq <= self.acked:
            return None
        self.acked = seq
        in_flight = self._in_flight
        while in_flight and in_flight[0][0] <= seq:
            self.in_flight_bytes -= in_flight.popleft()[1]
        if not in_flight:
            self._in_flight = None
        return seq

    @property
    def behind(self) -> bool:
        """True while entries past ``pushed`` may exist in the mailbox."""
        return self._behind
