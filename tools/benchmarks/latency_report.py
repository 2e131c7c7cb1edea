"""The latency benchmark's report: Markdown tables and JSON from the runs of every cell.

What it owns: ``CellResult`` (the runs of one cell and their medians), and the three
tables (udpim beside raw UDP; udpim beside the alternatives and targets of TARGETS.md;
the tail-latency profile) plus the JSON document.

Rules it keeps:

* With ``--repeat N`` every figure is the median of the N runs' figures, followed by
  (min..max); "in order" holds only if it held in every run.
* The profile table shows one run per cell, the *representative* one: the run whose
  p99 is the median p99 (the lower middle for an even N). So do the CDF plots.
* A target is met when the median p99 and the median wire ratio are both within it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tools.benchmarks.distribution import Percentiles, Spread, format_ms
from tools.benchmarks.latency_run import LatencyCellRun
from tools.benchmarks.link_grid import LinkCell
from tools.benchmarks.tail_profile import TailProfile, TailSlice
from tools.benchmarks.targets import ALTERNATIVES, LATENCY_REFERENCES, LATENCY_TARGETS

__all__ = ["CellResult", "latency_json", "latency_markdown"]


@dataclass(frozen=True, slots=True)
class CellResult:
    """Every run of one cell."""

    cell: LinkCell
    runs: tuple[LatencyCellRun, ...]

    def spread(self, figure: Callable[[LatencyCellRun], float]) -> Spread:
        """The spread of ``figure`` over the runs."""
        return Spread.of([figure(run) for run in self.runs])

    @property
    def representative(self) -> LatencyCellRun:
        """The run whose udpim p99 is the (lower) median."""
        ordered = sorted(self.runs, key=lambda run: run.udpim.latency.p99)
        return ordered[(len(ordered) - 1) // 2]

    def target_met(self) -> bool | None:
        """Whether the median p99 and wire ratio are within the target (None: no target)."""
        target = LATENCY_TARGETS.get(self.cell.name)
        if target is None:
            return None
        p99 = self.spread(lambda run: run.udpim.latency.p99).median
        wire = self.spread(lambda run: run.udpim.wire_ratio).median
        return p99 <= target.p99_s and wire <= target.wire_ratio


def _ms(result: CellResult, figure: Callable[[Percentiles], float], *, raw: bool = False) -> str:
    if raw:
        return result.spread(lambda run: figure(run.raw.latency)).format(1000)
    return result.spread(lambda run: figure(run.udpim.latency)).format(1000)


def _measured_table(results: Sequence[CellResult]) -> list[str]:
    lines = [
        "| link | udpim p50 | p90 | p99 | max | delivered | in order | wire/payload "
        "| raw UDP p50 | p99 | delivered | in order | wire/payload |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.cell.label} | {_ms(r, lambda p: p.p50)} | {_ms(r, lambda p: p.p90)} "
            f"| {_ms(r, lambda p: p.p99)} | {_ms(r, lambda p: p.max)} "
            f"| {r.spread(lambda run: run.udpim.delivery_ratio).format(100)} % "
            f"| {_yes(all(run.udpim.in_order for run in r.runs))} "
            f"| {r.spread(lambda run: run.udpim.wire_ratio).format(digits=2)} "
            f"| {_ms(r, lambda p: p.p50, raw=True)} | {_ms(r, lambda p: p.p99, raw=True)} "
            f"| {r.spread(lambda run: run.raw.delivery_ratio).format(100)} % "
            f"| {_yes(all(run.raw.in_order for run in r.runs))} "
            f"| {r.spread(lambda run: run.raw.wire_ratio).format(digits=2)} |"
        )
    return lines


def _comparison_table(results: Sequence[CellResult]) -> list[str]:
    lines = [
        "| loss | " + " | ".join(ALTERNATIVES) + " | udpim target | udpim measured | met "
        "| raw UDP p99 here (the floor) |",
        "|---|" + "---|" * (len(ALTERNATIVES) + 4),
    ]
    for r in results:
        references = LATENCY_REFERENCES.get(r.cell.name, ("",) * len(ALTERNATIVES))
        target = LATENCY_TARGETS.get(r.cell.name)
        target_text = "" if target is None else (
            f"<= {target.p99_s * 1000:g} / <= {target.wire_ratio:g}"
        )  # fmt: skip
        p99 = r.spread(lambda run: run.udpim.latency.p99).median
        wire = r.spread(lambda run: run.udpim.wire_ratio).median
        met = r.target_met()
        lines.append(
            f"| {r.cell.label} | " + " | ".join(references) + f" | {target_text} "
            f"| **{format_ms(p99)} / {wire:.2f}** | {'' if met is None else _yes(met)} "
            f"| {format_ms(r.spread(lambda run: run.raw.latency.p99).median)} |"
        )
    return lines


def _arrivals(attempts: dict[int, int], rebuilt: int) -> str:
    """``first copy / rebuilt by FEC / 2nd / 3rd / 4th+ copy``."""
    buckets = {1: 0, 2: 0, 3: 0, 4: 0}
    for count, messages in attempts.items():
        buckets[min(count, 4)] += messages
    return " / ".join(str(n) for n in (buckets[1], rebuilt, buckets[2], buckets[3], buckets[4]))


def _slice(tail: TailSlice) -> str:
    return (
        f"{format_ms(tail.mean_sender_wait_s)} / {format_ms(tail.mean_network_s)} "
        f"/ {format_ms(tail.mean_hol_wait_s)}"
    )


def _profile_row(cell: LinkCell, profile: TailProfile) -> str:
    first, second = profile.first_retransmit_gap, profile.second_retransmit_gap
    triggers = profile.retransmit_triggers
    return (
        f"| {cell.label} | {_arrivals(profile.attempts, profile.rebuilt)} "
        f"| {format_ms(profile.latency_rebuilt.p50)} / {format_ms(profile.latency_rebuilt.max)} "
        f"| {profile.hol_blocked} "
        f"| {format_ms(profile.sender_wait.p50)} / {format_ms(profile.sender_wait.p99)} "
        f"| {format_ms(first.p50)} / {format_ms(first.p90)} / {format_ms(first.max)} "
        f"| {format_ms(second.p50)} / {format_ms(second.max)} "
        f"| {triggers['ack']} / {triggers['timer']} | {profile.spurious_copies} "
        f"| {profile.packets_per_message:.2f} | {profile.delayed_acks} / {profile.acks} "
        f"| {format_ms(profile.p99.threshold_s)}: {_slice(profile.p99)} "
        f"({profile.p99.hol_only} of {profile.p99.messages} HOL only) |"
    )


def _profile_table(results: Sequence[CellResult]) -> list[str]:
    lines = [
        "| link | messages that arrived as: 1st copy / rebuilt by FEC / 2nd / 3rd / 4th+ copy "
        "| rebuilt: latency p50 / max | HOL-blocked "
        "| sender wait p50 / p99 | 1st retransmit after p50 / p90 / max "
        "| 2nd retransmit after p50 / max | retransmits on ACK / on timer "
        "| spurious copies | first-copy packets per message | delayed ACKs / ACKs "
        "| p99 and its mean sender wait / network / HOL wait |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [_profile_row(r.cell, r.representative.udpim.profile) for r in results]
    return lines


def latency_markdown(results: Sequence[CellResult]) -> str:
    """The three latency tables (times in ms; see the module docstring)."""
    if not results:
        return ""
    workload = results[0].runs[0].workload
    runs = len(results[0].runs)
    header = (
        f"Workload: {workload.messages} messages of {workload.payload_bytes} bytes at "
        f"{workload.rate_per_s:g} msg/s one way, RTT 50 ms, loss in both directions; "
        f"{runs} run(s) per cell" + (", median (min..max)" if runs > 1 else "") + "."
    )
    return "\n".join(
        [
            "### Latency under loss: udpim and raw UDP (ms)",
            "",
            header,
            "",
            *_measured_table(results),
            "",
            "wire/payload: bytes of every datagram of both directions (UDP payload + 28 bytes "
            "of IPv4/UDP headers) counted where they enter the proxy, from the first message "
            "to the end of the run (handshake excluded), per byte of message payload.",
            "",
            "### p99 ms / wire bytes per payload byte, beside TARGETS.md",
            "",
            *_comparison_table(results),
            "",
            "### Where the tail comes from (udpim, representative run; times in ms)",
            "",
            *_profile_table(results),
        ]
    )


def latency_json(results: Sequence[CellResult]) -> dict[str, object]:
    """The JSON document of the latency benchmark."""
    cells: dict[str, object] = {}
    for r in results:
        run = r.representative
        target = LATENCY_TARGETS.get(r.cell.name)
        cells[r.cell.name] = {
            "label": r.cell.label,
            "mean_loss": r.cell.mean_loss,
            "seeds": [each.seed for each in r.runs],
            "udpim": {
                "p50_ms": r.spread(lambda x: x.udpim.latency.p50).to_json(1000),
                "p90_ms": r.spread(lambda x: x.udpim.latency.p90).to_json(1000),
                "p99_ms": r.spread(lambda x: x.udpim.latency.p99).to_json(1000),
                "max_ms": r.spread(lambda x: x.udpim.latency.max).to_json(1000),
                "delivery_ratio": r.spread(lambda x: x.udpim.delivery_ratio).to_json(),
                "in_order": all(x.udpim.in_order for x in r.runs),
                "wire_ratio": r.spread(lambda x: x.udpim.wire_ratio).to_json(),
                "wire_datagrams": [x.udpim.wire.datagrams for x in r.runs],
                "profile": _profile_json(run.udpim.profile),
                "sender_statistics": _sender_json(run),
            },
            "raw_udp": {
                "p50_ms": r.spread(lambda x: x.raw.latency.p50).to_json(1000),
                "p99_ms": r.spread(lambda x: x.raw.latency.p99).to_json(1000),
                "max_ms": r.spread(lambda x: x.raw.latency.max).to_json(1000),
                "delivery_ratio": r.spread(lambda x: x.raw.delivery_ratio).to_json(),
                "in_order": all(x.raw.in_order for x in r.runs),
                "wire_ratio": r.spread(lambda x: x.raw.wire_ratio).to_json(),
            },
            "target": None
            if target is None
            else {"p99_ms": target.p99_s * 1000, "wire_ratio": target.wire_ratio},
            "target_met": r.target_met(),
        }
    return {"cells": cells}


def _percentiles_json(p: Percentiles) -> dict[str, float | None]:
    return {
        name: None if math.isnan(value) or math.isinf(value) else round(value * 1000, 3)
        for name, value in (("p50", p.p50), ("p90", p.p90), ("p99", p.p99), ("max", p.max))
    }


def _slice_json(tail: TailSlice) -> dict[str, object]:
    return {
        "threshold_ms": round(tail.threshold_s * 1000, 3),
        "messages": tail.messages,
        "attempts": tail.attempts,
        "rebuilt": tail.rebuilt,
        "hol_only": tail.hol_only,
        "mean_sender_wait_ms": round(tail.mean_sender_wait_s * 1000, 3),
        "mean_network_ms": round(tail.mean_network_s * 1000, 3),
        "mean_hol_wait_ms": round(tail.mean_hol_wait_s * 1000, 3),
    }


def _profile_json(profile: TailProfile) -> dict[str, object]:
    return {
        "attempts": profile.attempts,
        "latency_by_attempts_ms": {
            k: _percentiles_json(v) for k, v in profile.latency_by_attempts.items()
        },
        "rebuilt": profile.rebuilt,
        "latency_rebuilt_ms": _percentiles_json(profile.latency_rebuilt),
        "hol_blocked": profile.hol_blocked,
        "first_retransmit_gap_ms": _percentiles_json(profile.first_retransmit_gap),
        "second_retransmit_gap_ms": _percentiles_json(profile.second_retransmit_gap),
        "retransmit_triggers": profile.retransmit_triggers,
        "spurious_copies": profile.spurious_copies,
        "sender_wait_ms": _percentiles_json(profile.sender_wait),
        "packets_per_message": round(profile.packets_per_message, 4),
        "acks": profile.acks,
        "delayed_acks": profile.delayed_acks,
        "up_lost": profile.up_lost,
        "down_lost": profile.down_lost,
        "p90": _slice_json(profile.p90),
        "p99": _slice_json(profile.p99),
    }


def _sender_json(run: LatencyCellRun) -> dict[str, object]:
    s = run.udpim.sender
    return {
        "packets_sent": s.packets_sent,
        "packets_lost": s.packets_lost,
        "frames_retransmitted": s.frames_retransmitted,
        "probes_sent": s.probes_sent,
        "smoothed_rtt_ms": round(s.smoothed_rtt_s * 1000, 3),
        "rttvar_ms": round(s.rttvar_s * 1000, 3),
        "congestion_window_bytes": s.congestion_window_bytes,
    }


def _yes(value: bool) -> str:
    return "yes" if value else "no"
