"""Benchmark of netsim's real UDP impairment proxy (a measurement, never a test).

Measures, over loopback only:

(a) throughput: a sender process pushes 100-byte datagrams as fast as it can for `--seconds`,
    once straight to a sink and once through a proxy with `--loss` (default 10 %). Reported in
    datagrams/s: offered by the sender, taken in by the proxy (its own `packets_in` counter;
    the kernel drops what it cannot take) and relayed to the sink, plus the ratio
    relayed/direct. The sender outruns the proxy, so "relayed" is the proxy's capacity.
(b) added latency at 0 % loss: `--pings` sequential round trips to an echo server, straight and
    through a loss-free proxy in the same run; median and p99, and what the proxy adds.

The proxy runs as `python -m netsim.proxy_cli` in its own process, as users run it; the
sender is a separate plain-socket process and the sink a plain blocking socket here, so the
figures are the proxy's, not the harness's. On a 2-core machine the sender and the proxy each
take a core. Each figure is the median of `--repetitions` runs, with the spread (min..max).

Run: `.venv/bin/python tools/bench_proxy.py` (about 15 s).
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

LOOPBACK = "127.0.0.1"
PAYLOAD_BYTES = 100
SINK_IDLE_S = 0.3  # the sink stops after this long without a datagram
STARTUP_TIMEOUT_S = 20.0
ROOT = Path(__file__).resolve().parents[1]

# The sender process: plain sockets, no Trio, so it is as fast as CPython gets.
SENDER_CODE = """
import socket, sys, time
host, port, seconds, size = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
payload, sent = bytes(size), 0
started = time.monotonic()
while time.monotonic() - started < seconds:
    for _ in range(256):
        try:
            sock.sendto(payload, (host, port))
            sent += 1
        except OSError:
            pass
print(sent, time.monotonic() - started)
"""

Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Throughput:
    offered_per_s: float  # what the sender pushed
    taken_in_per_s: float  # what the proxy took from its socket (direct: what the sink got)
    relayed_per_s: float  # what reached the sink
    loss_at_proxy: float  # share of taken-in datagrams the proxy dropped as "loss"
    other_drops: int  # drops at the proxy for any other reason (queue, socket errors)


@dataclass(frozen=True, slots=True)
class RoundTrips:
    median_s: float
    p99_s: float


@contextmanager
def running_proxy(target: Address, *options: str) -> Iterator[tuple[Address, list[dict[str, Any]]]]:
    """Run `netsim.proxy_cli` towards `target`; yield its address and, after exit, its report."""
    command = [sys.executable, "-m", "netsim.proxy_cli", "--listen", f"{LOOPBACK}:0"]
    command += ["--to", f"{target[0]}:{target[1]}", "--json", *options]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
    )
    report: list[dict[str, Any]] = []
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        if "listening on " not in line:
            raise RuntimeError(f"proxy did not start: {line.strip()}")
        host, port = line.split("listening on ")[1].split(",")[0].rsplit(":", 1)
        yield (host, int(port)), report
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=STARTUP_TIMEOUT_S)
        if proc.returncode != 0:
            raise RuntimeError(f"proxy exited with {proc.returncode}: {err.strip()}")
        report.append(json.loads(out))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def blast(sink: socket.socket, destination: Address, seconds: float) -> tuple[float, int, float]:
    """Run the sender towards `destination` while `sink` counts arrivals.

    Returns:
        (datagrams/s offered by the sender, datagrams received by the sink, seconds from the
        first arrival to the last).
    """
    sender = subprocess.Popen(
        [sys.executable, "-c", SENDER_CODE, destination[0], str(destination[1]), str(seconds),
         str(PAYLOAD_BYTES)],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    received, first_at, last_at = 0, 0.0, 0.0
    sink.settimeout(STARTUP_TIMEOUT_S)
    try:
        while True:
            sink.recv(2048)
            last_at = time.perf_counter()  # plain blocking code, outside Trio
            if received == 0:
                first_at = last_at
                sink.settimeout(SINK_IDLE_S)
            received += 1
    except TimeoutError:
        pass
    out, _ = sender.communicate(timeout=STARTUP_TIMEOUT_S)
    sent, elapsed_s = out.split()
    window_s = max(last_at - first_at, 1e-9)
    return int(sent) / float(elapsed_s), received, window_s


def measure_throughput(seconds: float, loss: str) -> tuple[Throughput, Throughput]:
    """One repetition of (a): straight to the sink, then through a lossy proxy."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        sink.bind((LOOPBACK, 0))
        target = sink.getsockname()
        offered, received, window_s = blast(sink, target, seconds)
        direct = Throughput(offered, received / window_s, received / window_s, 0.0, 0)
        with running_proxy(target, "--loss", loss) as (proxy_address, report):
            offered, received, window_s = blast(sink, proxy_address, seconds)
    up = report[0]["up"]
    packets_in = int(up["packets_in"])
    loss_share = int(up["drops"].get("loss", 0)) / max(packets_in, 1)
    other_drops = sum(up["drops"].values()) - int(up["drops"].get("loss", 0))
    # The proxy is busy from the first relayed datagram to the last: both rates use that window.
    proxied = Throughput(
        offered, packets_in / window_s, received / window_s, loss_share, other_drops
    )
    return direct, proxied


async def round_trips(
    client: trio.socket.SocketType, destination: Address, pings: int
) -> RoundTrips:
    samples = []
    for number in range(pings):
        sent_at = trio.current_time()
        await client.sendto(b"%d" % number, destination)
        with trio.fail_after(5):
            await client.recvfrom(2048)
        samples.append(trio.current_time() - sent_at)
    samples.sort()
    return RoundTrips(statistics.median(samples), samples[int(0.99 * (len(samples) - 1))])


async def measure_latency(pings: int) -> tuple[RoundTrips, RoundTrips]:
    """One repetition of (b): echo round trips straight and through a loss-free proxy."""

    async def echo(sock: trio.socket.SocketType) -> None:
        while True:
            data, source = await sock.recvfrom(2048)
            await sock.sendto(data, source)

    server = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    client = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    with server, client:
        await server.bind((LOOPBACK, 0))
        await client.bind((LOOPBACK, 0))
        host, port = server.getsockname()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(echo, server)
            with running_proxy((host, port)) as (proxy_address, _):
                direct = await round_trips(client, (host, port), pings)
                proxied = await round_trips(client, proxy_address, pings)
            nursery.cancel_scope.cancel()
    return direct, proxied


def spread(values: Sequence[float], scale: float = 1.0, digits: int = 0) -> str:
    """`median  (min..max)` of `values` times `scale`."""
    scaled = [v * scale for v in values]
    low, high = min(scaled), max(scaled)
    return f"{statistics.median(scaled):>9,.{digits}f}  ({low:,.{digits}f}..{high:,.{digits}f})"


def report(args: argparse.Namespace, throughput: list[tuple[Throughput, Throughput]],
           latency: list[tuple[RoundTrips, RoundTrips]]) -> None:  # fmt: skip
    direct = [d for d, _ in throughput]
    proxied = [p for _, p in throughput]
    ratios = [p.relayed_per_s / d.relayed_per_s for d, p in throughput]
    added = [p.median_s - d.median_s for d, p in latency]
    slowdown = [p.median_s / d.median_s for d, p in latency]
    rows = [
        f"netsim proxy benchmark: {args.repetitions} repetitions; median (min..max)",
        f"(a) {PAYLOAD_BYTES}-byte datagrams for {args.seconds:g} s, fast sender, loss {args.loss}",
        f"  direct: sender offered     {spread([d.offered_per_s for d in direct])} datagrams/s",
        f"  direct: sink received      {spread([d.relayed_per_s for d in direct])} datagrams/s",
        f"  proxy:  sender offered     {spread([p.offered_per_s for p in proxied])} datagrams/s",
        f"  proxy:  proxy took in      {spread([p.taken_in_per_s for p in proxied])} datagrams/s",
        f"  proxy:  relayed to sink    {spread([p.relayed_per_s for p in proxied])} datagrams/s",
        f"  ratio relayed/direct       {spread(ratios, digits=3)}",
        f"  loss measured at proxy     {spread([p.loss_at_proxy for p in proxied], 100, 2)} %",
        f"  other drops at proxy       {spread([p.other_drops for p in proxied])}",
        f"(b) {args.pings} sequential round trips, 0 % loss",
        f"  direct median              {spread([d.median_s for d, _ in latency], 1e6)} us",
        f"  direct p99                 {spread([d.p99_s for d, _ in latency], 1e6)} us",
        f"  proxy  median              {spread([p.median_s for _, p in latency], 1e6)} us",
        f"  proxy  p99                 {spread([p.p99_s for _, p in latency], 1e6)} us",
        f"  added by proxy (median)    {spread(added, 1e6)} us",
        f"  ratio proxy/direct median  {spread(slowdown, digits=2)}",
    ]  # fmt: skip
    print("\n".join(rows))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark netsim's UDP proxy (loopback only).")
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=1.0, help="sending time per run")
    parser.add_argument("--pings", type=int, default=1000)
    parser.add_argument("--loss", default="10%")
    args = parser.parse_args(argv)
    throughput = [measure_throughput(args.seconds, args.loss) for _ in range(args.repetitions)]
    latency = [trio.run(measure_latency, args.pings) for _ in range(args.repetitions)]
    report(args, throughput, latency)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
