"""Pure discrete-event simulation of two udpim ``Endpoint``s over netsim's impairment models.

What this module owns: the glue that joins the sans-IO core (``udpim.core``) and netsim's
pure link models (``netsim.models``) without trio, sockets or clocks. A ``Scenario`` names
the two link directions and a workload; ``run_simulation(scenario, seed)`` plays it and
returns a ``SimResult``, or raises ``SimulationFailure`` the moment an invariant breaks.

Rules it keeps:

* Deterministic. Every random choice comes from ``derive_rng(seed, "sim", ...)``: the
  core's ``rng`` (keys, connection IDs, ephemerals), the workload (sizes, times,
  payloads) and each link direction (``"up"`` client -> hub, ``"down"`` hub -> client).
  Time is a float that only this loop advances. Same seed, same run, in any process.
* Invariants are checked as the run goes, so a failure names the instant it happened:
  every message reaches the other side exactly once, in order, byte for byte; every
  message of ours gets exactly one ``MessageDelivered``; a corrupted datagram is a
  counted drop; datagrams respect ``max_datagram_bytes`` and go to the peer's address;
  ``bytes_in_flight`` stays within the congestion window (plus the few packets the
  core may force past it); the network holds a bounded number of bytes; the hub never
  holds more than a few sessions; no session closes unexpectedly; the simulated clock
  stays under the scenario's limit; the core never spins on a timer in the past.

Theory of operation: one heap of ``(time, sequence, action)`` holds datagram arrivals
(``Delivery.at`` from ``LinkDirection.transmit``) and scripted application sends. Each
step takes the earliest of the heap's head and both endpoints' ``get_timer()``, moves the
clock there, runs that one action (or ``handle_timer``), then flushes both endpoints the
way a driver does: drain ``next_event()``, then send ``datagrams_to_send(now)`` through
the link. The run ends as soon as every message was received and acknowledged both ways.

The applications are minimal and realistic: the client connects at time 0 and queues its
messages at once (the core holds them until the handshake completes); if the handshake
times out it connects again and re-queues them (nothing of a never-established session
can have been delivered). The hub sends only on the session that announced
``SessionEstablished`` and holds its messages until then.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import NoReturn

from netsim.models import LinkDirection, LinkProfile, LinkStatistics, derive_rng
from udpim.core.config import EndpointConfig
from udpim.core.crypto import StaticKey
from udpim.core.endpoint import MAX_HALF_OPEN_PER_KEY, Endpoint
from udpim.core.events import (
    Event,
    MessageDelivered,
    MessageReceived,
    PeerReachable,
    PeerUnreachable,
    SessionClosed,
    SessionEstablished,
)
from udpim.core.frames import CloseReason
from udpim.core.session import Session, SessionStatistics
from udpim.core.state import SessionState
from udpim.core.wire import PacketType

__all__ = [
    "CLIENT_ADDRESS",
    "HUB_ADDRESS",
    "Scenario",
    "ScriptedMessage",
    "SimResult",
    "Simulation",
    "SimulationFailure",
    "Workload",
    "established",
    "make_script",
    "run_simulation",
]

Address = tuple[str, int]

CLIENT_ADDRESS: Address = ("127.16.0.2", 5000)
HUB_ADDRESS: Address = ("127.1.0.1", 9000)
TIMESTAMP_BASE_NS = 1_700_000_000 * 10**9
"""Wall clock handed to ``connect`` at simulated time 0 (replay protection only)."""

IN_FLIGHT_SLACK_BYTES = 4 * 1200
"""Packets the core may send past the congestion window: PTO probes (up to two), the
handshake confirmation and a heartbeat (packing.py "Packing order")."""
NETWORK_SLACK_BYTES = 64 * 1024
"""Bytes in the network beyond twice the sender's largest window: ACK-only packets
(not counted in flight), and packets sent before a loss shrank the window."""
FEC_FACTOR = 2
"""FEC parity packets are not counted in flight; they at most double the data bytes."""
MAX_HUB_SESSIONS = 1 + MAX_HALF_OPEN_PER_KEY
"""An established session plus the half-open ones of the initiator's kept attempts."""
MAX_STEPS_PER_INSTANT = 10_000
"""More steps than this without the clock moving means a timer in the past never clears."""
SETTLE_LIMIT_S = 120.0
"""After the last acknowledgement, in-flight bytes must drain (acked or lost) within this."""
MAC2_BYTES = 16

_SIZE_CLASSES = ((0.10, 0, 0), (0.40, 1, 256), (0.30, 257, 4096), (0.15, 4097, 16384))
"""(probability, low, high) of message sizes; the rest are 16 KiB+1 .. max_size_bytes."""


class SimulationFailure(AssertionError):
    """An invariant broke; the message names the scenario, seed and simulated time."""


@dataclass(frozen=True, slots=True)
class Workload:
    """What the applications send.

    Attributes:
        messages_per_side: how many messages each side sends.
        max_size_bytes: largest ordinary message.
        large_message_bytes: if non-zero, the client also sends one message this large.
        span_s: send times are uniform on ``[0, span_s]``.
        send_times_s: explicit send times instead (each side's message ``i`` at
            ``send_times_s[i % len(send_times_s)]``).
    """

    messages_per_side: int = 10
    max_size_bytes: int = 64 * 1024
    large_message_bytes: int = 0
    span_s: float = 3.0
    send_times_s: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class Scenario:
    """One simulated situation; ``run_simulation`` adds the seed."""

    name: str
    up: LinkProfile
    down: LinkProfile
    workload: Workload = Workload()
    time_limit_s: float = 1800.0
    config: EndpointConfig = field(default_factory=EndpointConfig)


@dataclass(frozen=True, slots=True)
class ScriptedMessage:
    """One application send: at ``at`` seconds, ``payload``."""

    at: float
    payload: bytes


@dataclass(slots=True)
class SimResult:
    """What a finished run measured (all times simulated seconds): ``done_s`` when the
    last message was acknowledged, ``end_s`` when nothing was left in flight."""

    scenario: str
    seed: int
    done_s: float = 0.0
    end_s: float = 0.0
    steps: int = 0
    reconnects: int = 0
    established_at_s: float | None = None
    messages: dict[str, int] = field(default_factory=dict)
    payload_bytes: dict[str, int] = field(default_factory=dict)
    datagrams: dict[str, int] = field(default_factory=lambda: {"up": 0, "down": 0})
    corrupted_arrivals: int = 0
    max_network_bytes: dict[str, int] = field(default_factory=lambda: {"up": 0, "down": 0})
    max_hub_sessions: int = 0
    timeline: dict[str, list[tuple[float, Event]]] = field(default_factory=dict)
    final: dict[str, SessionStatistics] = field(default_factory=dict)
    links: dict[str, LinkStatistics] = field(default_factory=dict)

    def events_of(self, side: str, kind: type) -> list[float]:
        """Times of ``side``'s recorded events of class ``kind`` (non-message events)."""
        return [at for at, event in self.timeline[side] if isinstance(event, kind)]


def make_script(seed: int, side: str, workload: Workload) -> list[ScriptedMessage]:
    """The messages ``side`` sends, in send order (deterministic in ``seed``).

    Args:
        seed: the run's seed.
        side: ``"client"`` or ``"hub"``.
        workload: counts, sizes and times.

    Returns:
        The scripted messages sorted by time (ties keep generation order).
    """
    rng = derive_rng(seed, "sim", "workload", side)
    sizes = []
    for _ in range(workload.messages_per_side):
        draw = rng.random()
        low, high = 16385, workload.max_size_bytes
        for probability, class_low, class_high in _SIZE_CLASSES:
            if draw < probability:
                low, high = class_low, class_high
                break
            draw -= probability
        high = min(high, workload.max_size_bytes)
        sizes.append(rng.randint(min(low, high), high))
    if workload.large_message_bytes and side == "client":
        sizes.insert(rng.randrange(len(sizes) + 1), workload.large_message_bytes)
    script = []
    for index, size in enumerate(sizes):
        if workload.send_times_s:
            at = workload.send_times_s[index % len(workload.send_times_s)]
        else:
            at = round(rng.uniform(0.0, workload.span_s), 6)
        script.append(ScriptedMessage(at, rng.randbytes(size)))
    script.sort(key=lambda message: message.at)
    return script


@dataclass(frozen=True, slots=True)
class _Arrival:
    to: str
    data: bytes
    original: bytes
    corrupted: bool


@dataclass(frozen=True, slots=True)
class _Release:
    side: str
    index: int


class _Side:
    """One endpoint and the minimal application driving it."""

    def __init__(
        self, name: str, endpoint: Endpoint, peer: Address, script: list[ScriptedMessage]
    ) -> None:
        self.name = name
        self.endpoint = endpoint
        self.peer_address = peer
        self.script = script
        self.session: Session | None = None  # where the application sends
        self.established = False
        self.waiting: list[int] = []  # released script indices not yet given to a session
        self.numbers: dict[int, int] = {}  # message number on self.session -> script index
        self.delivered: set[int] = set()
        self.received = 0  # messages of the peer's script received so far
        self.timeline: list[tuple[float, Event]] = []
        self.in_flight: dict[bytes, int] = {}  # cid -> bytes_in_flight at the last check
        self.max_cwnd = 0

    def done_sending(self) -> bool:
        return len(self.delivered) == len(self.script)


class Simulation:
    """One run of ``scenario`` with ``seed``; see the module docstring."""

    def __init__(self, scenario: Scenario, seed: int) -> None:
        self.scenario = scenario
        self.seed = seed
        self.now = 0.0
        self.result = SimResult(scenario=scenario.name, seed=seed)
        self._heap: list[tuple[float, int, _Arrival | _Release]] = []
        self._sequence = 0
        self._same_instant = 0
        self._links = {
            "up": LinkDirection(scenario.up, derive_rng(seed, "sim", "up")),
            "down": LinkDirection(scenario.down, derive_rng(seed, "sim", "down")),
        }
        self._network_bytes = {"up": 0, "down": 0}
        workload = scenario.workload
        hub_random = derive_rng(seed, "sim", "core", "hub")
        client_random = derive_rng(seed, "sim", "core", "client")
        self._hub_key = StaticKey.generate(hub_random.randbytes)
        hub = Endpoint(scenario.config, self._hub_key, hub_random.randbytes)
        client_key = StaticKey.generate(client_random.randbytes)
        client = Endpoint(scenario.config, client_key, client_random.randbytes)
        self.sides = {
            "client": _Side("client", client, HUB_ADDRESS, make_script(seed, "client", workload)),
            "hub": _Side("hub", hub, CLIENT_ADDRESS, make_script(seed, "hub", workload)),
        }
        for side in self.sides.values():
            for index, message in enumerate(side.script):
                self._push(message.at, _Release(side.name, index))

    # --- the loop ----------------------------------------------------------------------

    def run(self) -> SimResult:
        """Play the scenario to completion, then until nothing is left in flight.

        Raises:
            SimulationFailure: an invariant broke, or the time or step budget ran out.
        """
        self._connect()
        self._flush()
        limit_s = self.scenario.time_limit_s
        while not self._done():
            self._advance(limit_s, f"time limit {limit_s}s reached")
        self.result.done_s = self.now
        settle_by = self.now + SETTLE_LIMIT_S
        while self._in_flight():
            self._advance(settle_by, f"bytes in flight not drained {SETTLE_LIMIT_S}s after")
        self._finish()
        return self.result

    def _advance(self, limit_s: float, overdue: str) -> None:
        """Move the clock to the next action or deadline, run it and flush."""
        at = self._next_time()
        if at is None:
            self._fail("deadlock: nothing scheduled, work outstanding")
        if at > limit_s:
            self._fail(overdue)
        self._same_instant = self._same_instant + 1 if at <= self.now else 0
        if self._same_instant > MAX_STEPS_PER_INSTANT:
            self._fail("timer livelock: the clock stopped moving")
        self.now = max(self.now, at)
        self._step()
        self._flush()
        self.result.steps += 1

    def _in_flight(self) -> bool:
        return any(
            side.session is not None and side.session.statistics().bytes_in_flight > 0
            for side in self.sides.values()
        )

    def _next_time(self) -> float | None:
        candidates = [self._heap[0][0]] if self._heap else []
        for side in self.sides.values():
            deadline = side.endpoint.get_timer()
            if deadline is not None:
                candidates.append(deadline)
        return min(candidates) if candidates else None

    def _step(self) -> None:
        if self._heap and self._heap[0][0] <= self.now:
            _, _, action = heapq.heappop(self._heap)
            if isinstance(action, _Release):
                side = self.sides[action.side]
                side.waiting.append(action.index)
                self._hand_over(side)
            else:
                self._arrive(action)
            return
        for side in self.sides.values():
            deadline = side.endpoint.get_timer()
            if deadline is not None and deadline <= self.now:
                side.endpoint.handle_timer(self.now)

    def _done(self) -> bool:
        client, hub = self.sides["client"], self.sides["hub"]
        return (
            client.done_sending()
            and hub.done_sending()
            and client.received == len(hub.script)
            and hub.received == len(client.script)
        )

    # --- applications ------------------------------------------------------------------

    def _connect(self) -> None:
        client = self.sides["client"]
        timestamp_ns = TIMESTAMP_BASE_NS + round(self.now * 1e9)
        client.session = client.endpoint.connect(
            self._hub_key.public, HUB_ADDRESS, self.now, timestamp_ns
        )
        client.numbers = {}
        self._hand_over(client)

    def _hand_over(self, side: _Side) -> None:
        """Give released messages to the session, once the application may send."""
        if side.session is None or (side.name == "hub" and not side.established):
            return
        for index in side.waiting:
            number = side.endpoint.send_message(side.session, side.script[index].payload, self.now)
            if number in side.numbers:
                self._fail(f"{side.name}: message number {number} returned twice")
            side.numbers[number] = index
        side.waiting.clear()

    def _on_event(self, side: _Side, session: Session, event: Event) -> None:
        if isinstance(event, MessageReceived):
            self._on_received(side, session, event)
            return
        if isinstance(event, MessageDelivered):
            index = side.numbers.get(event.message_number)
            if session is not side.session or index is None:
                self._fail(f"{side.name}: MessageDelivered({event.message_number}) unknown")
            if index in side.delivered:
                self._fail(f"{side.name}: MessageDelivered({event.message_number}) twice")
            side.delivered.add(index)
            return
        side.timeline.append((self.now, event))
        if isinstance(event, SessionEstablished):
            self._on_established(side, session)
        elif isinstance(event, SessionClosed):
            self._on_closed(side, session, event)
        elif not isinstance(event, PeerUnreachable | PeerReachable):
            self._fail(f"{side.name}: unexpected event {event!r}")

    def _on_received(self, side: _Side, session: Session, event: MessageReceived) -> None:
        peer = self.sides["hub" if side.name == "client" else "client"]
        if session is not side.session:
            self._fail(f"{side.name}: message {event.message_number} on a stray session")
        index = side.received
        if index >= len(peer.script):
            self._fail(f"{side.name}: extra message {event.message_number} (all received)")
        expected_number = next((n for n, i in peer.numbers.items() if i == index), None)
        if expected_number is None:
            self._fail(
                f"{side.name}: got message {event.message_number}, but the {peer.name} has "
                f"not sent its message #{index} yet (duplicate or invented)"
            )
        if event.message_number != expected_number:
            self._fail(
                f"{side.name}: got message {event.message_number}, expected {expected_number}"
            )
        if event.payload != peer.script[index].payload:
            self._fail(f"{side.name}: message {event.message_number} payload differs")
        side.received += 1

    def _on_established(self, side: _Side, session: Session) -> None:
        if side.established:
            self._fail(f"{side.name}: second SessionEstablished")
        side.established = True
        if side.name == "client":
            if session is not side.session:
                self._fail("client: SessionEstablished on a stray session")
            self.result.established_at_s = self.now
            return
        side.session = session
        self._hand_over(side)

    def _on_closed(self, side: _Side, session: Session, event: SessionClosed) -> None:
        retry = (
            side.name == "client"
            and not side.established
            and session is side.session
            and event.reason is CloseReason.HANDSHAKE_TIMEOUT
        )
        if not retry:
            self._fail(f"{side.name}: session closed: {event!r}")
        side.waiting = sorted(set(side.waiting) | set(side.numbers.values()))
        self.result.reconnects += 1
        self._connect()

    # --- the network -------------------------------------------------------------------

    def _push(self, at: float, action: _Arrival | _Release) -> None:
        self._sequence += 1
        heapq.heappush(self._heap, (at, self._sequence, action))

    def _flush(self) -> None:
        for name, side in self.sides.items():
            endpoint = side.endpoint
            while (item := endpoint.next_event()) is not None:
                self._on_event(side, item[0], item[1])
            direction = "up" if name == "client" else "down"
            to = "hub" if name == "client" else "client"
            limit = self.scenario.config.session.max_datagram_bytes
            for data, address in endpoint.datagrams_to_send(self.now):
                if address != side.peer_address:
                    self._fail(f"{name}: datagram to {address}, expected {side.peer_address}")
                if len(data) > limit:
                    self._fail(f"{name}: {len(data)}-byte datagram exceeds {limit}")
                self._send(direction, to, data)
            self._check_bounds(side)

    def _send(self, direction: str, to: str, data: bytes) -> None:
        self.result.datagrams[direction] += 1
        for delivery in self._links[direction].transmit(data, self.now).deliveries:
            self._network_bytes[direction] += len(delivery.data)
            self._push(delivery.at, _Arrival(to, delivery.data, data, delivery.corrupted))
        held = self._network_bytes[direction]
        maxima = self.result.max_network_bytes
        maxima[direction] = max(maxima[direction], held)
        sender = self.sides["client" if direction == "up" else "hub"]
        # FEC parity is outside the window: at most one parity per data packet (copies at
        # high measured loss), so data and parity together stay within twice the data.
        data = 2 * (sender.max_cwnd + IN_FLIGHT_SLACK_BYTES)
        bound = FEC_FACTOR * data + NETWORK_SLACK_BYTES
        if held > bound:
            self._fail(f"{direction}: {held} bytes in the network exceed {bound}")

    def _arrive(self, arrival: _Arrival) -> None:
        direction = "up" if arrival.to == "hub" else "down"
        self._network_bytes[direction] -= len(arrival.data)
        side = self.sides[arrival.to]
        source = side.peer_address
        if not arrival.corrupted:
            side.endpoint.receive_datagram(arrival.data, source, self.now)
            return
        self.result.corrupted_arrivals += 1
        before = _drops_total(side.endpoint)
        side.endpoint.receive_datagram(arrival.data, source, self.now)
        if _may_pass_corrupted(arrival.original, arrival.data):
            return
        if _drops_total(side.endpoint) != before + 1:
            kind = PacketType((arrival.original[0] >> 4) & 3).name
            self._fail(f"{arrival.to}: corrupted {kind} datagram was not one counted drop")

    def _check_bounds(self, side: _Side) -> None:
        sessions = side.endpoint.sessions()
        if side.name == "hub":
            self.result.max_hub_sessions = max(self.result.max_hub_sessions, len(sessions))
            if len(sessions) > MAX_HUB_SESSIONS:
                self._fail(f"hub holds {len(sessions)} sessions")
        for session in sessions:
            stats = session.statistics()
            cwnd = stats.congestion_window_bytes
            side.max_cwnd = max(side.max_cwnd, cwnd)
            previous = side.in_flight.get(session.local_cid, 0)
            side.in_flight[session.local_cid] = stats.bytes_in_flight
            limit = max(cwnd, previous) + IN_FLIGHT_SLACK_BYTES
            if stats.bytes_in_flight > previous and stats.bytes_in_flight > limit:
                self._fail(f"{side.name}: {stats.bytes_in_flight} bytes in flight, cwnd {cwnd}")

    # --- reporting ---------------------------------------------------------------------

    def _finish(self) -> None:
        result = self.result
        result.end_s = self.now
        for name, side in self.sides.items():
            result.messages[name] = len(side.script)
            result.payload_bytes[name] = sum(len(message.payload) for message in side.script)
            result.timeline[name] = side.timeline
            if side.session is not None:
                result.final[name] = side.session.statistics()
        result.links = {name: link.statistics() for name, link in self._links.items()}

    def _fail(self, what: str) -> NoReturn:
        parts = []
        for side in self.sides.values():
            peer = self.sides["hub" if side.name == "client" else "client"]
            unacked = sorted(n for n, i in side.numbers.items() if i not in side.delivered)
            parts.append(
                f"{side.name}: {len(side.delivered)}/{len(side.script)} sent+acked "
                f"(unacked numbers {unacked[:5]}), {side.received}/{len(peer.script)} received"
            )
        raise SimulationFailure(
            f"[{self.scenario.name} seed={self.seed} t={self.now:.6f}s] {what} ({'; '.join(parts)})"
        )


def _drops_total(endpoint: Endpoint) -> int:
    total = sum(endpoint.statistics().drops.values())
    for session in endpoint.sessions():
        total += sum(session.statistics().drops.values())
    return total


def _may_pass_corrupted(original: bytes, corrupted: bytes) -> bool:
    """A flipped bit in a handshake packet's mac2 is invisible unless a cookie is demanded
    (mac2 is all zeros without one, as in WireGuard); every other flip must be a drop."""
    kind = (original[0] >> 4) & 3
    if kind not in (PacketType.INITIATION, PacketType.RESPONSE):
        return False
    flipped = next(i for i, (a, b) in enumerate(zip(original, corrupted, strict=True)) if a != b)
    return flipped >= len(original) - MAC2_BYTES


@dataclass
class Totals:
    """What every ``run_simulation`` in this process covered (printed by the conftest)."""

    runs: int = 0
    simulated_s: float = 0.0
    datagrams: int = 0


TOTALS = Totals()


def run_simulation(scenario: Scenario, seed: int) -> SimResult:
    """Run ``scenario`` with ``seed`` to completion (see ``Simulation.run``)."""
    result = Simulation(scenario, seed).run()
    TOTALS.runs += 1
    TOTALS.simulated_s += result.end_s
    TOTALS.datagrams += sum(result.datagrams.values())
    return result


def established(result: SimResult, side: str) -> bool:
    """Whether ``side``'s application session ended the run established."""
    stats = result.final.get(side)
    return stats is not None and stats.state is SessionState.ESTABLISHED
