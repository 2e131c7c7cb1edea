"""netsim.mahimahi: trace parsing/loading, opportunity arithmetic, and trace-driven links."""

from __future__ import annotations

from pathlib import Path

import pytest

from netsim.mahimahi import BYTES_PER_OPPORTUNITY, MahimahiTrace, bundled_traces
from netsim.models import DropReason, LinkDirection, LinkProfile, derive_rng

SMALL = MahimahiTrace.parse_untrusted("5\n5\n10\n20\n", "small")  # period 20 ms


def trace_link(trace: MahimahiTrace, **changes: object) -> LinkDirection:
    profile = LinkProfile(trace=trace, queue_bytes=1_000_000).with_changes(**changes)
    return LinkDirection(profile, derive_rng(3, "trace-test"))


def departures(direction: LinkDirection, sends: list[tuple[float, int]]) -> list[float | None]:
    out: list[float | None] = []
    for now, size in sends:
        verdict = direction.transmit(bytes(size), now)
        out.append(verdict.deliveries[0].at if verdict.deliveries else None)
    return out


# --- parsing and loading ----------------------------------------------------------------------


def test_bundled_traces_are_listed_and_load() -> None:
    names = bundled_traces()
    assert names == [
        "TMobile-UMTS-driving.down",
        "TMobile-UMTS-driving.up",
        "Verizon-LTE-short.down",
        "Verizon-LTE-short.up",
    ]
    trace = MahimahiTrace.load("Verizon-LTE-short.down")
    assert trace.name == "Verizon-LTE-short.down"
    assert trace.period_ms == 140_000
    assert len(trace.opportunities_ms) == 58_655
    assert MahimahiTrace.load("Verizon-LTE-short.down") is trace


def test_load_by_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.up"
    path.write_text("1\n2\n\n4\n", encoding="ascii")
    trace = MahimahiTrace.load(path)
    assert trace.opportunities_ms == (1, 2, 4)
    assert trace.period_ms == 4
    assert MahimahiTrace.load(trace.name) == trace


def test_load_missing_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^bad trace 'Nope\.down': not a bundled trace") as info:
        MahimahiTrace.load("Nope.down")
    assert "Verizon-LTE-short.down" in str(info.value)
    with pytest.raises(ValueError, match="not a bundled trace"):
        MahimahiTrace.load(tmp_path / "absent")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "bad trace 't': expected at least one timestamp > 0"),
        ("0\n0\n", "bad trace 't': expected at least one timestamp > 0"),
        ("1\nabc\n", "bad trace 't' line 2: expected a whole number of milliseconds, got 'abc'"),
        ("1\n-3\n", "bad trace 't' line 2: expected a whole number of milliseconds, got '-3'"),
        ("1\n2.5\n", "bad trace 't' line 2: expected a whole number"),
        ("5\n7\n6\n", "bad trace 't' line 3: timestamp 6 is before 7"),
    ],
)
def test_parse_untrusted_rejects_bad_files(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        MahimahiTrace.parse_untrusted(text, "t")
    assert str(info.value) == message or str(info.value).startswith(message)


def test_bad_file_on_disk_reports_path_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.down"
    path.write_text("1\n2\nthree\n", encoding="ascii")
    with pytest.raises(ValueError, match=r"line 3: expected a whole number"):
        MahimahiTrace.load(path)


# --- opportunity arithmetic -------------------------------------------------------------------


def test_next_opportunity_repeats_the_trace() -> None:
    assert SMALL.next_opportunity(0.0) == pytest.approx(0.005)
    assert SMALL.next_opportunity(0.005) == pytest.approx(0.005)
    assert SMALL.next_opportunity(0.0051) == pytest.approx(0.010)
    assert SMALL.next_opportunity(0.011) == pytest.approx(0.020)
    assert SMALL.next_opportunity(0.0201) == pytest.approx(0.025)
    assert SMALL.next_opportunity(1000 * 0.020 + 0.006) == pytest.approx(20.010)


def test_opportunities_between_counts_repeats() -> None:
    assert SMALL.opportunities_between(0.0, 0.020) == 3  # 5, 5, 10 (20 is excluded)
    assert SMALL.opportunities_between(0.0, 0.0201) == 4
    assert SMALL.opportunities_between(0.0, 2.0) == 399  # 100 periods x 4, less 2000 ms itself
    assert SMALL.opportunities_between(0.0, 2.0001) == 400
    assert SMALL.opportunities_between(0.3, 0.1) == 0


def test_mean_rate() -> None:
    assert SMALL.mean_rate_bps() == pytest.approx(4 * BYTES_PER_OPPORTUNITY * 8 / 0.020)
    verizon = MahimahiTrace.load("Verizon-LTE-short.down")
    assert verizon.mean_rate_bps() == pytest.approx(58_655 * 12_000 / 140.0)


def test_wrap_keeps_both_opportunities_at_the_period_boundary() -> None:
    trace = MahimahiTrace.parse_untrusted("0\n10\n", "edge")
    assert trace.opportunities_between(0.0, 0.0101) == 3  # 0, and 10 twice (end + next start)
    assert trace.time_at(trace.index_at(0.010) + 1) == pytest.approx(0.010)


# --- trace-driven links -----------------------------------------------------------------------


def test_full_packets_use_one_opportunity_each() -> None:
    sends = [(0.0, 1500)] * 10
    expected = [0.005, 0.005, 0.010, 0.020, 0.025, 0.025, 0.030, 0.040, 0.045, 0.045]
    assert departures(trace_link(SMALL), sends) == pytest.approx(expected)


def test_small_packets_share_an_opportunity_budget() -> None:
    sends = [(0.0, 700), (0.0, 700), (0.0, 100), (0.0, 1), (0.0, 1500), (0.0, 1499)]
    # 700+700+100 fill the first 5 ms opportunity; 1 byte takes the second 5 ms one, whose
    # remaining 1499 bytes cannot hold 1500 (-> 10 ms) but the 1499 after it waits for 20 ms.
    expected = [0.005, 0.005, 0.005, 0.005, 0.010, 0.020]
    assert departures(trace_link(SMALL), sends) == pytest.approx(expected)


def test_passed_opportunity_budget_is_not_reused() -> None:
    got = departures(trace_link(SMALL), [(0.0, 700), (0.006, 700), (0.010, 10)])
    assert got == pytest.approx([0.005, 0.010, 0.010])


def test_large_packets_span_consecutive_opportunities() -> None:
    got = departures(trace_link(SMALL), [(0.0, 3000), (0.0, 1), (0.0, 3001), (0.0, 1499)])
    assert got == pytest.approx([0.005, 0.010, 0.025, 0.025])


def test_idle_link_waits_for_next_opportunity_and_repeats() -> None:
    sends = [(0.010, 100), (0.011, 100), (0.0201, 100), (20.006, 100)]
    assert departures(trace_link(SMALL), sends) == pytest.approx([0.010, 0.020, 0.025, 20.010])


def test_trace_queue_is_drop_tail() -> None:
    direction = trace_link(SMALL, queue_bytes=3000)
    got = [direction.transmit(bytes(1500), 0.0).dropped for _ in range(3)]
    assert got == [None, None, DropReason.QUEUE]
    assert direction.backlog_bytes(0.0) == 3000
    assert direction.backlog_bytes(0.005) == 0


def test_trace_replaces_rate() -> None:
    direction = trace_link(SMALL, rate_bps=1.0)
    assert departures(direction, [(0.0, 1500)]) == pytest.approx([0.005])


def test_delay_is_added_after_the_opportunity() -> None:
    direction = trace_link(SMALL, delay_s=0.1)
    assert departures(direction, [(0.0, 1500)]) == pytest.approx([0.105])


def test_saturated_trace_link_delivers_at_opportunities_at_the_trace_rate() -> None:
    trace = MahimahiTrace.load("Verizon-LTE-short.down")
    direction = trace_link(trace, queue_bytes=2_000_000)
    interval_s = 0.0009  # 1500 bytes every 0.9 ms = 13.3 Mbit/s, about 2.7x the mean rate
    period_s = trace.period_ms / 1000.0
    delivered_bits = 0
    count = int(period_s / interval_s)
    for i in range(count):
        verdict = direction.transmit(bytes(1500), i * interval_s)
        for delivery in verdict.deliveries:
            assert abs(trace.next_opportunity(delivery.at) - delivery.at) < 1e-9
            if delivery.at < period_s:
                delivered_bits += 1500 * 8
    assert delivered_bits / period_s == pytest.approx(trace.mean_rate_bps(), rel=0.01)
