"""Store results that come back late, out of order, twice, or as failures."""

from __future__ import annotations

from tests.im.world import World
from udpim.im.events import SessionWelcomed, StoreFailed, Welcomed
from udpim.im.ops import AckMailbox, LoadMailbox, StoreInbox, StoreMessage, TouchDevice


def _world() -> World:
    world = World()
    for name in ("alice", "bob"):
        world.add_peer(name)
    world.settle()
    return world


def test_accepted_is_dropped_if_the_sender_left_before_the_store_answered() -> None:
    world = _world()
    world.online("bob")
    world.online("alice")
    message_id = world.send("alice", "bob", "hi")
    world.commit()
    world.pump()  # StoreMessage queued at the hub
    world.commit(hold=True)
    world.disconnect("alice")
    world.release()  # late: the sender session is gone
    world.settle()
    assert world.peers["bob"].store.bodies() == ["hi"]  # delivery does not depend on it
    assert world.peers["alice"].store.states()[message_id] == "queued"
    world.online("alice")
    assert world.peers["alice"].store.states()[message_id] == "delivered"
    assert world.peers["bob"].store.bodies() == ["hi"]


def test_welcome_is_not_sent_if_the_session_closed_before_touch_device_answered() -> None:
    world = _world()
    world.connect("bob")
    world.pump()  # hello
    world.commit(hold=True)  # BindAccount, TouchDevice
    world.disconnect("bob")
    world.release()
    world.settle()
    assert not any(isinstance(e, SessionWelcomed) for e in world.hub_events)
    assert world.hub.statistics().sessions == 0


def test_pages_for_a_closed_session_push_nothing() -> None:
    world = _world()
    world.online("bob")
    world.disconnect("bob")
    world.online("alice")
    world.send("alice", "bob", "hi")
    world.settle()
    link = world.connect("bob")
    world.pump()
    world.commit(1)  # TouchDevice: welcome + LoadReceipts + LoadMailbox queued
    world.commit(hold=True)
    world.disconnect("bob")
    delivers_before = world.hub.statistics().delivers_pushed
    world.release()
    assert world.hub.statistics().delivers_pushed == delivers_before == 0
    assert not any(b'"deliver"' in payload for payload in link.to_peer)
    world.online("bob")
    assert world.peers["bob"].store.bodies() == ["hi"]


def test_message_results_out_of_order_still_deliver_in_seq_order() -> None:
    world = _world()
    link = world.online("bob")
    world.online("alice")
    bodies = [f"m{i}" for i in range(6)]
    for body in bodies:
        world.send("alice", "bob", body)
    world.commit()
    world.pump()  # six StoreMessage ops queued at the hub
    world.commit(hold=True)
    world.release(order=[5, 3, 4, 0, 2, 1])
    world.commit()  # the mailbox load that fills the gap
    world.pump()
    world.settle()
    assert world.peers["bob"].store.bodies() == bodies
    assert link.up


def test_mixed_results_released_in_reverse_order() -> None:
    world = _world()
    world.online("bob")
    world.online("alice")
    bodies = [f"m{i}" for i in range(12)]
    for index, body in enumerate(bodies):
        world.send("alice", "bob", body)
        if index % 3 == 0:
            world.commit(hold=True)
            world.pump()
            world.commit(hold=True)
            world.release(order=list(reversed(range(len(world.held)))))
            world.pump()
    world.settle()
    assert world.peers["bob"].store.bodies() == bodies
    assert set(world.peers["alice"].store.states().values()) == {"delivered"}


def test_duplicate_results_are_ignored() -> None:
    world = _world()
    world.online("bob")
    world.online("alice")
    world.send("alice", "bob", "hi")
    world.commit()
    world.pump()
    world.commit(hold=True)
    (held,) = world.held
    world.release()
    world.held = [held]
    world.release()  # the same token again
    world.settle()
    assert world.peers["bob"].store.bodies() == ["hi"]
    assert world.hub.statistics().messages_stored == 1


def test_hub_store_failures_close_the_session_and_lose_nothing() -> None:
    world = _world()
    world.online("bob")
    world.online("alice")
    for op in (StoreMessage, LoadMailbox, AckMailbox, TouchDevice):
        world.fail_next.add(op)
        world.send("alice", "bob", op.__name__)
        world.settle()
        for name in ("alice", "bob"):
            if world.peers[name].link is None:
                world.online(name)
        world.disconnect("bob")
        world.settle()
        world.online("bob")
        for name in ("alice", "bob"):
            if world.peers[name].link is None:
                world.online(name)
    world.settle()
    failed = [e.op_name for e in world.hub_events if isinstance(e, StoreFailed)]
    assert failed == ["StoringMessage", "LoadingPage", "Acking", "TouchingDevice"]
    assert world.peers["bob"].store.bodies() == [
        "StoreMessage",
        "LoadMailbox",
        "AckMailbox",
        "TouchDevice",
    ]
    assert set(world.peers["alice"].store.states().values()) == {"delivered"}


def test_peer_inbox_failure_gets_the_message_redelivered() -> None:
    world = _world()
    world.online("bob")
    world.online("alice")
    world.fail_next.add(StoreInbox)
    world.send("alice", "bob", "hi")
    world.settle()
    assert world.peers["bob"].link is None  # the daemon closed to get a redelivery
    world.online("bob")
    assert world.peers["bob"].store.bodies() == ["hi"]
    assert sum(isinstance(e, Welcomed) for e in world.peers["bob"].events) == 2


def test_a_message_stored_after_a_page_but_answered_before_it_is_not_missed() -> None:
    world = _world()
    world.online("bob")
    world.disconnect("bob")
    world.online("alice")
    world.send("alice", "bob", "old")
    world.settle()
    world.connect("bob")
    world.pump()
    world.commit(1)  # TouchDevice: LoadReceipts + LoadMailbox queued
    world.commit(2, hold=True)  # the page sees only "old"; its result is held
    world.send("alice", "bob", "new")
    world.commit()  # alice's enqueue
    world.pump()  # the send reaches the hub: StoreMessage queued after the page load
    world.commit(hold=True)  # StoreMessage, result held
    assert len(world.held) == 3
    world.release(order=[2, 0, 1])  # the new message's result comes first
    world.settle()
    assert world.peers["bob"].store.bodies() == ["old", "new"]


def test_a_failed_replacement_leaves_the_old_session_in_charge() -> None:
    world = _world()
    world.online("alice")
    world.online("bob")
    world.disconnect("bob", tell_hub=False)  # the hub still holds bob's old session
    world.fail_next.add(TouchDevice)
    world.online("bob")  # the new session fails before its welcome
    assert world.hub.statistics().welcomed_sessions == 2  # alice and the old bob
    world.online("bob")  # the next one replaces the old session
    stats = world.hub.statistics()
    assert (stats.sessions, stats.welcomed_sessions) == (2, 2)
    world.send("alice", "bob", "hi")
    world.settle()
    assert world.peers["bob"].store.bodies() == ["hi"]
