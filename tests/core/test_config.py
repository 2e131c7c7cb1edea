"""config.py: ``SessionConfig`` refuses, with one ``ValueError``, every value the protocol
cannot work with, and accepts the edges of every allowed range."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from udpim.core.config import (
    INITIAL_MAX_DATA_BYTES,
    MAX_DATAGRAM_BYTES,
    MAX_MESSAGE_BYTES,
    MIN_DATAGRAM_BYTES,
    MIN_REPLAY_WINDOW_PACKETS,
    SessionConfig,
)

DEFAULTS = SessionConfig()

POSITIVE_FIELDS = [
    "handshake_retry_s",
    "handshake_retry_max_s",
    "handshake_timeout_s",
    "initial_rtt_s",
    "max_ack_delay_s",
    "ack_eliciting_threshold",
    "packet_threshold",
    "time_threshold",
    "timer_granularity_s",
    "heartbeat_interval_s",
    "dead_peer_timeout_s",
    "idle_timeout_s",
    "rekey_after_s",
    "rekey_after_packets",
    "path_validation_timeout_s",
]

REFUSED: list[tuple[str, float, str]] = [
    ("max_datagram_bytes", MIN_DATAGRAM_BYTES - 1, "max_datagram_bytes must be 128..1500"),
    ("max_datagram_bytes", MAX_DATAGRAM_BYTES + 1, "max_datagram_bytes must be 128..1500"),
    ("max_message_bytes", -1, "max_message_bytes must be 0.."),
    ("max_message_bytes", MAX_MESSAGE_BYTES + 1, "max_message_bytes must be 0.."),
    ("receive_window_bytes", INITIAL_MAX_DATA_BYTES - 1, "receive_window_bytes must be at least"),
    ("replay_window_packets", MIN_REPLAY_WINDOW_PACKETS - 1, "replay_window_packets must be at"),
]


@pytest.mark.parametrize(
    ("name", "value", "message"), REFUSED, ids=[f"{n}={v}" for n, v, _ in REFUSED]
)
def test_out_of_range_values_are_refused(name: str, value: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        replace(DEFAULTS, **{name: value})


@pytest.mark.parametrize("name", POSITIVE_FIELDS)
@pytest.mark.parametrize("value", [0, -1, math.nan], ids=["zero", "negative", "nan"])
def test_timers_and_thresholds_must_be_positive(name: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"^{name} must be positive"):
        replace(DEFAULTS, **{name: value})


def test_the_edges_of_every_range_are_accepted() -> None:
    edges = {
        "max_datagram_bytes": MIN_DATAGRAM_BYTES,
        "max_message_bytes": 0,
        "receive_window_bytes": INITIAL_MAX_DATA_BYTES,
        "replay_window_packets": MIN_REPLAY_WINDOW_PACKETS,
        **{name: 1e-9 if name.endswith("_s") else 1 for name in POSITIVE_FIELDS},
    }
    config = replace(DEFAULTS, **edges)
    assert all(getattr(config, name) == value for name, value in edges.items())
    top = replace(
        DEFAULTS, max_datagram_bytes=MAX_DATAGRAM_BYTES, max_message_bytes=MAX_MESSAGE_BYTES
    )
    assert (top.max_datagram_bytes, top.max_message_bytes) == (
        MAX_DATAGRAM_BYTES,
        MAX_MESSAGE_BYTES,
    )
