"""Frames: the units of meaning inside an encrypted DATA packet.

This module holds only the frame value types. Their byte layout lives in ``framecodec.py``
(docs/PROTOCOL.md "Frames"); what a session does with each lives in ``session.py``.

Every frame is a frozen, slotted dataclass so a sent packet can record exactly which
frames it carried and the loss detector can hand the lost ones back for repacking under a
new packet number (frames are retransmitted, never datagrams).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import final

__all__ = [
    "AckFrame",
    "CloseFrame",
    "CloseReason",
    "DataFrame",
    "FecFrame",
    "LossReportFrame",
    "Frame",
    "PaddingFrame",
    "PathChallengeFrame",
    "PathResponseFrame",
    "PingFrame",
    "WindowFrame",
]


@final
class CloseReason(IntEnum):
    """Reason codes carried by CLOSE frames and ``SessionClosed`` events."""

    NORMAL = 0  # the application closed the session
    IDLE_TIMEOUT = 1  # nothing heard from the peer for the idle timeout
    PROTOCOL_VIOLATION = 2  # authenticated input no honest peer could send
    FLOW_CONTROL = 3  # the peer sent beyond the advertised window
    HANDSHAKE_TIMEOUT = 4  # the handshake never completed
    SHUTDOWN = 5  # the endpoint is shutting down (hub restart, daemon exit)
    REPLACED = 6  # a newer session from the same peer replaced this one


@final
@dataclass(frozen=True, slots=True)
class PaddingFrame:
    """``length`` zero bytes. Not ack-eliciting. Accepted on receipt; udpim itself does
    not send padding today."""

    length: int


@final
@dataclass(frozen=True, slots=True)
class PingFrame:
    """Ack-eliciting and empty: heartbeats and probes."""


@final
@dataclass(frozen=True, slots=True)
class AckFrame:
    """Acknowledges received packet numbers.

    Attributes:
        ranges: inclusive ``(first, last)`` packet-number ranges, highest first, not
            overlapping or adjacent; ``ranges[0][1]`` is the largest acknowledged.
        ack_delay_us: how long the receiver held the largest before acknowledging it.
    """

    ranges: tuple[tuple[int, int], ...]
    ack_delay_us: int

    @property
    def largest(self) -> int:
        return self.ranges[0][1]


@final
@dataclass(frozen=True, slots=True)
class DataFrame:
    """One fragment of one application message.

    Attributes:
        message_number: 0, 1, 2, ... per direction of a session, in send order.
        message_start: offset of the message's first byte in the session's message
            stream (the sum of the lengths of all earlier messages); flow control
            (``WindowFrame``) is counted in these stream bytes.
        total_length: length of the whole message in bytes.
        fragment_offset: offset of ``payload`` inside the message.
        payload: the fragment's bytes.
    """

    message_number: int
    message_start: int
    total_length: int
    fragment_offset: int
    payload: bytes

    @property
    def stream_end(self) -> int:
        """Stream offset just past this fragment."""
        return self.message_start + self.fragment_offset + len(self.payload)


@final
@dataclass(frozen=True, slots=True)
class WindowFrame:
    """Flow-control credit: the peer may send message-stream bytes below ``max_data``."""

    max_data: int


@final
@dataclass(frozen=True, slots=True)
class CloseFrame:
    """Authenticated close with a reason; the receiver ends the session."""

    code: CloseReason
    text: str


@final
@dataclass(frozen=True, slots=True)
class PathChallengeFrame:
    """Path validation challenge (8 unpredictable bytes); the peer must echo them."""

    data: bytes


@final
@dataclass(frozen=True, slots=True)
class PathResponseFrame:
    """Answer to a ``PathChallengeFrame``, echoing its data, sent on the same path."""

    data: bytes


@final
@dataclass(frozen=True, slots=True)
class FecFrame:
    """Forward error correction: a linear combination of the symbols of some packets.

    Attributes:
        first_packet: packet number of the first member.
        members: bitmap of the members (bit ``i`` set: packet ``first_packet + i`` is a
            member; bit 0 is always set).
        seed: the sender's repair counter; with a member's packet number it gives the
            member's coefficient (``gf256.coefficient``).
        parity: the sum over the members of coefficient * symbol in GF(2^8), where a
            symbol is the plaintext's 2-byte length and the plaintext, zero-padded to
            the longest.

    A receiver solves these for the members it lacks (docs/PROTOCOL.md "Forward error
    correction"). Not ack-eliciting.
    """

    first_packet: int
    members: int
    seed: int
    parity: bytes

    def member_numbers(self) -> list[int]:
        """The members' packet numbers, ascending."""
        bits, numbers, offset = self.members, [], 0
        while bits:
            if bits & 1:
                numbers.append(self.first_packet + offset)
            bits >>= 1
            offset += 1
        return numbers


@final
@dataclass(frozen=True, slots=True)
class LossReportFrame:
    """What this endpoint has seen of the peer's packets so far: ``received`` packets
    authenticated, ``missing`` packet numbers skipped and not (yet) received (a packet
    FEC rebuilt stays missing). The peer measures its path's loss from the changes,
    for FEC. Not ack-eliciting."""

    received: int
    missing: int


Frame = (
    PaddingFrame
    | PingFrame
    | AckFrame
    | DataFrame
    | WindowFrame
    | CloseFrame
    | PathChallengeFrame
    | PathResponseFrame
    | FecFrame
    | LossReportFrame
)
