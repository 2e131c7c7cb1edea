"""The NAT-learning frames: ``keepalive`` and ``nat_probe`` (docs/IM.md section 16).

Codec (one golden table, strict decoding), the hub's handling (``SetLiveness`` and
``ScheduleEcho`` actions, only once welcomed) and the daemon's (announce after every
welcome, probe requests only while welcomed).
"""

from __future__ import annotations

import pytest

from tests.im.world import World
from udpim.core.errors import LocalProtocolError
from udpim.im.actions import Close, ScheduleEcho, Send, SetLiveness
from udpim.im.liveness import MAX_INTERVAL_S, dead_peer_timeout_s, idle_timeout_s
from udpim.im.protocol import (
    MAX_PROBE_DELAY_MS,
    BadFrame,
    Frame,
    KeepaliveFrame,
    NatProbeFrame,
    decode_frame_untrusted,
    encode_frame,
)

TOKEN = "0123456789abcdef"

GOLDEN: list[tuple[Frame, bytes]] = [
    (KeepaliveFrame(25000), b'{"t":"keepalive","interval_ms":25000,"nat_timeout_ms":0}'),
    (
        KeepaliveFrame(215000, 270000),
        b'{"t":"keepalive","interval_ms":215000,"nat_timeout_ms":270000}',
    ),
    (
        KeepaliveFrame(89000, 112500),  # docs/IM.md section 3's example
        b'{"t":"keepalive","interval_ms":89000,"nat_timeout_ms":112500}',
    ),
    (
        NatProbeFrame(TOKEN, 120000),  # docs/IM.md section 3's example
        b'{"t":"nat_probe","token":"0123456789abcdef","delay_ms":120000}',
    ),
    (
        NatProbeFrame(TOKEN, 900000),
        b'{"t":"nat_probe","token":"0123456789abcdef","delay_ms":900000}',
    ),
    (NatProbeFrame(TOKEN, 0), b'{"t":"nat_probe","token":"0123456789abcdef","delay_ms":0}'),
]


@pytest.mark.parametrize(("frame", "wire"), GOLDEN)
def test_golden_frames_encode_and_decode(frame: Frame, wire: bytes) -> None:
    assert encode_frame(frame) == wire
    assert decode_frame_untrusted(wire) == frame


@pytest.mark.parametrize(
    "wire",
    [
        b'{"t":"nat_probe","token":"0123456789ABCDEF","delay_ms":1}',  # upper case
        b'{"t":"nat_probe","token":"0123456789abcde","delay_ms":1}',  # 15 chars
        b'{"t":"nat_probe","token":"0123456789abcdef","delay_ms":900001}',
        b'{"t":"nat_probe","token":"0123456789abcdef","delay_ms":-1}',
        b'{"t":"nat_probe","token":"0123456789abcdef","delay_ms":true}',
        b'{"t":"nat_probe","token":"0123456789abcdef"}',
        b'{"t":"keepalive","interval_ms":1.5,"nat_timeout_ms":0}',
        b'{"t":"keepalive","interval_ms":25000}',
    ],
)
def test_bad_frames_are_refused(wire: bytes) -> None:
    with pytest.raises(BadFrame):
        decode_frame_untrusted(wire)


def welcomed(world: World, name: str) -> bytes:
    world.add_peer(name)
    return world.online(name).hub_sid


def test_hub_sets_liveness_from_the_announced_interval() -> None:
    world = World()
    sid = welcomed(world, "alice")
    frame = encode_frame(KeepaliveFrame(215000, 270000))
    assert world.hub.on_message(sid, frame, world.now_ms) == [
        SetLiveness(sid, 2 * 215.0 + 10.0, 4 * 215.0, 215.0, 270.0)
    ]
    short = encode_frame(KeepaliveFrame(25000))
    assert world.hub.on_message(sid, short, world.now_ms) == [
        SetLiveness(sid, 60.0, 600.0, 25.0, None)  # the idle timeout never drops below 600 s
    ]
    assert world.hub.on_message(sid, encode_frame(KeepaliveFrame(0)), world.now_ms) == []
    huge = encode_frame(KeepaliveFrame(10**9))
    (bounded,) = world.hub.on_message(sid, huge, world.now_ms)
    assert isinstance(bounded, SetLiveness)
    assert bounded.heartbeat_interval_s == MAX_INTERVAL_S
    assert bounded.dead_peer_timeout_s == dead_peer_timeout_s(MAX_INTERVAL_S)
    assert bounded.idle_timeout_s == idle_timeout_s(MAX_INTERVAL_S, 600.0)
    assert world.hub.statistics().keepalives == 4


def test_hub_turns_a_probe_request_into_one_echo_action() -> None:
    world = World()
    sid = welcomed(world, "alice")
    frame = encode_frame(NatProbeFrame(TOKEN, 120500))
    assert world.hub.on_message(sid, frame, world.now_ms) == [
        ScheduleEcho(sid, bytes.fromhex(TOKEN), 120.5)
    ]
    assert world.hub.statistics().nat_probes == 1
    assert world.hub_closes == []


@pytest.mark.parametrize("frame", [KeepaliveFrame(25000), NatProbeFrame(TOKEN, 1000)])
def test_hub_accepts_them_only_once_welcomed(frame: Frame) -> None:
    world = World()
    world.add_peer("alice")
    link = world.connect("alice")
    world.settle()  # the hello is answered (welcome) ...
    world.connect("alice")  # ... but a second session has not said hello yet
    second = world.links[-1]
    actions = world.hub.on_message(second.hub_sid, encode_frame(frame), world.now_ms)
    assert not [a for a in actions if isinstance(a, SetLiveness | ScheduleEcho)]
    assert Close(second.hub_sid, "expected hello first") in actions
    assert link.hub_sid != second.hub_sid


def sent_frames(actions: object) -> list[Frame]:
    assert isinstance(actions, list)
    return [decode_frame_untrusted(a.payload) for a in actions if isinstance(a, Send)]


def test_daemon_announces_its_keepalive_after_every_welcome() -> None:
    world = World()
    alice = world.add_peer("alice")
    world.settle()
    assert alice.core.set_keepalive(25.0, None) == []  # not connected: remembered
    world.online("alice")
    assert world.hub.statistics().keepalives == 1
    changed = alice.core.set_keepalive(89.0, 112.5)
    assert sent_frames(changed) == [KeepaliveFrame(89000, 112500)]
    world.apply("alice", changed)
    world.settle()
    assert world.hub.statistics().keepalives == 2
    assert alice.core.set_keepalive(89.0, 112.5) == []  # unchanged: nothing to say
    world.disconnect("alice")
    world.online("alice")
    assert world.hub.statistics().keepalives == 3
    with pytest.raises(LocalProtocolError, match="positive"):
        alice.core.set_keepalive(0.0, None)


def test_daemon_sends_probe_requests_only_while_welcomed() -> None:
    world = World()
    alice = world.add_peer("alice")
    world.settle()
    token = bytes.fromhex(TOKEN)
    assert alice.core.request_nat_probe(token, 15.0) == []
    world.online("alice")
    assert sent_frames(alice.core.request_nat_probe(token, 15.0)) == [NatProbeFrame(TOKEN, 15000)]
    with pytest.raises(LocalProtocolError):
        alice.core.request_nat_probe(b"short", 15.0)
    with pytest.raises(LocalProtocolError):
        alice.core.request_nat_probe(token, MAX_PROBE_DELAY_MS / 1000 + 1)
