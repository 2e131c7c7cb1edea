"""fec.py: measured loss switches XOR parity on and off; one lost member is rebuilt."""

from __future__ import annotations

import pytest

from udpim.core.fec import (
    FEC_FLUSH_S,
    FEC_OFF_LOSS,
    FEC_ON_LOSS,
    GROUP_SIZES,
    RECEIVER_IDLE_S,
    RECENT_PLAINTEXTS,
    FecDecoder,
    FecEncoder,
    xor_bytes,
)
from udpim.core.framecodec import FEC_MAX_SPAN
from udpim.core.frames import FecFrame


def lossy_encoder(loss: float, packets: int = 4000, *, woken: bool = True) -> FecEncoder:
    """An encoder that saw ``packets`` outcomes with about ``loss`` of them lost; if
    ``woken``, its first member (sent as a copy to wake the receiver) is behind it."""
    encoder = FecEncoder()
    debt = 0.0
    for _ in range(packets):
        debt += loss
        lost = debt >= 1.0
        debt -= 1.0 if lost else 0.0
        encoder.on_outcome(lost)
    if woken and encoder.active:
        assert encoder.on_data_packet(0, b"wake", 0.0) == FecFrame(0, 1, 4, b"wake")
    return encoder


def test_the_first_member_is_copied_to_wake_the_receiver() -> None:
    encoder = lossy_encoder(0.02, woken=False)
    assert encoder.on_data_packet(3, b"first", 1.0) == FecFrame(3, 1, 5, b"first")
    assert encoder.on_data_packet(4, b"second", 1.01) is None  # now groups of 5
    # After RECEIVER_IDLE_S / 2 without a parity the receiver may have forgotten: copy.
    assert encoder.on_timer(1.01 + FEC_FLUSH_S) is not None
    later = 1.01 + FEC_FLUSH_S + RECEIVER_IDLE_S / 2
    assert encoder.on_data_packet(9, b"again", later) == FecFrame(9, 1, 5, b"again")


def test_xor_pads_on_the_right() -> None:
    assert xor_bytes([b"\x01\x02", b"\x10"], 3) == b"\x11\x02\x00"
    assert xor_bytes([], 2) == b"\x00\x00"


def test_member_numbers_follow_the_bitmap() -> None:
    assert FecFrame(40, 0b1011, 0, b"x").member_numbers() == [40, 41, 43]
    assert FecFrame(7, 1, 0, b"x").member_numbers() == [7]


def test_fec_stays_off_without_loss_and_adds_nothing() -> None:
    encoder = lossy_encoder(0.0)
    assert not encoder.active
    assert encoder.group_size == 0
    assert encoder.on_data_packet(1, b"data", 0.0) is None
    assert encoder.deadline() is None
    assert encoder.on_timer(10.0) is None
    assert encoder.parities_sent == 0


@pytest.mark.parametrize(("loss", "size"), [(0.02, 5), (0.05, 3), (0.10, 2), (0.30, 1)])
def test_group_size_follows_measured_loss(loss: float, size: int) -> None:
    encoder = lossy_encoder(loss)
    assert encoder.active
    assert encoder.loss_rate == pytest.approx(loss, rel=0.35)
    assert encoder.group_size == size
    assert [s for _, s in GROUP_SIZES][-1] == 1  # the highest band sends copies


def test_hysteresis_between_on_and_off() -> None:
    encoder = lossy_encoder(0.05)
    assert encoder.active
    while encoder.loss_rate >= FEC_OFF_LOSS:
        assert encoder.active
        encoder.on_outcome(False)
    assert not encoder.active
    while encoder.loss_rate < FEC_ON_LOSS:
        assert not encoder.active
        encoder.on_outcome(True)
    assert encoder.active


def test_full_group_closes_with_its_parity() -> None:
    encoder = lossy_encoder(0.02)  # groups of 5
    members = [bytes([n]) * (10 + n) for n in range(5)]
    closed = [encoder.on_data_packet(100 + n, members[n], 1.0 + n / 1000) for n in range(5)]
    assert closed[:4] == [None] * 4
    parity = closed[4]
    assert parity is not None
    assert parity.first_packet == 100
    assert parity.member_numbers() == [100, 101, 102, 103, 104]
    assert parity.parity == xor_bytes(members, 14)
    assert encoder.parities_sent == 2  # the wake-up copy, then this one
    assert encoder.deadline() is None


def test_partial_group_closes_at_its_flush_deadline() -> None:
    encoder = lossy_encoder(0.02)
    assert encoder.on_data_packet(7, b"abc", 2.0) is None
    assert encoder.on_data_packet(9, b"defg", 2.01) is None  # 8 was an ACK-only packet
    assert encoder.deadline() == 2.0 + FEC_FLUSH_S
    assert encoder.on_timer(2.0 + FEC_FLUSH_S - 0.001) is None
    parity = encoder.on_timer(2.0 + FEC_FLUSH_S)
    assert parity is not None
    assert parity.member_numbers() == [7, 9]
    assert parity.length_xor == 3 ^ 4


def test_a_member_beyond_the_span_closes_the_open_group_first() -> None:
    encoder = lossy_encoder(0.02)
    encoder.on_data_packet(10, b"a", 0.0)
    closed = encoder.on_data_packet(10 + FEC_MAX_SPAN, b"b", 0.001)
    assert closed is not None
    assert closed.member_numbers() == [10]
    assert encoder.deadline() == 0.001 + FEC_FLUSH_S  # the new member opened a new group


def test_copies_at_very_high_loss() -> None:
    encoder = lossy_encoder(0.3)
    copy = encoder.on_data_packet(5, b"hello", 0.01)
    assert copy == FecFrame(5, 1, 5, b"hello")


def test_switching_off_drops_the_open_group() -> None:
    encoder = lossy_encoder(0.02)
    encoder.on_data_packet(1, b"a", 0.0)
    while encoder.active:
        encoder.on_outcome(False)
    assert encoder.on_data_packet(2, b"b", 0.01) is None
    assert encoder.deadline() is None


def active_decoder(now: float = 0.0) -> FecDecoder:
    decoder = FecDecoder()
    decoder.on_fec(FecFrame(1_000_000, 0b11, 0, b"x"), now)  # activates it; two missing
    return decoder


def test_decoder_rebuilds_the_one_missing_member() -> None:
    members = {20: b"first", 21: b"the second one", 22: b"3rd"}
    parity = FecFrame(20, 0b111, 5 ^ 14 ^ 3, xor_bytes(list(members.values()), 14))
    decoder = active_decoder()
    decoder.on_packet(20, members[20], 0.1)
    decoder.on_packet(22, members[22], 0.1)
    assert decoder.on_fec(parity, 0.2) == (21, members[21])
    assert decoder.repaired == 1


def test_decoder_needs_exactly_one_missing() -> None:
    members = [b"aa", b"bbb"]
    parity = FecFrame(5, 0b11, 2 ^ 3, xor_bytes(members, 3))
    decoder = active_decoder()
    assert decoder.on_fec(parity, 0.1) is None  # both missing
    decoder.on_packet(5, members[0], 0.1)
    decoder.on_packet(6, members[1], 0.1)
    assert decoder.on_fec(parity, 0.2) is None  # none missing
    assert decoder.repaired == 0


@pytest.mark.parametrize(
    "parity",
    [
        FecFrame(5, 0b11, 2 ^ 40, b"xyz"),  # rebuilt length longer than the parity
        FecFrame(5, 0b11, 2, b"xyz"),  # rebuilt length 0
        FecFrame(5, 0b11, 2 ^ 1, b"x"),  # a member longer than the parity
    ],
)
def test_inconsistent_parity_rebuilds_nothing(parity: FecFrame) -> None:
    decoder = active_decoder()
    decoder.on_packet(5, b"aa", 0.1)
    assert decoder.on_fec(parity, 0.2) is None


def test_decoder_keeps_plaintexts_only_while_the_peer_sends_fec() -> None:
    decoder = FecDecoder()
    decoder.on_packet(1, b"before any fec", 0.0)
    parity = FecFrame(1, 0b11, 14 ^ 3, xor_bytes([b"before any fec", b"two"], 14))
    assert decoder.on_fec(parity, 0.1) is None  # member 1 was not kept: two missing
    decoder.on_packet(3, b"kept", 0.2)
    decoder.on_packet(4, b"gone", RECEIVER_IDLE_S + 1.0)  # idle too long: all forgotten
    assert decoder.on_fec(FecFrame(3, 0b11, 4 ^ 4, xor_bytes([b"kept", b"gone"], 4)), 40.0) is None


def test_decoder_memory_is_bounded() -> None:
    decoder = active_decoder()
    for number in range(RECENT_PLAINTEXTS + 10):
        decoder.on_packet(number, bytes([number % 256]), 0.1)
    # the oldest were forgotten: a group over them now misses two and rebuilds nothing
    group = FecFrame(0, 0b11, 0, b"\x01")
    assert decoder.on_fec(group, 0.2) is None
    newest = RECENT_PLAINTEXTS + 9
    assert decoder.on_fec(
        FecFrame(newest, 0b11, 1 ^ 1, xor_bytes([bytes([newest % 256]), b"\x07"], 1)), 0.2
    ) == (newest + 1, b"\x07")
