"""Routing: live and offline delivery, order, devices, dedupe, senders' identities."""

from __future__ import annotations

import json

from tests.im.world import World
from udpim.im.events import OutboxChanged
from udpim.im.hubcore import DEFAULT_PAGE_SIZE, DEFAULT_PUSH_WINDOW, DEFAULT_PUSH_WINDOW_BYTES
from udpim.im.ops import OutboxState
from udpim.im.protocol import (
    AckFrame,
    DeliverFrame,
    SendFrame,
    decode_frame_untrusted,
    encode_frame,
)


def _world(
    *names: str,
    push_window: int = DEFAULT_PUSH_WINDOW,
    push_window_bytes: int = DEFAULT_PUSH_WINDOW_BYTES,
    page_size: int = DEFAULT_PAGE_SIZE,
) -> World:
    world = World(push_window=push_window, push_window_bytes=push_window_bytes, page_size=page_size)
    for name in names:
        world.add_peer(name)
    world.settle()
    return world


def test_online_delivery() -> None:
    world = _world("alice", "bob")
    world.online("alice")
    world.online("bob")
    world.send("alice", "bob", "hello bob")
    world.settle()
    assert world.peers["bob"].store.bodies() == ["hello bob"]
    assert world.peers["bob"].arrived_bodies() == ["hello bob"]
    (entry,) = world.peers["bob"].store.inbox
    assert (entry.sender, entry.to) == ("alice", "bob")


def test_offline_delivery_in_order_after_reconnect() -> None:
    world = _world("alice", "bob")
    world.online("bob")  # bob's device exists from here on
    world.disconnect("bob")
    world.online("alice")
    sent = [f"m{i}" for i in range(300)]
    for body in sent:
        world.send("alice", "bob", body)
    world.settle()
    assert world.peers["bob"].store.bodies() == []
    assert [d.body for d in world.hub_store.mailbox("bob")] == sent
    world.online("bob")
    assert world.peers["bob"].store.bodies() == sent
    assert world.peers["bob"].arrived_bodies() == sent


def test_small_windows_page_the_mailbox() -> None:
    world = _world("alice", "bob", push_window=4, page_size=3)
    world.online("bob")
    world.disconnect("bob")
    world.online("alice")
    sent = [f"m{i}" for i in range(40)]
    for body in sent:
        world.send("alice", "bob", body)
    world.settle()
    link = world.connect("bob")
    world.commit()  # welcome + first page
    world.pump()
    world.commit()
    world.pump()
    assert len(link.to_peer) <= 4  # never more than the window unacked
    world.settle()
    assert world.peers["bob"].store.bodies() == sent


def test_window_in_bytes_bounds_unacked_pushes() -> None:
    world = _world("alice", "bob", push_window_bytes=1000)
    world.online("bob")
    world.disconnect("bob")
    world.online("alice")
    sent = [f"{i:04d}" + "x" * 396 for i in range(20)]
    for body in sent:
        world.send("alice", "bob", body)
    world.settle()
    link = world.connect("bob")
    for _ in range(3):
        world.commit()
        world.pump()
    world.commit()
    world.settle()
    assert world.peers["bob"].store.bodies() == sent
    assert link.up


def test_live_messages_while_catching_up_keep_order() -> None:
    world = _world("alice", "bob", push_window=8, page_size=4)
    world.online("bob")
    world.disconnect("bob")
    world.online("alice")
    for i in range(20):
        world.send("alice", "bob", f"old{i}")
    world.settle()
    world.connect("bob")
    expected = [f"old{i}" for i in range(20)]
    for i in range(20):  # new messages interleave with the catch-up pages
        world.send("alice", "bob", f"new{i}")
        expected.append(f"new{i}")
        world.commit(2)
        world.pump()
    world.settle()
    assert world.peers["bob"].store.bodies() == expected


def test_every_device_gets_its_copy() -> None:
    world = _world("alice", "bob")
    world.add_peer("bob-laptop", user="bob")
    world.settle()
    world.online("bob")
    world.online("bob-laptop")
    world.disconnect("bob-laptop")
    world.online("alice")
    world.send("alice", "bob", "one")
    world.send("alice", "bob", "two")
    world.settle()
    assert world.peers["bob"].store.bodies() == ["one", "two"]
    world.online("bob-laptop")
    assert world.peers["bob-laptop"].store.bodies() == ["one", "two"]


def test_a_new_device_starts_at_the_mailbox_head() -> None:
    world = _world("alice", "bob")
    world.online("bob")
    world.online("alice")
    world.send("alice", "bob", "before")
    world.settle()
    world.add_peer("bob-new", user="bob")
    world.online("bob-new")
    world.send("alice", "bob", "after")
    world.settle()
    assert world.peers["bob-new"].store.bodies() == ["after"]
    assert world.peers["bob"].store.bodies() == ["before", "after"]


def test_messages_to_self_reach_every_device() -> None:
    world = _world("alice")
    world.add_peer("alice-phone", user="alice")
    world.online("alice")
    world.online("alice-phone")
    world.send("alice", "alice", "note to self")
    world.settle()
    assert world.peers["alice-phone"].store.bodies() == ["note to self"]
    assert world.peers["alice"].store.bodies() == ["note to self"]


def test_cannot_send_as_another_user() -> None:
    world = _world("mallory", "bob")
    world.online("bob")
    link = world.online("mallory")
    forged = {
        "t": "send",
        "id": "aa" * 12,
        "to": "bob",
        "body": "hi",
        "sent_at": 1,
        "from": "alice",
    }
    link.to_hub.append(json.dumps(forged).encode())
    world.settle()
    (entry,) = world.peers["bob"].store.inbox
    assert entry.sender == "mallory"
    assert world.hub_store.mailbox("bob")[0].sender == "mallory"


def test_same_id_from_two_senders_are_two_messages() -> None:
    world = _world("alice", "carol", "bob")
    world.online("bob")
    a = world.online("alice")
    c = world.online("carol")
    for link, body in ((a, "from alice"), (c, "from carol")):
        link.to_hub.append(encode_frame(SendFrame("ab" * 12, "bob", body, 1)))
    world.settle()
    assert world.peers["bob"].store.bodies() == ["from alice", "from carol"]


def test_duplicate_sends_are_stored_and_shown_once() -> None:
    world = _world("alice", "bob")
    world.online("bob")
    link = world.online("alice")
    frame = encode_frame(SendFrame("cd" * 12, "bob", "once", 1))
    for _ in range(3):
        link.to_hub.append(frame)
    world.settle()
    assert world.peers["bob"].store.bodies() == ["once"]
    assert world.peers["bob"].arrived_bodies() == ["once"]
    stats = world.hub.statistics()
    assert (stats.messages_stored, stats.duplicate_sends) == (1, 2)


def test_lost_accepted_means_a_resend_that_is_deduplicated() -> None:
    world = _world("alice", "bob")
    world.online("bob")
    world.online("alice")
    message_id = world.send("alice", "bob", "once")
    world.commit()  # enqueue -> send frame queued on the link
    world.pump()  # hub receives it, StoreMessage queued
    world.commit()  # stored; accepted + deliver queued
    world.disconnect("alice")  # accepted is lost with the session
    world.settle()
    assert world.peers["alice"].store.states()[message_id] == "queued"
    world.online("alice")  # resend; the hub answers accepted again
    assert world.peers["alice"].store.states()[message_id] == "delivered"
    assert world.peers["bob"].store.bodies() == ["once"]
    assert world.hub.statistics().duplicate_sends == 1


def test_redelivery_after_a_lost_ack_is_deduplicated() -> None:
    world = _world("alice", "bob")
    link = world.online("bob")
    world.online("alice")
    world.send("alice", "bob", "once")
    world.commit()
    world.pump()
    world.commit()
    world.pump()  # deliver reached bob; StoreInbox queued
    world.commit()  # stored; ack queued on the link
    link.to_hub.clear()  # the ack is lost
    world.disconnect("bob")
    world.settle()
    world.online("bob")  # redelivered from the old cursor
    assert world.peers["bob"].store.bodies() == ["once"]
    world.restart_peer("bob")
    world.online("bob")
    assert world.peers["bob"].store.bodies() == ["once"]
    assert world.peers["bob"].arrived_bodies() == []  # nothing new after the restart


def test_unknown_recipient_is_rejected() -> None:
    world = _world("alice")
    world.online("alice")
    message_id = world.send("alice", "nobody", "hello?")
    world.settle()
    assert world.peers["alice"].store.states()[message_id] == "rejected"
    changed = [e for e in world.peers["alice"].events if isinstance(e, OutboxChanged)]
    assert changed[-1] == OutboxChanged(
        message_id, "nobody", OutboxState.REJECTED, reason="unknown user"
    )
    assert world.hub.statistics().rejected_sends == 1
    world.restart_peer("alice")
    world.online("alice")  # a rejected message is never sent again
    assert world.hub.statistics().rejected_sends == 1


def test_messages_to_unknown_users_are_not_stored() -> None:
    world = _world("alice")
    link = world.online("alice")
    link.to_hub.append(encode_frame(SendFrame("ef" * 12, "ghost", "boo", 1)))
    world.settle()
    assert world.hub_store.mailbox("ghost") == []
    assert world.hub.statistics().rejected_sends == 1
    # not in alice's outbox: her daemon ignores the rejection
    assert not any(isinstance(e, OutboxChanged) for e in world.peers["alice"].events)


def test_order_per_sender_holds_across_reconnects_with_messages_in_flight() -> None:
    world = _world("alice", "bob")
    world.online("bob")
    world.online("alice")
    expected: list[str] = []
    for round_ in range(6):
        for i in range(10):
            body = f"r{round_}m{i}"
            world.send("alice", "bob", body)
            expected.append(body)
        world.commit(7)
        world.pump()
        world.commit(5)
        if round_ % 2:
            world.disconnect("alice")  # frames in flight are lost
            world.connect("alice")
        else:
            world.disconnect("bob", tell_hub=False)
            world.connect("bob")
        world.pump()
    world.settle()
    assert world.peers["bob"].store.bodies() == expected


def test_ack_beyond_what_was_pushed_is_capped() -> None:
    world = _world("alice", "bob")
    link = world.online("bob")
    world.online("alice")
    world.disconnect("bob")
    world.send("alice", "bob", "one")
    world.settle()
    link = world.connect("bob")
    world.pump()  # hello
    world.commit(1)  # TouchDevice: welcome sent, mailbox load queued
    link.to_hub.append(encode_frame(AckFrame(10**6)))  # after welcome, before any deliver
    world.settle()
    assert world.peers["bob"].store.bodies() == ["one"]
    assert world.hub_store.cursors[("bob", world.peers["bob"].core.device or "")] == 1


def test_deliver_frames_carry_the_mailbox_seq() -> None:
    world = _world("alice", "bob")
    link = world.online("bob")
    world.online("alice")
    world.send("alice", "bob", "x")
    world.send("alice", "bob", "y")
    world.commit()
    world.pump()
    world.commit()
    frames = [decode_frame_untrusted(p) for p in link.to_peer]
    assert [f.seq for f in frames if isinstance(f, DeliverFrame)] == [1, 2]
