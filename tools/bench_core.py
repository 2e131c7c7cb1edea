"""Benchmark of the sans-IO core's CPU cost per datagram (a measurement, never a test).

Measures, in one process and one run, with ``time.perf_counter``:

(a) ``seal``: encode one DATA packet carrying an ACK frame and one 200-byte whole-message
    DATA frame (``encode_frames`` + ``encode_data_header``) and seal it
    (``PacketSealer.seal``), as the sending side does for every datagram;
(b) ``open``: decode the header, reconstruct the packet number, authenticate and decrypt
    (``PacketOpener.open_untrusted``) and decode the frames of that same packet;
(c) ``session``: two ``Endpoint``s (a client and a hub, after their handshake) in a pure
    loop exchanging ``--messages`` 200-byte messages, half each way, every datagram
    delivered at once and in order under a virtual clock. The time counts both sides'
    work (sealing, opening, acks, loss recovery, timers, events) and this loop's own small
    share (about 4 % under cProfile); it is reported per datagram and as messages per
    second;
(d) the codec alone: (a) and (b) without the AEAD (``encode`` / ``decode``);
(e) the baseline: raw ``ChaCha20Poly1305`` encrypt and decrypt of a plaintext of the
    same size with the same 6-byte associated data (``aead_seal`` / ``aead_open``).

Each figure is the median over ``--repetitions`` rounds, with the spread (min..max). All
cases run interleaved in every round, and each ratio is the median of per-round ratios
to the baseline of the same round (encrypt for (a) and the encoder, decrypt for (b) and
the decoder, encrypt + decrypt for (c), whose every datagram is sealed once and opened
once), so ratios stay meaningful on a noisy machine.

The address strings below are labels inside the pure loop; nothing is bound or sent.

Run: ``.venv/bin/python tools/bench_core.py [--json]`` (about 10 s).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from udpim.core.config import CookieMode, EndpointConfig
from udpim.core.crypto import PacketOpener, PacketSealer, StaticKey
from udpim.core.endpoint import Endpoint
from udpim.core.events import MessageReceived, SessionEstablished
from udpim.core.frames import AckFrame, DataFrame, Frame
from udpim.core.session import Session
from udpim.core.wire import (
    decode_data_header_untrusted,
    decode_frames_untrusted,
    decode_packet_number,
    encode_data_header,
    encode_frames,
)

PAYLOAD_BYTES = 200
DCID = b"\x0a\x0b\x0c\x0d"
SECRET = bytes(range(32))
CLIENT_ADDRESS = ("127.0.0.1", 40001)
HUB_ADDRESS = ("127.0.0.1", 40002)
STEP_S = 0.001  # virtual time between two message pairs in the session loop
SEED = 7

# The baseline every ratio is taken against, per case.
BASELINES = {
    "encode": "aead_seal",
    "seal": "aead_seal",
    "decode": "aead_open",
    "open": "aead_open",
    "session": "aead_seal+open",
}
CASES = ("aead_seal", "aead_open", "encode", "decode", "seal", "open", "session")


@dataclass(frozen=True, slots=True)
class Summary:
    """One case over all rounds: microseconds per datagram and ratio to its baseline."""

    case: str
    median_us: float
    min_us: float
    max_us: float
    ratio: float | None
    ratio_min: float | None
    ratio_max: float | None


def sample_frames(number: int) -> list[Frame]:
    """The frames of the benchmark packet: an ACK and one whole 200-byte message."""
    ack = AckFrame(((number - 40, number - 2),), 800)
    data = DataFrame(number, number * PAYLOAD_BYTES, PAYLOAD_BYTES, 0, bytes(PAYLOAD_BYTES))
    return [ack, data]


def per_op_us(run: Callable[[int], None], count: int) -> float:
    """Microseconds per operation of ``run(count)``."""
    started = time.perf_counter()
    run(count)
    return (time.perf_counter() - started) * 1e6 / count


class PacketCases:
    """Cases (a), (b), (d) and (e): one packet through the codec and the AEAD."""

    def __init__(self) -> None:
        self.frames = sample_frames(1000)
        self.plaintext = encode_frames(self.frames)
        self.header = encode_data_header(DCID, 0, 1000, 990)
        self.aead = ChaCha20Poly1305(bytes(32))
        self.sealer = PacketSealer(SECRET)
        self.opener = PacketOpener(SECRET)
        self.next_pn = 1
        # Sealed copies of the packet with increasing numbers, opened by ``open``.
        self.sealed = [self._seal_one(pn) for pn in range(1, 2049)]

    def _seal_one(self, pn: int) -> bytes:
        header = encode_data_header(DCID, 0, pn, pn - 1 if pn > 1 else None)
        return header + PacketSealer(SECRET).seal(pn, header, self.plaintext)

    def aead_seal(self, count: int) -> None:
        encrypt, plaintext, header = self.aead.encrypt, self.plaintext, self.header
        for pn in range(count):
            encrypt(pn.to_bytes(12, "big"), plaintext, header)

    def aead_open(self, count: int) -> None:
        nonce = (1000).to_bytes(12, "big")
        ciphertext = self.aead.encrypt(nonce, self.plaintext, self.header)
        decrypt, header = self.aead.decrypt, self.header
        for _ in range(count):
            decrypt(nonce, ciphertext, header)

    def encode(self, count: int) -> None:
        frames = self.frames
        for pn in range(1000, 1000 + count):
            encode_data_header(DCID, 0, pn, pn - 10)
            encode_frames(frames)

    def decode(self, count: int) -> None:
        datagram = self.sealed[999]
        for _ in range(count):
            header = decode_data_header_untrusted(datagram)
            decode_packet_number(header.truncated_pn, header.pn_length, 998)
            decode_frames_untrusted(self.plaintext)

    def seal(self, count: int) -> None:
        frames, sealer = self.frames, self.sealer
        for pn in range(self.next_pn, self.next_pn + count):
            header = encode_data_header(DCID, sealer.key_phase, pn, pn - 10 if pn > 10 else None)
            _datagram = header + sealer.seal(pn, header, encode_frames(frames))
        self.next_pn += count

    def open(self, count: int) -> None:
        opener, sealed = self.opener, self.sealed
        for i in range(count):
            datagram = sealed[i % len(sealed)]
            header = decode_data_header_untrusted(datagram)
            size = len(header.header)
            largest = i % len(sealed)  # the packet before this one
            pn = decode_packet_number(header.truncated_pn, header.pn_length, largest or None)
            plaintext = opener.open_untrusted(pn, header.key_phase, header.header, datagram[size:])
            decode_frames_untrusted(plaintext)


class SessionPair:
    """Case (c): a client and a hub endpoint, established, in a pure delivery loop."""

    def __init__(self, seed: int) -> None:
        rng = random.Random(seed)
        config = EndpointConfig(cookie_mode=CookieMode.NEVER)
        hub_key = StaticKey.generate(rng.randbytes)
        self.client = Endpoint(config, StaticKey.generate(rng.randbytes), rng.randbytes)
        self.hub = Endpoint(config, hub_key, rng.randbytes)
        self.now = 0.0
        self.datagrams = 0
        self.received = 0
        self.client_session = self.client.connect(hub_key.public, HUB_ADDRESS, self.now, 1)
        self.hub_session: Session | None = None
        self.pump()
        if self.hub_session is None:
            raise RuntimeError("the handshake did not complete")

    def pump(self) -> None:
        """Deliver datagrams both ways until neither side has anything to send."""
        client, hub, now = self.client, self.hub, self.now
        for endpoint in (client, hub):
            deadline = endpoint.get_timer()
            if deadline is not None and deadline <= now:
                endpoint.handle_timer(now)
        while True:
            self._drain_events()
            to_hub = client.datagrams_to_send(now)
            to_client = hub.datagrams_to_send(now)
            if not to_hub and not to_client:
                return
            self.datagrams += len(to_hub) + len(to_client)
            for data, _address in to_hub:
                hub.receive_datagram(data, CLIENT_ADDRESS, now)
            for data, _address in to_client:
                client.receive_datagram(data, HUB_ADDRESS, now)

    def _drain_events(self) -> None:
        for endpoint in (self.client, self.hub):
            while (item := endpoint.next_event()) is not None:
                session, event = item
                if isinstance(event, MessageReceived):
                    self.received += 1
                elif isinstance(event, SessionEstablished) and endpoint is self.hub:
                    self.hub_session = session

    def exchange(self, messages: int) -> None:
        """Send ``messages`` 200-byte messages, alternating client->hub and hub->client."""
        assert self.hub_session is not None
        payload = bytes(PAYLOAD_BYTES)
        for i in range(messages):
            self.now += STEP_S
            if i % 2:
                self.hub.send_message(self.hub_session, payload, self.now)
            else:
                self.client.send_message(self.client_session, payload, self.now)
            self.pump()


@dataclass(frozen=True, slots=True)
class SessionRound:
    us_per_datagram: float
    messages_per_s: float
    datagrams_per_message: float


def session_round(messages: int, seed: int) -> SessionRound:
    """Time case (c) once; the handshake is set up outside the timed part."""
    pair = SessionPair(seed)
    datagrams_before = pair.datagrams
    started = time.perf_counter()
    pair.exchange(messages)
    elapsed_s = time.perf_counter() - started
    datagrams = pair.datagrams - datagrams_before
    if pair.received != messages:
        raise RuntimeError(f"{pair.received} of {messages} messages arrived")
    return SessionRound(elapsed_s * 1e6 / datagrams, messages / elapsed_s, datagrams / messages)


def summarize(case: str, samples: list[float], ratios: list[float] | None) -> Summary:
    return Summary(
        case,
        statistics.median(samples),
        min(samples),
        max(samples),
        statistics.median(ratios) if ratios else None,
        min(ratios) if ratios else None,
        max(ratios) if ratios else None,
    )


def run(repetitions: int, packets: int, messages: int) -> tuple[list[Summary], dict[str, float]]:
    """Run every case ``repetitions`` times, interleaved; return summaries and extras."""
    cases = PacketCases()
    runners: dict[str, Callable[[int], None]] = {
        "aead_seal": cases.aead_seal,
        "aead_open": cases.aead_open,
        "encode": cases.encode,
        "decode": cases.decode,
        "seal": cases.seal,
        "open": cases.open,
    }
    for runner in runners.values():  # warm up caches and the allocator
        runner(packets // 10)
    session_round(messages // 10, SEED)
    samples: dict[str, list[float]] = {case: [] for case in CASES}
    samples["aead_seal+open"] = []
    extras: dict[str, list[float]] = {"messages_per_s": [], "datagrams_per_message": []}
    for repetition in range(repetitions):
        for case, runner in runners.items():
            samples[case].append(per_op_us(runner, packets))
        samples["aead_seal+open"].append(samples["aead_seal"][-1] + samples["aead_open"][-1])
        result = session_round(messages, SEED + repetition)
        samples["session"].append(result.us_per_datagram)
        extras["messages_per_s"].append(result.messages_per_s)
        extras["datagrams_per_message"].append(result.datagrams_per_message)
    summaries = []
    for case in CASES:
        baseline = BASELINES.get(case)
        ratios = None
        if baseline is not None:
            ratios = [a / b for a, b in zip(samples[case], samples[baseline], strict=True)]
        summaries.append(summarize(case, samples[case], ratios))
    return summaries, {name: statistics.median(values) for name, values in extras.items()}


def format_table(summaries: list[Summary], extras: dict[str, float]) -> str:
    lines = [
        f"{'case':<10} {'median us':>10} {'min..max us':>16} {'x baseline':>11} "
        f"{'min..max':>12}  baseline",
    ]
    for s in summaries:
        spread = f"{s.min_us:.2f}..{s.max_us:.2f}"
        ratio = "" if s.ratio is None else f"{s.ratio:.2f}"
        ratio_spread = "" if s.ratio is None else f"{s.ratio_min:.2f}..{s.ratio_max:.2f}"
        baseline = BASELINES.get(s.case, "")
        lines.append(
            f"{s.case:<10} {s.median_us:>10.2f} {spread:>16} {ratio:>11} {ratio_spread:>12}  "
            f"{baseline}"
        )
    lines.append(
        f"session: {extras['messages_per_s']:,.0f} messages/s through both endpoints, "
        f"{extras['datagrams_per_message']:.2f} datagrams per message"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--repetitions", type=int, default=7, help="rounds (default 7)")
    parser.add_argument("--packets", type=int, default=20_000, help="packets per case per round")
    parser.add_argument("--messages", type=int, default=4_000, help="messages per session round")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    if args.repetitions < 1 or args.packets < 10 or args.messages < 10:
        parser.error("need --repetitions >= 1, --packets >= 10, --messages >= 10")
    summaries, extras = run(args.repetitions, args.packets, args.messages)
    if args.json:
        document = {
            "payload_bytes": PAYLOAD_BYTES,
            "repetitions": args.repetitions,
            "python": sys.version.split()[0],
            "cases": {
                s.case: {
                    "median_us": round(s.median_us, 3),
                    "min_us": round(s.min_us, 3),
                    "max_us": round(s.max_us, 3),
                    "baseline": BASELINES.get(s.case),
                    "ratio": None if s.ratio is None else round(s.ratio, 3),
                    "ratio_min": None if s.ratio_min is None else round(s.ratio_min, 3),
                    "ratio_max": None if s.ratio_max is None else round(s.ratio_max, 3),
                }
                for s in summaries
            },
            **{name: round(value, 3) for name, value in extras.items()},
        }
        print(json.dumps(document, indent=2))
    else:
        print(format_table(summaries, extras))
    return 0


if __name__ == "__main__":
    sys.exit(main())
