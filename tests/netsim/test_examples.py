"""Example apps: stop-and-wait delivers everything under loss, ping measures loss; both run on
real loopback sockets too."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from netsim.app import WorkloadError
from netsim.examples.ping import PingApp, PingClient, PingServer, decode_ping_untrusted, encode_ping
from netsim.examples.stopwait import StopWaitApp, StopWaitReceiver, StopWaitSender, decode_untrusted
from netsim.runner import run_scenario
from netsim.scenario import load_scenario

STOPWAIT = """
duration = "10min"
seed = 11
app = "netsim.examples.stopwait:StopWaitApp"
[hosts.receiver]
address = "127.1.0.1"
[hosts.sender]
address = "127.1.0.2"
link = { delay = "20ms", loss = "20%" }
[workload]
count = 200
timeout = "100ms"
"""

PING_5 = """
duration = "200s"
seed = 12
app = "netsim.examples.ping:PingApp"
[hosts.server]
address = "127.1.0.1"
[hosts.client]
address = "127.1.0.2"
link = { delay = "10ms", loss = "5%" }
[workload]
interval = "100ms"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_stopwait_delivers_everything_under_20_percent_loss(tmp_path: Path) -> None:
    result = run_scenario(load_scenario(write(tmp_path, STOPWAIT)))
    app = result.summary().app
    assert result.ended_by == "app-done"
    assert (app.sent, app.received, app.delivery_ratio, app.duplicates) == (200, 200, 1.0, 0)
    # a round trip survives with p = 0.8 ** 2 = 0.64, so about 0.56 resends per message
    assert 80 < app.retransmissions < 150
    assert app.latency.p50 == pytest.approx(0.02)  # one way: most messages get through at once
    assert app.latency.max is not None
    assert app.latency.max >= 0.22  # some needed two or more retransmissions (100 ms timeout)


def test_ping_measures_the_configured_loss(tmp_path: Path) -> None:
    result = run_scenario(load_scenario(write(tmp_path, PING_5)))
    summary = result.summary()
    flows = {flow.name: flow for flow in summary.flows}
    up, down = flows["client -> server"], flows["server -> client"]
    assert up.packets == 2000
    for flow in (up, down):
        assert flow.loss is not None
        assert 0.035 < flow.loss < 0.065
        assert set(flow.drops) == {"loss"}
    assert summary.app.delivery_ratio == pytest.approx(1 - 0.05 * 2, abs=0.03)
    assert summary.app.latency.p50 == pytest.approx(0.02)  # the RTT: client's up + down link


def test_lossy_ping_scenario_reports_about_2_percent() -> None:
    summary = run_scenario(load_scenario("lossy-ping")).summary()
    for flow in summary.flows:
        assert flow.loss is not None
        assert 0.01 < flow.loss < 0.03
        assert flow.delay.p50 == pytest.approx(0.025)


@pytest.mark.parametrize(
    ("factory", "workload", "message"),
    [
        (PingApp, {"interval": "soon"}, "workload.interval: bad duration 'soon'"),
        (PingApp, {"interval": 0}, "workload.interval: must be more than 0s"),
        (PingApp, {"size": 4}, "workload.size: a ping needs at least 12 bytes"),
        (PingApp, {"port": 70000}, "workload.port: expected 1..65535"),
        (PingApp, {"clients": "a"}, "workload.clients: expected a list of names"),
        (PingApp, {"count": 0}, "workload.count: expected an integer >= 1"),
        (PingApp, {"intreval": "1s"}, "workload.intreval: unknown key"),
        (StopWaitApp, {"timeout": True}, "workload.timeout: expected a duration"),
        (StopWaitApp, {"size": "big"}, "workload.size: bad size 'big'"),
        (StopWaitApp, {"gap": "-1s"}, "workload.gap: bad duration"),
        (StopWaitApp, {"sender": 3}, "workload.sender: expected a string"),
    ],
)
def test_workload_errors_name_the_key(
    factory: type, workload: dict[str, object], message: str
) -> None:
    with pytest.raises(WorkloadError) as info:
        factory(workload)
    assert str(info.value).startswith(message)


def test_decoders_ignore_garbage() -> None:
    assert decode_ping_untrusted(b"") is None
    assert decode_ping_untrusted(b"HELO" + bytes(8)) is None
    assert decode_ping_untrusted(encode_ping(b"PONG", 7, 64)) == (b"PONG", 7)
    assert len(encode_ping(b"PING", 1, 3)) == 12
    assert decode_untrusted(b"D\x00") is None
    assert decode_untrusted(b"X\x00\x00\x00\x01") is None
    assert decode_untrusted(b"A\x00\x00\x00\x05") == (b"A", 5)


def udp_socket() -> trio.socket.SocketType:
    return trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)


async def test_ping_runs_on_real_loopback_sockets() -> None:
    events: list[tuple[str, dict[str, object]]] = []

    def sink(event: str, **fields: object) -> None:
        events.append((event, fields))

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            server = PingServer(udp_socket, ("127.0.0.1", 0), sink)
            address = await nursery.start(server.serve)
            client = PingClient(
                udp_socket,
                address,
                name="c",
                interval_s=0.01,
                count=3,
                size_bytes=64,
                linger_s=0.05,
                sink=sink,
            )
            await client.run()
            nursery.cancel_scope.cancel()
    received = [fields["id"] for event, fields in events if event == "msg_received"]
    assert received == ["c:0", "c:1", "c:2"]
    assert sum(event == "echo" for event, _ in events) == 3


async def test_stopwait_runs_on_real_loopback_sockets() -> None:
    events: list[tuple[str, dict[str, object]]] = []

    def sink(event: str, **fields: object) -> None:
        events.append((event, fields))

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            receiver = StopWaitReceiver(udp_socket, ("127.0.0.1", 0), sink)
            address = await nursery.start(receiver.serve)
            sender = StopWaitSender(
                udp_socket, address, count=5, size_bytes=100, timeout_s=1.0, gap_s=0.0, sink=sink
            )
            await sender.run()
            nursery.cancel_scope.cancel()
    assert [fields["id"] for event, fields in events if event == "msg_received"] == list(range(5))
    assert sender.retransmissions == 0
