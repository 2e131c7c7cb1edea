"""ReceiveBuffer: reassembly, exactly-once in-order delivery, flow control, violations.

The property tests run a ``SendBuffer`` against a ``ReceiveBuffer`` through an
adversarial "network" that reorders, duplicates and drops frames.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from udpim.core.errors import LocalProtocolError, ProtocolViolation
from udpim.core.frames import CloseReason, DataFrame, WindowFrame
from udpim.core.recvbuffer import MAX_MESSAGES_AHEAD, ReceiveBuffer, merge_range, missing_ranges
from udpim.core.sendbuffer import SendBuffer

MIB = 1 << 20


def cut(messages: list[bytes], limit: int, max_data: int = 1 << 40) -> list[DataFrame]:
    sender = SendBuffer(MIB, max_data)
    for message in messages:
        sender.push(message)
    frames = []
    while (frame := sender.next_frame(limit)) is not None:
        frames.append(frame)
    return frames


def drain(receiver: ReceiveBuffer) -> list[tuple[int, bytes]]:
    out = []
    while (message := receiver.next_message()) is not None:
        out.append(message)
    return out


def violation(receiver: ReceiveBuffer, frame: DataFrame) -> CloseReason:
    with pytest.raises(ProtocolViolation) as info:
        receiver.on_frame(frame)
    return info.value.code


# --- interval helpers ------------------------------------------------------------------


def test_missing_ranges() -> None:
    covered = [(0, 10), (20, 30)]
    assert missing_ranges(covered, 5, 8) == []
    assert missing_ranges(covered, 5, 25) == [(10, 20)]
    assert missing_ranges(covered, 0, 40) == [(10, 20), (30, 40)]
    assert missing_ranges(covered, 31, 35) == [(31, 35)]
    assert missing_ranges([], 3, 4) == [(3, 4)]


def test_merge_range() -> None:
    covered: list[tuple[int, int]] = []
    for start, end in ((20, 30), (0, 10), (10, 12), (40, 50), (5, 5), (11, 45)):
        merge_range(covered, start, end)
    assert covered == [(0, 50)]
    merge_range(covered, 60, 70)
    merge_range(covered, 50, 55)
    assert covered == [(0, 55), (60, 70)]


# --- delivery ----------------------------------------------------------------------------


def test_whole_messages_delivered_in_order() -> None:
    receiver = ReceiveBuffer(1000, 100)
    assert receiver.next_message() is None
    receiver.on_frame(DataFrame(1, 3, 2, 0, b"de"))
    assert receiver.next_message() is None  # message 0 missing
    receiver.on_frame(DataFrame(0, 0, 3, 0, b"abc"))
    assert receiver.buffered_bytes == 5
    assert drain(receiver) == [(0, b"abc"), (1, b"de")]
    assert receiver.delivered_messages == 2
    assert receiver.buffered_bytes == 0


def test_empty_message() -> None:
    receiver = ReceiveBuffer(1000, 100)
    receiver.on_frame(DataFrame(0, 0, 0, 0, b""))
    receiver.on_frame(DataFrame(1, 0, 1, 0, b"x"))
    receiver.on_frame(DataFrame(0, 0, 0, 0, b""))
    assert drain(receiver) == [(0, b""), (1, b"x")]


def test_one_mib_reassembled_from_shuffled_overlapping_duplicates() -> None:
    payload = random.Random(5).randbytes(MIB)
    frames = cut([b"head", payload], 1150) + cut([b"head", payload], 777)  # overlapping cuts
    rng = random.Random(42)
    frames += rng.sample(frames, 300)  # plain duplicates
    rng.shuffle(frames)
    receiver = ReceiveBuffer(4 * MIB, MIB)
    for frame in frames:
        receiver.on_frame(frame)
        assert receiver.buffered_bytes <= MIB + 4
    assert drain(receiver) == [(0, b"head"), (1, payload)]
    assert receiver.buffered_bytes == 0


def test_frames_of_delivered_messages_are_ignored() -> None:
    receiver = ReceiveBuffer(1000, 100)
    frames = cut([b"abc" * 30, b"z"], 40)
    for frame in frames:
        receiver.on_frame(frame)
    assert len(drain(receiver)) == 2
    for frame in frames:
        receiver.on_frame(frame)
    assert receiver.next_message() is None
    assert receiver.buffered_bytes == 0


# --- flow control ----------------------------------------------------------------------


def test_bytes_beyond_max_data_are_flow_control_violation() -> None:
    receiver = ReceiveBuffer(100, 50)
    receiver.on_frame(DataFrame(0, 0, 50, 0, bytes(50)))
    receiver.on_frame(DataFrame(1, 50, 50, 0, bytes(50)))  # exactly up to max_data
    assert violation(receiver, DataFrame(2, 100, 1, 0, b"x")) is CloseReason.FLOW_CONTROL


def test_window_readvertised_after_half_consumed() -> None:
    receiver = ReceiveBuffer(1000, 400)
    assert receiver.max_data == 1000
    assert receiver.window_frame() is None
    receiver.on_frame(DataFrame(0, 0, 400, 0, bytes(400)))
    receiver.on_frame(DataFrame(1, 400, 100, 0, bytes(100)))
    assert receiver.window_frame() is None  # received, not consumed
    receiver.next_message()
    assert receiver.window_frame() is None  # 400 consumed < half of 1000
    receiver.next_message()
    assert receiver.window_frame() == WindowFrame(1500)
    assert receiver.max_data == 1500
    assert receiver.window_frame() is None
    assert receiver.window_frame(force=True) == WindowFrame(1500)


def test_window_update_leaves_room_for_the_largest_message() -> None:
    receiver = ReceiveBuffer(1000, 900)  # update after 100 consumed, not 500
    receiver.on_frame(DataFrame(0, 0, 100, 0, bytes(100)))
    receiver.next_message()
    assert receiver.window_frame() == WindowFrame(1100)


def test_forced_window_frame_advertises_what_was_consumed() -> None:
    receiver = ReceiveBuffer(1000, 400)
    receiver.on_frame(DataFrame(0, 0, 10, 0, bytes(10)))
    receiver.next_message()
    assert receiver.window_frame(force=True) == WindowFrame(1010)


def test_sender_blocks_and_window_frame_unblocks() -> None:
    sender = SendBuffer(MIB, initial_max_data=1000)
    receiver = ReceiveBuffer(1000, 500)
    messages = [bytes([n]) * 300 for n in range(8)]
    for message in messages:
        sender.push(message)
    got: list[bytes] = []
    rounds = 0
    while len(got) < len(messages):
        rounds += 1
        while (frame := sender.next_frame(200)) is not None:
            receiver.on_frame(frame)
            sender.on_frame_acked(frame)
        if len(got) < 5:
            assert sender.blocked_by_flow_control
        got += [payload for _, payload in drain(receiver)]
        window = receiver.window_frame()
        if window is not None:
            sender.on_max_data(window.max_data)
    assert got == messages
    assert rounds > 2


def test_memory_beyond_window_is_flow_control_violation() -> None:
    receiver = ReceiveBuffer(100, 60)
    receiver.on_frame(DataFrame(1, 40, 60, 0, bytes(60)))
    # Message 3 claims bytes that message 1 already holds (inconsistent but not adjacent).
    assert violation(receiver, DataFrame(3, 40, 50, 0, bytes(50))) is CloseReason.FLOW_CONTROL


def test_message_too_far_ahead_is_flow_control_violation() -> None:
    receiver = ReceiveBuffer(1000, 100)
    receiver.on_frame(DataFrame(MAX_MESSAGES_AHEAD - 1, 0, 0, 0, b""))
    frame = DataFrame(MAX_MESSAGES_AHEAD, 0, 0, 0, b"")
    assert violation(receiver, frame) is CloseReason.FLOW_CONTROL
    for number in range(MAX_MESSAGES_AHEAD - 1):
        receiver.on_frame(DataFrame(number, 0, 0, 0, b""))
    receiver.on_frame(frame)  # the first incomplete message moved on
    assert len(drain(receiver)) == MAX_MESSAGES_AHEAD + 1


# --- protocol violations ---------------------------------------------------------------


def test_oversized_message_is_violation() -> None:
    receiver = ReceiveBuffer(1000, 100)
    code = violation(receiver, DataFrame(0, 0, 101, 0, bytes(10)))
    assert code is CloseReason.PROTOCOL_VIOLATION


def test_fragment_past_its_message_is_violation() -> None:
    receiver = ReceiveBuffer(1000, 100)
    code = violation(receiver, DataFrame(0, 0, 10, 5, bytes(6)))
    assert code is CloseReason.PROTOCOL_VIOLATION


@pytest.mark.parametrize(
    "second",
    [DataFrame(0, 0, 21, 10, bytes(10)), DataFrame(0, 1, 20, 10, bytes(10))],
    ids=["total", "start"],
)
def test_fragments_disagreeing_on_message_are_violation(second: DataFrame) -> None:
    receiver = ReceiveBuffer(1000, 100)
    receiver.on_frame(DataFrame(0, 0, 20, 0, bytes(10)))
    assert violation(receiver, second) is CloseReason.PROTOCOL_VIOLATION
    assert receiver.buffered_bytes == 10


def test_next_message_must_start_where_the_last_ended() -> None:
    receiver = ReceiveBuffer(1000, 100)
    receiver.on_frame(DataFrame(0, 0, 5, 0, bytes(5)))
    receiver.next_message()
    assert violation(receiver, DataFrame(1, 6, 5, 0, bytes(5))) is CloseReason.PROTOCOL_VIOLATION
    assert violation(receiver, DataFrame(2, 4, 5, 0, bytes(5))) is CloseReason.PROTOCOL_VIOLATION


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (DataFrame(1, 10, 5, 0, bytes(5)), DataFrame(2, 14, 5, 0, bytes(5))),  # overlap below
        (DataFrame(2, 20, 5, 0, bytes(5)), DataFrame(1, 10, 9, 0, bytes(9))),  # gap above
    ],
)
def test_neighbouring_messages_must_tile_the_stream(first: DataFrame, second: DataFrame) -> None:
    receiver = ReceiveBuffer(1000, 100)
    receiver.on_frame(first)
    assert violation(receiver, second) is CloseReason.PROTOCOL_VIOLATION


def test_window_must_exceed_largest_message() -> None:
    with pytest.raises(LocalProtocolError):
        ReceiveBuffer(100, 100)
    with pytest.raises(LocalProtocolError):
        ReceiveBuffer(100, -1)


# --- properties: SendBuffer -> adversarial network -> ReceiveBuffer --------------------

messages_strategy = st.lists(st.binary(max_size=700), min_size=1, max_size=6)


@settings(max_examples=150)
@given(messages=messages_strategy, limit=st.integers(12, 300), data=st.data())
def test_any_interleaving_with_duplicates_delivers_exactly_once_in_order(
    messages: list[bytes], limit: int, data: st.DataObject
) -> None:
    frames = cut(messages, limit)
    order = data.draw(st.permutations(frames))
    duplicates = data.draw(st.lists(st.sampled_from(frames), max_size=len(frames)))
    rng = data.draw(st.randoms(use_true_random=False))
    arrivals = list(order)
    for frame in duplicates:
        arrivals.insert(rng.randrange(len(arrivals) + 1), frame)
    receiver = ReceiveBuffer(1 << 20, 1 << 12)
    delivered: list[tuple[int, bytes]] = []
    for frame in arrivals:
        receiver.on_frame(frame)
        if rng.random() < 0.3:
            delivered += drain(receiver)
    delivered += drain(receiver)
    assert delivered == list(enumerate(messages))
    assert receiver.buffered_bytes == 0


@settings(max_examples=60)
@given(
    messages=st.lists(st.binary(max_size=900), min_size=1, max_size=8),
    limit=st.integers(20, 400),
    seed=st.integers(0, 2**32),
)
def test_lossy_reordering_link_with_flow_control(
    messages: list[bytes], limit: int, seed: int
) -> None:
    rng = random.Random(seed)
    window = 2048
    sender = SendBuffer(1024, window)
    receiver = ReceiveBuffer(window, 1024)
    for message in messages:
        sender.push(message)
    in_flight: list[DataFrame] = []
    delivered: list[tuple[int, bytes]] = []
    acked: list[int] = []
    for _ in range(10_000):
        if len(delivered) == len(messages) and sender.unacked_messages == 0:
            break
        while len(in_flight) < 12 and (frame := sender.next_frame(limit)) is not None:
            in_flight.append(frame)
        if not in_flight:
            continue
        frame = in_flight.pop(rng.randrange(len(in_flight)))
        fate = rng.random()
        if fate < 0.25:
            sender.on_frame_lost(frame)
            continue
        receiver.on_frame(frame)
        assert receiver.buffered_bytes <= window
        if fate < 0.35:
            in_flight.append(frame)  # duplicated by the network
        if rng.random() < 0.8:
            acked += sender.on_frame_acked(frame)
        else:
            sender.on_frame_lost(frame)  # its ACK was lost: spurious retransmission
        delivered += drain(receiver)
        update = receiver.window_frame()
        if update is not None:
            sender.on_max_data(update.max_data)
    assert delivered == list(enumerate(messages))
    assert acked == list(range(len(messages)))
    assert sender.buffered_bytes == 0
