"""protection.py: SessionKeys on their own: seal/open, anti-replay, key updates."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.core.pairs import TEST_CONFIG
from udpim.core.errors import BadPacket, DropReason
from udpim.core.protection import SessionKeys
from udpim.core.wire import decode_data_header_untrusted

UP, DOWN = bytes(range(32)), bytes(range(32, 64))
CID = b"\x01\x02\x03\x04"
PTO_S = 0.5


def pair(config: object = TEST_CONFIG) -> tuple[SessionKeys, SessionKeys]:
    sender = SessionKeys(UP, DOWN, config, 0.0)  # type: ignore[arg-type]
    receiver = SessionKeys(DOWN, UP, config, 0.0)  # type: ignore[arg-type]
    return sender, receiver


def phase(datagram: bytes) -> int:
    return decode_data_header_untrusted(datagram).key_phase


def reason(call: object) -> DropReason:
    with pytest.raises(BadPacket) as info:
        call()  # type: ignore[operator]
    return info.value.reason


def test_round_trip_and_header_size() -> None:
    sender, receiver = pair()
    datagram = sender.seal(CID, 0, None, b"\x01", 0.0)
    assert receiver.open_untrusted(datagram, None, 0.0, PTO_S) == (0, b"\x01")
    header = len(datagram) - 1 - 16
    assert sender.header_bytes(CID, 0, None) == header
    assert sender.header_bytes(CID, 70_000, 0) > header  # longer packet numbers


def test_replays_and_forgeries_are_dropped_without_poisoning_the_window() -> None:
    sender, receiver = pair()
    first = sender.seal(CID, 0, None, b"\x01", 0.0)
    second = sender.seal(CID, 1, None, b"\x01", 0.0)
    receiver.open_untrusted(first, None, 0.0, PTO_S)
    assert reason(lambda: receiver.open_untrusted(first, 0, 0.0, PTO_S)) is DropReason.REPLAYED
    forged = second[:-1] + bytes([second[-1] ^ 1])
    assert (
        reason(lambda: receiver.open_untrusted(forged, 0, 0.0, PTO_S)) is DropReason.DECRYPT_FAILED
    )
    assert receiver.open_untrusted(second, 0, 0.0, PTO_S) == (1, b"\x01")
    assert reason(lambda: receiver.open_untrusted(second[:8], 1, 0.0, PTO_S)) in (
        DropReason.TRUNCATED,
        DropReason.MALFORMED,
    )


def test_no_update_before_the_current_epoch_was_acknowledged() -> None:
    sender, _ = pair(replace(TEST_CONFIG, rekey_after_packets=2))
    datagrams = [sender.seal(CID, n, None, b"\x01", 0.0) for n in range(5)]
    assert {phase(d) for d in datagrams} == {0}
    assert sender.key_updates_sent == 0


def test_update_after_the_packet_count_once_acknowledged() -> None:
    sender, receiver = pair(replace(TEST_CONFIG, rekey_after_packets=3))
    for n in range(3):
        receiver.open_untrusted(
            sender.seal(CID, n, None, b"\x01", 0.0), n - 1 if n else None, 0.0, PTO_S
        )
    sender.on_packet_acked(1)
    flipped = sender.seal(CID, 3, 1, b"\x01", 0.0)
    assert phase(flipped) == 1
    assert sender.key_updates_sent == 1
    assert receiver.open_untrusted(flipped, 2, 5.0, PTO_S) == (3, b"\x01")
    assert receiver.key_updates_received == 1
    assert receiver.deadline() == 5.0 + 3 * PTO_S
    # The next update needs an acknowledgement of a packet of the new epoch.
    for n in range(4, 8):
        sender.seal(CID, n, 1, b"\x01", 0.0)
    sender.on_packet_acked(2)  # an old-epoch packet does not count
    assert phase(sender.seal(CID, 8, 2, b"\x01", 0.0)) == 1
    sender.on_packet_acked(3)
    assert phase(sender.seal(CID, 9, 3, b"\x01", 0.0)) == 0
    assert sender.key_updates_sent == 2


def test_update_after_the_time_threshold() -> None:
    config = replace(TEST_CONFIG, rekey_after_s=10.0)
    sender, _ = pair(config)
    sender.seal(CID, 0, None, b"\x01", 0.0)
    sender.on_packet_acked(0)
    assert phase(sender.seal(CID, 1, 0, b"\x01", 9.999)) == 0
    assert phase(sender.seal(CID, 2, 0, b"\x01", 10.0)) == 1
    sender.on_packet_acked(2)
    assert phase(sender.seal(CID, 3, 2, b"\x01", 19.9)) == 1
    assert phase(sender.seal(CID, 4, 2, b"\x01", 20.0)) == 0


def test_late_packets_of_the_previous_phase_open_until_the_discard() -> None:
    sender, receiver = pair(replace(TEST_CONFIG, rekey_after_packets=2))
    early = [sender.seal(CID, n, None, b"\x01", 0.0) for n in range(3)]
    sender.on_packet_acked(0)
    late_one = sender.seal(CID, 3, 0, b"\x01", 0.0)
    assert phase(late_one) == 1
    receiver.open_untrusted(early[0], None, 0.0, PTO_S)
    receiver.open_untrusted(late_one, 0, 1.0, PTO_S)  # the new phase arrives first
    discard_at = 1.0 + 3 * PTO_S
    assert receiver.open_untrusted(early[1], 3, discard_at - 0.01, PTO_S) == (1, b"\x01")
    assert reason(lambda: receiver.open_untrusted(early[2], 3, discard_at, PTO_S)) is (
        DropReason.DECRYPT_FAILED
    )
    assert receiver.deadline() is None


def test_discard_previous_forgets_the_old_key_at_once() -> None:
    sender, receiver = pair(replace(TEST_CONFIG, rekey_after_packets=1))
    old = [sender.seal(CID, n, None, b"\x01", 0.0) for n in range(2)]
    sender.on_packet_acked(0)
    receiver.open_untrusted(old[0], None, 0.0, PTO_S)
    receiver.open_untrusted(sender.seal(CID, 2, 0, b"\x01", 0.0), 0, 0.0, PTO_S)
    receiver.discard_previous()
    assert receiver.deadline() is None
    assert (
        reason(lambda: receiver.open_untrusted(old[1], 2, 0.0, PTO_S)) is DropReason.DECRYPT_FAILED
    )
