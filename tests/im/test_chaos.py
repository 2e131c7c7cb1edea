"""Seeded chaos: sends interleaved with lost sessions, crashes of daemons and hub, and
store results that come back late and out of order. Whatever happens, every message
that reached its sender's disk is stored exactly once by every recipient device, in
send order, and ends ``delivered``."""

from __future__ import annotations

import random

import pytest

from tests.im.world import World


def _step(world: World, rng: random.Random, sent: list[str]) -> None:
    roll = rng.random()
    if roll < 0.35:
        sender = rng.choice(["alice", "carol"])
        sent.append(world.send(sender, "bob", f"{sender}-{len(sent)}"))
    elif roll < 0.55:
        world.commit(rng.randint(1, 6), hold=rng.random() < 0.3)
    elif roll < 0.62 and world.held:
        order = list(range(len(world.held)))
        rng.shuffle(order)
        world.release(order)
    elif roll < 0.80:
        world.pump()
    elif roll < 0.88:
        name = rng.choice(sorted(world.peers))
        if world.peers[name].link is not None:
            world.disconnect(name, tell_hub=rng.random() < 0.7)
        else:
            world.connect(name)
    elif roll < 0.95:
        world.restart_peer(rng.choice(sorted(world.peers)), commit_pending=rng.random() < 0.5)
    else:
        world.restart_hub(commit_pending=rng.random() < 0.5)


def _finish(world: World) -> None:
    for _ in range(5):
        world.release()
        world.settle()
        for name, peer in world.peers.items():
            if peer.link is None or not peer.link.up:
                world.connect(name)
        world.settle()
    world.release()
    world.settle()


@pytest.mark.parametrize("seed", range(40))
def test_no_loss_no_duplicate_order_kept(seed: int) -> None:
    rng = random.Random(seed)
    world = World(seed=seed, push_window=8, page_size=3)
    for name in ("alice", "carol", "bob", "bob-laptop"):
        world.add_peer(name, user="bob" if name == "bob-laptop" else name)
    world.settle()
    for name in world.peers:
        world.online(name)
    sent: list[str] = []
    for _ in range(250):
        _step(world, rng, sent)
    _finish(world)

    for device in ("bob", "bob-laptop"):
        inbox = world.peers[device].store.inbox_ids()
        assert len(inbox) == len(set(inbox)), "a message was stored twice"
        for sender in ("alice", "carol"):
            durable = list(world.peers[sender].store.outbox)  # enqueue (commit) order
            got = [message_id for who, message_id in inbox if who == sender]
            assert got == durable, f"{device} from {sender}: lost or reordered"
    for sender in ("alice", "carol"):
        states = set(world.peers[sender].store.states().values())
        assert states <= {"delivered"}
        assert world.peers[sender].core.status()["outbox"] == {"queued": 0, "accepted": 0}
    for message_id in sent:  # ids the daemons handed out and never lost after commit
        owners = [p for p in ("alice", "carol") if message_id in world.peers[p].store.outbox]
        assert len(owners) <= 1
