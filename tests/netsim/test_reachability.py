"""Reachability gaps, traffic per pair (total and idle), rebinding-aware host names, and the
app figures added for long-lived connections (per-host latency, retransmit counts, status)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netsim.plot import collect, plot_trace
from netsim.reachability import IDLE_GUARD_S, Gap, HostGaps, busy_windows
from netsim.report import Summary, render_json, render_text, summarize
from netsim.trace import Recorder, TraceEvent, read_events

C, S = "127.16.1.2:5000", "127.1.0.1:7"
PUB, PUB2, PUB3 = "127.1.0.100:20000", "127.1.0.100:20001", "127.1.0.100:30000"


def reach_trace(path: Path) -> None:
    """A client behind a NAT: its mapping expires (gap 1), comes back, the NAT rebinds twice
    (the second new port is learned only from a delivery) and a packet to the stale port dies
    (gap 2, open at the end). Figures below are worked out by hand."""
    with Recorder(path, seed=1, metadata={"app": "hand", "scenario": {"name": "hand"}}) as rec:
        rec.record(0.0, "op", op="add_nat", name="home", public_ip="127.1.0.100")
        rec.record(0.0, "op", op="add_host", host="server", address="127.1.0.1", nat=None)
        rec.record(0.0, "op", op="add_host", host="client", address="127.16.1.2", nat="home")
        rec.record(0.0, "nat", nat="home", event="mapping", private=C, public=PUB)
        rec.record(0.0, "send", id=1, src=C, dst=S, size=100)
        rec.record(0.01, "deliver", id=1, src=PUB, dst=S, size=100, delay=0.01)
        rec.record(1.0, "send", id=2, src=S, dst=PUB, size=50)
        rec.record(1.01, "deliver", id=2, src=S, dst=C, size=50, delay=0.01)
        rec.record(40.0, "send", id=3, src=S, dst=PUB, size=50)
        rec.record(40.0, "drop", id=3, reason="nat-expired", where="nat:home")
        rec.record(41.0, "send", id=4, src=S, dst=PUB, size=50)
        rec.record(41.0, "drop", id=4, reason="nat-no-mapping", where="nat:home")
        rec.record(45.0, "nat", nat="home", event="mapping", private=C, public=PUB2)
        rec.record(45.0, "send", id=5, src=C, dst=S, size=100)
        rec.record(45.01, "deliver", id=5, src=PUB2, dst=S, size=100, delay=0.01)
        rec.record(46.0, "send", id=6, src=S, dst=PUB2, size=50)
        rec.record(46.01, "deliver", id=6, src=S, dst=C, size=50, delay=0.01)
        rec.record(50.0, "nat", nat="home", event="rebind", public_ip="127.1.0.100")
        rec.record(51.0, "send", id=7, src=C, dst=S, size=100)
        rec.record(51.01, "deliver", id=7, src=PUB3, dst=S, size=100, delay=0.01)
        rec.record(60.0, "nat", nat="home", event="rebind", public_ip="127.1.0.100")
        rec.record(61.0, "send", id=8, src=S, dst=PUB3, size=50)
        rec.record(61.0, "drop", id=8, reason="nat-no-mapping", where="nat:home")
        rec.record(0.0, "app", host="client", event="msg_sent", id="a", size=10)
        rec.record(0.05, "app", host="server", event="msg_received", id="a", size=10)
        rec.record(41.0, "app", host="client", event="msg_sent", id="b", size=10)
        rec.record(46.01, "app", host="server", event="msg_received", id="b", size=10)
        rec.record(99.0, "app", host="client", event="retransmit", count=3)
        rec.record(99.0, "app", host="client", event="retransmit", id="b")
        rec.record(99.0, "app", host="client", event="status", heartbeat_s=25.0, phase="x")
        rec.record(99.5, "app", host="client", event="status", learned_s=30.0, ok=True, n=[1])
        rec.record(100.0, "end", reason="duration")


@pytest.fixture
def summary(tmp_path: Path) -> Summary:
    path = tmp_path / "reach.trace"
    reach_trace(path)
    return summarize(read_events(path))


def test_gaps_open_at_a_nat_death_and_close_at_the_next_delivery(summary: Summary) -> None:
    assert summary.gaps == (HostGaps("client", (Gap(40.0, 46.01, 2), Gap(61.0, None, 1)), 100.0),)
    client = summary.gaps[0]
    assert client.total_s == pytest.approx(6.01 + 39.0)
    assert client.longest_s == pytest.approx(39.0)
    assert client.drops == 3


def test_a_port_learned_from_a_delivery_names_its_host(summary: Summary) -> None:
    flows = {flow.name: flow for flow in summary.flows}
    assert list(flows) == ["client -> server", "server -> client"]
    assert flows["server -> client"].drops == {"nat-expired": 1, "nat-no-mapping": 2}


def test_busy_windows_merge_around_own_message_events(tmp_path: Path) -> None:
    path = tmp_path / "reach.trace"
    reach_trace(path)
    windows = busy_windows(read_events(path))
    assert windows == {
        "client": [(0.0, IDLE_GUARD_S), (41.0, 41.0 + IDLE_GUARD_S)],
        "server": [
            (0.05 - IDLE_GUARD_S, 0.05 + IDLE_GUARD_S),
            (46.01 - IDLE_GUARD_S, 46.01 + IDLE_GUARD_S),
        ],
    }


def test_pair_costs_total_and_idle(summary: Summary) -> None:
    (pair,) = summary.pairs
    assert pair.name == "client <-> server"
    assert (pair.packets, pair.bytes, pair.span_s) == (8, 550, 100.0)
    # busy: [0, 10.05] and [36.01, 56.01] (41..51 and 36.01..56.01 merged): 30.05 s
    assert pair.idle_s == pytest.approx(100.0 - 10.05 - 20.0)
    # idle sends: id 8 only (ids 3..7 fall in [36.01, 56.01], ids 1 and 2 in [0, 10.05])
    assert (pair.idle_packets, pair.idle_bytes) == (1, 50)
    assert pair.bytes_per_hour == pytest.approx(550 * 36)
    assert pair.idle_bytes_per_hour == pytest.approx(50 * 3600 / pair.idle_s)
    assert pair.idle_packets_per_hour == pytest.approx(3600 / pair.idle_s)


def test_retransmit_counts_per_host_latency_and_last_status(summary: Summary) -> None:
    app = summary.app
    assert app.retransmissions == 4
    assert app.hosts["client"].retransmissions == 4
    server = app.hosts["server"].latency
    assert (server.count, server.p50) == (2, 0.05)
    assert server.max == pytest.approx(5.01)
    assert app.hosts["client"].latency.count == 0
    assert app.status == {"client": {"learned_s": 30.0, "ok": True}}
    assert "status" not in app.other_events


def test_json_and_text_show_the_new_figures(summary: Summary) -> None:
    document = json.loads(render_json(summary))
    (gaps,) = document["reachability_gaps"]
    assert (gaps["host"], gaps["gaps"], gaps["drops"]) == ("client", 2, 3)
    assert gaps["intervals"][1] == {"start_s": 61.0, "end_s": None, "drops": 1}
    assert document["pairs"][0]["idle_bytes"] == 50
    assert document["messages"]["status"] == {"client": {"learned_s": 30.0, "ok": True}}
    assert document["messages"]["hosts"]["server"]["latency"]["count"] == 2
    lines = render_text(summary).splitlines()
    assert (
        "  client             2 gaps, total 45.0s, longest 39.0s, 3 datagrams lost, "
        "1 open at the end" in lines
    )
    assert any(line.split()[:3] == ["client", "<->", "server"] for line in lines)
    assert "  client             learned_s 30, ok True" in lines
    assert any(line.startswith("  server ") and "latency 50.0/" in line for line in lines)


def test_no_gaps_is_said(tmp_path: Path) -> None:
    summary = summarize([TraceEvent(0.0, "end", {"reason": "duration"})])
    assert summary.gaps == ()
    assert summary.pairs == ()
    lines = render_text(summary).splitlines()
    assert lines[lines.index(next(ln for ln in lines if ln.startswith("reachability"))) + 1] == (
        "  none"
    )


def test_plot_shades_gaps_and_splits_the_cdf_by_receiver(tmp_path: Path) -> None:
    path = tmp_path / "reach.trace"
    reach_trace(path)
    events = list(read_events(path))
    data = collect(events)
    assert data.gaps == {"client": [(40.0, 46.01), (61.0, 100.0)]}
    assert data.latency_by_host == {"server": [0.05, pytest.approx(5.01)]}
    png = tmp_path / "reach.png"
    plot_trace(events, png, title="reach")
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_probe_sockets_neither_open_nor_close_gaps(tmp_path: Path) -> None:
    """Datagrams to a declared probe socket that die at the NAT are counted apart; one
    delivered to it does not close a real gap either."""
    probe, probe_pub = "127.16.1.2:6000", "127.1.0.100:21000"
    with Recorder(tmp_path / "p.trace", seed=1, metadata={}) as rec:
        rec.record(0.0, "op", op="add_nat", name="home", public_ip="127.1.0.100")
        rec.record(0.0, "op", op="add_host", host="server", address="127.1.0.1", nat=None)
        rec.record(0.0, "op", op="add_host", host="client", address="127.16.1.2", nat="home")
        rec.record(0.0, "app", host="client", event="probe_socket", port=6000)
        rec.record(0.0, "nat", nat="home", event="mapping", private=C, public=PUB)
        rec.record(0.0, "nat", nat="home", event="mapping", private=probe, public=probe_pub)
        rec.record(30.0, "send", id=1, src=S, dst=probe_pub, size=23)
        rec.record(30.0, "drop", id=1, reason="nat-expired", where="nat:home")
        rec.record(40.0, "send", id=2, src=S, dst=PUB, size=50)
        rec.record(40.0, "drop", id=2, reason="nat-expired", where="nat:home")
        rec.record(41.0, "send", id=3, src=S, dst=probe, size=23)
        rec.record(41.01, "deliver", id=3, src=S, dst=probe, size=23, delay=0.01)
        rec.record(45.0, "send", id=4, src=S, dst=C, size=50)
        rec.record(45.01, "deliver", id=4, src=S, dst=C, size=50, delay=0.01)
    summary = summarize(read_events(tmp_path / "p.trace"))
    assert summary.gaps == (HostGaps("client", (Gap(40.0, 45.01, 1),), 45.01, 1),)
    assert render_text(summary).count("(+1 to probe sockets, expected)") == 1
