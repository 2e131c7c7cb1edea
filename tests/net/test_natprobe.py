"""NAT-probe datagrams and the hub's echo scheduler (udpim.net.natprobe, docs/IM.md 16).

The scheduler is pure (scripted time): bounded, one outstanding probe per session,
unknown tokens ignored, every reply smaller than what caused it. Then the real hub in
netsim answers an observe from behind a NAT with the NAT's public address.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import trio
import trio.testing

from tests.net.world import HUB_ADDRESS, open_world
from udpim.im.protocol import NatProbeFrame, encode_frame
from udpim.net.natprobe import (
    ECHO_COPIES,
    ECHO_SPACING_S,
    MAX_OBSERVED,
    OBSERVE_BYTES,
    OBSERVED_TTL_S,
    EchoScheduler,
    encode_echo,
    encode_observe,
    encode_seen,
    parse_echo_untrusted,
    parse_observe_untrusted,
    parse_seen_untrusted,
)

T1, T2 = b"token--1", b"token--2"
SOURCE = ("127.1.1.7", 20001)
MIN_DATA_PACKET_OVERHEAD = 23  # docs/PROTOCOL.md 3.5: a DATA packet is 23 bytes or more


def test_wire_formats_round_trip_with_their_sizes() -> None:
    assert len(encode_observe(T1)) == OBSERVE_BYTES == 48
    assert parse_observe_untrusted(encode_observe(T1)) == T1
    seen4 = encode_seen(T1, SOURCE)
    seen6 = encode_seen(T1, ("::1", 7))
    assert (len(seen4), len(seen6)) == (30, 42)
    assert parse_seen_untrusted(seen4) == (T1, SOURCE)
    assert parse_seen_untrusted(seen6) == (T1, ("::1", 7))
    assert parse_seen_untrusted(encode_seen(T1, ("not-an-ip", 7))) == (T1, None)
    assert len(encode_echo(T1)) == 23
    assert parse_echo_untrusted(encode_echo(T1)) == T1


def test_replies_are_smaller_than_what_causes_them() -> None:
    assert len(encode_seen(T1, ("::ffff:7f01:107", 65535))) < OBSERVE_BYTES
    smallest_request = encode_frame(NatProbeFrame(T1.hex(), 0))
    echoes = ECHO_COPIES * len(encode_echo(T1))
    assert echoes < len(smallest_request) + MIN_DATA_PACKET_OVERHEAD


@pytest.mark.parametrize("sample", [encode_observe(T1), encode_seen(T1, SOURCE), encode_echo(T1)])
def test_truncations_and_bit_flips_never_raise(sample: bytes) -> None:
    parsers = (parse_observe_untrusted, parse_seen_untrusted, parse_echo_untrusted)
    variants = [sample[:n] for n in range(len(sample))]
    for index in range(len(sample) * 8):
        flipped = bytearray(sample)
        flipped[index // 8] ^= 1 << (index % 8)
        variants.append(bytes(flipped))
    rng = random.Random(9)
    variants += [rng.randbytes(rng.randrange(80)) for _ in range(300)]
    for data in variants:
        for parse in parsers:
            parse(data)  # None or a value; never an exception
    assert all(parse_observe_untrusted(v) is None for v in variants[: len(sample)])


def test_echoes_go_where_the_token_was_seen_three_times() -> None:
    scheduler = EchoScheduler()
    assert scheduler.on_datagram_untrusted(b"\x00hello", SOURCE, 0.0) is None
    assert scheduler.on_datagram_untrusted(encode_observe(T1), SOURCE, 0.0) == encode_seen(
        T1, SOURCE
    )
    assert scheduler.request(b"sid1", T1, 30.0, 1.0)
    assert scheduler.get_timer() == 31.0
    assert scheduler.take_due(30.99) == []
    sent: list[tuple[float, tuple[bytes, tuple[str, int]]]] = []
    now = 31.0
    while (timer := scheduler.get_timer()) is not None:
        now = timer
        sent += [(now, item) for item in scheduler.take_due(now)]
    assert [item for _, item in sent] == [(encode_echo(T1), SOURCE)] * ECHO_COPIES
    assert [t for t, _ in sent] == pytest.approx(
        [31.0 + n * ECHO_SPACING_S for n in range(ECHO_COPIES)]
    )
    stats = scheduler.statistics()
    assert (stats.echoes_sent, stats.scheduled, stats.requests) == (3, 0, 1)


def test_unknown_and_stale_tokens_are_ignored() -> None:
    scheduler = EchoScheduler()
    assert not scheduler.request(b"sid1", T1, 1.0, 0.0)  # never observed
    scheduler.on_datagram_untrusted(encode_observe(T1), SOURCE, 0.0)
    assert not scheduler.request(b"sid1", T1, 1.0, OBSERVED_TTL_S)  # too late
    assert scheduler.get_timer() is None
    stats = scheduler.statistics()
    assert (stats.unknown_tokens, stats.observed_tokens) == (2, 0)


def test_one_outstanding_probe_per_session_the_newest_wins() -> None:
    scheduler = EchoScheduler()
    for token in (T1, T2):
        scheduler.on_datagram_untrusted(encode_observe(token), SOURCE, 0.0)
    assert scheduler.request(b"sid1", T1, 10.0, 0.0)
    assert scheduler.request(b"sid1", T2, 20.0, 0.0)  # replaces the first
    for n in range(200):  # many replacements: the schedule stays one entry
        assert scheduler.request(b"sid1", T2, 20.0 + n / 1000, 0.0)
    assert scheduler.request(b"sid2", T1, 5.0, 0.0)
    assert scheduler.statistics().scheduled == 2
    assert scheduler.take_due(5.0) == [(encode_echo(T1), SOURCE)]
    assert scheduler.take_due(15.0) == [(encode_echo(T1), SOURCE)] * 2  # sid2's copies only
    out = scheduler.take_due(30.0)
    assert out == [(encode_echo(T2), SOURCE)] * ECHO_COPIES
    stats = scheduler.statistics()
    assert stats.replaced == 201
    assert stats.scheduled == 0


def test_a_closed_session_cancels_its_echo() -> None:
    scheduler = EchoScheduler()
    scheduler.on_datagram_untrusted(encode_observe(T1), SOURCE, 0.0)
    scheduler.request(b"sid1", T1, 10.0, 0.0)
    scheduler.cancel(b"sid1")
    scheduler.cancel(b"sid9")  # nothing scheduled: nothing happens
    assert scheduler.get_timer() is None
    assert scheduler.take_due(100.0) == []
    assert scheduler.statistics().cancelled == 1


def test_the_observed_table_is_bounded_oldest_first() -> None:
    scheduler = EchoScheduler()
    for n in range(MAX_OBSERVED + 10):
        scheduler.on_datagram_untrusted(encode_observe(n.to_bytes(8, "big")), SOURCE, 0.0)
    assert scheduler.statistics().observed_tokens == MAX_OBSERVED
    assert not scheduler.request(b"s", (0).to_bytes(8, "big"), 1.0, 1.0)  # evicted
    assert scheduler.request(b"s", (MAX_OBSERVED + 9).to_bytes(8, "big"), 1.0, 1.0)
    # Observing a token again refreshes it (moves it to the young end).
    scheduler.on_datagram_untrusted(encode_observe((20).to_bytes(8, "big")), SOURCE, 0.0)
    for n in range(MAX_OBSERVED):
        scheduler.on_datagram_untrusted(encode_observe(b"x" + n.to_bytes(7, "big")), SOURCE, 0.0)
    assert not scheduler.request(b"s", (20).to_bytes(8, "big"), 1.0, 1.0)


@pytest.mark.parametrize("closed", [False, True])
async def test_the_hub_answers_observes_with_the_public_address(
    closed: bool, autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with open_world(tmp_path, 4) as world:
        await world.start_hub(closed=closed)
        world.network.add_nat("nat-probe", "127.1.1.50")
        world.network.add_host("prober", "127.16.50.2", nat="nat-probe")
        sock = world.network.host("prober").socket()
        await sock.bind(("0.0.0.0", 0))
        await sock.sendto(b"\x00udpim-nat-probe", HUB_ADDRESS)  # not an observe: ignored
        await sock.sendto(encode_observe(T1), HUB_ADDRESS)
        with trio.fail_after(5):
            data, source = await sock.recvfrom(2048)
        assert source == HUB_ADDRESS
        parsed = parse_seen_untrusted(data)
        assert parsed is not None
        token, observed = parsed
        assert token == T1
        assert observed is not None
        assert observed[0] == "127.1.1.50"
        with trio.move_on_after(5):
            await sock.recvfrom(2048)
            raise AssertionError("one answer only")
        assert world.hub is not None
        assert world.hub.info is not None
        echoes = world.hub.info.status()["echoes"]
        assert isinstance(echoes, dict)
        assert echoes["observes"] == 1
