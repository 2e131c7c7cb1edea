"""Forward compatibility: a frame of a type this version does not know (a later
version's) is ignored and counted by both cores, in any phase; the session goes on
(docs/IM.md section 3)."""

from __future__ import annotations

import pytest

from tests.im.world import World, key_of
from udpim.im.actions import Send, Store
from udpim.im.hubcore import HubCore
from udpim.im.ops import BindAccount, TouchDevice
from udpim.im.protocol import (
    BadFrame,
    HelloFrame,
    UnknownFrame,
    WelcomeFrame,
    decode_frame_untrusted,
    encode_frame,
)

DEV = "00112233aabbccdd"
FUTURE = b'{"t":"typing","to":"bob","on":true}'


def test_a_string_type_of_no_frame_decodes_as_unknown() -> None:
    with pytest.raises(UnknownFrame):
        decode_frame_untrusted(FUTURE)


@pytest.mark.parametrize("wire", [b'{"seq":1}', b'{"t":5}', b'{"t":null}', b"[]", b"x"])
def test_a_missing_or_non_string_type_is_a_bad_frame_not_an_unknown_one(wire: bytes) -> None:
    with pytest.raises(BadFrame) as info:
        decode_frame_untrusted(wire)
    assert not isinstance(info.value, UnknownFrame)


def test_the_hub_ignores_and_counts_unknown_frames_before_hello_and_after_welcome() -> None:
    hub = HubCore(closed=False)
    (load,) = hub.start()
    assert isinstance(load, Store)
    hub.on_store_result(load.token, {})
    hub.on_established(b"s1", key_of("alice"))
    assert hub.on_message(b"s1", FUTURE, 0) == []  # before hello: not "expected hello"
    actions = hub.on_message(b"s1", encode_frame(HelloFrame("alice", DEV)), 0)
    for action in actions:
        if isinstance(action, Store):
            result: object = []  # no page, no receipts
            if isinstance(action.op, TouchDevice):
                result = 0  # the cursor
            elif isinstance(action.op, BindAccount):
                result = [key_of("alice")]  # the name's keys: bound
            actions += hub.on_store_result(action.token, result)
    sent = [decode_frame_untrusted(a.payload) for a in actions if isinstance(a, Send)]
    assert any(isinstance(frame, WelcomeFrame) for frame in sent)
    assert hub.on_message(b"s1", FUTURE, 0) == []  # welcomed: still ignored
    stats = hub.statistics()
    assert (stats.unknown_frames, stats.bad_frames, stats.welcomed_sessions) == (2, 0, 1)


def test_a_daemon_ignores_and_counts_unknown_frames_from_the_hub() -> None:
    world = World()
    alice = world.add_peer("alice")
    link = world.online("alice")
    link.to_peer.append(FUTURE)
    world.pump()
    assert alice.link is link  # not closed
    assert alice.core.unknown_frames == 1
    world.send("alice", "alice", "still works")
    world.settle()
    assert alice.arrived_bodies() == ["still works"]
