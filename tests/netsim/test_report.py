"""Report figures from a small hand-made trace are exact; JSON parses; plots are PNG files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from netsim.plot import PlotUnavailable, collect, plot_trace
from netsim.report import Percentiles, Summary, render_json, render_text, summarize
from netsim.trace import Recorder, TraceEvent, read_events

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def hand_made_trace(path: Path) -> None:
    """Two hosts, a NAT, a move; every fate once. Figures below are worked out by hand."""
    with Recorder(path, seed=1, metadata={"app": "hand", "scenario": {"name": "hand"}}) as rec:
        rec.record(0.0, "op", op="add_nat", name="home", public_ip="127.1.0.100")
        rec.record(0.0, "op", op="add_host", host="server", address="127.1.0.1", nat=None)
        rec.record(0.0, "op", op="add_host", host="client", address="127.16.1.2", nat="home")
        c, s, pub = "127.16.1.2:5000", "127.1.0.1:7", "127.1.0.100:20000"
        rec.record(0.0, "nat", nat="home", event="mapping", private=c, public=pub)
        rec.record(0.0, "send", id=1, src=c, dst=s, size=100)
        rec.record(0.01, "deliver", id=1, src=pub, dst=s, size=100, delay=0.01)
        rec.record(0.1, "send", id=2, src=c, dst=s, size=100)
        rec.record(0.13, "deliver", id=2, src=pub, dst=s, size=100, delay=0.03)
        rec.record(0.2, "send", id=3, src=c, dst=s, size=100)
        rec.record(0.2, "drop", id=3, reason="loss", where="up:client")
        rec.record(0.3, "send", id=4, src=c, dst=s, size=100)
        rec.record(0.32, "deliver", id=4, src=pub, dst=s, size=100, delay=0.02)
        rec.record(0.33, "deliver", id=4, src=pub, dst=s, size=100, delay=0.03, dup=True)
        rec.record(0.4, "send", id=5, src=c, dst=s, size=100)  # still in flight at the end
        rec.record(0.5, "send", id=6, src=s, dst=pub, size=50)
        rec.record(0.515, "deliver", id=6, src=s, dst=c, size=50, delay=0.015)
        rec.record(0.6, "send", id=7, src=s, dst=pub, size=50)
        rec.record(0.6, "drop", id=7, reason="nat-expired", where="nat:home")
        rec.record(0.7, "send", id=8, src=s, dst="127.1.0.100:29999", size=50)
        rec.record(0.7, "drop", id=8, reason="nat-no-mapping", where="nat:home")
        rec.record(1.0, "op", op="move_host", host="client", address="127.16.9.9", nat="home")
        rec.record(1.0, "send", id=9, src="127.16.9.9:5000", dst=s, size=100)
        rec.record(1.04, "deliver", id=9, src=pub, dst=s, size=100, delay=0.04, corrupt=True)
        rec.record(0.0, "app", host="client", event="msg_sent", id="a", size=10)
        rec.record(0.05, "app", host="server", event="msg_received", id="a", size=10)
        rec.record(1.0, "app", host="client", event="msg_sent", id="b", size=10)
        rec.record(1.1, "app", host="client", event="retransmit", id="b")
        rec.record(1.15, "app", host="client", event="retransmit", id="b")
        rec.record(1.2, "app", host="server", event="msg_received", id="b", size=10)
        rec.record(1.3, "app", host="server", event="msg_received", id="b", size=10)
        rec.record(2.0, "app", host="client", event="msg_sent", id="c", size=10)
        rec.record(2.0, "app", host="server", event="echo", seq=1)
        rec.record(2.5, "end", reason="duration")


@pytest.fixture
def summary(tmp_path: Path) -> Summary:
    path = tmp_path / "hand.trace"
    hand_made_trace(path)
    return summarize(read_events(path))


def test_flow_figures(summary: Summary) -> None:
    flows = {flow.name: flow for flow in summary.flows}
    assert list(flows) == ["client -> server", "server -> client", "server -> nat:home"]
    up = flows["client -> server"]
    assert (up.packets, up.bytes, up.delivered, up.lost, up.in_flight) == (6, 600, 4, 1, 1)
    assert up.loss == pytest.approx(0.2)
    assert (up.duplicates, up.corrupted, dict(up.drops)) == (1, 1, {"loss": 1})
    assert up.delay == Percentiles(4, 0.02, 0.04, 0.04, 0.04)
    down = flows["server -> client"]
    assert (down.packets, down.delivered, down.lost, down.in_flight) == (2, 1, 1, 0)
    assert down.loss == 0.5
    assert dict(down.drops) == {"nat-expired": 1}
    assert down.delay == Percentiles(1, 0.015, 0.015, 0.015, 0.015)
    unmapped = flows["server -> nat:home"]
    assert (unmapped.packets, unmapped.lost, unmapped.loss) == (1, 1, 1.0)
    assert unmapped.delay == Percentiles(0, None, None, None, None)


def test_place_nat_and_run_figures(summary: Summary) -> None:
    assert summary.places == {
        "nat:home": {"nat-expired": 1, "nat-no-mapping": 1},
        "up:client": {"loss": 1},
    }
    assert summary.nats == {"home": {"mapping": 1}}
    assert (summary.events, summary.end_s, summary.ended_by) == (33, 2.5, "duration")


def test_app_figures(summary: Summary) -> None:
    app = summary.app
    assert (app.sent, app.received, app.duplicates, app.retransmissions) == (3, 2, 1, 2)
    assert app.delivery_ratio == pytest.approx(2 / 3)
    assert app.latency.count == 2
    assert app.latency.p50 == pytest.approx(0.05)
    assert app.latency.p90 == pytest.approx(0.2)
    assert app.latency.max == pytest.approx(0.2)
    assert {name: (c.sent, c.received, c.retransmissions) for name, c in app.hosts.items()} == {
        "client": (3, 0, 2),
        "server": (0, 3, 0),
    }
    assert app.other_events == {"echo": 1}


def test_nearest_rank_percentiles() -> None:
    assert Percentiles.of(range(100, 0, -1)) == Percentiles(100, 50, 90, 99, 100)
    assert Percentiles.of([7.0]) == Percentiles(1, 7.0, 7.0, 7.0, 7.0)
    assert Percentiles.of([]).render_ms() == "-"
    assert Percentiles.of([0.0125, 0.5]).render_ms() == "12.5/500.0/500.0/500.0 ms"


def test_json_round_trip(summary: Summary) -> None:
    document = json.loads(render_json(summary, {"trace": "hand.trace", "seed": 1}))
    assert document["trace"] == "hand.trace"
    assert document["seed"] == 1
    assert document["flows"][0]["name"] == "client -> server"
    assert document["flows"][0]["loss"] == pytest.approx(0.2)
    assert document["flows"][0]["delay"] == {
        "count": 4,
        "p50_s": 0.02,
        "p90_s": 0.04,
        "p99_s": 0.04,
        "max_s": 0.04,
    }
    assert document["messages"]["delivery_ratio"] == pytest.approx(2 / 3)
    assert document["drops_by_place"]["up:client"] == {"loss": 1}


def test_text_rendering(summary: Summary) -> None:
    text = render_text(summary, "title line")
    lines = text.splitlines()
    assert lines[0] == "title line"
    assert lines[1] == "33 events over 2.5s virtual, ended by duration"
    row = next(line for line in lines if line.strip().startswith("client -> server"))
    assert row.split() == [
        "client",
        "->",
        "server",
        "6",
        "4",
        "20.00%",
        "1",
        "20.0/40.0/40.0/40.0",
        "ms",
        "loss",
        "1",
    ]
    assert (
        "  messages sent 3, received 2, delivery 66.67%, duplicates 1, retransmissions 2" in lines
    )
    assert "  other events: echo 1" in lines


def test_plot_points_and_png(tmp_path: Path) -> None:
    path = tmp_path / "hand.trace"
    hand_made_trace(path)
    events = list(read_events(path))
    data = collect(events)
    flows = {series.name: series for series in data.flows}
    up = flows["client -> server"]
    assert [y for _, y in up.sent] == [100, 200, 300, 400, 500, 600]
    assert up.dropped == {"loss": [(0.2, 300)]}
    assert up.duplicates == [(0.33, 400)]
    assert sorted(data.latencies) == [(0.0, 0.05), (1.0, pytest.approx(0.2))]
    png = tmp_path / "out.png"
    plot_trace(events, png, title="hand")
    assert png.read_bytes().startswith(PNG_MAGIC)


def test_plot_of_an_empty_trace(tmp_path: Path) -> None:
    png = tmp_path / "empty.png"
    plot_trace([TraceEvent(0.0, "end", {"reason": "duration"})], png)
    assert png.read_bytes().startswith(PNG_MAGIC)


def test_plot_without_matplotlib_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    with pytest.raises(PlotUnavailable) as info:
        plot_trace([], tmp_path / "never.png")
    assert str(info.value) == (
        "--plot needs matplotlib: pip install 'udpim[plot]' (or pip install matplotlib)"
    )
    assert not (tmp_path / "never.png").exists()
