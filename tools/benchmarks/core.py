"""``tools/bench core``: CPU per datagram in udpim's sans-IO core, beside the raw AEAD.

What it measures, in one process and one run, with ``time.perf_counter`` (the cases are
defined in ``core_cases``): per datagram of a chat-sized packet (an ACK frame and one
200-byte message), the sender's encode + seal, the receiver's open + decode, the codec
alone, a whole two-endpoint session loop, and the baseline of the same run: raw
ChaCha20-Poly1305 (cryptography) encrypt and decrypt of the same plaintext with the same
associated data. The ratio to the baseline is the framing overhead: what udpim costs on
top of the cipher it cannot avoid.

How it stays meaningful on a shared 2-core machine:

* All cases run interleaved within every round (``--rounds``: 7, or 3 with ``--quick``;
  ``--repeat N`` runs N times as many), after one untimed warm-up round.
* Each figure is the median over rounds with (min..max); each ratio is the median of
  per-round ratios to the baseline of the *same* round (encrypt for encode and seal,
  decrypt for decode and open, encrypt + decrypt for the session, whose every datagram
  is sealed once and opened once), so a slow moment slows both sides of a ratio.

Runs in about 10 s (``--quick``: about 1 s). Benchmarks are not tests: nothing asserts a
speed. ``tools/bench_core.py`` is the old command line for the same figures.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from tools.benchmarks.command import Section, Subcommand, positive_int
from tools.benchmarks.core_cases import PAYLOAD_BYTES, PacketCases, session_round
from tools.benchmarks.distribution import Spread

__all__ = ["CASES", "SUBCOMMAND", "CoreResult", "measure_core", "run"]


@dataclass(frozen=True, slots=True)
class Case:
    """A row of the table: a case, what it does, and its baseline (None: it is one)."""

    name: str
    label: str
    baseline: str | None


CASES: Final = (
    Case("seal", "encode + seal (the sender, per datagram)", "aead_seal"),
    Case("open", "open + decode (the receiver, per datagram)", "aead_open"),
    Case("encode", "encode only: header + frames, no AEAD", "aead_seal"),
    Case("decode", "decode only: header, packet number, frames; no AEAD", "aead_open"),
    Case("aead_seal", "raw ChaCha20-Poly1305 encrypt (baseline)", None),
    Case("aead_open", "raw ChaCha20-Poly1305 decrypt (baseline)", None),
    Case("session", "session loop: two endpoints, per datagram", "aead_seal+open"),
)
"""The table's rows, in order."""
FULL: Final = (20_000, 4_000)
"""Packets per case per round, messages per session round."""
QUICK: Final = (2_000, 400)
ROUNDS: Final = 7
"""Timed rounds per run (``--rounds``)."""
QUICK_ROUNDS: Final = 3


@dataclass(frozen=True, slots=True)
class CoreResult:
    """Every round's figures: microseconds per datagram by case, and the session extras."""

    samples_us: Mapping[str, list[float]]
    messages_per_s: list[float]
    datagrams_per_message: list[float]
    plaintext_bytes: int
    datagram_bytes: int
    packets: int
    messages: int

    @property
    def rounds(self) -> int:
        """How many timed rounds."""
        return len(self.messages_per_s)

    def figure(self, case: str) -> Spread:
        """Microseconds per datagram of ``case`` over the rounds."""
        return Spread.of(self.samples_us[case])

    def ratio(self, case: Case) -> Spread | None:
        """The per-round ratios of ``case`` to its baseline, or None for a baseline."""
        if case.baseline is None:
            return None
        pairs = zip(self.samples_us[case.name], self.samples_us[case.baseline], strict=True)
        return Spread.of([value / base for value, base in pairs])


def _per_op_us(runner: Callable[[int], None], count: int) -> float:
    started = time.perf_counter()
    runner(count)
    return (time.perf_counter() - started) * 1e6 / count


def measure_core(rounds: int, packets: int, messages: int, seed: int) -> CoreResult:
    """Run every case ``rounds`` times, interleaved, after an untimed warm-up.

    Args:
        rounds: timed rounds.
        packets: datagrams per packet case per round.
        messages: messages per session round.
        seed: the session round ``r`` uses ``seed + r``.

    Raises:
        RuntimeError: the session loop lost a message (a bug, not a speed).
    """
    cases = PacketCases()
    runners = cases.runners()
    for runner in runners.values():  # warm caches and the allocator
        runner(max(1, packets // 10))
    session_round(max(2, messages // 10), seed)
    samples: dict[str, list[float]] = {case.name: [] for case in CASES}
    samples["aead_seal+open"] = []
    messages_per_s: list[float] = []
    datagrams_per_message: list[float] = []
    for index in range(rounds):
        for name, runner in runners.items():
            samples[name].append(_per_op_us(runner, packets))
        samples["aead_seal+open"].append(samples["aead_seal"][-1] + samples["aead_open"][-1])
        result = session_round(messages, seed + index)
        samples["session"].append(result.us_per_datagram)
        messages_per_s.append(result.messages_per_s)
        datagrams_per_message.append(result.datagrams_per_message)
    return CoreResult(
        samples,
        messages_per_s,
        datagrams_per_message,
        len(cases.plaintext),
        cases.datagram_bytes,
        packets,
        messages,
    )


def core_markdown(result: CoreResult) -> str:
    """The report: one row per case, then the session loop's rates."""
    several = result.rounds > 1
    lines = [
        "### Core: CPU per datagram in udpim's sans-IO core, beside the raw AEAD (µs)",
        "",
        f"One packet: an ACK frame and one {PAYLOAD_BYTES}-byte DATA frame "
        f"({result.plaintext_bytes} bytes of frames, {result.datagram_bytes} bytes sealed); "
        f"{result.rounds} round(s) of {result.packets:,} packets per case and "
        f"{result.messages:,} messages in the session loop, all cases interleaved"
        + ("; median (min..max) over rounds" if several else "")
        + ". x raw AEAD: per-round ratio to the same round's baseline.",
        "",
        "| case | µs per datagram | x raw AEAD | baseline |",
        "|---|---|---|---|",
    ]
    for case in CASES:
        ratio = result.ratio(case)
        baseline = {
            None: "",
            "aead_seal": "encrypt",
            "aead_open": "decrypt",
            "aead_seal+open": "encrypt + decrypt",
        }[case.baseline]
        bold = "**" if case.name in ("seal", "open") else ""
        lines.append(
            f"| {case.label} | {bold}{result.figure(case.name).format(digits=2)}{bold} "
            f"| {'1' if ratio is None else ratio.format(digits=2)} | {baseline} |"
        )
    seal, open_ = result.figure("seal").median, result.figure("open").median
    aead_seal, aead_open = result.figure("aead_seal").median, result.figure("aead_open").median
    rate = Spread.of(result.messages_per_s)
    lines += [
        "",
        f"Framing overhead beyond the cipher: {seal - aead_seal:.2f} µs per datagram sent, "
        f"{open_ - aead_open:.2f} µs per datagram received (medians). "
        f"Session loop: {rate.format(digits=0)} messages/s through both endpoints, "
        f"{statistics.median(result.datagrams_per_message):.2f} datagrams per message "
        "(no sockets: an upper bound for one process carrying both ends).",
    ]
    return "\n".join(lines)


def core_json(result: CoreResult) -> dict[str, object]:
    """The same figures, JSON-ready (microseconds per datagram)."""
    cases: dict[str, object] = {}
    for case in CASES:
        ratio = result.ratio(case)
        cases[case.name] = {
            "label": case.label,
            "us_per_datagram": result.figure(case.name).to_json(digits=3),
            "baseline": case.baseline,
            "ratio_to_baseline": None if ratio is None else ratio.to_json(digits=3),
            "us_per_round": [round(value, 3) for value in result.samples_us[case.name]],
        }
    return {
        "payload_bytes": PAYLOAD_BYTES,
        "plaintext_bytes": result.plaintext_bytes,
        "datagram_bytes": result.datagram_bytes,
        "rounds": result.rounds,
        "packets_per_round": result.packets,
        "messages_per_session_round": result.messages,
        "cases": cases,
        "session_messages_per_s": Spread.of(result.messages_per_s).to_json(digits=0),
        "session_datagrams_per_message": round(statistics.median(result.datagrams_per_message), 3),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``core``'s own options."""
    parser.add_argument(
        "--rounds",
        type=positive_int,
        metavar="N",
        help=f"interleaved rounds per run (default {ROUNDS}; {QUICK_ROUNDS} with --quick); "
        "--repeat multiplies them",
    )
    parser.add_argument(
        "--packets",
        type=positive_int,
        metavar="N",
        help=f"packets per case per round (default {FULL[0]:,}; {QUICK[0]:,} with --quick)",
    )
    parser.add_argument(
        "--messages",
        type=positive_int,
        metavar="N",
        help=f"messages per session round (default {FULL[1]:,}; {QUICK[1]:,} with --quick)",
    )


def run(args: argparse.Namespace) -> Section:
    """Measure every case (see the module docstring) and report."""
    packets, messages = QUICK if args.quick else FULL
    rounds = (args.rounds or (QUICK_ROUNDS if args.quick else ROUNDS)) * args.repeat
    result = measure_core(rounds, args.packets or packets, args.messages or messages, args.seed)
    print(
        f"core: {result.rounds} rounds: seal {result.figure('seal').median:.2f} us, open "
        f"{result.figure('open').median:.2f} us, raw AEAD "
        f"{result.figure('aead_seal').median:.2f} / {result.figure('aead_open').median:.2f} us",
        file=sys.stderr,
        flush=True,
    )
    return Section("core", core_markdown(result), core_json(result))


SUBCOMMAND = Subcommand(
    name="core",
    help="CPU per datagram: encode+seal and open+decode in the core vs raw ChaCha20-Poly1305",
    add_arguments=add_arguments,
    run=run,
)
