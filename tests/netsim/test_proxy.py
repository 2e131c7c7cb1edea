"""The real UDP impairment proxy, over loopback sockets and the real clock.

Every socket is bound to 127.0.0.1. Results are decided by counts (proxy statistics and what
the receivers got), never by a sleep; waits poll a condition under `trio.fail_after`, and the
only wall-clock assertions are lower bounds (added delay, NAT idle time).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

from netsim.models import DropReason, LinkDirection, LinkProfile, derive_rng
from netsim.proxy import (
    Address,
    Direction,
    DirectionStatistics,
    ImpairmentProxy,
    ProxyConfig,
    ProxyStatistics,
    serve_proxy,
)
from netsim.proxy_cli import (
    add_proxy_arguments,
    config_from_arguments,
    format_statistics,
    run_proxy_command,
    statistics_document,
)

LOOPBACK = "127.0.0.1"
TIMEOUT_S = 10.0


async def bound_socket() -> trio.socket.SocketType:
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await sock.bind((LOOPBACK, 0))
    return sock


def address_of(sock: trio.socket.SocketType) -> Address:
    host, port = sock.getsockname()
    return (host, port)


async def wait_until(condition: Callable[[], bool]) -> None:
    """Poll `condition`, e.g. over public statistics (the caller bounds it with `fail_after`)."""
    while not condition():  # noqa: ASYNC110 - the proxy offers no event to wait on, by design
        await trio.sleep(0.002)


async def start_proxy(
    nursery: trio.Nursery, server: trio.socket.SocketType, **changes: object
) -> tuple[ImpairmentProxy, Address]:
    config = ProxyConfig(listen=(LOOPBACK, 0), target=address_of(server), **changes)  # type: ignore[arg-type]
    proxy = ImpairmentProxy(config)
    proxy_address: Address = await nursery.start(proxy.serve)
    return proxy, proxy_address


def parse_proxy_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="netsim proxy")
    add_proxy_arguments(parser)
    return parser.parse_args(list(argv))


# -- relaying ---------------------------------------------------------------------------------


async def test_relays_both_ways_and_server_sees_one_source_per_client() -> None:
    with trio.fail_after(TIMEOUT_S), await bound_socket() as server:
        async with trio.open_nursery() as nursery:
            proxy, proxy_address = await start_proxy(nursery, server)
            assert proxy.address == proxy_address
            alice, bob = await bound_socket(), await bound_socket()
            with alice, bob:
                await alice.sendto(b"from alice", proxy_address)
                await bob.sendto(b"from bob", proxy_address)
                sources: dict[bytes, Address] = {}
                for _ in range(2):
                    data, source = await server.recvfrom(2048)
                    sources[data] = (source[0], source[1])
                assert len(set(sources.values())) == 2
                assert address_of(alice) not in sources.values()
                for data, source in sources.items():
                    await server.sendto(b"reply to " + data, source)
                assert await alice.recvfrom(2048) == (b"reply to from alice", proxy_address)
                assert await bob.recvfrom(2048) == (b"reply to from bob", proxy_address)
                mappings = {m.client: m.upstream for m in proxy.mappings()}
                assert mappings == {
                    address_of(alice): sources[b"from alice"],
                    address_of(bob): sources[b"from bob"],
                }
            stats = proxy.statistics()
            assert (stats.clients, stats.active_mappings, stats.mappings_expired) == (2, 2, 0)
            for direction in Direction:
                counters = stats.direction(direction)
                assert (counters.packets_in, counters.packets_out, counters.dropped) == (2, 2, 0)
            assert stats.up.bytes_out == len(b"from alice") + len(b"from bob")
            nursery.cancel_scope.cancel()


async def test_serve_proxy_function_reports_bound_address() -> None:
    with trio.fail_after(TIMEOUT_S), await bound_socket() as server, await bound_socket() as client:
        async with trio.open_nursery() as nursery:
            config = ProxyConfig(listen=(LOOPBACK, 0), target=address_of(server))
            proxy_address: Address = await nursery.start(serve_proxy, config)
            assert proxy_address[0] == LOOPBACK
            assert proxy_address[1] != 0
            await client.sendto(b"ping", proxy_address)
            assert (await server.recvfrom(2048))[0] == b"ping"
            nursery.cancel_scope.cancel()


async def test_datagrams_from_a_stranger_are_filtered() -> None:
    with trio.fail_after(TIMEOUT_S), await bound_socket() as server:
        async with trio.open_nursery() as nursery:
            proxy, proxy_address = await start_proxy(nursery, server, nat_timeout_s=math.inf)
            with await bound_socket() as client, await bound_socket() as stranger:
                await client.sendto(b"hello", proxy_address)
                _, upstream = await server.recvfrom(2048)
                # Both reach the same upstream socket in this order, so the client's first
                # datagram would be the stranger's if it were relayed.
                await stranger.sendto(b"intruder", upstream)
                await server.sendto(b"welcome", upstream)
                assert (await client.recvfrom(2048))[0] == b"welcome"
            down = proxy.statistics().down
            assert down.drops == {DropReason.NAT_FILTERED: 1}
            assert (down.packets_in, down.packets_out) == (2, 1)
            nursery.cancel_scope.cancel()


async def test_client_limit_drops_new_clients() -> None:
    with trio.fail_after(TIMEOUT_S), await bound_socket() as server:
        async with trio.open_nursery() as nursery:
            proxy, proxy_address = await start_proxy(nursery, server, max_clients=1)
            with await bound_socket() as first, await bound_socket() as second:
                await first.sendto(b"one", proxy_address)
                assert (await server.recvfrom(2048))[0] == b"one"
                await second.sendto(b"refused", proxy_address)
                await first.sendto(b"two", proxy_address)
                assert (await server.recvfrom(2048))[0] == b"two"
            stats = proxy.statistics()
            assert stats.up.drops == {DropReason.NAT_NO_MAPPING: 1}
            assert stats.clients == 1
            nursery.cancel_scope.cancel()


# -- impairments ------------------------------------------------------------------------------


async def test_loss_rate_is_binomial_and_counted_at_both_ends() -> None:
    sent, loss, seed = 2000, 0.1, 7
    received: list[int] = []

    async def sink(server: trio.socket.SocketType) -> None:
        while True:
            data, _ = await server.recvfrom(2048)
            received.append(int(data))

    with trio.fail_after(30), await bound_socket() as server, await bound_socket() as client:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sink, server)
            proxy, proxy_address = await start_proxy(
                nursery, server, up=LinkProfile(loss=loss), seed=seed
            )

            def settled(count: int) -> bool:
                up = proxy.statistics().up
                return up.packets_out + up.dropped == count and len(received) == up.packets_out

            for batch_start in range(0, sent, 100):  # paced: the OS never drops for us
                for number in range(batch_start, batch_start + 100):
                    await client.sendto(b"%d" % number, proxy_address)
                await wait_until(functools.partial(settled, batch_start + 100))
            nursery.cancel_scope.cancel()

    up = proxy.statistics().up
    lost = up.drops[DropReason.LOSS]
    assert up.drops == {DropReason.LOSS: lost}
    tolerance = 4 * math.sqrt(sent * loss * (1 - loss))  # 4 standard deviations
    assert abs(lost - sent * loss) <= tolerance
    assert len(received) == len(set(received)) == sent - lost == up.packets_out
    # The proxy draws from the documented per-client stream: a bare LinkDirection seeded the
    # same way, fed the same datagrams, loses exactly as many.
    reference = LinkDirection(LinkProfile(loss=loss), derive_rng(seed, "proxy", "0", "up"))
    expected = sum(reference.transmit(b"%d" % n, float(n)).dropped is not None for n in range(sent))
    assert lost == expected


async def test_delay_adds_at_least_the_configured_latency() -> None:
    up_delay_s, down_delay_s = 0.03, 0.02
    with trio.fail_after(TIMEOUT_S), await bound_socket() as server, await bound_socket() as client:
        async with trio.open_nursery() as nursery:
            _, proxy_address = await start_proxy(
                nursery,
                server,
                up=LinkProfile(delay_s=up_delay_s),
                down=LinkProfile(delay_s=down_delay_s),
            )
            for number in range(3):
                started_at = trio.current_time()
                await client.sendto(b"%d" % number, proxy_address)
                data, source = await server.recvfrom(2048)
                reached_server_at = trio.current_time()
                await server.sendto(data, source)
                assert await client.recvfrom(2048) == (data, proxy_address)
                assert reached_server_at - started_at >= up_delay_s
                assert trio.current_time() - started_at >= up_delay_s + down_delay_s
            nursery.cancel_scope.cancel()


async def test_jitter_without_reorder_keeps_datagrams_in_order() -> None:
    count = 40
    profile = LinkProfile(jitter_s=0.01, reorder=False)
    with trio.fail_after(TIMEOUT_S), await bound_socket() as server, await bound_socket() as client:
        async with trio.open_nursery() as nursery:
            _, proxy_address = await start_proxy(nursery, server, up=profile, seed=3)
            for number in range(count):
                await client.sendto(b"%d" % number, proxy_address)
            order = [int((await server.recvfrom(2048))[0]) for _ in range(count)]
            assert order == list(range(count))
            nursery.cancel_scope.cancel()


async def test_duplicates_and_corruption_are_applied_and_counted() -> None:
    count = 5
    payload = bytes(range(32))
    with trio.fail_after(TIMEOUT_S), await bound_socket() as server, await bound_socket() as client:
        async with trio.open_nursery() as nursery:
            proxy, proxy_address = await start_proxy(
                nursery,
                server,
                up=LinkProfile(duplicate=1.0),
                down=LinkProfile(corrupt=1.0),
            )
            for _ in range(count):
                await client.sendto(payload, proxy_address)
            copies = [await server.recvfrom(2048) for _ in range(2 * count)]
            assert all(data == payload for data, _ in copies)
            await server.sendto(payload, copies[0][1])
            corrupted, _ = await client.recvfrom(2048)
            flipped = sum(bin(a ^ b).count("1") for a, b in zip(corrupted, payload, strict=True))
            assert flipped == 1
            stats = proxy.statistics()
            assert (stats.up.packets_in, stats.up.packets_out, stats.up.duplicated) == (5, 10, 5)
            assert (stats.down.packets_out, stats.down.corrupted) == (1, 1)
            nursery.cancel_scope.cancel()


async def test_pending_delivery_limit_drops_as_queue() -> None:
    with trio.fail_after(TIMEOUT_S), await bound_socket() as server, await bound_socket() as client:
        async with trio.open_nursery() as nursery:
            proxy, proxy_address = await start_proxy(
                nursery, server, up=LinkProfile(delay_s=0.05), max_pending_packets=1
            )
            for number in range(3):
                await client.sendto(b"%d" % number, proxy_address)
            await wait_until(lambda: proxy.statistics().up.packets_in == 3)
            assert proxy.statistics().pending_packets == 1
            assert (await server.recvfrom(2048))[0] == b"0"
            await wait_until(lambda: proxy.statistics().up.packets_out == 1)
            assert proxy.statistics().up.drops == {DropReason.QUEUE: 2}
            nursery.cancel_scope.cancel()


# -- NAT timeout ------------------------------------------------------------------------------


@pytest.mark.slow
async def test_idle_mapping_expires_and_next_datagram_gets_a_new_port() -> None:
    timeout_s = 0.2
    with trio.fail_after(TIMEOUT_S), await bound_socket() as server, await bound_socket() as client:
        async with trio.open_nursery() as nursery:
            proxy, proxy_address = await start_proxy(nursery, server, nat_timeout_s=timeout_s)
            await client.sendto(b"a", proxy_address)
            _, old_upstream = await server.recvfrom(2048)
            first_expiry = proxy.mappings()[0].expires_at
            await client.sendto(b"keepalive", proxy_address)  # client traffic refreshes
            assert await server.recvfrom(2048) == (b"keepalive", old_upstream)
            last_sent_at = trio.current_time()
            assert proxy.mappings()[0].expires_at > first_expiry
            await server.sendto(b"reply", old_upstream)  # server traffic does not refresh
            assert (await client.recvfrom(2048))[0] == b"reply"

            await wait_until(lambda: proxy.statistics().mappings_expired == 1)
            assert trio.current_time() - last_sent_at >= timeout_s
            assert proxy.mappings() == []
            await server.sendto(b"too late", old_upstream)  # the old port is closed
            await client.sendto(b"b", proxy_address)
            data, new_upstream = await server.recvfrom(2048)
            assert data == b"b"
            assert new_upstream != old_upstream
            await server.sendto(b"fresh", new_upstream)
            assert (await client.recvfrom(2048))[0] == b"fresh"
            stats = proxy.statistics()
            assert (stats.clients, stats.active_mappings, stats.mappings_expired) == (2, 1, 1)
            assert stats.down.packets_in == 2  # "too late" never reached the proxy
            nursery.cancel_scope.cancel()


# -- command line -------------------------------------------------------------------------------


def test_arguments_build_per_direction_profiles() -> None:
    args = parse_proxy_args(
        "--listen", "127.0.0.1:9000", "--to", "127.0.0.1:9001", "--loss", "10%",
        "--delay", "25ms", "--jitter", "5ms", "--reorder", "--duplicate", "1%",
        "--corrupt", "0.1%", "--mtu", "1400", "--down", "loss=2%", "--down", "reorder=no",
        "--nat-timeout", "30s", "--seed", "42", "--max-clients", "8",
    )  # fmt: skip
    config = config_from_arguments(args)
    assert (config.listen, config.target) == (("127.0.0.1", 9000), ("127.0.0.1", 9001))
    assert (config.seed, config.nat_timeout_s, config.max_clients) == (42, 30.0, 8)
    assert config.up == LinkProfile(
        delay_s=0.025, jitter_s=0.005, reorder=True, loss=0.1, duplicate=0.01,
        corrupt=0.001, mtu_bytes=1400,
    )  # fmt: skip
    assert config.down == config.up.with_changes(loss=0.02, reorder=False)


def test_burst_rate_queue_and_bundled_trace_pair() -> None:
    args = parse_proxy_args(
        "--listen", "127.0.0.1:0", "--to", "127.0.0.1:9", "--burst", "1%,30%,0.9",
        "--rate", "1mbit", "--queue", "64KiB", "--down", "trace=Verizon-LTE-short",
        "--nat-timeout", "never",
    )  # fmt: skip
    config = config_from_arguments(args)
    burst = config.up.burst
    assert burst is not None
    assert (burst.p_good_to_bad, burst.p_bad_to_good, burst.loss_bad) == (0.01, 0.3, 0.9)
    assert (config.up.rate_bps, config.up.queue_bytes) == (1e6, 65536)
    assert config.up.trace is None
    assert config.down.trace is not None
    assert config.down.trace.name.endswith(".down")
    assert config.nat_timeout_s == math.inf


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--to", "127.0.0.1:9"], "--listen"),
        (["--listen", "127.0.0.1:0"], "--to"),
        (["--listen", "nowhere", "--to", "127.0.0.1:9"], "nowhere"),
        (["--listen", "127.0.0.1:0", "--to", "127.0.0.1:70000"], "70000"),
        (["--listen", "127.0.0.1:0", "--to", "127.0.0.1:9", "--loss", "150%"], "150%"),
        (["--listen", "127.0.0.1:0", "--to", "127.0.0.1:9", "--delay", "5 parsecs"], "parsecs"),
        (["--listen", "127.0.0.1:0", "--to", "127.0.0.1:9", "--trace", "no-such"], "no-such"),
        (["--listen", "127.0.0.1:0", "--to", "127.0.0.1:9", "--burst", "1%"], "burst"),
        (["--listen", "127.0.0.1:0", "--to", "127.0.0.1:9", "--seed", "x"], "seed"),
        (["--listen", "127.0.0.1:0", "--to", "127.0.0.1:9", "--up", "speed=9"], "speed"),
        (["--listen", "127.0.0.1:0", "--to", "127.0.0.1:9", "--nat-timeout", "0s"], "0s"),
        (["--listen", "127.0.0.1:0", "--to", "127.0.0.1:9", "--max-clients", "0"], "clients"),
    ],
)
def test_bad_argument_is_one_line_and_exit_2(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_proxy_command(parse_proxy_args(*argv)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("netsim proxy: error: ")
    assert fragment in lines[0]


def test_unbindable_listen_address_is_one_line_and_exit_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind((LOOPBACK, 0))
        port = taken.getsockname()[1]
        code = run_proxy_command(
            parse_proxy_args("--listen", f"127.0.0.1:{port}", "--to", "127.0.0.1:9")
        )
    assert code == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"netsim proxy: error: cannot listen on 127.0.0.1:{port}")


def test_exit_report_renders_as_table_and_json() -> None:
    config = ProxyConfig(listen=(LOOPBACK, 9000), target=(LOOPBACK, 9001), seed=5)
    stats = ProxyStatistics(
        up=DirectionStatistics(
            packets_in=10, packets_out=9, bytes_in=100, bytes_out=90,
            drops={DropReason.LOSS: 1},
        ),
        down=DirectionStatistics(),
        clients=1, active_mappings=1, mappings_expired=0, pending_packets=0,
    )  # fmt: skip
    table = format_statistics(stats, config).splitlines()
    assert (
        table[0]
        == "netsim proxy 127.0.0.1:9000 -> 127.0.0.1:9001, seed 5: 1 client, 0 mappings expired"
    )
    assert table[1].split() == [
        "direction", "pkts", "in", "pkts", "out", "bytes", "in", "bytes", "out", "dup",
        "corrupt", "errors", "drops",
    ]  # fmt: skip
    assert table[2].split() == ["up", "10", "9", "100", "90", "0", "0", "0", "loss", "1"]
    assert table[3].split() == ["down", "0", "0", "0", "0", "0", "0", "0", "-"]
    document = json.loads(json.dumps(statistics_document(stats, config)))
    assert document["up"]["drops"] == {"loss": 1}
    assert (document["listen"], document["seed"], document["clients"]) == ("127.0.0.1:9000", 5, 1)
    assert document["profiles"]["up"] == config.up.to_mapping()


@pytest.mark.slow
def test_command_relays_and_prints_counters_on_sigint() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind((LOOPBACK, 0))
        server.settimeout(TIMEOUT_S)
        target = "{}:{}".format(*server.getsockname())
        command = [sys.executable, "-m", "netsim", "proxy", "--listen", "127.0.0.1:0"]
        proc = subprocess.Popen(
            [*command, "--to", target, "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            assert proc.stderr is not None
            ready, _, _ = select.select([proc.stderr], [], [], TIMEOUT_S)
            assert ready, "the proxy never announced its address"
            announcement = proc.stderr.readline()
            listen = announcement.split("listening on ")[1].split(",")[0]
            host, port = listen.rsplit(":", 1)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
                client.bind((LOOPBACK, 0))
                client.settimeout(TIMEOUT_S)
                client.sendto(b"hello", (host, int(port)))
                data, upstream = server.recvfrom(2048)
                server.sendto(b"hi " + data, upstream)
                assert client.recvfrom(2048)[0] == b"hi hello"
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=TIMEOUT_S)
        finally:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    report = json.loads(out)
    assert report["listen"] == listen
    assert (report["up"]["packets_out"], report["down"]["packets_out"]) == (1, 1)
    assert report["clients"] == 1
