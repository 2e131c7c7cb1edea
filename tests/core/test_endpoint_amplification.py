"""Anti-amplification at the Endpoint: before an address is validated, the responder never
sends it more bytes than it received from it.

A property test drives a responder Endpoint with random sequences of valid initiations
(with and without cookies), replays (also from spoofed addresses), bit-flipped
initiations, forged DATA for live connection IDs, garbage, closes of unconfirmed sessions
(their CLOSE must fit the budget) and timer runs, in every cookie mode, and checks the
byte ledger per address after every step. No initiator ever sends DATA here, so no
address is ever validated.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.core.pairs import TEST_CONFIG, seeded_rng
from udpim.core.config import CookieMode, EndpointConfig
from udpim.core.crypto import StaticKey
from udpim.core.endpoint import Endpoint
from udpim.core.errors import BadPacket
from udpim.core.handshake import InitiatorHandshake
from udpim.core.state import SessionState
from udpim.core.wire import PacketType

Address = tuple[str, int]
ADDRESSES: list[Address] = [("127.16.0.2", 40000), ("127.16.0.3", 40000), ("127.16.0.3", 40001)]
RESPONDER = StaticKey.generate(seeded_rng(5000))
INITIATORS = [StaticKey.generate(seeded_rng(5001 + n)) for n in range(3)]
OPS = ["valid", "with-cookie", "replay", "flip", "garbage", "forged-data", "close", "time"]


@dataclass
class Ledger:
    """Bytes each way per address, plus what the initiators remember."""

    endpoint: Endpoint
    now: float = 0.0
    timestamp_ns: int = 1
    received: dict[Address, int] = field(default_factory=lambda: defaultdict(int))
    sent: dict[Address, int] = field(default_factory=lambda: defaultdict(int))
    initiations: list[bytes] = field(default_factory=list)
    attempts: list[tuple[InitiatorHandshake, Address]] = field(default_factory=list)
    cookies: dict[Address, bytes] = field(default_factory=dict)
    replies: dict[PacketType, int] = field(default_factory=lambda: defaultdict(int))

    def feed(self, data: bytes, source: Address) -> None:
        self.received[source] += len(data)
        self.endpoint.receive_datagram(data, source, self.now)
        self.flush()

    def flush(self) -> None:
        while self.endpoint.next_event() is not None:
            pass
        for data, destination in self.endpoint.datagrams_to_send(self.now):
            self.sent[destination] += len(data)
            kind = PacketType(data[0] >> 4 & 3)
            self.replies[kind] += 1
            if kind is PacketType.COOKIE_REPLY:
                self.learn_cookie(data, destination)
        for address, sent in self.sent.items():
            assert sent <= self.received[address], (address, sent, self.received[address])

    def learn_cookie(self, reply: bytes, destination: Address) -> None:
        for attempt, address in self.attempts:
            if address == destination:
                try:
                    self.cookies[address] = attempt.consume_cookie_reply_untrusted(reply)
                except BadPacket:
                    continue
                return

    def initiate(self, key: StaticKey, source: Address, *, cookie: bool) -> None:
        self.timestamp_ns += 1
        cid = bytes([1, 2, 3, len(self.attempts) & 0xFF])
        rng = seeded_rng(self.timestamp_ns)
        attempt = InitiatorHandshake(key, RESPONDER.public, cid, rng, self.timestamp_ns)
        self.attempts.append((attempt, source))
        data = attempt.initiation(self.cookies.get(source) if cookie else None)
        self.initiations.append(data)
        self.feed(data, source)


def run_step(ledger: Ledger, op: str, a: int, b: int, blob: bytes, position: int) -> None:
    source = ADDRESSES[a]
    if op in ("valid", "with-cookie"):
        ledger.initiate(INITIATORS[b], source, cookie=op == "with-cookie")
    elif op == "replay" and ledger.initiations:
        ledger.feed(ledger.initiations[position % len(ledger.initiations)], source)
    elif op == "flip" and ledger.initiations:
        data = bytearray(ledger.initiations[position % len(ledger.initiations)])
        data[position % len(data)] ^= 1 << (b % 8)
        ledger.feed(bytes(data), source)
    elif op == "forged-data":
        sessions = ledger.endpoint.sessions()
        cid = sessions[position % len(sessions)].local_cid if sessions else b"\0\0\0\0"
        ledger.feed(bytes([0x70]) + cid + bytes([position & 0xFF]) + blob + bytes(17), source)
    elif op == "close":
        live = [s for s in ledger.endpoint.sessions() if s.state is SessionState.CONFIRMING]
        if live:  # a CLOSE to an unvalidated address, with a long text
            text = blob.decode("latin-1") * 2
            ledger.endpoint.close_session(live[position % len(live)], ledger.now, text=text)
            ledger.flush()
    elif op == "time":
        ledger.now += [0.25, 1.0, 20.0, 200.0][b % 4]
        deadline = ledger.endpoint.get_timer()
        if deadline is not None and deadline <= ledger.now:
            ledger.endpoint.handle_timer(ledger.now)
        ledger.flush()
    else:
        ledger.feed(blob, source)


MODES: dict[str, Callable[[], EndpointConfig]] = {
    "never": lambda: EndpointConfig(session=TEST_CONFIG, cookie_mode=CookieMode.NEVER),
    "always": lambda: EndpointConfig(session=TEST_CONFIG, cookie_mode=CookieMode.ALWAYS),
    "under-load": lambda: EndpointConfig(
        session=TEST_CONFIG, cookie_mode=CookieMode.UNDER_LOAD, load_threshold_handshakes=2
    ),
}

steps = st.lists(
    st.tuples(
        st.sampled_from(OPS),
        st.integers(0, 2),
        st.integers(0, 2),
        st.binary(max_size=160),
        st.integers(0, 10_000),
    ),
    max_size=24,
)


def new_ledger(mode: str) -> Ledger:
    return Ledger(Endpoint(MODES[mode](), RESPONDER, seeded_rng(5100)))


@settings(max_examples=200)
@given(mode=st.sampled_from(sorted(MODES)), script=steps)
def test_responder_never_sends_an_address_more_than_it_received(
    mode: str, script: list[tuple[str, int, int, bytes, int]]
) -> None:
    ledger = new_ledger(mode)
    for step in script:
        run_step(ledger, *step)


def test_the_property_exercises_responses_and_cookie_replies() -> None:
    # A fixed script through the same machinery reaches both kinds of answer and the
    # half-open sessions' timeouts, so the property above is not vacuous.
    ledger = new_ledger("under-load")
    script = [
        ("valid", 0, 0, b"", 0),
        ("valid", 1, 1, b"", 0),
        ("valid", 2, 2, b"", 0),  # third in one second: over the threshold, cookie
        ("with-cookie", 2, 2, b"", 0),
        ("replay", 1, 0, b"", 0),
        ("flip", 0, 3, b"", 77),
        ("forged-data", 0, 0, b"x" * 40, 1),
        ("garbage", 1, 0, b"\x40" * 141, 0),
        ("close", 0, 0, b"\xe9" * 150, 0),
        ("time", 0, 3, b"", 0),  # past the idle timeout
    ]
    for step in script:
        run_step(ledger, *step)
    assert ledger.replies[PacketType.RESPONSE] == 3
    assert ledger.replies[PacketType.DATA] == 1  # the CLOSE, without its text
    assert ledger.replies[PacketType.COOKIE_REPLY] >= 2
    assert len(ledger.endpoint) == 0  # the unconfirmed sessions timed out quietly
    drops = ledger.endpoint.statistics().drops
    assert drops["cookie-required"] >= 2
    assert drops["bad-mac"] >= 2
