"""The daemon's connection phases, and the records of its store ops in flight.

A connection moves DISCONNECTED -> (AWAITING_STATE) -> HELLO_SENT -> WELCOMED and back
to DISCONNECTED when its session ends. Each record names what ``PeerCore`` does when
its op's result (or error) comes back; records that carry a ``connection`` number act
on the network only if that connection is still the current one.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import final

from udpim.im.events import MessageArrived
from udpim.im.ops import OutboxState

__all__ = [
    "ConnectionPhase",
    "Enqueueing",
    "LoadingState",
    "Marking",
    "PeerPending",
    "PinningKey",
    "StoringInbox",
]


@final
class ConnectionPhase(Enum):
    """Where the daemon's current session to the hub stands."""

    DISCONNECTED = "disconnected"
    AWAITING_STATE = "awaiting-state"  # connected; hello waits for LoadPeerState
    HELLO_SENT = "hello-sent"
    WELCOMED = "welcomed"


@dataclass(frozen=True, slots=True)
class LoadingState:
    """``LoadPeerState`` at start."""


@dataclass(frozen=True, slots=True)
class Enqueueing:
    """``EnqueueOutbox`` of a new message: transmit it once this commits."""

    message_id: str


@dataclass(frozen=True, slots=True)
class Marking:
    """``SetOutboxState``: report the change (and ``receipt_ack`` a delivery) on commit."""

    message_id: str
    to: str
    state: OutboxState
    at: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class StoringInbox:
    """``StoreInbox`` of a deliver that arrived on ``connection``, ack slot ``slot``."""

    connection: int
    slot: int
    arrived: MessageArrived


@dataclass(frozen=True, slots=True)
class PinningKey:
    """``PinHubKey``."""


PeerPending = LoadingState | Enqueueing | Marking | StoringInbox | PinningKey
