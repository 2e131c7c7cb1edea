"""fec.py and gf256.py: measured loss switches the code on and off, repairs slide over the
unacknowledged data packets, and the receiver solves them together."""

from __future__ import annotations

import random

import pytest

from udpim.core import gf256
from udpim.core.fec import (
    FEC_FLUSH_S,
    FEC_OFF_LOSS,
    FEC_ON_LOSS,
    GROUP_SIZES,
    MAX_EQUATIONS,
    MAX_REPORTED_OUTCOMES,
    MAX_UNKNOWNS,
    RECEIVER_IDLE_S,
    RECENT_PACKETS,
    FecDecoder,
    FecEncoder,
    symbol,
)
from udpim.core.framecodec import FEC_MAX_SPAN
from udpim.core.frames import FecFrame

# --- GF(2^8) ------------------------------------------------------------------------


def test_every_non_zero_element_has_an_inverse() -> None:
    for a in range(1, 256):
        assert gf256.multiply(a, gf256.inverse(a)) == 1
    with pytest.raises(ZeroDivisionError):
        gf256.inverse(0)


def test_multiplication_is_carry_less_modulo_the_polynomial() -> None:
    assert gf256.multiply(2, 0x80) == 0x1D  # x * x^7 = x^8 = x^4 + x^3 + x^2 + 1
    assert gf256.multiply(0, 7) == gf256.multiply(7, 0) == 0
    assert gf256.multiply(3, 3) == 5  # (x + 1)^2 = x^2 + 1


def test_scale_multiplies_every_byte() -> None:
    data = bytes(range(256))
    for factor in (1, 2, 0x53, 255):
        assert gf256.scale(data, factor) == bytes(gf256.multiply(factor, b) for b in data)


def test_sums_of_different_lengths_pad_on_the_right() -> None:
    total = gf256.to_int(b"\x01\x02") ^ gf256.to_int(b"\x10")
    assert gf256.to_bytes(total, 3) == b"\x11\x02\x00"


def test_coefficients_are_never_zero_and_vary() -> None:
    values = {gf256.coefficient(seed, number) for seed in range(40) for number in range(40)}
    assert 0 not in values
    assert len(values) > 200


# --- the sender ---------------------------------------------------------------------


def lossy_encoder(loss: float, *, woken: bool = True) -> FecEncoder:
    """An encoder whose peer reported about ``loss`` of 4000 packets missing; if
    ``woken``, its first repair (a copy that wakes the receiver) is behind it."""
    encoder = FecEncoder()
    missing = round(4000 * loss)
    encoder.on_loss_report(4000 - missing, missing)
    if woken and encoder.active:
        assert encoder.on_data_packet(0, b"wake", 0.0) is not None
    return encoder


def decode_all(repair: FecFrame, sources: dict[int, bytes]) -> bytes:
    """What a repair's parity must be: the coefficient-weighted sum of the symbols."""
    total = 0
    longest = 0
    for number in repair.member_numbers():
        source = symbol(sources[number])
        total ^= gf256.to_int(gf256.scale(source, gf256.coefficient(repair.seed, number)))
        longest = max(longest, len(source))
    return gf256.to_bytes(total, longest)


def test_fec_stays_off_without_loss_and_adds_nothing() -> None:
    encoder = lossy_encoder(0.0)
    assert not encoder.active
    assert encoder.group_size == 0
    assert encoder.on_data_packet(1, b"data", 0.0) is None
    assert encoder.deadline() is None
    assert encoder.on_timer(10.0) is None
    assert encoder.parities_sent == 0


@pytest.mark.parametrize(
    ("loss", "size"), [(0.02, GROUP_SIZES[0][1]), (0.05, 3.5), (0.10, 2.75), (0.30, 1.3)]
)
def test_repair_rate_follows_the_reported_loss(loss: float, size: float) -> None:
    encoder = lossy_encoder(loss)
    assert encoder.active
    assert encoder.loss_rate == pytest.approx(loss, rel=0.01)
    assert encoder.group_size == size


def test_reports_count_only_what_changed_and_ignore_older_ones() -> None:
    encoder = FecEncoder()
    encoder.on_loss_report(99, 1)
    first = encoder.loss_rate
    assert first == pytest.approx(0.01 * (1 - (1 - 1 / 128) ** 100))
    encoder.on_loss_report(99, 1)  # nothing new
    encoder.on_loss_report(50, 0)  # overtaken by the one before
    assert encoder.loss_rate == first
    encoder.on_loss_report(99, 3)  # two more missing, nothing received: all lost
    assert encoder.loss_rate > first
    encoder.on_loss_report(199, 2)  # one late packet arrived: not counted as loss
    assert 0 < encoder.loss_rate < 1


def test_one_report_counts_for_a_bounded_number_of_outcomes() -> None:
    encoder = FecEncoder()
    encoder.on_loss_report(0, 10**9)
    assert encoder.loss_rate == pytest.approx(1 - (1 - 1 / 128) ** MAX_REPORTED_OUTCOMES)


def test_hysteresis_between_on_and_off() -> None:
    encoder = lossy_encoder(0.05)
    received, missing = 4000 - 200, 200
    while encoder.loss_rate >= FEC_OFF_LOSS:
        assert encoder.active
        received += 1
        encoder.on_loss_report(received, missing)
    assert not encoder.active
    while encoder.loss_rate < FEC_ON_LOSS:
        assert not encoder.active
        missing += 1
        encoder.on_loss_report(received, missing)
    assert encoder.active


def test_the_first_repair_is_a_copy_that_wakes_the_receiver() -> None:
    encoder = lossy_encoder(0.02, woken=False)
    wake = encoder.on_data_packet(3, b"first", 1.0)
    assert wake is not None
    assert wake.member_numbers() == [3]
    assert wake.parity == decode_all(wake, {3: b"first"})
    assert encoder.on_data_packet(4, b"second", 1.01) is None
    # After RECEIVER_IDLE_S / 2 without a repair the receiver may have forgotten: copy.
    assert encoder.on_timer(1.01 + FEC_FLUSH_S) is not None
    later = 1.01 + FEC_FLUSH_S + RECEIVER_IDLE_S / 2
    again = encoder.on_data_packet(9, b"again", later)
    assert again is not None
    assert again.member_numbers() == [9]


def test_a_repair_covers_the_whole_window_after_every_group() -> None:
    encoder = lossy_encoder(0.10)  # one repair per 3 data packets
    sources = {100 + n: bytes([n]) * (10 + n) for n in range(6)}
    repairs = [encoder.on_data_packet(number, data, 1.0) for number, data in sources.items()]
    assert repairs[:2] == [None, None]
    assert repairs[3:5] == [None, None]
    second, fifth = repairs[2], repairs[5]
    assert second is not None
    assert fifth is not None
    assert second.member_numbers() == [100, 101, 102]
    assert second.parity == decode_all(second, sources)
    # The window slides: the next repair covers every packet still unacknowledged.
    assert fifth.member_numbers() == [100, 101, 102, 103, 104, 105]
    assert fifth.seed == second.seed + 1
    assert encoder.parities_sent == 3  # the wake-up copy, then these two


def test_acknowledged_and_lost_packets_leave_the_window() -> None:
    encoder = lossy_encoder(0.10)
    encoder.forget(0)  # the wake-up copy's packet
    encoder.on_data_packet(10, b"a", 0.0)
    encoder.on_data_packet(11, b"b", 0.0)
    encoder.forget(10)
    encoder.forget(99)  # never a member: nothing happens
    repair = encoder.on_data_packet(12, b"c", 0.0)
    assert repair is not None
    assert repair.member_numbers() == [11, 12]


def test_the_window_is_bounded_by_count_and_span() -> None:
    encoder = lossy_encoder(0.30)  # windows of 4
    repairs = [encoder.on_data_packet(n, b"x", 0.0) for n in range(1, 8)]
    last = [r for r in repairs if r is not None][-1]
    assert last.member_numbers() == [4, 5, 6, 7]  # the wake-up packet 0 and 1..3 left
    wide = lossy_encoder(0.02)  # windows of 8
    wide.on_data_packet(10, b"a", 0.0)
    wide.on_data_packet(10 + FEC_MAX_SPAN, b"b", 0.001)
    assert wide.on_timer(0.001 + FEC_FLUSH_S).member_numbers() == [10 + FEC_MAX_SPAN]  # type: ignore[union-attr]


def test_fractional_group_sizes_spread_the_repairs() -> None:
    encoder = lossy_encoder(0.30)  # 1.3 data packets per repair
    repairs = [encoder.on_data_packet(n, b"x", 0.0) for n in range(1, 15)]
    assert sum(r is not None for r in repairs) == 10


def test_uncovered_packets_get_a_repair_at_the_flush_deadline() -> None:
    encoder = lossy_encoder(0.02)
    assert encoder.on_data_packet(7, b"abc", 2.0) is None
    assert encoder.on_data_packet(9, b"defg", 2.01) is None  # 8 was an ACK-only packet
    assert encoder.deadline() == 2.0 + FEC_FLUSH_S
    assert encoder.on_timer(2.0 + FEC_FLUSH_S - 0.001) is None
    repair = encoder.on_timer(2.0 + FEC_FLUSH_S)
    assert repair is not None
    assert repair.member_numbers() == [0, 7, 9]  # the wake-up packet is unacknowledged too
    assert encoder.deadline() is None


def test_no_repair_when_everything_was_acknowledged_meanwhile() -> None:
    encoder = lossy_encoder(0.02)
    encoder.forget(0)
    encoder.on_data_packet(7, b"abc", 2.0)
    encoder.forget(7)
    assert encoder.on_timer(2.0 + FEC_FLUSH_S) is None
    assert encoder.deadline() is None


def test_switching_off_drops_the_window() -> None:
    encoder = lossy_encoder(0.02)
    encoder.on_data_packet(1, b"a", 0.0)
    encoder.on_loss_report(10**6, 80)
    assert not encoder.active
    assert encoder.on_data_packet(2, b"b", 0.01) is None
    assert encoder.deadline() is None


# --- the receiver -------------------------------------------------------------------


def repair_of(seed: int, sources: dict[int, bytes]) -> FecFrame:
    first = min(sources)
    bitmap = sum(1 << (number - first) for number in sources)
    frame = FecFrame(first, bitmap, seed, b"")
    return FecFrame(first, bitmap, seed, decode_all(frame, sources))


def never_received(_: int) -> bool:
    return True


def active_decoder(now: float = 0.0) -> FecDecoder:
    decoder = FecDecoder()
    wake = repair_of(0, {1_000_000: b"wake"})
    assert decoder.on_fec(wake, now, never_received) == [(1_000_000, b"wake")]
    decoder.on_packet(1_000_000, b"wake", now)
    decoder.repaired = 0
    return decoder


def test_decoder_rebuilds_the_one_missing_member() -> None:
    members = {20: b"first", 21: b"the second one", 22: b"3rd"}
    decoder = active_decoder()
    decoder.on_packet(20, members[20], 0.1)
    decoder.on_packet(22, members[22], 0.1)
    assert decoder.on_fec(repair_of(5, members), 0.2, never_received) == [(21, members[21])]
    assert decoder.repaired == 1


def test_two_losses_are_rebuilt_from_two_repairs_together() -> None:
    members = {30: b"alpha", 31: b"bravo!", 32: b"charlie", 33: b"d"}
    decoder = active_decoder()
    decoder.on_packet(30, members[30], 0.1)
    decoder.on_packet(33, members[33], 0.1)
    assert decoder.on_fec(repair_of(7, members), 0.2, never_received) == []  # 2 unknowns
    rebuilt = decoder.on_fec(repair_of(8, members), 0.2, never_received)
    assert rebuilt == [(31, members[31]), (32, members[32])]


def test_a_repeated_equation_adds_nothing() -> None:
    members = {5: b"aa", 6: b"bbb"}
    decoder = active_decoder()
    assert decoder.on_fec(repair_of(3, members), 0.1, never_received) == []
    assert decoder.on_fec(repair_of(3, members), 0.1, never_received) == []
    assert decoder.repaired == 0


def test_a_late_arrival_is_subtracted_from_pending_repairs() -> None:
    members = {40: b"one", 41: b"two", 42: b"three"}
    decoder = active_decoder()
    decoder.on_packet(40, members[40], 0.1)
    assert decoder.on_fec(repair_of(1, members), 0.1, never_received) == []
    decoder.on_packet(42, members[42], 0.15)  # late, not lost
    # The next repair over other packets solves the pending one too.
    other = {43: b"four"}
    rebuilt = decoder.on_fec(repair_of(2, other), 0.2, never_received)
    assert rebuilt == [(41, members[41]), (43, other[43])]


def test_nothing_left_to_solve_when_every_member_arrived() -> None:
    members = {5: b"aa", 6: b"bbb"}
    decoder = active_decoder()
    decoder.on_packet(5, members[5], 0.1)
    decoder.on_packet(6, members[6], 0.1)
    assert decoder.on_fec(repair_of(1, members), 0.2, never_received) == []


def test_a_repair_lacking_more_members_than_could_be_solved_is_dropped() -> None:
    decoder = active_decoder()
    members = {100 + n: bytes([n]) for n in range(MAX_UNKNOWNS + 1)}
    assert decoder.on_fec(repair_of(1, members), 0.1, never_received) == []
    assert decoder._equations == []
    fewer = dict(list(members.items())[:MAX_UNKNOWNS])
    decoder.on_fec(repair_of(2, fewer), 0.1, never_received)
    assert len(decoder._equations) == 1


def test_a_member_received_but_no_longer_kept_makes_a_repair_useless() -> None:
    decoder = active_decoder()
    repair = repair_of(1, {7: b"forgotten", 8: b"lost"})
    assert decoder.on_fec(repair, 0.1, lambda number: number != 7) == []


@pytest.mark.parametrize(
    "parity",
    [
        b"\x00\x00xyz",  # rebuilt length 0
        b"\x00\x09xyz",  # rebuilt length past the symbol
    ],
)
def test_inconsistent_parity_rebuilds_nothing(parity: bytes) -> None:
    decoder = active_decoder()
    decoder.on_packet(5, b"aa", 0.1)
    # Coefficient-1 member 6 only: subtracting member 5 leaves the symbol below.
    seed, c5 = 0, gf256.coefficient(0, 5)
    c6 = gf256.coefficient(seed, 6)
    known = gf256.to_int(gf256.scale(symbol(b"aa"), c5))
    forged = gf256.to_int(gf256.scale(parity, c6)) ^ known
    frame = FecFrame(5, 0b11, seed, gf256.to_bytes(forged, len(parity)))
    assert decoder.on_fec(frame, 0.2, never_received) == []


def test_decoder_keeps_symbols_only_while_the_peer_sends_fec() -> None:
    decoder = FecDecoder()
    decoder.on_packet(1, b"before any fec", 0.0)
    members = {1: b"before any fec", 2: b"two"}
    assert decoder.on_fec(repair_of(1, members), 0.1, never_received) == []  # 2 unknowns
    decoder.on_packet(3, b"kept", 0.2)
    decoder.on_packet(4, b"gone", RECEIVER_IDLE_S + 1.0)  # idle too long: all forgotten
    kept = {3: b"kept", 4: b"gone"}
    assert decoder.on_fec(repair_of(2, kept), 40.0, never_received) == []


def test_decoder_memory_is_bounded() -> None:
    decoder = active_decoder()
    for number in range(RECENT_PACKETS + 10):
        decoder.on_packet(number, bytes([number % 256]), 0.1)
    # the oldest were forgotten: a repair over them has two unknowns and rebuilds nothing
    assert decoder.on_fec(repair_of(1, {0: b"\x00", 1: b"\x01"}), 0.2, never_received) == []
    newest = RECENT_PACKETS + 9
    pair = {newest: bytes([newest % 256]), newest + 1: b"\x07"}
    assert decoder.on_fec(repair_of(2, pair), 0.2, never_received) == [(newest + 1, b"\x07")]
    for seed in range(3, 3 + 2 * MAX_EQUATIONS):  # unsolvable: two unknowns each
        base = 1000 + 4 * seed
        repair = repair_of(seed, {base: b"a", base + 1: b"b"})
        decoder.on_fec(repair, 0.3, never_received)
    assert len(decoder._equations) <= MAX_EQUATIONS


def test_stale_equations_are_dropped() -> None:
    decoder = active_decoder()
    assert decoder.on_fec(repair_of(1, {10: b"a", 11: b"b"}), 0.1, never_received) == []
    far = 10 + 2 * FEC_MAX_SPAN
    assert decoder.on_fec(repair_of(2, {far: b"c", far + 1: b"d"}), 0.1, never_received) == []
    # A third repair over 10 and 11 alone would have solved them with the first: gone.
    assert decoder.on_fec(repair_of(3, {far + 2: b"e"}), 0.1, never_received) == [(far + 2, b"e")]
    decoder.on_packet(far + 2, b"e", 0.1)  # as the session does with what was rebuilt
    assert [sorted(e.coefficients) for e in decoder._equations] == [[far, far + 1]]


@pytest.mark.parametrize("seed", range(20))
def test_encoder_and_decoder_agree_under_random_loss(seed: int) -> None:
    """Everything the decoder rebuilds is exactly what was sent."""
    rng = random.Random(seed)
    encoder = lossy_encoder(0.10, woken=False)
    decoder = FecDecoder()
    sent: dict[int, bytes] = {}
    received: set[int] = set()
    rebuilt: dict[int, bytes] = {}
    now = 0.0
    number = 0
    for _ in range(300):
        now += 0.01
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
        sent[number] = data
        repair = encoder.on_data_packet(number, data, now)
        if rng.random() > 0.1:
            received.add(number)
            decoder.on_packet(number, data, now)
        number += 1
        if repair is not None:
            number += 1  # the repair's own packet
            if rng.random() > 0.1:

                def missing(n: int) -> bool:
                    return n not in received and n not in rebuilt

                for got, plaintext in decoder.on_fec(repair, now, missing):
                    rebuilt[got] = plaintext
                    decoder.on_packet(got, plaintext, now)
        if rng.random() < 0.5:  # acknowledgements trail behind
            for old in list(sent)[-12:-6]:
                encoder.forget(old)
    assert rebuilt
    assert all(sent[n] == plaintext for n, plaintext in rebuilt.items())
    assert not received & set(rebuilt)
