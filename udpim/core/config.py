"""Every tunable of the core, in one place, with its unit in its name.

``SessionConfig`` is shared by both ends' sessions and the components they own
(reliability, keepalive, crypto). ``EndpointConfig`` holds what only the demultiplexer
needs (limits and DoS posture). Both are frozen: build a new one with
``dataclasses.replace`` to change a value. docs/PROTOCOL.md ("Timers") lists the timer
defaults and where each comes from.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import final

__all__ = [
    "INITIAL_MAX_DATA_BYTES",
    "MAX_DATAGRAM_BYTES",
    "MAX_MESSAGE_BYTES",
    "MIN_DATAGRAM_BYTES",
    "MIN_REPLAY_WINDOW_PACKETS",
    "CongestionAlgorithm",
    "CookieMode",
    "EndpointConfig",
    "SessionConfig",
]

# --- protocol constants: both ends rely on these; they are not tunables -------------------

MAX_MESSAGE_BYTES = 1 << 20
"""Largest message any receiver accepts (1 MiB); a sender may limit itself further."""
INITIAL_MAX_DATA_BYTES = 2 << 20
"""Flow-control credit a sender may assume before the receiver's first WINDOW frame.
Every receiver grants at least this much (``receive_window_bytes`` cannot be smaller) and
advertises a larger window in its first packet, so peers need not share a config."""
MAX_DATAGRAM_BYTES = 1500
"""Largest datagram any endpoint accepts; bigger ones are dropped (OVERSIZED)."""
MIN_DATAGRAM_BYTES = 128
"""Smallest ``max_datagram_bytes`` allowed (room for a header, a tag and some frames)."""
MIN_REPLAY_WINDOW_PACKETS = 2048


@final
class CongestionAlgorithm(Enum):
    """Which congestion controller a session uses (``udpim.core.congestion``)."""

    DELAY_GATED = "delay-gated"
    """NewReno that halves on loss only when the RTT shows a queue (the default)."""
    NEWRENO = "newreno"
    """RFC 9002 NewReno: every loss episode halves the window."""


@final
@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Tunables of one session. Defaults follow RFC 9002 and WireGuard where they apply."""

    # --- datagrams and messages -------------------------------------------------------
    max_datagram_bytes: int = 1200
    """Largest UDP payload this side sends (QUIC's conservative 1200-byte default)."""
    max_message_bytes: int = MAX_MESSAGE_BYTES
    """Largest application message ``send_message`` accepts (at most 1 MiB)."""
    receive_window_bytes: int = INITIAL_MAX_DATA_BYTES
    """Reassembly memory the receiver grants the peer (flow control, stream bytes);
    at least ``INITIAL_MAX_DATA_BYTES``."""

    # --- handshake ----------------------------------------------------------------------
    handshake_retry_s: float = 1.0
    """First handshake retransmission timeout; doubles per retry (exponential backoff)."""
    handshake_retry_max_s: float = 8.0
    """Ceiling of the handshake retransmission timeout."""
    handshake_timeout_s: float = 30.0
    """Give up (``SessionClosed(HANDSHAKE_TIMEOUT)``) after this long without a response."""

    # --- loss recovery (RFC 9002) -------------------------------------------------------
    initial_rtt_s: float = 0.333
    """RTT assumed before the first sample (RFC 9002 section 6.2.2)."""
    max_ack_delay_s: float = 0.025
    """Longest a receiver delays an acknowledgement (delayed ACK bound)."""
    ack_eliciting_threshold: int = 4
    """Acknowledge at once after this many ack-eliciting packets (every 4th packet; a
    packet out of order is acknowledged at once, and none waits ``max_ack_delay_s``)."""
    packet_threshold: int = 3
    """Declare a packet lost when one this many numbers later is acknowledged."""
    time_threshold: float = 9 / 8
    """Declare a packet lost when it is this many RTTs older than an acknowledged one."""
    timer_granularity_s: float = 0.001
    """Smallest timer the loss detector sets (RFC 9002 kGranularity)."""
    max_pto_backoff: int = 4
    """Probe-timeout backoff doubles at most this many times (caps the PTO at 16x, so a
    burst of losses never leaves data waiting seconds for its next probe)."""
    congestion_control: CongestionAlgorithm = CongestionAlgorithm.DELAY_GATED
    """The congestion controller (see ``CongestionAlgorithm``)."""
    fec: bool = True
    """Send FEC repairs when the peer reports loss (``fec.py``); receiving always works."""

    # --- keepalive and liveness ---------------------------------------------------------
    heartbeat_interval_s: float = 25.0
    """Send an authenticated PING when nothing was sent for this long (WireGuard: 25 s)."""
    dead_peer_timeout_s: float = 60.0
    """Emit ``PeerUnreachable`` when nothing authenticated arrived for this long."""
    idle_timeout_s: float = 600.0
    """Close the session (``IDLE_TIMEOUT``) when nothing authenticated arrived this long."""

    # --- keys ---------------------------------------------------------------------------
    rekey_after_s: float = 120.0
    """Move the send direction to the next key epoch after this long (WireGuard: 2 min)."""
    rekey_after_packets: int = 1 << 20
    """... or after this many packets sent under one key, whichever comes first."""
    replay_window_packets: int = 4096
    """Anti-replay sliding window size in packets (at least 2048)."""

    # --- paths --------------------------------------------------------------------------
    path_validation_timeout_s: float = 3.0
    """Abandon validating a new path (and fall back to the old one) after this long."""

    def __post_init__(self) -> None:
        """Reject values the protocol cannot work with (one clear ``ValueError``)."""
        if not MIN_DATAGRAM_BYTES <= self.max_datagram_bytes <= MAX_DATAGRAM_BYTES:
            raise ValueError(
                f"max_datagram_bytes must be {MIN_DATAGRAM_BYTES}..{MAX_DATAGRAM_BYTES}, "
                f"not {self.max_datagram_bytes}"
            )
        if not 0 <= self.max_message_bytes <= MAX_MESSAGE_BYTES:
            raise ValueError(
                f"max_message_bytes must be 0..{MAX_MESSAGE_BYTES}, not {self.max_message_bytes}"
            )
        if self.receive_window_bytes < INITIAL_MAX_DATA_BYTES:
            raise ValueError(
                f"receive_window_bytes must be at least {INITIAL_MAX_DATA_BYTES}, "
                f"not {self.receive_window_bytes}"
            )
        if self.replay_window_packets < MIN_REPLAY_WINDOW_PACKETS:
            raise ValueError(
                f"replay_window_packets must be at least {MIN_REPLAY_WINDOW_PACKETS}, "
                f"not {self.replay_window_packets}"
            )
        for name in _POSITIVE_FIELDS:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, not {getattr(self, name)}")


_POSITIVE_FIELDS = (
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
)


@final
class CookieMode(Enum):
    """When a responder demands a cookie round trip before allocating handshake state."""

    NEVER = "never"
    ALWAYS = "always"
    UNDER_LOAD = "under-load"


@final
@dataclass(frozen=True, slots=True)
class EndpointConfig:
    """Tunables of an ``Endpoint`` (the connection-ID demultiplexer)."""

    session: SessionConfig = SessionConfig()
    cookie_mode: CookieMode = CookieMode.UNDER_LOAD
    """DoS posture: answer initiations with a stateless cookie reply (essay: cookies.py)."""
    load_threshold_handshakes: int = 200
    """``UNDER_LOAD`` demands cookies beyond this many initiations in one second."""
    cookie_secret_lifetime_s: float = 120.0
    """The secret that cookies are bound to rotates this often (previous one still valid)."""
    max_sessions: int = 200_000
    """Refuse new initiations (dropped, ``RATE_LIMITED``) beyond this many sessions."""
