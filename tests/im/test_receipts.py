"""Receipts: queued -> accepted -> delivered, durable on both sides, offline senders."""

from __future__ import annotations

from tests.im.world import World
from udpim.im.events import OutboxChanged
from udpim.im.ops import OutboxState
from udpim.im.protocol import ReceiptFrame, encode_frame


def _states(world: World, name: str, message_id: str) -> list[OutboxState]:
    return [
        e.state
        for e in world.peers[name].events
        if isinstance(e, OutboxChanged) and e.id == message_id
    ]


def _world() -> World:
    world = World()
    world.add_peer("alice")
    world.add_peer("bob")
    world.settle()
    return world


def test_states_progress_queued_accepted_delivered() -> None:
    world = _world()
    world.online("alice")
    world.online("bob")
    message_id = world.send("alice", "bob", "hi")
    assert _states(world, "alice", message_id) == []  # not on disk yet
    world.commit(1)
    assert _states(world, "alice", message_id) == [OutboxState.QUEUED]
    assert world.peers["alice"].store.states()[message_id] == "queued"
    world.settle()
    assert _states(world, "alice", message_id) == [
        OutboxState.QUEUED,
        OutboxState.ACCEPTED,
        OutboxState.DELIVERED,
    ]
    assert world.peers["alice"].store.states()[message_id] == "delivered"
    delivered = [e for e in world.peers["alice"].events if isinstance(e, OutboxChanged)][-1]
    assert delivered.at == world.now_ms
    assert world.hub_store.receipts[("alice", world.peers["alice"].core.device or "")] == {}


def test_accepted_only_while_recipient_is_offline() -> None:
    world = _world()
    world.online("bob")
    world.disconnect("bob")
    world.online("alice")
    message_id = world.send("alice", "bob", "hi")
    world.settle()
    assert _states(world, "alice", message_id)[-1] is OutboxState.ACCEPTED
    assert world.peers["alice"].core.status()["outbox"] == {"queued": 0, "accepted": 1}
    world.online("bob")
    assert _states(world, "alice", message_id)[-1] is OutboxState.DELIVERED
    assert world.peers["alice"].core.status()["outbox"] == {"queued": 0, "accepted": 0}


def test_receipts_wait_for_an_offline_sender() -> None:
    world = _world()
    world.online("bob")
    world.online("alice")
    world.disconnect("bob")
    ids = [world.send("alice", "bob", f"m{i}") for i in range(3)]
    world.settle()
    world.disconnect("alice")
    world.online("bob")  # bob acks; receipts are stored for alice's device
    alice_device = world.peers["alice"].core.device or ""
    assert sorted(world.hub_store.receipts[("alice", alice_device)]) == sorted(ids)
    world.restart_peer("alice")  # even across a restart of the sender
    world.online("alice")
    assert {world.peers["alice"].store.states()[i] for i in ids} == {"delivered"}
    assert world.hub_store.receipts[("alice", alice_device)] == {}


def test_receipt_goes_to_the_sending_device_only() -> None:
    world = _world()
    world.add_peer("alice-phone", user="alice")
    world.settle()
    world.online("alice")
    world.online("alice-phone")
    world.online("bob")
    message_id = world.send("alice", "bob", "from the desktop")
    world.settle()
    assert _states(world, "alice", message_id)[-1] is OutboxState.DELIVERED
    assert _states(world, "alice-phone", message_id) == []


def test_only_the_first_device_to_ack_makes_a_receipt() -> None:
    world = _world()
    world.add_peer("bob-laptop", user="bob")
    world.settle()
    world.online("bob")
    world.online("bob-laptop")
    world.online("alice")
    message_id = world.send("alice", "bob", "hi")
    world.settle()
    assert _states(world, "alice", message_id).count(OutboxState.DELIVERED) == 1
    assert world.hub.statistics().receipts_pushed == 1


def test_repeated_receipts_are_acked_without_a_second_change() -> None:
    world = _world()
    world.online("bob")
    alice_link = world.online("alice")
    message_id = world.send("alice", "bob", "hi")
    world.settle()
    for _ in range(2):
        alice_link.to_peer.append(encode_frame(ReceiptFrame(message_id, "bob", 5)))
    world.settle()
    assert _states(world, "alice", message_id).count(OutboxState.DELIVERED) == 1


def test_a_receipt_before_accepted_finishes_the_message() -> None:
    world = _world()
    world.online("bob")
    world.online("alice")
    message_id = world.send("alice", "bob", "hi")
    world.commit()
    world.pump()
    world.commit()  # stored at the hub; accepted in flight to alice
    world.disconnect("alice")  # accepted lost
    world.settle()  # bob acks; the receipt waits at the hub
    world.online("alice")  # the receipt and the resend's accepted both arrive
    assert world.peers["alice"].store.states()[message_id] == "delivered"
    assert _states(world, "alice", message_id)[-1] is OutboxState.DELIVERED
