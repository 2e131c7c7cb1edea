"""The cores' parts, through their public methods: phase table, feed, acks, outbox,
accounts, watch list, pending table."""

from __future__ import annotations

import pytest

from udpim.core.errors import LocalProtocolError
from udpim.im.accounts import AccountBook, Admission
from udpim.im.contacts import WatchList
from udpim.im.formats import MAX_WATCH_USERS
from udpim.im.hubsession import HubSession, SessionPhase
from udpim.im.inboxacks import AckTracker
from udpim.im.mailbox import MailboxFeed, PageRequest
from udpim.im.ops import Delivery, LoadAccounts, OutboxEntry, OutboxState
from udpim.im.outbox import Outbox
from udpim.im.pending import PendingOps

P = SessionPhase
LEGAL = [
    (P.AWAITING_HELLO, P.AWAITING_ACCOUNTS),
    (P.AWAITING_HELLO, P.AWAITING_DEVICE),
    (P.AWAITING_HELLO, P.ENDED),
    (P.AWAITING_ACCOUNTS, P.AWAITING_DEVICE),
    (P.AWAITING_ACCOUNTS, P.ENDED),
    (P.AWAITING_DEVICE, P.WELCOMED),
    (P.AWAITING_DEVICE, P.ENDED),
    (P.WELCOMED, P.ENDED),
    (P.ENDED, P.ENDED),
]


def _session_in(phase: SessionPhase) -> HubSession:
    session = HubSession(sid=b"s", key=b"k")
    session.phase = phase
    return session


@pytest.mark.parametrize(("before", "after"), LEGAL)
def test_legal_phase_moves(before: SessionPhase, after: SessionPhase) -> None:
    session = _session_in(before)
    session.advance(after)
    assert session.phase is after


@pytest.mark.parametrize(
    ("before", "after"),
    [(b, a) for b in SessionPhase for a in SessionPhase if (b, a) not in LEGAL],
)
def test_illegal_phase_moves_raise_and_change_nothing(
    before: SessionPhase, after: SessionPhase
) -> None:
    session = _session_in(before)
    with pytest.raises(LocalProtocolError):
        session.advance(after)
    assert session.phase is before


def _row(seq: int) -> Delivery:
    return Delivery(seq, f"{seq:024x}", "alice", "bob", "x", seq)


def test_feed_starts_behind_and_loads_pages_within_the_window() -> None:
    feed = MailboxFeed(10, window=5, window_bytes=1000, page_size=3)
    assert feed.behind
    request = feed.next_page()
    assert request == PageRequest(after_seq=10, limit=3)
    assert feed.next_page() is None  # one load at a time
    pushed = feed.on_page(request, [_row(11), _row(12), _row(13)], [1, 1, 1])
    assert [r.seq for r in pushed] == [11, 12, 13]
    assert feed.behind  # a full page: there may be more
    request = feed.next_page()
    assert request == PageRequest(after_seq=13, limit=2)  # only two left in the window
    assert [r.seq for r in feed.on_page(request, [_row(14)], [1])] == [14]
    assert not feed.behind
    assert feed.on_stored(_row(15), 1)  # live, exactly the next seq, room left
    assert not feed.on_stored(_row(16), 1)  # window full: falls back to loading
    assert feed.next_page() is None
    assert feed.on_ack(12) == 12
    assert feed.next_page() == PageRequest(after_seq=15, limit=2)


def test_feed_caps_acks_and_ignores_old_ones() -> None:
    feed = MailboxFeed(0, window=10, window_bytes=1000, page_size=10)
    request = feed.next_page()
    assert request is not None
    feed.on_page(request, [_row(1), _row(2)], [1, 1])
    assert feed.on_ack(99) == 2
    assert feed.acked == 2
    assert feed.on_ack(1) is None
    assert feed.in_flight_bytes == 0


def test_feed_window_in_bytes() -> None:
    feed = MailboxFeed(0, window=100, window_bytes=10, page_size=10)
    request = feed.next_page()
    assert request is not None
    feed.on_page(request, [_row(1), _row(2)], [6, 6])
    assert feed.in_flight_bytes == 12
    assert not feed.on_stored(_row(3), 1)  # over the byte window
    assert feed.next_page() is None
    feed.on_ack(1)
    assert feed.next_page() == PageRequest(after_seq=2, limit=10)


def test_feed_skips_rows_already_pushed_and_survives_gaps() -> None:
    feed = MailboxFeed(0, window=100, window_bytes=1000, page_size=10)
    request = feed.next_page()
    assert request is not None
    pushed = feed.on_page(request, [_row(1), _row(3)], [1, 1])  # a gap at 2
    assert [r.seq for r in pushed] == [1, 3]
    assert not feed.on_stored(_row(3), 1)  # already pushed
    assert not feed.on_stored(_row(2), 1)


def test_ack_tracker_is_cumulative_and_coalesced() -> None:
    acks = AckTracker(every=2)
    slots = [acks.received(seq) for seq in (5, 6, 7)]
    assert acks.committed(slots[1]) is None  # 5 not stored yet
    assert acks.committed(slots[0]) == 6  # 5 and 6: two since the last ack
    assert acks.committed(slots[2]) == 7  # none left waiting
    assert acks.committed(slots[2]) is None  # unknown slot now
    stale = acks.received(8)
    acks.reset()
    assert acks.committed(stale) is None
    assert acks.committed(acks.received(1)) == 1


def test_outbox_order_window_and_final_states() -> None:
    outbox = Outbox(window=2)
    outbox.add("new", "bob", "n", 9)
    outbox.load(
        [
            OutboxEntry("a", "bob", "1", 1, OutboxState.QUEUED),
            OutboxEntry("b", "carol", "2", 2, OutboxState.ACCEPTED),
            OutboxEntry("c", "bob", "3", 3, OutboxState.QUEUED),
            OutboxEntry("d", "bob", "4", 4, OutboxState.DELIVERED),
        ]
    )
    assert outbox.recipients() == ["bob", "carol"]
    assert outbox.counts() == {"queued": 3, "accepted": 1}
    outbox.restart(1)
    assert [i.id for i in outbox.take_sendable()] == ["a", "c"]  # window of two
    assert outbox.on_accepted("a") is not None
    assert outbox.take_sendable() == []  # "new" is not on disk yet
    assert outbox.mark_durable("new") is not None
    assert [i.id for i in outbox.take_sendable()] == ["new"]
    assert outbox.finish("b", OutboxState.DELIVERED) is not None
    assert outbox.on_accepted("b") is None  # gone: a late accepted changes nothing
    assert len(outbox) == 3
    assert outbox.discard("new") is not None


def test_account_book() -> None:
    book = AccountBook(closed=False)
    assert not book.loaded
    assert not book.bind("alice", b"a")
    book.load({"alice": [b"a"]})
    assert book.check("alice", b"a") is Admission.KNOWN
    assert book.check("alice", b"x") is Admission.TAKEN
    assert book.check("bob", b"b") is Admission.NEW_NAME
    assert book.bind("bob", b"b")
    assert book.bind("carol", b"b")  # one key, two names
    book.unbind("bob", b"b")
    assert not book.has_user("bob")
    assert book.accepts_key(b"zzz")  # open hubs answer every key
    closed = AccountBook(closed=True)
    assert not closed.accepts_key(b"a")
    closed.load({"alice": [b"a"]})
    assert closed.accepts_key(b"a")
    assert closed.check("bob", b"a") is Admission.UNKNOWN
    closed.unbind("alice", b"a")
    assert not closed.accepts_key(b"a")
    assert len(closed) == 0


def test_watch_list() -> None:
    watch = WatchList("me")
    watch.set_explicit(["zed", "amy", "zed"])
    assert watch.add_contacts(["bob", "me", "amy"])
    assert not watch.add_contacts(["bob"])
    assert watch.users() == ["zed", "amy", "bob"]
    watch.add_contacts(f"u{i}" for i in range(2 * MAX_WATCH_USERS))
    assert len(watch.users()) == MAX_WATCH_USERS


def test_pending_ops() -> None:
    pending: PendingOps[str] = PendingOps()
    first = pending.submit(LoadAccounts(), "one")
    second = pending.submit(LoadAccounts(), "two")
    assert (first.token, second.token) == (1, 2)
    assert len(pending) == 2
    assert pending.pop(2) == "two"
    assert pending.pop(2) is None
