"""SendBuffer: fragmentation, retransmission order, flow control, acknowledgement."""

from __future__ import annotations

import random

import pytest

from udpim.core.errors import LocalProtocolError
from udpim.core.frames import DataFrame
from udpim.core.recvbuffer import MAX_MESSAGES_AHEAD
from udpim.core.sendbuffer import SendBuffer
from udpim.core.varint import data_frame_size

MIB = 1 << 20


def size(frame: DataFrame) -> int:
    return data_frame_size(
        frame.message_number,
        frame.message_start,
        frame.total_length,
        frame.fragment_offset,
        len(frame.payload),
    )


def drain(buffer: SendBuffer, max_frame_bytes: int) -> list[DataFrame]:
    frames = []
    while (frame := buffer.next_frame(max_frame_bytes)) is not None:
        frames.append(frame)
    return frames


def test_push_numbers_messages_and_refuses_oversized() -> None:
    buffer = SendBuffer(max_message_bytes=10, initial_max_data=1000)
    assert buffer.push(b"a") == 0
    assert buffer.push(b"0123456789") == 1
    with pytest.raises(LocalProtocolError):
        buffer.push(b"0123456789!")
    assert buffer.unacked_messages == 2
    assert buffer.buffered_bytes == 11
    assert buffer.push(b"") == 2


def test_small_message_goes_whole() -> None:
    buffer = SendBuffer(MIB, 4 * MIB)
    buffer.push(b"hello")
    buffer.push(b"world!")
    assert buffer.pending
    assert drain(buffer, 1200) == [
        DataFrame(0, 0, 5, 0, b"hello"),
        DataFrame(1, 5, 6, 0, b"world!"),
    ]
    assert not buffer.pending


@pytest.mark.parametrize("limit", [1150, 70, 200, 16390])
def test_one_mib_message_is_cut_to_fit(limit: int) -> None:
    payload = random.Random(7).randbytes(MIB)
    buffer = SendBuffer(MIB, 4 * MIB)
    buffer.push(b"x" * 100)
    buffer.push(payload)
    frames = drain(buffer, limit)
    assert all(size(frame) <= limit for frame in frames)
    fragments = [frame for frame in frames if frame.message_number == 1]
    assert b"".join(frame.payload for frame in fragments) == payload
    offsets = [frame.fragment_offset for frame in fragments]
    assert offsets == sorted(offsets)
    assert all(f.message_start == 100 and f.total_length == MIB for f in fragments)
    # Packed tightly: every fragment but the last is within a varint step of the limit.
    assert all(size(frame) >= limit - 3 for frame in fragments[:-1])


def test_fragments_fill_the_limit_exactly() -> None:
    buffer = SendBuffer(MIB, 4 * MIB)
    buffer.push(bytes(5000))
    frames = drain(buffer, 1150)
    assert [size(frame) for frame in frames[:-1]] == [1150] * (len(frames) - 1)


def test_whole_form_used_when_it_fits_exactly() -> None:
    buffer = SendBuffer(MIB, 4 * MIB)
    buffer.push(bytes(100))
    whole = data_frame_size(0, 0, 100, 0, 100)
    assert buffer.next_frame(whole - 1) is not None  # too small for whole: a fragment
    buffer = SendBuffer(MIB, 4 * MIB)
    buffer.push(bytes(100))
    assert buffer.next_frame(whole) == DataFrame(0, 0, 100, 0, bytes(100))


def test_room_too_small_returns_none_and_consumes_nothing() -> None:
    buffer = SendBuffer(MIB, 4 * MIB)
    buffer.push(bytes(1000))
    buffer.push(b"")
    assert buffer.next_frame(5) is None
    assert buffer.next_frame(0) is None
    assert buffer.next_frame(1100) == DataFrame(0, 0, 1000, 0, bytes(1000))
    assert buffer.next_frame(4) is None  # the empty message needs 5 bytes
    assert buffer.next_frame(5) == DataFrame(1, 1000, 0, 0, b"")


def test_retransmissions_first_in_message_order() -> None:
    buffer = SendBuffer(MIB, 4 * MIB)
    buffer.push(bytes(300))
    buffer.push(bytes(300))
    buffer.push(bytes(300))
    frames = drain(buffer, 150)
    buffer.push(b"new")
    lost = [frames[5], frames[1], frames[3]]
    for frame in lost:
        buffer.on_frame_lost(frame)
    assert buffer.pending
    assert drain(buffer, 1200) == [frames[1], frames[3], frames[5], DataFrame(3, 900, 3, 0, b"new")]


def test_retransmission_is_split_when_room_shrinks() -> None:
    buffer = SendBuffer(MIB, 4 * MIB)
    buffer.push(bytes(range(200)) * 5)
    (frame,) = drain(buffer, 1200)
    buffer.on_frame_lost(frame)
    first = buffer.next_frame(400)
    assert first is not None
    assert size(first) <= 400
    assert buffer.next_frame(4) is None  # too small for any byte: stays queued
    rest = drain(buffer, 1200)
    pieces = [first, *rest]
    assert b"".join(piece.payload for piece in pieces) == frame.payload
    assert [p.fragment_offset for p in pieces] == [0, len(first.payload)]
    assert buffer.on_frame_acked(first) == []
    assert buffer.on_frame_acked(rest[0]) == [0]
    assert buffer.buffered_bytes == 0


def test_flow_control_blocks_and_window_unblocks() -> None:
    buffer = SendBuffer(MIB, initial_max_data=3000)
    buffer.push(bytes(5000))
    frames = drain(buffer, 1200)
    assert sum(len(frame.payload) for frame in frames) == 3000
    assert frames[-1].stream_end == 3000
    assert buffer.blocked_by_flow_control
    assert not buffer.pending
    buffer.on_max_data(2000)  # a decrease is ignored
    assert buffer.max_data == 3000
    assert buffer.next_frame(1200) is None
    buffer.on_max_data(4500)
    assert not buffer.blocked_by_flow_control
    more = drain(buffer, 1200)
    assert more[0].fragment_offset == 3000
    assert more[-1].stream_end == 4500
    buffer.on_max_data(10_000)
    assert drain(buffer, 1200)[-1].stream_end == 5000
    assert not buffer.blocked_by_flow_control


def test_retransmissions_are_not_blocked_by_flow_control() -> None:
    buffer = SendBuffer(MIB, initial_max_data=1000)
    buffer.push(bytes(2000))
    (frame,) = drain(buffer, 1200)
    buffer.on_frame_lost(frame)
    assert buffer.blocked_by_flow_control
    assert buffer.pending
    assert buffer.next_frame(1200) == frame


def test_empty_message_at_the_flow_control_limit() -> None:
    buffer = SendBuffer(MIB, initial_max_data=10)
    buffer.push(bytes(10))
    buffer.push(b"")
    buffer.push(b"x")
    frames = drain(buffer, 1200)
    assert frames == [DataFrame(0, 0, 10, 0, bytes(10)), DataFrame(1, 10, 0, 0, b"")]
    assert buffer.blocked_by_flow_control
    assert buffer.on_frame_acked(frames[1]) == []
    assert buffer.on_frame_acked(frames[0]) == [0, 1]


def test_acknowledgements_reported_once_in_order() -> None:
    buffer = SendBuffer(MIB, 4 * MIB)
    for text in (b"zero", b"one", b"two"):
        buffer.push(text)
    zero, one, two = drain(buffer, 1200)
    assert buffer.on_frame_acked(two) == []
    assert buffer.on_frame_acked(zero) == [0]
    assert buffer.on_frame_acked(zero) == []
    assert buffer.on_frame_acked(one) == [1, 2]
    assert buffer.on_frame_acked(two) == []
    assert buffer.unacked_messages == 0
    assert buffer.buffered_bytes == 0


def test_fragmented_message_acknowledged_when_every_byte_is() -> None:
    buffer = SendBuffer(MIB, 4 * MIB)
    buffer.push(bytes(1000))
    frames = drain(buffer, 300)
    for frame in reversed(frames[1:]):
        assert buffer.on_frame_acked(frame) == []
        assert buffer.on_frame_acked(frame) == []  # duplicate ack: no double count
    assert buffer.buffered_bytes == len(frames[0].payload)
    assert buffer.on_frame_acked(frames[0]) == [0]
    assert buffer.buffered_bytes == 0


def test_frame_acked_after_declared_lost_is_not_resent() -> None:
    buffer = SendBuffer(MIB, 4 * MIB)
    buffer.push(bytes(1000))
    frames = drain(buffer, 300)
    buffer.on_frame_lost(frames[1])
    buffer.on_frame_acked(frames[1])  # the "lost" packet arrives after all
    assert not buffer.pending
    assert buffer.next_frame(1200) is None
    assert buffer.buffered_bytes == 1000 - len(frames[1].payload)


def test_lost_frame_already_acked_via_another_copy_is_not_requeued() -> None:
    buffer = SendBuffer(MIB, 4 * MIB)
    buffer.push(bytes(1000))
    frames = drain(buffer, 300)
    buffer.on_frame_lost(frames[1])
    copy = buffer.next_frame(1200)
    assert copy == frames[1]
    buffer.on_frame_acked(copy)
    buffer.on_frame_lost(frames[1])  # the original copy is declared lost later
    assert buffer.next_frame(1200) is None


def test_lost_frame_covered_by_acked_pieces_is_dropped_lazily() -> None:
    buffer = SendBuffer(MIB, 4 * MIB)
    buffer.push(bytes(800))
    first, *others = drain(buffer, 300)
    buffer.on_frame_lost(first)
    piece = buffer.next_frame(150)  # split: the rest stays queued
    rest = buffer.next_frame(1200)
    assert piece is not None
    assert rest is not None
    assert (piece.fragment_offset, rest.fragment_offset) == (0, len(piece.payload))
    assert rest.stream_end == first.stream_end
    buffer.on_frame_lost(first)  # a probe copy of the whole frame is lost too
    assert buffer.pending
    buffer.on_frame_acked(piece)
    buffer.on_frame_acked(rest)
    assert not buffer.pending  # every byte of the queued copy is acknowledged
    assert buffer.next_frame(1200) is None
    assert buffer.unacked_messages == 1
    assert buffer.buffered_bytes == 800 - len(first.payload)
    for frame in others:
        buffer.on_frame_lost(frame)
    assert drain(buffer, 1200) == others


def test_duplicate_loss_reports_queue_once() -> None:
    buffer = SendBuffer(MIB, 4 * MIB)
    buffer.push(b"abc")
    (frame,) = drain(buffer, 1200)
    buffer.on_frame_lost(frame)
    buffer.on_frame_lost(frame)
    assert drain(buffer, 1200) == [frame]


def test_loss_of_fully_acked_message_is_ignored() -> None:
    buffer = SendBuffer(MIB, 4 * MIB)
    buffer.push(b"abc")
    (frame,) = drain(buffer, 1200)
    assert buffer.on_frame_acked(frame) == [0]
    buffer.on_frame_lost(frame)
    assert not buffer.pending


def test_memory_released_after_acknowledgement() -> None:
    buffer = SendBuffer(MIB, 4 * MIB)
    payload = random.Random(3).randbytes(MIB)
    buffer.push(payload)
    buffer.push(b"tail")
    frames = drain(buffer, 1150)
    assert buffer.buffered_bytes == MIB + 4
    rng = random.Random(11)
    rng.shuffle(frames)
    reported: list[int] = []
    for frame in frames:
        reported += buffer.on_frame_acked(frame)
    assert reported == [0, 1]
    assert buffer.unacked_messages == 0
    assert buffer.buffered_bytes == 0
    assert not buffer.pending
    assert not buffer.blocked_by_flow_control


def test_message_count_limit_blocks_until_oldest_is_acked() -> None:
    buffer = SendBuffer(MIB, 4 * MIB)
    for _ in range(MAX_MESSAGES_AHEAD + 1):
        buffer.push(b"")
    frames = drain(buffer, 1200)
    assert len(frames) == MAX_MESSAGES_AHEAD
    assert buffer.blocked_by_flow_control
    assert buffer.on_frame_acked(frames[0]) == [0]
    last = buffer.next_frame(1200)
    assert last is not None
    assert last.message_number == MAX_MESSAGES_AHEAD


def test_frames_not_from_this_buffer_are_misuse() -> None:
    buffer = SendBuffer(MIB, 4 * MIB)
    buffer.push(bytes(1000))
    buffer.push(b"later")
    frames = drain(buffer, 300)  # cuts message 0 completely, message 1 too
    bad = [
        DataFrame(2, 1005, 1, 0, b"x"),  # never pushed
        DataFrame(0, 1, 1000, 0, bytes(290)),  # wrong start
        DataFrame(0, 0, 999, 0, bytes(290)),  # wrong total
        DataFrame(0, 0, 1000, 990, bytes(20)),  # past the end
    ]
    for frame in bad:
        with pytest.raises(LocalProtocolError):
            buffer.on_frame_acked(frame)
        with pytest.raises(LocalProtocolError):
            buffer.on_frame_lost(frame)
    assert buffer.buffered_bytes == 1005
    assert len(frames) == 5


def test_frames_never_cut_are_misuse() -> None:
    buffer = SendBuffer(MIB, 4 * MIB)
    buffer.push(bytes(1000))
    buffer.push(b"")
    buffer.next_frame(300)
    with pytest.raises(LocalProtocolError):
        buffer.on_frame_acked(DataFrame(0, 0, 1000, 500, bytes(100)))
    with pytest.raises(LocalProtocolError):
        buffer.on_frame_acked(DataFrame(1, 1000, 0, 0, b""))
    assert buffer.buffered_bytes == 1000
