"""Router: the hub's welcomed device sessions, their mailbox feeds, acks and receipts.

Rules (docs/IM.md, "Mailboxes and cursors", "Receipts"):

* A welcomed session is fed its user's mailbox from its durable cursor, in seq order,
  at most a window of unacked entries at a time (``MailboxFeed``); new messages go out
  live to every device session of the recipient that is caught up.
* ``accepted`` goes to the sending session only after ``StoreMessage`` committed, and
  only if that session is still welcomed (else the daemon resends and is answered then).
* A device's ``ack`` advances its cursor; the receipts ``AckMailbox`` creates go to the
  sending device's session if it is welcomed, else wait in the store for its next
  welcome (``LoadReceipts``).

The router owns no session lifetimes: ``HubCore`` adds a session at its welcome and
removes it when it ends, and every store result is checked against ``welcomed``.
"""

from __future__ import annotations

from typing import final

from udpim.im.actions import Action, Send, Store
from udpim.im.hubsession import (
    Acking,
    DeletingReceipt,
    HubCounters,
    HubSession,
    LoadingPage,
    LoadingReceipts,
    PendingOp,
    StoringMessage,
)
from udpim.im.mailbox import MailboxFeed
from udpim.im.ops import (
    AckMailbox,
    DeleteReceipt,
    Delivery,
    LoadMailbox,
    LoadReceipts,
    ReceiptDue,
    StoreMessage,
)
from udpim.im.pending import PendingOps
from udpim.im.protocol import (
    AcceptedFrame,
    AckFrame,
    DeliverFrame,
    ReceiptAckFrame,
    ReceiptFrame,
    SendFrame,
    encode_frame,
)

__all__ = ["Router"]


@final
class Router:
    """Message fan-out, mailbox pacing and receipts for welcomed sessions.

    Args:
        pending: the hub's table of store ops in flight (shared with ``HubCore``).
        counters: the hub's counters (shared).
        window: most unacked ``deliver`` frames per session.
        window_bytes: about the most unacked body chars per session.
        page_size: mailbox entries per load.
    """

    __slots__ = ("_by_device", "_by_user", "_counters", "_page", "_pending", "_wbytes", "_window")

    def __init__(
        self,
        pending: PendingOps[PendingOp],
        counters: HubCounters,
        *,
        window: int,
        window_bytes: int,
        page_size: int,
    ) -> None:
        self._pending = pending
        self._counters = counters
        self._window = window
        self._wbytes = window_bytes
        self._page = page_size
        # user -> its welcomed sessions in welcome order: a tuple, as a user has one or a
        # few (a dict costs 184 bytes even with one entry, and a hub holds 100 000 users)
        self._by_user: dict[str, tuple[HubSession, ...]] = {}
        self._by_device: dict[tuple[str, str], HubSession] = {}

    @property
    def session_count(self) -> int:
        """How many sessions are routed to (welcomed)."""
        return len(self._by_device)

    def add(self, session: HubSession, cursor: int) -> list[Action]:
        """``session`` was just welcomed with durable cursor ``cursor``: start its feed."""
        session.feed = MailboxFeed(
            cursor, window=self._window, window_bytes=self._wbytes, page_size=self._page
        )
        others = self._by_user.get(session.user, ())
        self._by_user[session.user] = (*_without(others, session.sid), session)
        self._by_device[session.user, session.device] = session
        op = LoadReceipts(session.user, session.device)
        return [self._pending.submit(op, LoadingReceipts(session)), *self._next_page(session)]

    def remove(self, session: HubSession) -> None:
        """``session`` ended: route nothing more to it."""
        if self._by_device.get((session.user, session.device)) is session:
            del self._by_device[session.user, session.device]
        sessions = self._by_user.get(session.user, ())
        rest = _without(sessions, session.sid)
        if rest:
            self._by_user[session.user] = rest
        elif sessions:
            del self._by_user[session.user]

    # ------------------------------------------------------------------ sending

    def store(self, session: HubSession, frame: SendFrame) -> Store:
        """Store a ``send`` from ``session``; the sender is the session's user, always."""
        op = StoreMessage(
            sender=session.user,
            sender_device=session.device,
            id=frame.id,
            to=frame.to,
            body=frame.body,
            sent_at=frame.sent_at,
        )
        return self._pending.submit(op, StoringMessage(session, op))

    def on_stored(self, record: StoringMessage, seq: int, new: bool) -> list[Action]:
        """``StoreMessage`` committed: answer ``accepted``, push to the recipient's devices."""
        op = record.op
        actions: list[Action] = []
        if record.session.welcomed:
            actions.append(Send(record.session.sid, encode_frame(AcceptedFrame(op.id))))
        if not new:
            self._counters.duplicate_sends += 1
            return actions
        self._counters.messages_stored += 1
        delivery = Delivery(seq, op.id, op.sender, op.to, op.body, op.sent_at)
        for session in self._by_user.get(op.to, ()):
            assert session.feed is not None
            if session.feed.on_stored(delivery, len(op.body)):
                actions.append(self._deliver(session, delivery))
            else:
                actions += self._next_page(session)
        return actions

    def _deliver(self, session: HubSession, row: Delivery) -> Send:
        self._counters.delivers_pushed += 1
        frame = DeliverFrame(row.seq, row.id, row.sender, row.to, row.body, row.sent_at)
        return Send(session.sid, encode_frame(frame))

    def _next_page(self, session: HubSession) -> list[Action]:
        assert session.feed is not None
        request = session.feed.next_page()
        if request is None:
            return []
        op = LoadMailbox(session.user, request.after_seq, request.limit)
        return [self._pending.submit(op, LoadingPage(session, request))]

    def on_page(self, record: LoadingPage, rows: list[Delivery]) -> list[Action]:
        """A ``LoadMailbox`` answered: push what the feed allows, maybe load more."""
        session = record.session
        if not session.welcomed:
            return []
        assert session.feed is not None
        pushed = session.feed.on_page(record.request, rows, [len(row.body) for row in rows])
        actions: list[Action] = [self._deliver(session, row) for row in pushed]
        return actions + self._next_page(session)

    # ------------------------------------------------------------------ acks and receipts

    def on_ack(self, session: HubSession, frame: AckFrame, now_ms: int) -> list[Action]:
        """An ``ack`` from ``session``: advance its cursor durably, refill its window."""
        assert session.feed is not None
        acked = session.feed.on_ack(frame.seq)
        if acked is None:
            return []
        op = AckMailbox(session.user, session.device, acked, at=now_ms)
        return [self._pending.submit(op, Acking(session)), *self._next_page(session)]

    def push_receipts(self, receipts: list[ReceiptDue]) -> list[Action]:
        """Send each receipt to its sending device's session, if that one is welcomed."""
        actions: list[Action] = []
        for receipt in receipts:
            target = self._by_device.get((receipt.sender, receipt.sender_device))
            if target is not None and target.welcomed:
                self._counters.receipts_pushed += 1
                frame = ReceiptFrame(id=receipt.id, to=receipt.to, at=receipt.at)
                actions.append(Send(target.sid, encode_frame(frame)))
        return actions

    def forget_receipt(self, session: HubSession, frame: ReceiptAckFrame) -> Store:
        """The sending device stored the receipt: delete it."""
        op = DeleteReceipt(session.user, session.device, frame.id)
        return self._pending.submit(op, DeletingReceipt())


def _without(sessions: tuple[HubSession, ...], sid: bytes) -> tuple[HubSession, ...]:
    """``sessions`` less the one of ``sid`` (if any), in the same order."""
    return tuple(session for session in sessions if session.sid != sid)
