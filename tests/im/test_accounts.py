"""Hub accounts and hellos: trust on first use, closed hubs, the hello rules."""

from __future__ import annotations

from tests.im.world import World, key_of
from udpim.im.actions import Close, Notify, Send, Store
from udpim.im.events import AccountBound, Refused, SessionRefused, StoreFailed, Welcomed
from udpim.im.hubcore import HubCore
from udpim.im.ops import BindAccount, DeleteReceipt, LoadAccounts, LoadUserKeys
from udpim.im.protocol import (
    AckFrame,
    HelloFrame,
    RefusedFrame,
    SendFrame,
    WelcomeFrame,
    decode_frame_untrusted,
    encode_frame,
)

DEV = "00112233aabbccdd"
MID = "0123456789abcdef01234567"


def test_first_key_binds_a_new_name() -> None:
    world = World()
    alice = world.add_peer("alice")
    world.online("alice")
    assert AccountBound("alice", key_of("alice")) in world.hub_events
    assert world.hub_store.accounts == {"alice": [key_of("alice")]}
    assert any(isinstance(e, Welcomed) for e in alice.events)
    assert alice.core.status()["welcomed"] is True


def test_a_taken_name_is_refused_to_another_key() -> None:
    world = World()
    world.add_peer("alice")
    world.online("alice")
    mallory = world.add_peer("mallory", user="alice", key=key_of("mallory"))
    world.online("mallory")
    assert Refused("user name belongs to another key") in mallory.events
    assert mallory.link is None  # the hub closed the session
    assert world.hub_store.accounts == {"alice": [key_of("alice")]}
    assert world.hub.statistics().refused_hellos == 1
    assert any(isinstance(e, SessionRefused) for e in world.hub_events)


def test_the_same_key_may_return_from_another_device() -> None:
    world = World()
    world.add_peer("alice")
    laptop = world.add_peer("laptop", user="alice", key=key_of("alice"))
    world.online("alice")
    world.online("laptop")
    assert any(isinstance(e, Welcomed) for e in laptop.events)
    assert world.hub.statistics().welcomed_sessions == 2


def test_bindings_survive_a_hub_restart() -> None:
    world = World()
    world.add_peer("alice")
    world.online("alice")
    world.restart_hub()
    world.settle()
    mallory = world.add_peer("mallory", user="alice", key=key_of("mallory"))
    world.online("mallory")
    assert Refused("user name belongs to another key") in mallory.events


def test_closed_hub_admits_only_registered_users() -> None:
    world = World(closed=True)
    world.hub_store.accounts["alice"] = [key_of("alice")]
    world.restart_hub()
    world.settle()
    assert world.hub.accept_key(key_of("alice"))
    assert not world.hub.accept_key(key_of("eve"))
    alice = world.add_peer("alice")
    eve = world.add_peer("eve")
    world.online("alice")
    link = world.online("eve")
    assert any(isinstance(e, Welcomed) for e in alice.events)
    assert not link.up
    assert not any(isinstance(e, Welcomed) for e in eve.events)
    assert world.hub_store.accounts == {"alice": [key_of("alice")]}


def test_closed_hub_refuses_a_registered_key_under_an_unregistered_name() -> None:
    world = World(closed=True)
    world.hub_store.accounts["alice"] = [key_of("alice")]
    world.restart_hub()
    world.settle()
    other = world.add_peer("other", user="bob", key=key_of("alice"))
    world.online("other")
    assert Refused("unknown user") in other.events


def test_open_hub_honours_a_name_added_while_it_runs() -> None:
    world = World()
    world.settle()  # the accounts are loaded: the book does not know alice
    world.hub_store.accounts["alice"] = [key_of("alice")]  # 'udpim hub adduser' meanwhile
    mallory = world.add_peer("mallory", user="alice", key=key_of("mallory"))
    world.online("mallory")
    assert Refused("user name belongs to another key") in mallory.events
    assert world.hub_store.accounts == {"alice": [key_of("alice")]}
    alice = world.add_peer("alice")
    world.online("alice")
    assert any(isinstance(e, Welcomed) for e in alice.events)
    stats = world.hub.statistics()
    assert (stats.accounts, stats.accounts_reloaded, stats.refused_hellos) == (1, 1, 1)


def test_open_hub_lets_in_a_key_added_to_a_known_name_while_it_runs() -> None:
    world = World()
    world.add_peer("alice")
    world.online("alice")
    world.hub_store.accounts["alice"].append(key_of("laptop"))  # adduser alice <laptop key>
    laptop = world.add_peer("laptop", user="alice", key=key_of("laptop"))
    world.online("laptop")
    assert any(isinstance(e, Welcomed) for e in laptop.events)
    assert world.hub.statistics().welcomed_sessions == 2


def test_closed_hub_lets_in_a_name_added_for_a_known_key_while_it_runs() -> None:
    world = World(closed=True)
    world.hub_store.accounts["alice"] = [key_of("alice")]
    world.restart_hub()
    world.settle()
    world.hub_store.accounts["bob"] = [key_of("alice")]  # adduser bob <alice's key>
    other = world.add_peer("other", user="bob", key=key_of("alice"))
    world.online("other")
    assert any(isinstance(e, Welcomed) for e in other.events)


def test_a_first_use_binding_loses_to_an_adduser_that_committed_first() -> None:
    world = World()
    world.settle()
    mallory = world.add_peer("mallory", user="alice", key=key_of("mallory"))
    world.settle()  # the daemon has read its store
    world.connect("mallory")
    world.pump()  # the hello is in: BindAccount(first_use) and TouchDevice are queued
    assert BindAccount("alice", key_of("mallory"), first_use=True) in [
        item.op for item in world.queue
    ]
    world.hub_store.accounts["alice"] = [key_of("alice")]  # adduser commits before them
    world.settle()
    assert Refused("user name belongs to another key") in mallory.events
    assert not any(isinstance(e, Welcomed) for e in mallory.events)
    assert world.hub_store.accounts == {"alice": [key_of("alice")]}
    alice = world.add_peer("alice")
    world.online("alice")  # the hub's book now has alice's key
    assert any(isinstance(e, Welcomed) for e in alice.events)


def test_a_name_check_that_fails_ends_the_session() -> None:
    world = World()
    world.add_peer("alice")
    world.online("alice")
    mallory = world.add_peer("mallory", user="alice", key=key_of("mallory"))
    world.settle()
    world.connect("mallory")
    world.pump()
    world.fail_next.add(LoadUserKeys)
    world.settle()
    assert mallory.link is None
    assert not any(isinstance(e, Welcomed) for e in mallory.events)
    assert any(isinstance(e, StoreFailed) for e in world.hub_events)


def test_a_session_that_ends_during_its_name_check_is_forgotten() -> None:
    world = World()
    world.add_peer("alice")
    world.online("alice")
    world.add_peer("mallory", user="alice", key=key_of("mallory"))
    world.settle()
    world.connect("mallory")
    world.pump()  # hello in: LoadUserKeys("alice") queued
    assert LoadUserKeys("alice") in [item.op for item in world.queue]
    world.disconnect("mallory")
    refused = world.hub.statistics().refused_hellos
    world.settle()
    assert world.hub.statistics().refused_hellos == refused  # nothing judged, nothing sent
    assert world.hub.statistics().sessions == 1


def test_closed_hub_accepts_keys_added_while_running() -> None:
    hub = HubCore(closed=True)
    (load,) = hub.start()
    assert isinstance(load, Store)
    assert isinstance(load.op, LoadAccounts)
    assert not hub.accept_key(key_of("bob"))  # nothing loaded yet
    assert hub.add_account("bob", key_of("bob")) == []  # too early: not loaded
    hub.on_store_result(load.token, {})
    (bind,) = hub.add_account("bob", key_of("bob"))
    assert isinstance(bind, Store)
    assert bind.op == BindAccount("bob", key_of("bob"))  # not first_use: bound as given
    assert hub.accept_key(key_of("bob"))
    assert hub.add_account("bob", key_of("bob")) == []  # already bound


def test_closed_hub_rereads_its_accounts_after_refusing_a_key() -> None:
    hub = HubCore(closed=True)
    (load,) = hub.start()
    assert isinstance(load, Store)
    assert not hub.accept_key(key_of("bob"))  # refused before the accounts are read ...
    assert not hub.reload_due  # ... which start() does anyway
    hub.on_store_result(load.token, {"alice": [key_of("alice")]})
    assert hub.reload_accounts() == []  # nobody was refused since
    assert hub.accept_key(key_of("alice"))
    assert not hub.accept_key(key_of("bob"))  # added on disk by 'udpim hub adduser' later
    assert hub.reload_due
    (reload,) = hub.reload_accounts()
    assert isinstance(reload, Store)
    assert isinstance(reload.op, LoadAccounts)
    assert not hub.reload_due
    assert hub.reload_accounts() == []  # one re-read per refusal burst
    stored = {"alice": [key_of("alice")], "bob": [key_of("bob")]}
    assert hub.on_store_result(reload.token, stored) == []
    assert hub.accept_key(key_of("bob"))
    stats = hub.statistics()
    assert (stats.accounts, stats.accounts_reloaded, stats.refused_keys) == (2, 1, 2)


def test_a_failed_reread_is_counted_and_ends_nothing() -> None:
    closed = HubCore(closed=True)
    (load,) = closed.start()
    assert isinstance(load, Store)
    closed.on_store_result(load.token, {})
    assert closed.on_established(b"s1", key_of("alice")) == []
    assert not closed.accept_key(key_of("eve"))
    (reload,) = closed.reload_accounts()
    assert isinstance(reload, Store)
    actions = closed.on_store_error(reload.token, OSError("disk gone"))
    assert actions == [Notify(StoreFailed("ReloadingAccounts", "disk gone"))]
    assert closed.statistics().store_errors == 1
    assert closed.statistics().sessions == 1  # the session it had goes on


def _hub_with_session() -> HubCore:
    hub = HubCore(closed=False)
    (load,) = hub.start()
    assert isinstance(load, Store)
    hub.on_store_result(load.token, {})
    assert hub.on_established(b"s1", key_of("alice")) == []
    return hub


def test_first_frame_must_be_hello() -> None:
    hub = _hub_with_session()
    actions = hub.on_message(b"s1", encode_frame(AckFrame(1)), 0)
    assert actions == [Close(b"s1", "expected hello first")]
    assert hub.on_message(b"s1", encode_frame(HelloFrame("alice", DEV)), 0) == []


def test_bad_frame_closes_the_session_and_is_counted() -> None:
    hub = _hub_with_session()
    (close,) = hub.on_message(b"s1", b"not json", 0)
    assert isinstance(close, Close)
    assert close.sid == b"s1"
    assert hub.statistics().bad_frames == 1


def test_frames_before_welcome_close_the_session() -> None:
    hub = _hub_with_session()
    hub.on_message(b"s1", encode_frame(HelloFrame("alice", DEV)), 0)
    actions = hub.on_message(b"s1", encode_frame(SendFrame(MID, "alice", "x", 1)), 0)
    assert actions == [Close(b"s1", "frame before welcome")]


def test_unsupported_version_is_refused() -> None:
    hub = _hub_with_session()
    actions = hub.on_message(b"s1", encode_frame(HelloFrame("alice", DEV, v=2)), 0)
    sends = [decode_frame_untrusted(a.payload) for a in actions if isinstance(a, Send)]
    assert sends == [RefusedFrame("unsupported protocol version")]
    assert isinstance(actions[-1], Close)


def test_hellos_wait_for_the_accounts_to_load() -> None:
    hub = HubCore(closed=False)
    (load,) = hub.start()
    assert isinstance(load, Store)
    hub.on_established(b"s1", key_of("alice"))
    assert hub.on_message(b"s1", encode_frame(HelloFrame("alice", DEV)), 7) == []
    actions = hub.on_store_result(load.token, {"alice": [key_of("alice")]})
    (touch,) = [a for a in actions if isinstance(a, Store)]
    welcome_actions = hub.on_store_result(touch.token, 0)
    sends = [decode_frame_untrusted(a.payload) for a in welcome_actions if isinstance(a, Send)]
    assert sends[0] == WelcomeFrame("alice", DEV, 7)


def test_failed_account_load_refuses_waiting_sessions_and_can_be_retried() -> None:
    hub = HubCore(closed=False)
    (load,) = hub.start()
    assert isinstance(load, Store)
    hub.on_established(b"s1", key_of("alice"))
    hub.on_message(b"s1", encode_frame(HelloFrame("alice", DEV)), 7)
    actions = hub.on_store_error(load.token, OSError("disk on fire"))
    assert Close(b"s1", "hub store failure") in actions
    assert hub.statistics().store_errors == 1
    (again,) = hub.start()
    assert isinstance(again, Store)
    assert isinstance(again.op, LoadAccounts)


def test_failed_binding_is_forgotten() -> None:
    world = World()
    alice = world.add_peer("alice")
    world.settle()
    world.fail_next.add(BindAccount)
    world.online("alice")
    assert not any(isinstance(e, Welcomed) for e in alice.events)
    assert world.hub_store.accounts == {}
    assert world.hub.statistics().accounts == 0
    world.online("alice")  # a later attempt binds normally
    assert any(isinstance(e, Welcomed) for e in alice.events)
    assert world.hub_store.accounts == {"alice": [key_of("alice")]}


def test_hub_frames_from_a_daemon_close_its_session() -> None:
    world = World()
    world.add_peer("alice")
    link = world.online("alice")
    link.to_hub.append(encode_frame(WelcomeFrame("alice", DEV, 1)))
    world.settle()
    assert not link.up
    assert world.hub_closes[-1][1] == "unexpected frame WelcomeFrame"


def test_events_for_unknown_sessions_and_tokens_are_ignored() -> None:
    hub = _hub_with_session()
    assert hub.on_reachable(b"nope") == []
    assert hub.on_unreachable(b"nope") == []
    assert hub.on_closed(b"nope") == []
    assert hub.on_message(b"nope", b"{}", 0) == []
    assert hub.on_store_result(999, None) == []
    assert hub.on_store_error(999, OSError("x")) == []


def test_a_failed_receipt_deletion_is_only_reported() -> None:
    world = World()
    for name in ("alice", "bob"):
        world.add_peer(name)
    world.settle()
    alice = world.online("alice")
    world.online("bob")
    world.fail_next.add(DeleteReceipt)
    world.send("alice", "bob", "hi")
    world.settle()
    failures = [e.op_name for e in world.hub_events if isinstance(e, StoreFailed)]
    assert failures == ["DeletingReceipt"]
    assert alice.up  # the session stays; the receipt is pushed again after a reconnect
