"""Presence: online while some device session is established and reachable."""

from __future__ import annotations

from tests.im.world import World
from udpim.im.events import PresenceChanged


def _world() -> World:
    world = World()
    for name in ("alice", "bob"):
        world.add_peer(name)
    world.add_peer("bob-laptop", user="bob")
    world.settle()
    return world


def _seen(world: World, name: str, user: str) -> list[bool]:
    return [
        e.online
        for e in world.peers[name].events
        if isinstance(e, PresenceChanged) and e.user == user
    ]


def _watch(world: World, name: str, *users: str) -> None:
    world.apply(name, world.peers[name].core.watch(users))
    world.settle()


def test_watch_replies_with_the_current_presence() -> None:
    world = _world()
    world.online("alice")
    _watch(world, "alice", "bob")
    assert _seen(world, "alice", "bob") == [False]
    assert world.peers["alice"].core.status()["presence"] == {"bob": False}


def test_presence_follows_sessions_and_devices() -> None:
    world = _world()
    world.online("alice")
    _watch(world, "alice", "bob")
    world.online("bob")
    world.online("bob-laptop")  # already online: no change
    world.disconnect("bob")  # the laptop is still there
    world.settle()
    assert _seen(world, "alice", "bob") == [False, True]
    world.disconnect("bob-laptop")
    world.settle()
    assert _seen(world, "alice", "bob") == [False, True, False]
    assert world.hub.statistics().online_users == 1


def test_unreachable_sessions_count_as_offline() -> None:
    world = _world()
    world.online("alice")
    link = world.online("bob")
    _watch(world, "alice", "bob")
    world.apply("hub", world.hub.on_unreachable(link.hub_sid))
    world.settle()
    world.apply("hub", world.hub.on_reachable(link.hub_sid))
    world.settle()
    assert _seen(world, "alice", "bob") == [True, False, True]
    hub_changes = [e for e in world.hub_events if isinstance(e, PresenceChanged)]
    assert PresenceChanged("bob", False) in hub_changes


def test_a_replaced_device_session_does_not_flap_presence_off() -> None:
    world = _world()
    world.online("alice")
    _watch(world, "alice", "bob")
    world.online("bob")
    world.disconnect("bob", tell_hub=False)  # the hub still holds the old session
    world.online("bob")  # the new session replaces it
    stats = world.hub.statistics()
    assert (stats.sessions, stats.welcomed_sessions) == (2, 2)  # alice and the new bob
    assert _seen(world, "alice", "bob") == [False, True]
    assert world.hub_closes[-1][1] == "replaced by a newer session of this device"


def test_watch_replaces_the_previous_set() -> None:
    world = _world()
    world.online("alice")
    _watch(world, "alice", "bob")
    world.apply("alice", world.peers["alice"].core.watch([]))  # contacts only: none yet
    world.settle()
    world.online("bob")
    assert _seen(world, "alice", "bob") == [False, True]  # the empty list sent nothing


def test_correspondents_are_watched_automatically() -> None:
    world = _world()
    world.online("alice")
    world.online("bob")
    world.send("alice", "bob", "hi")
    world.settle()
    assert _seen(world, "alice", "bob") == [True]
    assert _seen(world, "bob", "alice") == [True]  # bob watches the sender
    world.disconnect("bob")
    world.settle()
    assert _seen(world, "alice", "bob") == [True, False]


def test_watchers_that_leave_get_nothing_more() -> None:
    world = _world()
    world.online("alice")
    _watch(world, "alice", "bob")
    world.disconnect("alice")
    world.online("bob")
    assert _seen(world, "alice", "bob") == [False]
