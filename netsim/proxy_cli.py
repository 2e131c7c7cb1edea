"""`netsim proxy` command line: arguments -> `ProxyConfig`, run until Ctrl-C, print counters.

What it owns: the proxy's options, their translation into a `ProxyConfig` (values are parsed by
`netsim.units` through `LinkProfile.from_mapping`, so the proxy accepts exactly what scenario
files accept), the run loop with signal handling, and the exit report.

Rules it keeps:

- Every impairment option (`--loss`, `--delay`, ...) applies to EACH direction, per client.
  `--up KEY=VALUE` / `--down KEY=VALUE` (repeatable; keys as in scenario files: delay, jitter,
  reorder, loss, burst, duplicate, corrupt, mtu, rate, queue, trace) override one direction.
  "up" is client -> server, "down" is server -> client.
- `--trace NAME` with a bundled base name (e.g. `Verizon-LTE-short`) uses `NAME.up` upward and
  `NAME.down` downward; a full name or a path is used for both directions.
- A bad argument prints one line on stderr and returns exit code 2; a listening address that
  cannot be bound returns 1; a run ended by SIGINT (Ctrl-C) or SIGTERM prints the per-direction
  counters (a table, or one JSON object with `--json`) and returns 0. Never a traceback.
- Options are declared as plain strings and validated here, so every error takes one line.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import trio

from netsim.mahimahi import bundled_traces
from netsim.models import LinkProfile
from netsim.proxy import (
    DEFAULT_MAX_CLIENTS,
    DEFAULT_NAT_TIMEOUT_S,
    Address,
    Direction,
    DirectionStatistics,
    ImpairmentProxy,
    ProxyConfig,
    ProxyStatistics,
)
from netsim.units import format_duration, parse_duration, parse_endpoint, parse_ratio

__all__ = [
    "add_proxy_arguments",
    "config_from_arguments",
    "format_statistics",
    "main",
    "run_proxy_command",
    "statistics_document",
]

PROG = "netsim proxy"

# (scenario-file key, metavar, help) of the options that apply to each direction.
IMPAIRMENT_OPTIONS: tuple[tuple[str, str, str], ...] = (
    ("loss", "RATIO", "Bernoulli loss per datagram, e.g. 10%% or 0.1"),
    ("delay", "DURATION", "added one-way delay, e.g. 25ms"),
    ("jitter", "DURATION", "latency varies uniformly within +-JITTER, e.g. 5ms"),
    ("burst", "P_GB,P_BG[,LOSS_BAD]", "Gilbert-Elliott burst loss (replaces --loss)"),
    ("duplicate", "RATIO", "probability of one extra copy, e.g. 1%%"),
    ("corrupt", "RATIO", "probability of flipping one random bit, e.g. 0.1%%"),
    ("mtu", "BYTES", "drop datagrams larger than this, e.g. 1400"),
    ("rate", "RATE", "serialization rate, e.g. 1mbit (with --queue: bufferbloat)"),
    ("queue", "SIZE", "drop-tail limit of the --rate/--trace queue, e.g. 64KiB"),
    (
        "trace",
        "FILE",
        "Mahimahi trace (bundled name or path); a bundled base name such as "
        "Verizon-LTE-short uses its .up file upward and .down downward",
    ),
)
PROFILE_KEYS = frozenset(key for key, _, _ in IMPAIRMENT_OPTIONS) | {"reorder"}
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def add_proxy_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the `netsim proxy` options on `parser`.

    Every value is kept as a string; `run_proxy_command` validates them.

    Args:
        parser: the (sub)parser of the `proxy` command.
    """
    parser.add_argument("--listen", metavar="HOST:PORT", help="address clients send to (required)")
    parser.add_argument(
        "--to", dest="target", metavar="HOST:PORT", help="server to relay to (required)"
    )
    each = parser.add_argument_group(
        "impairments", "applied to each direction of each client (client->server and back)"
    )
    for key, metavar, text in IMPAIRMENT_OPTIONS:
        each.add_argument(f"--{key}", metavar=metavar, help=text)
    each.add_argument(
        "--reorder", action="store_true", help="let jitter reorder datagrams (default: FIFO)"
    )
    one = parser.add_argument_group("per-direction overrides")
    for direction in Direction:
        towards = "client->server" if direction is Direction.UP else "server->client"
        one.add_argument(
            f"--{direction}",
            dest=f"{direction}_overrides",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help=f"override one impairment for {towards} only, e.g. loss=5%%; repeatable",
        )
    parser.add_argument(
        "--nat-timeout",
        metavar="DURATION",
        default=format_duration(DEFAULT_NAT_TIMEOUT_S),
        help="idle client mappings expire after this (default %(default)s; 'never' to keep)",
    )
    parser.add_argument(
        "--max-clients",
        metavar="N",
        default=str(DEFAULT_MAX_CLIENTS),
        help="most client mappings at once (default %(default)s)",
    )
    parser.add_argument("--seed", metavar="N", default="0", help="random seed (default 0)")
    parser.add_argument("--json", action="store_true", help="print the exit report as JSON")


def config_from_arguments(args: argparse.Namespace) -> ProxyConfig:
    """Build the `ProxyConfig` described by parsed `netsim proxy` arguments.

    Args:
        args: the namespace produced by a parser set up with `add_proxy_arguments`.

    Returns:
        The validated configuration.

    Raises:
        ValueError: an argument is missing or malformed (one-line message).
    """
    listen = _required_endpoint(args.listen, "--listen")
    target = _required_endpoint(args.target, "--to")
    shared: dict[str, object] = {}
    for key, _, _ in IMPAIRMENT_OPTIONS:
        value = getattr(args, key)
        if value is not None:
            shared[key] = value
    if args.reorder:
        shared["reorder"] = True
    up = _profile(Direction.UP, shared, args.up_overrides)
    down = _profile(Direction.DOWN, shared, args.down_overrides)
    return ProxyConfig(
        listen=listen,
        target=target,
        up=up,
        down=down,
        seed=_integer(args.seed, "seed", minimum=None),
        nat_timeout_s=_nat_timeout(args.nat_timeout),
        max_clients=_integer(args.max_clients, "--max-clients", minimum=1),
    )


def run_proxy_command(args: argparse.Namespace) -> int:
    """Run `netsim proxy` until SIGINT/SIGTERM, then print the per-direction counters.

    Args:
        args: the namespace produced by a parser set up with `add_proxy_arguments`.

    Returns:
        0 after a clean stop, 1 when the listening address cannot be bound, 2 for a bad
        argument (one line on stderr).
    """
    try:
        config = config_from_arguments(args)
    except ValueError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    proxy = ImpairmentProxy(config)
    failure: str | None = None
    try:
        failure = trio.run(_serve_until_signalled, proxy)
    except* KeyboardInterrupt:
        pass  # Ctrl-C before the signal receiver was installed: still a clean stop
    if failure is not None:
        print(f"{PROG}: error: {failure}", file=sys.stderr)
        return 1
    stats = proxy.statistics()
    listen = proxy.address or config.listen
    if args.json:
        print(json.dumps(statistics_document(stats, config, listen), sort_keys=True))
    else:
        print(format_statistics(stats, config, listen))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry point (`python -m netsim.proxy_cli ...`), same as `netsim proxy`."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="Relay real UDP datagrams through netsim's impairment models."
    )
    add_proxy_arguments(parser)
    return run_proxy_command(parser.parse_args(argv))


async def _serve_until_signalled(proxy: ImpairmentProxy) -> str | None:
    """Serve until SIGINT or SIGTERM; return an error line if the proxy could not start."""
    signals = [signal.SIGINT, signal.SIGTERM]
    with trio.open_signal_receiver(*signals) as received:
        async with trio.open_nursery() as nursery:
            try:
                address = await nursery.start(proxy.serve)
            except OSError as exc:
                return f"cannot listen on {_endpoint(proxy.config.listen)}: {exc}"
            print(
                f"{PROG}: listening on {_endpoint(address)}, relaying to "
                f"{_endpoint(proxy.config.target)} (Ctrl-C to stop)",
                file=sys.stderr,
                flush=True,
            )
            async for _ in received:
                nursery.cancel_scope.cancel()
                break
    return None


# -- exit report -----------------------------------------------------------------------------


def statistics_document(
    stats: ProxyStatistics, config: ProxyConfig, listen: Address | None = None
) -> dict[str, object]:
    """Return the exit report as one JSON-friendly dict (what `--json` prints).

    Args:
        stats: the proxy's final counters.
        config: the configuration it ran with.
        listen: the address it was bound to (default: `config.listen`).
    """
    return {
        "listen": _endpoint(listen or config.listen),
        "target": _endpoint(config.target),
        "seed": config.seed,
        "nat_timeout_s": None if math.isinf(config.nat_timeout_s) else config.nat_timeout_s,
        "profiles": {str(d): config.profile(d).to_mapping() for d in Direction},
        **stats.to_mapping(),
    }


def format_statistics(
    stats: ProxyStatistics, config: ProxyConfig, listen: Address | None = None
) -> str:
    """Return the exit report as a human-readable table, one row per direction.

    Args:
        stats: the proxy's final counters.
        config: the configuration it ran with.
        listen: the address it was bound to (default: `config.listen`).
    """
    expired = "mapping" if stats.mappings_expired == 1 else "mappings"
    clients = "client" if stats.clients == 1 else "clients"
    route = f"{_endpoint(listen or config.listen)} -> {_endpoint(config.target)}"
    lines = [
        f"{PROG} {route}, seed {config.seed}: {stats.clients} {clients}, "
        f"{stats.mappings_expired} {expired} expired"
    ]
    headers = ("direction", "pkts in", "pkts out", "bytes in", "bytes out", "dup", "corrupt")
    rows: list[tuple[str, ...]] = [(*headers, "errors", "drops")]
    for direction in Direction:
        counters = stats.direction(direction)
        rows.append((str(direction), *_counter_cells(counters)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:-1], widths[1:], strict=True)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def _counter_cells(counters: DirectionStatistics) -> tuple[str, ...]:
    drops = ", ".join(f"{reason} {count}" for reason, count in sorted(counters.drops.items()))
    numbers = (
        counters.packets_in,
        counters.packets_out,
        counters.bytes_in,
        counters.bytes_out,
        counters.duplicated,
        counters.corrupted,
        counters.socket_errors,
    )
    return (*(str(n) for n in numbers), drops or "-")


# -- argument parsing -----------------------------------------------------------------------


def _profile(
    direction: Direction, shared: Mapping[str, object], overrides: Sequence[str]
) -> LinkProfile:
    mapping = dict(shared)
    for item in overrides:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in PROFILE_KEYS:
            keys = ", ".join(sorted(PROFILE_KEYS))
            raise ValueError(
                f"bad --{direction} {item!r}: expected KEY=VALUE with KEY one of {keys}"
            )
        mapping[key] = _boolean(value, f"--{direction} reorder") if key == "reorder" else value
    if isinstance(burst := mapping.get("burst"), str):
        mapping["burst"] = _burst(burst)
    if isinstance(trace := mapping.get("trace"), str):
        mapping["trace"] = _trace_name(trace, direction)
    return LinkProfile.from_mapping(mapping)


def _burst(value: str) -> dict[str, float]:
    parts = [part.strip() for part in value.split(",")]
    if len(parts) not in (2, 3):
        raise ValueError(f"bad burst {value!r}: expected P_GB,P_BG[,LOSS_BAD], e.g. 1%,30%")
    names = ("p_good_to_bad", "p_bad_to_good", "loss_bad")
    return {name: parse_ratio(part) for name, part in zip(names, parts, strict=False)}


def _trace_name(value: str, direction: Direction) -> str:
    """Map a bundled base name to its per-direction file; anything else is used as is."""
    if value.endswith((".up", ".down")) or Path(value).exists():
        return value
    candidate = f"{value}.{direction}"
    return candidate if candidate in bundled_traces() else value


def _required_endpoint(value: str | None, option: str) -> Address:
    if value is None:
        raise ValueError(f"{option} HOST:PORT is required")
    return parse_endpoint(value)


def _integer(value: str, name: str, *, minimum: int | None) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"bad {name} {value!r}: expected an integer") from None
    if minimum is not None and number < minimum:
        raise ValueError(f"bad {name} {value!r}: expected an integer >= {minimum}")
    return number


def _nat_timeout(value: str) -> float:
    if value.strip().lower() == "never":
        return math.inf
    timeout_s = parse_duration(value)
    if not timeout_s > 0:
        raise ValueError(f"bad --nat-timeout {value!r}: expected a duration > 0 or 'never'")
    return timeout_s


def _boolean(value: str, name: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE | _FALSE:
        return lowered in _TRUE
    raise ValueError(f"bad {name} {value!r}: expected true or false")


def _endpoint(address: Address) -> str:
    return f"{address[0]}:{address[1]}"


if __name__ == "__main__":
    raise SystemExit(main())
