"""PeerCore on its own: the hub side is played by hand, frame by frame."""

from __future__ import annotations

import random

import pytest

from udpim.core.errors import LocalProtocolError
from udpim.im.actions import Action, Close, Notify, Send, Store
from udpim.im.events import MessageArrived, OutboxChanged, Refused, StateLoaded, StoreFailed
from udpim.im.ops import (
    EnqueueOutbox,
    LoadPeerState,
    OutboxEntry,
    OutboxState,
    PeerState,
    PinHubKey,
    SetOutboxState,
    StoreInbox,
)
from udpim.im.peercore import ConnectionPhase, PeerCore
from udpim.im.protocol import (
    AcceptedFrame,
    AckFrame,
    DeliverFrame,
    Frame,
    HelloFrame,
    PresenceFrame,
    ReceiptAckFrame,
    ReceiptFrame,
    RefusedFrame,
    RejectedFrame,
    SendFrame,
    WatchFrame,
    WelcomeFrame,
    decode_frame_untrusted,
    encode_frame,
)

SID = b"s001"
DEV = "00112233aabbccdd"


def _frames(actions: list[Action]) -> list[Frame]:
    return [decode_frame_untrusted(a.payload) for a in actions if isinstance(a, Send)]


def _stores(actions: list[Action]) -> list[Store]:
    return [a for a in actions if isinstance(a, Store)]


def _notices(actions: list[Action]) -> list[object]:
    return [a.event for a in actions if isinstance(a, Notify)]


def _loaded(outbox: list[OutboxEntry] | None = None, last_seq: int = 0) -> PeerCore:
    peer = PeerCore(user="alice", rng=random.Random(3).randbytes)
    (load,) = _stores(peer.start())
    assert isinstance(load.op, LoadPeerState)
    assert len(load.op.new_device) == 16
    actions = peer.on_store_result(load.token, PeerState(DEV, None, outbox or [], last_seq))
    assert _notices(actions) == [StateLoaded(DEV, None, last_seq)]
    return peer


def _welcomed(outbox: list[OutboxEntry] | None = None) -> tuple[PeerCore, list[Action]]:
    peer = _loaded(outbox)
    assert _frames(peer.on_connected(SID)) == [HelloFrame("alice", DEV)]
    actions = peer.on_message(SID, encode_frame(WelcomeFrame("alice", DEV, 1)), 0)
    assert peer.phase is ConnectionPhase.WELCOMED
    return peer, actions


def test_hello_waits_for_the_state() -> None:
    peer = PeerCore(user="alice", rng=random.Random(3).randbytes)
    (load,) = _stores(peer.start())
    assert peer.on_connected(SID) == []
    assert peer.phase is ConnectionPhase.AWAITING_STATE
    actions = peer.on_store_result(load.token, PeerState(DEV, b"k" * 32, [], 9))
    assert _frames(actions) == [HelloFrame("alice", DEV)]
    assert peer.device == DEV
    assert peer.hub_key == b"k" * 32
    assert peer.status()["last_seq"] == 9


def test_send_goes_out_only_after_the_enqueue_committed() -> None:
    peer, _ = _welcomed()
    message_id, actions = peer.send("bob", "hi", 42)
    assert len(message_id) == 24
    (enqueue,) = _stores(actions)
    assert enqueue.op == EnqueueOutbox(message_id, "bob", "hi", 42)
    assert _frames(actions) == [WatchFrame(("bob",))]  # bob became a contact
    after = peer.on_store_result(enqueue.token, None)
    assert _notices(after) == [OutboxChanged(message_id, "bob", OutboxState.QUEUED)]
    assert _frames(after) == [SendFrame(message_id, "bob", "hi", 42)]


def test_sends_keep_order_even_if_enqueues_complete_out_of_order() -> None:
    peer, _ = _welcomed()
    first, a1 = peer.send("bob", "one", 1)
    second, a2 = peer.send("bob", "two", 2)
    assert _frames(peer.on_store_result(_stores(a2)[0].token, None)) == []
    frames = _frames(peer.on_store_result(_stores(a1)[0].token, None))
    assert [f.id for f in frames if isinstance(f, SendFrame)] == [first, second]


def test_send_validates_its_arguments() -> None:
    peer = PeerCore(user="alice", rng=random.Random(3).randbytes)
    with pytest.raises(LocalProtocolError):
        peer.send("bob", "too early", 1)
    peer.start()
    with pytest.raises(LocalProtocolError):
        peer.send("Bob", "x", 1)
    with pytest.raises(LocalProtocolError):
        peer.send("bob", "x" * 65537, 1)
    with pytest.raises(LocalProtocolError):
        peer.start()
    with pytest.raises(LocalProtocolError):
        PeerCore(user="not a name", rng=random.Random(3).randbytes)
    with pytest.raises(LocalProtocolError):
        peer.watch(["ok", "NOT OK"])


def test_sends_before_the_state_loaded_follow_the_stored_outbox() -> None:
    peer = PeerCore(user="alice", rng=random.Random(3).randbytes)
    (load,) = _stores(peer.start())
    new_id, actions = peer.send("bob", "new", 5)
    stored = OutboxEntry("aa" * 12, "bob", "old", 1, OutboxState.QUEUED)
    peer.on_store_result(load.token, PeerState(DEV, None, [stored], 0))
    peer.on_store_result(_stores(actions)[0].token, None)
    peer.on_connected(SID)
    actions = peer.on_message(SID, encode_frame(WelcomeFrame("alice", DEV, 1)), 0)
    sends = [f for f in _frames(actions) if isinstance(f, SendFrame)]
    assert [f.body for f in sends] == ["old", "new"]
    assert new_id != stored.id


def test_welcome_resends_queued_but_not_accepted_messages() -> None:
    outbox = [
        OutboxEntry("aa" * 12, "bob", "one", 1, OutboxState.QUEUED),
        OutboxEntry("bb" * 12, "bob", "two", 2, OutboxState.ACCEPTED),
        OutboxEntry("cc" * 12, "carol", "three", 3, OutboxState.QUEUED),
    ]
    _, actions = _welcomed(outbox)
    frames = _frames(actions)
    assert frames[0] == WatchFrame(("bob", "carol"))
    assert [f.id for f in frames if isinstance(f, SendFrame)] == ["aa" * 12, "cc" * 12]


def test_send_window_limits_unaccepted_frames() -> None:
    peer = PeerCore(user="alice", rng=random.Random(3).randbytes, send_window=2)
    (load,) = _stores(peer.start())
    outbox = [OutboxEntry(f"{i:024x}", "bob", f"m{i}", i, OutboxState.QUEUED) for i in range(5)]
    peer.on_store_result(load.token, PeerState(DEV, None, outbox, 0))
    peer.on_connected(SID)
    frames = _frames(peer.on_message(SID, encode_frame(WelcomeFrame("alice", DEV, 1)), 0))
    assert [f.body for f in frames if isinstance(f, SendFrame)] == ["m0", "m1"]
    more = _frames(peer.on_message(SID, encode_frame(AcceptedFrame(f"{0:024x}")), 0))
    assert [f.body for f in more if isinstance(f, SendFrame)] == ["m2"]


def test_accepted_is_reported_after_its_write_and_only_once() -> None:
    peer, _ = _welcomed()
    message_id, actions = peer.send("bob", "hi", 1)
    peer.on_store_result(_stores(actions)[0].token, None)
    accepted = encode_frame(AcceptedFrame(message_id))
    actions = peer.on_message(SID, accepted, 0)
    (mark,) = _stores(actions)
    assert mark.op == SetOutboxState(message_id, OutboxState.ACCEPTED)
    assert _notices(actions) == []
    assert peer.on_message(SID, accepted, 0) == []  # repeated: nothing to do
    assert _notices(peer.on_store_result(mark.token, None)) == [
        OutboxChanged(message_id, "bob", OutboxState.ACCEPTED)
    ]


def test_receipt_ack_follows_the_delivered_write() -> None:
    peer, _ = _welcomed()
    message_id, actions = peer.send("bob", "hi", 1)
    peer.on_store_result(_stores(actions)[0].token, None)
    receipt = encode_frame(ReceiptFrame(message_id, "bob", 77))
    actions = peer.on_message(SID, receipt, 0)
    (mark,) = _stores(actions)
    assert mark.op == SetOutboxState(message_id, OutboxState.DELIVERED)
    assert _frames(actions) == []
    assert peer.on_message(SID, receipt, 0) == []  # duplicate while the write is pending
    done = peer.on_store_result(mark.token, None)
    assert _notices(done) == [OutboxChanged(message_id, "bob", OutboxState.DELIVERED, 77)]
    assert _frames(done) == [ReceiptAckFrame(message_id)]
    assert _frames(peer.on_message(SID, receipt, 0)) == [ReceiptAckFrame(message_id)]


def test_delivers_are_acked_cumulatively_after_they_are_stored() -> None:
    peer = PeerCore(user="alice", rng=random.Random(3).randbytes, ack_every=3)
    (load,) = _stores(peer.start())
    peer.on_store_result(load.token, PeerState(DEV, None, [], 0))
    peer.on_connected(SID)
    peer.on_message(SID, encode_frame(WelcomeFrame("alice", DEV, 1)), 0)
    stores: list[Store] = []
    for seq in range(1, 6):
        frame = DeliverFrame(seq, f"{seq:024x}", "bob", "alice", f"b{seq}", seq)
        actions = peer.on_message(SID, encode_frame(frame), 100 + seq)
        stores += _stores(actions)
    assert stores[0].op == StoreInbox(1, f"{1:024x}", "bob", "alice", "b1", 1, 101)
    # results come back out of order: 2, 1, 3, 5, 4
    assert _frames(peer.on_store_result(stores[1].token, True)) == []
    assert _frames(peer.on_store_result(stores[0].token, True)) == []
    assert _frames(peer.on_store_result(stores[2].token, True)) == [AckFrame(3)]
    assert _frames(peer.on_store_result(stores[4].token, False)) == []
    actions = peer.on_store_result(stores[3].token, True)
    assert _frames(actions) == [AckFrame(5)]
    arrived = [n for n in _notices(actions) if isinstance(n, MessageArrived)]
    assert [a.seq for a in arrived] == [4]
    assert peer.status()["last_seq"] == 5


def test_stored_delivers_of_an_old_session_are_not_acked_on_the_new_one() -> None:
    peer, _ = _welcomed()
    frame = DeliverFrame(1, "ab" * 12, "bob", "alice", "x", 1)
    (store,) = _stores(peer.on_message(SID, encode_frame(frame), 5))
    peer.on_disconnected(SID)
    peer.on_connected(b"s002")
    peer.on_message(b"s002", encode_frame(WelcomeFrame("alice", DEV, 2)), 0)
    actions = peer.on_store_result(store.token, True)
    assert _frames(actions) == []
    assert [type(n) for n in _notices(actions)] == [MessageArrived]


def test_presence_and_refusal_are_reported() -> None:
    peer, _ = _welcomed()
    actions = peer.on_message(SID, encode_frame(PresenceFrame("bob", True)), 0)
    assert peer.status()["presence"] == {"bob": True}
    assert len(_notices(actions)) == 1
    peer.on_disconnected(SID)
    assert peer.status()["presence"] == {}
    peer.on_connected(b"s002")
    actions = peer.on_message(b"s002", encode_frame(RefusedFrame("no")), 0)
    assert _notices(actions) == [Refused("no")]


def test_the_hub_must_welcome_us_before_anything_else() -> None:
    peer = _loaded()
    peer.on_connected(SID)
    actions = peer.on_message(SID, encode_frame(AcceptedFrame("ab" * 12)), 0)
    assert actions == [Close(SID, "frame before welcome")]
    peer.on_connected(b"s002")
    wrong = encode_frame(WelcomeFrame("mallory", DEV, 1))
    assert peer.on_message(b"s002", wrong, 0) == [
        Close(b"s002", "welcome does not match our hello")
    ]


def test_hostile_frames_from_the_hub_close_the_session() -> None:
    peer, _ = _welcomed()
    (close,) = peer.on_message(SID, b"\x00garbage", 0)
    assert isinstance(close, Close)
    assert peer.on_message(SID, encode_frame(AckFrame(1)), 0) == [
        Close(SID, "unexpected frame AckFrame")
    ]
    not_ours = DeliverFrame(1, "ab" * 12, "bob", "carol", "x", 1)
    assert peer.on_message(SID, encode_frame(not_ours), 0) == [
        Close(SID, "deliver for another user")
    ]


def test_messages_on_a_stale_session_are_ignored() -> None:
    peer, _ = _welcomed()
    assert peer.on_message(b"old!", encode_frame(PresenceFrame("bob", True)), 0) == []
    assert peer.on_disconnected(b"old!") == []
    assert peer.phase is ConnectionPhase.WELCOMED


def test_pinning_the_hub_key() -> None:
    peer = _loaded()
    (pin,) = _stores(peer.pin_hub_key(b"h" * 32))
    assert pin.op == PinHubKey(b"h" * 32)
    assert peer.hub_key == b"h" * 32
    assert peer.status()["hub_key"] == "68" * 32
    assert peer.on_store_result(pin.token, None) == []


def test_explicit_watch_list_and_status() -> None:
    peer, _ = _welcomed()
    assert _frames(peer.watch(["carol", "dave", "carol"])) == [WatchFrame(("carol", "dave"))]
    status = peer.status()
    assert status["watching"] == ["carol", "dave"]
    assert status["user"] == "alice"
    assert status["device"] == DEV
    assert status["connection"] == "welcomed"


def test_store_failures() -> None:
    peer, _ = _welcomed()
    message_id, actions = peer.send("bob", "hi", 1)
    failed = peer.on_store_error(_stores(actions)[0].token, OSError("disk full"))
    assert _notices(failed) == [StoreFailed("Enqueueing", "disk full")]
    assert peer.status()["outbox"] == {"queued": 0, "accepted": 0}
    frame = DeliverFrame(1, "ab" * 12, "bob", "alice", "x", 1)
    (store,) = _stores(peer.on_message(SID, encode_frame(frame), 5))
    assert Close(SID, "inbox store failure") in peer.on_store_error(store.token, OSError("x"))
    assert peer.on_store_error(store.token, OSError("again")) == []  # unknown token
    assert message_id


def test_message_ids_never_repeat_in_the_outbox() -> None:
    draws = iter([b"\x01" * 8, b"\x02" * 12, b"\x02" * 12, b"\x03" * 12])
    peer = PeerCore(user="alice", rng=lambda n: next(draws)[:n])
    peer.start()
    first, _ = peer.send("bob", "one", 1)
    second, _ = peer.send("bob", "two", 2)  # the rng repeated itself: drawn again
    assert (first, second) == ("02" * 12, "03" * 12)


def test_refused_after_welcome_and_unknown_rejections() -> None:
    peer, _ = _welcomed()
    assert _notices(peer.on_message(SID, encode_frame(RefusedFrame("later")), 0)) == [
        Refused("later")
    ]
    rejected = encode_frame(RejectedFrame("ab" * 12, "unknown user"))
    assert peer.on_message(SID, rejected, 0) == []


def test_a_failed_delivered_write_is_retried_by_the_next_receipt() -> None:
    peer, _ = _welcomed()
    message_id, actions = peer.send("bob", "hi", 1)
    peer.on_store_result(_stores(actions)[0].token, None)
    receipt = encode_frame(ReceiptFrame(message_id, "bob", 77))
    (mark,) = _stores(peer.on_message(SID, receipt, 0))
    failed = peer.on_store_error(mark.token, OSError("io"))
    assert _notices(failed) == [StoreFailed("Marking", "io")]
    assert _frames(failed) == []  # no receipt_ack: the hub keeps the receipt
    assert _frames(peer.on_message(SID, receipt, 0)) == [ReceiptAckFrame(message_id)]


def test_a_pinned_key_in_memory_wins_over_a_late_load() -> None:
    peer = PeerCore(user="alice", rng=random.Random(3).randbytes)
    (load,) = _stores(peer.start())
    peer.pin_hub_key(b"n" * 32)
    peer.on_store_result(load.token, PeerState(DEV, b"o" * 32, [], 0))
    assert peer.hub_key == b"n" * 32
