"""``SessionStatistics``: the snapshot a session reports of its counters and estimates.

Counters come from the session's components (``Counters`` below, kept by
``Transmitter``; ``Keepalive``, ``PathManager``, ``SessionKeys``, ``LossRecovery``); this
module gathers them into one frozen value that drivers log and ``udpim status`` shows.
Taking a snapshot costs nothing while nobody asks for one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, final

from udpim.core.errors import DropReason
from udpim.core.state import Role, SessionState

if TYPE_CHECKING:
    from udpim.core.keepalive import Keepalive
    from udpim.core.path import Address, PathManager
    from udpim.core.transmit import Transmitter

__all__ = ["Counters", "RareCounters", "SessionStatistics", "build_statistics"]


@final
class RareCounters:
    """The counters an idle, loss-free session never moves: losses, retransmissions,
    probes, FEC repairs, reachability gaps and drops (``Counters.rare``)."""

    __slots__ = (
        "drops",
        "frames_retransmitted",
        "packets_lost",
        "packets_repaired",
        "probes_sent",
        "reachability_gap_max_s",
        "reachability_gap_total_s",
        "reachability_gaps",
    )

    def __init__(self) -> None:
        self.packets_lost = self.frames_retransmitted = self.probes_sent = 0
        self.packets_repaired = 0
        self.reachability_gaps = 0
        self.reachability_gap_total_s = self.reachability_gap_max_s = 0.0
        self.drops: dict[DropReason, int] = {}


_NO_RARE_COUNTS = RareCounters()
"""What ``Counters.rare_counts`` shows until something rare happened; never written."""


@final
class Counters:
    """The session's event counters (``statistics()``). The rare ones live in a
    ``RareCounters`` made when the first of them moves, so an idle session keeps only
    the packet, byte and message counts."""

    __slots__ = (
        "_rare",
        "bytes_received",
        "bytes_sent",
        "messages_delivered",
        "messages_received",
        "messages_sent",
        "packets_received",
        "packets_sent",
    )

    def __init__(self) -> None:
        self.packets_sent = self.packets_received = 0
        self.bytes_sent = self.bytes_received = 0
        self.messages_sent = self.messages_received = self.messages_delivered = 0
        self._rare: RareCounters | None = None

    @property
    def rare(self) -> RareCounters:
        """The rare counters, to count one (made on first use)."""
        rare = self._rare
        if rare is None:
            rare = self._rare = RareCounters()
        return rare

    @property
    def rare_counts(self) -> RareCounters:
        """The rare counters, to read them (all zero, and not to be written, until
        ``rare`` was first used)."""
        return _NO_RARE_COUNTS if self._rare is None else self._rare

    def drop(self, reason: DropReason) -> None:
        """Count one dropped datagram."""
        drops = self.rare.drops
        drops[reason] = drops.get(reason, 0) + 1

    def on_gap(self, gap_s: float) -> None:
        """Count one reachability gap: data that waited ``gap_s`` for the peer to re-appear."""
        rare = self.rare
        rare.reachability_gaps += 1
        rare.reachability_gap_total_s += gap_s
        rare.reachability_gap_max_s = max(rare.reachability_gap_max_s, gap_s)

    def on_received(self, size: int) -> None:
        """Count one authenticated datagram."""
        self.packets_received += 1
        self.bytes_received += size

    def on_sent(self, size: int) -> None:
        """Count one datagram handed to the driver."""
        self.packets_sent += 1
        self.bytes_sent += size


@final
@dataclass(frozen=True, slots=True)
class SessionStatistics:
    """A snapshot of a session's counters and estimates.

    ``drops`` counts datagrams dropped by this session, keyed by ``DropReason`` value;
    ``receive_buffered_bytes`` is reassembly memory in use (never above the window we
    advertised), ``send_buffered_bytes`` message bytes queued or awaiting acknowledgement.
    ``packets_repaired`` counts packets rebuilt from the peer's FEC parity;
    ``fec_group_size`` is our data packets per FEC repair now (0: FEC off; 1.5 means
    two repairs every three data packets).
    ``heartbeat_interval_s``, ``dead_peer_timeout_s`` and ``idle_timeout_s`` are the
    values in force (``set_heartbeat_interval``, ``set_liveness``).
    ``reachability_gaps`` counts ack-eliciting packets that were overdue (outstanding for
    a PTO or more) when the peer re-appeared after a silence or on a new path, and were
    then probed at once; ``reachability_gap_total_s``/``_max_s`` sum and bound how long
    each had waited since it was first sent (docs/PROTOCOL.md 7.8).
    """

    state: SessionState
    role: Role
    peer_address: Address
    packets_sent: int
    packets_received: int
    bytes_sent: int
    bytes_received: int
    packets_lost: int
    frames_retransmitted: int
    probes_sent: int
    heartbeats_sent: int
    messages_sent: int
    messages_received: int
    messages_delivered: int
    key_updates_sent: int
    key_updates_received: int
    path_migrations: int
    heartbeat_interval_s: float
    dead_peer_timeout_s: float
    idle_timeout_s: float
    reachability_gaps: int
    reachability_gap_total_s: float
    reachability_gap_max_s: float
    smoothed_rtt_s: float
    rttvar_s: float
    min_rtt_s: float
    latest_rtt_s: float
    congestion_window_bytes: int
    bytes_in_flight: int
    receive_buffered_bytes: int
    send_buffered_bytes: int
    packets_repaired: int
    fec_group_size: float
    fec_parities_sent: int
    drops: dict[str, int] = field(default_factory=dict)


def build_statistics(
    state: SessionState,
    role: Role,
    path: PathManager,
    keepalive: Keepalive,
    tx: Transmitter,
) -> SessionStatistics:
    """Gather a session's components' figures into one ``SessionStatistics``."""
    counters = tx.counters
    rare = counters.rare_counts
    rtt = tx.recovery.rtt
    keys = tx.keys
    receive_buffered, send_buffered = tx.buffered_bytes()
    fec_group_size, fec_parities_sent = tx.fec_state()
    return SessionStatistics(
        state=state,
        role=role,
        peer_address=path.address,
        packets_sent=counters.packets_sent,
        packets_received=counters.packets_received,
        bytes_sent=counters.bytes_sent,
        bytes_received=counters.bytes_received,
        packets_lost=rare.packets_lost,
        frames_retransmitted=rare.frames_retransmitted,
        probes_sent=rare.probes_sent,
        heartbeats_sent=keepalive.heartbeats_sent,
        messages_sent=counters.messages_sent,
        messages_received=counters.messages_received,
        messages_delivered=counters.messages_delivered,
        key_updates_sent=keys.key_updates_sent if keys is not None else 0,
        key_updates_received=keys.key_updates_received if keys is not None else 0,
        path_migrations=path.migrations,
        heartbeat_interval_s=keepalive.heartbeat_interval_s,
        dead_peer_timeout_s=keepalive.dead_peer_timeout_s,
        idle_timeout_s=keepalive.idle_timeout_s,
        reachability_gaps=rare.reachability_gaps,
        reachability_gap_total_s=rare.reachability_gap_total_s,
        reachability_gap_max_s=rare.reachability_gap_max_s,
        smoothed_rtt_s=rtt.smoothed_rtt_s,
        rttvar_s=rtt.rttvar_s,
        min_rtt_s=rtt.min_rtt_s,
        latest_rtt_s=rtt.latest_rtt_s,
        congestion_window_bytes=tx.recovery.congestion_window_bytes,
        bytes_in_flight=tx.recovery.bytes_in_flight,
        receive_buffered_bytes=receive_buffered,
        send_buffered_bytes=send_buffered,
        packets_repaired=rare.packets_repaired,
        fec_group_size=fec_group_size,
        fec_parities_sent=fec_parities_sent,
        drops={reason.value: count for reason, count in rare.drops.items()},
    )
