"""Latency CDF plots, one PNG per grid cell (matplotlib, Agg backend, no display needed).

What it owns: ``plot_latency_cdfs``, which draws for each cell the cumulative share of
*sent* messages delivered within a latency, for udpim and for raw UDP, with the cell's
p99 target and the best alternative's p99 marked.

Rules it keeps:

* The y axis is the share of messages sent, so raw UDP's curve flattens at its delivery
  ratio: lost datagrams never arrive, and the plot shows it.
* The x axis is logarithmic (25 ms to seconds fit one figure). Each plot shows the
  cell's representative run (``CellResult.representative``).
* Files are ``latency_cdf_<cell>.png``; matplotlib is imported only when plotting.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from tools.benchmarks.latency_report import CellResult
from tools.benchmarks.targets import LATENCY_REFERENCES, LATENCY_TARGETS

__all__ = ["plot_latency_cdfs"]

KCP_COLUMN = 2  # index of KCP in targets.ALTERNATIVES
X_TICKS_MS = (20, 30, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000)


def _curve(samples_s: Sequence[float], sent: int) -> tuple[list[float], list[float]]:
    finite = sorted(s * 1000 for s in samples_s if math.isfinite(s))
    return finite, [(index + 1) / sent for index in range(len(finite))]


def plot_latency_cdfs(results: Sequence[CellResult], directory: Path) -> list[Path]:
    """Write one CDF PNG per cell into ``directory`` (created if missing).

    Args:
        results: the cells' runs.
        directory: where the PNGs go.

    Returns:
        The files written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter

    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for result in results:
        run = result.representative
        sent = run.workload.messages
        figure, axes = plt.subplots(figsize=(7, 4.2), dpi=110)
        for label, samples, style in (
            ("udpim", run.udpim.samples, "-"),
            ("raw UDP (no retransmission)", run.raw.samples, "--"),
        ):
            x, y = _curve(samples, sent)
            axes.step(x, y, style, where="post", label=label)
        target = LATENCY_TARGETS.get(result.cell.name)
        if target is not None:
            axes.axvline(
                target.p99_s * 1000, color="green", linestyle=":", label="udpim p99 target"
            )
        kcp = LATENCY_REFERENCES.get(result.cell.name, ())
        if len(kcp) > KCP_COLUMN and kcp[KCP_COLUMN].split(" ")[0].replace(".", "").isdigit():
            kcp_ms = float(kcp[KCP_COLUMN].split(" ")[0])
            axes.axvline(kcp_ms, color="red", linestyle=":", label="KCP p99 (TARGETS.md)")
        axes.axhline(0.99, color="grey", linewidth=0.6, label="99 % of messages")
        axes.set_xscale("log")
        axes.xaxis.set_major_locator(FixedLocator(X_TICKS_MS))
        axes.xaxis.set_major_formatter(ScalarFormatter())
        axes.xaxis.set_minor_formatter(NullFormatter())
        axes.set_xlabel("latency, send_message to MessageReceived (ms, log scale)")
        axes.set_ylabel("share of messages sent")
        axes.set_ylim(0, 1.01)
        axes.set_title(
            f"Latency CDF: {result.cell.label} loss in each direction, RTT 50 ms\n"
            f"{sent} messages of {run.workload.payload_bytes} B at "
            f"{run.workload.rate_per_s:g}/s, seed {run.seed}",
            fontsize="medium",
        )
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(loc="lower right", fontsize="small")
        figure.tight_layout()
        path = directory / f"latency_cdf_{result.cell.name}.png"
        figure.savefig(path)
        plt.close(figure)
        written.append(path)
    return written
