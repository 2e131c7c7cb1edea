"""A tiny pure "wire" between udpim Endpoints, for deterministic session-layer tests.

No trio, no netsim: time is a float the wire advances itself, jumping from one event to
the next (a datagram arriving, or an endpoint's ``get_timer()``), exactly as a driver
would. Every datagram handed to the wire passes through an optional ``hook`` that may
drop it (return ``[]``), duplicate it, delay it (a later ``arrive_at`` reorders it) or
rewrite its source address (a NAT rebinding). Hooks see every datagram once, in send
order, with a run-wide ``index``; ``Wire.log`` keeps them all (the capture used by the
hostile-input tests).

The wire also checks two driver-visible invariants at every step, so every test that
uses it checks them for free:

* ``Endpoint.get_timer()`` is the minimum of its sessions' ``get_timer()``;
* after ``handle_timer(now)`` and a flush, no deadline is still ``<= now`` (a deadline
  that nothing can advance would make a real driver spin).

``Forger`` plays the initiator with the public handshake and ``SessionKeys`` APIs and
seals arbitrary frames: authenticated traffic that no honest ``Session`` would send.

Times in the tests are binary fractions (delays of 1/32 s, RTT 1/16 s), so deadlines
compare exactly.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from udpim.core.config import EndpointConfig, SessionConfig
from udpim.core.crypto import StaticKey
from udpim.core.endpoint import Endpoint
from udpim.core.errors import BadPacket
from udpim.core.events import Event, SessionEstablished
from udpim.core.frames import Frame
from udpim.core.handshake import InitiatorHandshake
from udpim.core.protection import SessionKeys
from udpim.core.session import Session
from udpim.core.state import SessionState
from udpim.core.wire import (
    PacketType,
    decode_data_header_untrusted,
    decode_frames_untrusted,
    encode_frames,
    peek_packet_type_untrusted,
)

Address = tuple[str, int]
Rng = Callable[[int], bytes]
E = TypeVar("E")

INITIATOR_ADDRESS: Address = ("127.16.0.2", 40000)
RESPONDER_ADDRESS: Address = ("127.1.0.1", 7000)
REBOUND_ADDRESS: Address = ("127.1.0.9", 51000)  # the initiator's NAT mapping after rebinding
TIMESTAMP_NS = 1_700_000_000 * 10**9
ONE_WAY_S = 1 / 32

# Binary-fraction timers: every sum below is exact in floating point.
TEST_CONFIG = SessionConfig(
    initial_rtt_s=0.5,
    max_ack_delay_s=1 / 16,
    timer_granularity_s=1 / 1024,
    handshake_retry_s=0.5,
    handshake_retry_max_s=4.0,
    handshake_timeout_s=16.0,
    heartbeat_interval_s=8.0,
    dead_peer_timeout_s=32.0,
    idle_timeout_s=128.0,
    rekey_after_s=64.0,
    path_validation_timeout_s=2.0,
)


def seeded_rng(seed: int) -> Rng:
    """Deterministic randomness for keys, connection IDs and ephemerals."""
    return random.Random(seed).randbytes


def packet_type(data: bytes) -> PacketType | None:
    """The datagram's packet type, or None if its first byte is not ours."""
    try:
        return peek_packet_type_untrusted(data)
    except BadPacket:
        return None


def truncated_packet_number(data: bytes) -> int:
    """The (truncated) packet number in a DATA datagram's cleartext header."""
    return decode_data_header_untrusted(data).truncated_pn


@dataclass(frozen=True, slots=True)
class Datagram:
    """One datagram on the wire."""

    data: bytes
    source: Address
    destination: Address
    sent_at: float
    arrive_at: float
    index: int

    @property
    def kind(self) -> PacketType | None:
        return packet_type(self.data)


Hook = Callable[[Datagram], Sequence[Datagram]]


class Host:
    """One Endpoint at one address, and what its application saw.

    ``draining`` False models an application that stops calling ``next_event`` (a slow
    reader): events and received messages stay inside the endpoint.
    """

    def __init__(self, name: str, endpoint: Endpoint, address: Address) -> None:
        self.name = name
        self.endpoint = endpoint
        self.address = address
        self.draining = True
        self.events: list[tuple[Session, Event]] = []
        self.received: list[Datagram] = []

    def drain(self) -> None:
        while (item := self.endpoint.next_event()) is not None:
            self.events.append(item)

    def of(self, kind: type[E]) -> list[E]:
        """Every drained event of one type, in order."""
        return [event for _, event in self.events if isinstance(event, kind)]

    def event_types(self) -> list[str]:
        return [type(event).__name__ for _, event in self.events]

    def drops(self) -> dict[str, int]:
        """Endpoint drops plus every live session's drops, merged."""
        total = dict(self.endpoint.statistics().drops)
        for session in self.endpoint.sessions():
            for reason, count in session.statistics().drops.items():
                total[reason] = total.get(reason, 0) + count
        return total


class WireStalled(AssertionError):
    """A deadline stayed in the past after the endpoint handled it (a driver would spin)."""


class Wire:
    """Moves datagrams between hosts with a fixed one-way delay and explicit time."""

    def __init__(self, *hosts: Host, delay_s: float = ONE_WAY_S) -> None:
        self.now = 0.0
        self.delay_s = delay_s
        self.hook: Hook | None = None
        self.hosts = list(hosts)
        self.routes: dict[Address, Host] = {host.address: host for host in hosts}
        self.log: list[Datagram] = []
        self.undeliverable: list[Datagram] = []
        self._queue: list[tuple[float, int, Datagram]] = []
        self._sequence = 0

    # --- sending ---------------------------------------------------------------------

    def route(self, address: Address, host: Host) -> None:
        """Deliver datagrams for ``address`` to ``host`` too (a NAT's new mapping)."""
        self.routes[address] = host

    def inject(self, data: bytes, source: Address, destination: Address) -> None:
        """Put a datagram on the wire as if ``source`` had sent it now (not hooked)."""
        self._enqueue(Datagram(data, source, destination, self.now, self.now, -1))

    def flush(self) -> None:
        """What a driver does after any input: drain events, then send."""
        for host in self.hosts:
            if host.draining:
                host.drain()
            for data, destination in host.endpoint.datagrams_to_send(self.now):
                self._send(host, data, destination)

    def _send(self, host: Host, data: bytes, destination: Address) -> None:
        datagram = Datagram(
            data, host.address, destination, self.now, self.now + self.delay_s, len(self.log)
        )
        self.log.append(datagram)
        for copy in self.hook(datagram) if self.hook is not None else (datagram,):
            self._enqueue(copy)

    def _enqueue(self, datagram: Datagram) -> None:
        self._sequence += 1
        heapq.heappush(self._queue, (datagram.arrive_at, self._sequence, datagram))

    # --- time ------------------------------------------------------------------------

    def next_time(self) -> float | None:
        """The next moment anything happens: an arrival or an endpoint deadline."""
        candidates = [host.endpoint.get_timer() for host in self.hosts]
        if self._queue:
            candidates.append(self._queue[0][0])
        present = [t for t in candidates if t is not None]
        return min(present) if present else None

    def step(self) -> bool:
        """Advance to the next event and process everything due then; False if idle."""
        when = self.next_time()
        if when is None:
            return False
        self.now = max(self.now, when)
        self._process()
        return True

    def run(self, until: float, *, max_steps: int = 200_000) -> None:
        """Process every event up to ``until`` inclusive, then set the clock to it."""
        self.flush()
        for _ in range(max_steps):
            when = self.next_time()
            if when is None or when > until:
                break
            self.now = max(self.now, when)
            self._process()
        else:
            raise AssertionError(f"no quiescence before {until} after {max_steps} steps")
        self.now = max(self.now, until)

    def run_until(self, condition: Callable[[], bool], limit: float) -> float:
        """Step until ``condition()`` holds; returns the time. Fails past ``limit``."""
        self.flush()
        while not condition():
            when = self.next_time()
            if when is None or when > limit:
                raise AssertionError(f"condition not met by {limit} (now {self.now})")
            self.now = max(self.now, when)
            self._process()
        return self.now

    def _process(self) -> None:
        now = self.now
        while self._queue and self._queue[0][0] <= now:
            _, _, datagram = heapq.heappop(self._queue)
            host = self.routes.get(datagram.destination)
            if host is None:
                self.undeliverable.append(datagram)
                continue
            host.received.append(datagram)
            host.endpoint.receive_datagram(datagram.data, datagram.source, now)
            self.flush()
        for host in self.hosts:
            deadline = host.endpoint.get_timer()
            if deadline is not None and deadline <= now:
                host.endpoint.handle_timer(now)
        self.flush()
        self.check_timers()

    def check_timers(self) -> None:
        """The invariants in the module docstring."""
        for host in self.hosts:
            endpoint = host.endpoint
            timers = [s.get_timer() for s in endpoint.sessions()]
            present = [t for t in timers if t is not None]
            expected = min(present) if present else None
            actual = endpoint.get_timer()
            assert actual == expected, f"{host.name}: endpoint timer {actual} != {expected}"
            if actual is not None and actual <= self.now:
                raise WireStalled(f"{host.name}: deadline {actual} <= now {self.now}")


# --- hooks --------------------------------------------------------------------------


def drop_where(predicate: Callable[[Datagram], bool]) -> Hook:
    """A hook that drops the datagrams ``predicate`` selects."""

    def hook(datagram: Datagram) -> Sequence[Datagram]:
        return () if predicate(datagram) else (datagram,)

    return hook


def delayed(datagram: Datagram, extra_s: float) -> Datagram:
    return replace(datagram, arrive_at=datagram.arrive_at + extra_s)


# --- set-ups ------------------------------------------------------------------------


@dataclass
class Pair:
    """An initiator host and a responder host on one wire."""

    initiator: Host
    responder: Host
    wire: Wire
    initiator_key: StaticKey
    responder_key: StaticKey

    @property
    def client(self) -> Session:
        """The initiator's only session."""
        (session,) = self.initiator.endpoint.sessions()
        return session

    @property
    def server(self) -> Session:
        """The responder's only session."""
        (session,) = self.responder.endpoint.sessions()
        return session

    def connect(self) -> Session:
        """Start the initiator's session at ``wire.now`` (flushed by the next run)."""
        return self.initiator.endpoint.connect(
            self.responder_key.public, RESPONDER_ADDRESS, self.wire.now, TIMESTAMP_NS
        )

    def establish(self) -> tuple[Session, Session]:
        """Connect and run until both sides are established; returns (client, server)."""
        client = self.connect()
        self.wire.run_until(
            lambda: (
                len(self.responder.of(SessionEstablished)) == 1
                and client.state is SessionState.ESTABLISHED
            ),
            10.0,
        )
        return client, self.server


def make_pair(
    config: SessionConfig = TEST_CONFIG,
    *,
    endpoint_config: EndpointConfig | None = None,
    accept_peer: Callable[[bytes], bool] | None = None,
    seed: int = 1,
    delay_s: float = ONE_WAY_S,
) -> Pair:
    """Two endpoints with deterministic keys and randomness, not yet connected."""
    endpoint_config = endpoint_config or EndpointConfig(session=config)
    initiator_key = StaticKey.generate(seeded_rng(seed * 1000 + 1))
    responder_key = StaticKey.generate(seeded_rng(seed * 1000 + 2))
    initiator = Host(
        "initiator",
        Endpoint(
            replace(endpoint_config, session=config), initiator_key, seeded_rng(seed * 1000 + 3)
        ),
        INITIATOR_ADDRESS,
    )
    responder = Host(
        "responder",
        Endpoint(
            endpoint_config, responder_key, seeded_rng(seed * 1000 + 4), accept_peer=accept_peer
        ),
        RESPONDER_ADDRESS,
    )
    wire = Wire(initiator, responder, delay_s=delay_s)
    return Pair(initiator, responder, wire, initiator_key, responder_key)


def established_pair(config: SessionConfig = TEST_CONFIG, **kwargs: object) -> Pair:
    """A pair whose session is established on both sides, events drained."""
    pair = make_pair(config, **kwargs)  # type: ignore[arg-type]
    pair.establish()
    return pair


# --- a peer that says what honest sessions never say ---------------------------------


class Forger:
    """The initiator side of a real handshake, with its transport keys in the test's hands.

    Args:
        responder_public: the responder endpoint's static public key.
        seed: randomness for the forger's identity and ephemeral.
        config: the ``SessionConfig`` its ``SessionKeys`` use.
    """

    CID = b"frgr"

    def __init__(
        self, responder_public: bytes, seed: int = 77, config: SessionConfig = TEST_CONFIG
    ) -> None:
        rng = seeded_rng(seed)
        self.static_key = StaticKey.generate(rng)
        self._config = config
        self._handshake = InitiatorHandshake(
            self.static_key, responder_public, self.CID, rng, TIMESTAMP_NS
        )
        self._keys: SessionKeys | None = None
        self.peer_cid = b""
        self.next_packet_number = 0
        self.largest_received: int | None = None

    def initiation(self) -> bytes:
        return self._handshake.initiation(None)

    def complete(self, response: bytes, now: float) -> None:
        """Consume the responder's RESPONSE and install the transport keys."""
        result = self._handshake.consume_response_untrusted(response)
        self._keys = SessionKeys(result.send_secret, result.recv_secret, self._config, now)
        self.peer_cid = result.peer_cid

    def seal(self, frames: Sequence[Frame], now: float = 0.0) -> bytes:
        """A DATA datagram carrying ``frames``, authenticated under the real keys."""
        return self.seal_plaintext(encode_frames(frames), now)

    def seal_plaintext(self, plaintext: bytes, now: float = 0.0) -> bytes:
        """A DATA datagram carrying any plaintext (even undecodable frames)."""
        assert self._keys is not None, "complete() first"
        number = self.next_packet_number
        self.next_packet_number += 1
        return self._keys.seal(self.peer_cid, number, None, plaintext, now)

    def open(self, data: bytes, now: float = 0.0) -> list[Frame]:
        """Decrypt one of the responder's DATA datagrams and decode its frames."""
        assert self._keys is not None, "complete() first"
        number, plaintext = self._keys.open_untrusted(data, self.largest_received, now, 1.0)
        if self.largest_received is None or number > self.largest_received:
            self.largest_received = number
        return decode_frames_untrusted(plaintext)


def forged_session(pair: Pair, seed: int = 77) -> tuple[Forger, Session]:
    """Handshake a ``Forger`` with the pair's responder; returns it and the responder's
    session (CONFIRMING: the forger has not sent DATA yet)."""
    forger = Forger(pair.responder_key.public, seed)
    responder = pair.responder.endpoint
    responder.receive_datagram(forger.initiation(), INITIATOR_ADDRESS, pair.wire.now)
    out = responder.datagrams_to_send(pair.wire.now)
    (response,) = [data for data, _ in out if packet_type(data) is PacketType.RESPONSE]
    forger.complete(response, pair.wire.now)
    session = next(s for s in responder.sessions() if s.peer_public == forger.static_key.public)
    return forger, session
