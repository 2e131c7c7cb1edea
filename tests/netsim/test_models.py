"""netsim.models: each impairment, measured over many packets with fixed seeds.

Tolerances come from the distributions: a rate measured over n packets is checked to within
5 standard deviations of a binomial (or, for Gilbert-Elliott, of the Markov chain). The seeds
are fixed, so each run decides the same way; the tolerance documents what "right" means.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random

import pytest

from netsim.models import (
    Delivery,
    DropReason,
    GilbertElliott,
    GilbertElliottState,
    LinkDirection,
    LinkProfile,
    Outage,
    Verdict,
    bernoulli,
    derive_rng,
    flip_random_bit,
    sample_latency,
)

N = 20_000


def binomial_tolerance(p: float, n: int, sigmas: float = 5.0) -> float:
    return sigmas * math.sqrt(p * (1.0 - p) / n)


def link(profile: LinkProfile, *labels: str) -> LinkDirection:
    return LinkDirection(profile, derive_rng(1234, "test", *labels))


def send_series(
    direction: LinkDirection, count: int, interval_s: float = 0.001, size: int = 100
) -> list[tuple[float, Verdict]]:
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    return [(i * interval_s, direction.transmit(payload, i * interval_s)) for i in range(count)]


# --- derive_rng -----------------------------------------------------------------------------


def test_derive_rng_golden_values() -> None:
    # Computed once; sha256 and Mersenne Twister seeding are stable across processes/platforms.
    rng = derive_rng(42, "link", "alice", "up")
    assert [rng.random() for _ in range(3)] == [
        0.12900940106786019,
        0.26478637734295607,
        0.7067261139382706,
    ]
    assert derive_rng(0).getrandbits(32) == 2209398877


def test_derive_rng_follows_documented_formula() -> None:
    digest = hashlib.sha256(b"7/nat/home").digest()
    expected = random.Random(int.from_bytes(digest, "big"))
    rng = derive_rng(7, "nat", "home")
    assert [rng.random() for _ in range(5)] == [expected.random() for _ in range(5)]


def test_derive_rng_labels_and_seeds_give_different_streams() -> None:
    first = [derive_rng(1, "link", "a", "up").random() for _ in range(1)]
    assert first != [derive_rng(1, "link", "a", "down").random()]
    assert first != [derive_rng(2, "link", "a", "up").random()]


# --- pure helpers ---------------------------------------------------------------------------


def test_bernoulli_edges_draw_nothing() -> None:
    rng = random.Random(5)
    state = rng.getstate()
    assert bernoulli(rng, 0.0) is False
    assert bernoulli(rng, 1.0) is True
    assert rng.getstate() == state


def test_flip_random_bit_flips_exactly_one_bit() -> None:
    rng = random.Random(9)
    data = bytes(range(64))
    for _ in range(200):
        flipped = flip_random_bit(rng, data)
        assert len(flipped) == len(data)
        assert sum(bin(a ^ b).count("1") for a, b in zip(data, flipped, strict=True)) == 1
    assert flip_random_bit(rng, b"") == b""


def test_sample_latency_without_jitter_is_the_delay() -> None:
    assert sample_latency(random.Random(1), LinkProfile(delay_s=0.03)) == 0.03


# --- perfect link and decision order -----------------------------------------------------------


def test_perfect_link_delivers_once_at_send_time() -> None:
    direction = link(LinkProfile())
    verdict = direction.transmit(b"hello", 2.5)
    assert verdict == Verdict((Delivery(2.5, b"hello"),))
    stats = direction.statistics()
    assert (stats.packets_in, stats.packets_out, stats.bytes_in, stats.bytes_out) == (1, 1, 5, 5)
    assert stats.drops == {}


def test_outage_is_checked_before_mtu_and_mtu_before_loss() -> None:
    profile = LinkProfile(mtu_bytes=10, loss=1.0, outages=(Outage(1.0, 2.0),))
    direction = link(profile)
    assert direction.transmit(bytes(50), 1.5).dropped is DropReason.OUTAGE
    assert direction.transmit(bytes(50), 2.5).dropped is DropReason.MTU
    assert direction.transmit(bytes(5), 2.5).dropped is DropReason.LOSS


def test_lost_packets_never_occupy_the_queue() -> None:
    direction = link(LinkProfile(loss=1.0, rate_bps=8000.0, queue_bytes=1000))
    for _ in range(5):
        assert direction.transmit(bytes(500), 0.0).dropped is DropReason.LOSS
    assert direction.backlog_bytes(0.0) == 0


def test_statistics_balance() -> None:
    profile = LinkProfile(loss=0.2, duplicate=0.1, corrupt=0.1, mtu_bytes=150)
    direction = link(profile)
    sizes = [100, 200] * 500
    outs = 0
    for i, size in enumerate(sizes):
        outs += len(direction.transmit(bytes(size), i * 0.01).deliveries)
    stats = direction.statistics()
    assert stats.packets_in == len(sizes)
    assert stats.packets_out == outs
    assert stats.packets_in + stats.duplicated == stats.packets_out + stats.packets_dropped
    assert stats.drops[DropReason.MTU] == 500
    assert stats.bytes_in == sum(sizes)


# --- loss -------------------------------------------------------------------------------------


def test_bernoulli_loss_rate() -> None:
    p = 0.1
    verdicts = send_series(link(LinkProfile(loss=p)), N)
    lost = sum(v.dropped is DropReason.LOSS for _, v in verdicts)
    assert abs(lost / N - p) < binomial_tolerance(p, N)
    assert all(v.dropped in (None, DropReason.LOSS) for _, v in verdicts)


def test_gilbert_elliott_properties() -> None:
    params = GilbertElliott(p_good_to_bad=0.01, p_bad_to_good=0.25, loss_good=0.0, loss_bad=1.0)
    assert params.mean_burst_packets == pytest.approx(4.0)
    assert params.stationary_bad == pytest.approx(0.01 / 0.26)
    assert params.mean_loss == pytest.approx(0.01 / 0.26)
    assert GilbertElliott(0.0, 0.0).stationary_bad == 0.0
    assert GilbertElliott(0.1, 0.0).mean_burst_packets == math.inf


def test_gilbert_elliott_mean_loss_and_burst_length() -> None:
    params = GilbertElliott(p_good_to_bad=0.01, p_bad_to_good=0.25)
    n = 60_000
    verdicts = send_series(link(LinkProfile(burst=params)), n)
    lost = [v.dropped is not None for _, v in verdicts]
    assert {v.dropped for _, v in verdicts} == {None, DropReason.BURST_LOSS}
    bursts: list[int] = []
    run = 0
    for is_lost in [*lost, False]:
        if is_lost:
            run += 1
        elif run:
            bursts.append(run)
            run = 0
    # Loss rate: binomial variance inflated by the chain's correlation (1 + l) / (1 - l),
    # l = 1 - p_gb - p_bg being the chain's second eigenvalue.
    eigen = 1.0 - params.p_good_to_bad - params.p_bad_to_good
    inflation = (1.0 + eigen) / (1.0 - eigen)
    tolerance = binomial_tolerance(params.mean_loss, n) * math.sqrt(inflation)
    assert abs(sum(lost) / n - params.mean_loss) < tolerance
    # Burst lengths are geometric with mean 1/p_bg and standard deviation sqrt(1 - p)/p.
    p = params.p_bad_to_good
    burst_sd = math.sqrt(1.0 - p) / p
    assert abs(sum(bursts) / len(bursts) - params.mean_burst_packets) < 5 * burst_sd / math.sqrt(
        len(bursts)
    )


def test_gilbert_elliott_loss_in_good_state_is_plain_loss() -> None:
    params = GilbertElliott(p_good_to_bad=0.0, p_bad_to_good=1.0, loss_good=0.5, loss_bad=1.0)
    verdicts = send_series(link(LinkProfile(burst=params)), N)
    reasons = [v.dropped for _, v in verdicts]
    assert DropReason.BURST_LOSS not in reasons
    assert abs(reasons.count(DropReason.LOSS) / N - 0.5) < binomial_tolerance(0.5, N)


def test_gilbert_elliott_state_steps_before_deciding() -> None:
    always_bad = GilbertElliott(p_good_to_bad=1.0, p_bad_to_good=0.0)
    state = GilbertElliottState()
    assert state.bad is False
    assert state.step(random.Random(1), always_bad) is True
    assert state.bad is True


def test_burst_state_survives_profile_change() -> None:
    sticky = GilbertElliott(p_good_to_bad=1.0, p_bad_to_good=0.0)
    direction = link(LinkProfile(burst=sticky))
    assert direction.transmit(b"x", 0.0).dropped is DropReason.BURST_LOSS
    direction.set_profile(LinkProfile(burst=GilbertElliott(p_good_to_bad=0.0, p_bad_to_good=0.0)))
    assert direction.transmit(b"x", 1.0).dropped is DropReason.BURST_LOSS


# --- latency ----------------------------------------------------------------------------------


def test_delay_jitter_distribution_is_uniform() -> None:
    delay, jitter = 0.050, 0.010
    verdicts = send_series(link(LinkProfile(delay_s=delay, jitter_s=jitter, reorder=True)), N)
    latencies = [v.deliveries[0].at - sent for sent, v in verdicts]
    assert delay - jitter <= min(latencies) < delay - 0.99 * jitter
    assert delay + 0.99 * jitter < max(latencies) <= delay + jitter
    sd = 2 * jitter / math.sqrt(12)
    assert abs(sum(latencies) / N - delay) < 5 * sd / math.sqrt(N)
    bins = [0] * 10
    for latency in latencies:
        bins[min(9, int((latency - (delay - jitter)) / (2 * jitter) * 10))] += 1
    for count in bins:
        assert abs(count / N - 0.1) < binomial_tolerance(0.1, N)


def test_latency_is_clamped_at_zero() -> None:
    verdicts = send_series(link(LinkProfile(delay_s=0.001, jitter_s=0.005, reorder=True)), N)
    latencies = [v.deliveries[0].at - sent for sent, v in verdicts]
    assert min(latencies) == 0.0
    zero = sum(latency == 0.0 for latency in latencies) / N
    assert abs(zero - 0.4) < binomial_tolerance(0.4, N)  # P(U(-5, 5) < -1) = 0.4


def test_fifo_clamp_never_reorders() -> None:
    profile = LinkProfile(delay_s=0.020, jitter_s=0.010, reorder=False, duplicate=0.1)
    verdicts = send_series(link(profile), N)
    times = [d.at for _, v in verdicts for d in v.deliveries]
    assert times == sorted(times)
    assert all(d.at >= sent + 0.010 for sent, v in verdicts for d in v.deliveries)


def test_reorder_lets_jitter_reorder() -> None:
    profile = LinkProfile(delay_s=0.020, jitter_s=0.010, reorder=True)
    verdicts = send_series(link(profile), 2000)
    times = [v.deliveries[0].at for _, v in verdicts]
    overtaken = sum(later < earlier for earlier, later in itertools.pairwise(times))
    assert overtaken > 100


# --- duplication and corruption ---------------------------------------------------------------


def test_duplication_rate_and_copies() -> None:
    p = 0.05
    direction = link(LinkProfile(delay_s=0.01, jitter_s=0.002, duplicate=p))
    verdicts = send_series(direction, N)
    doubled = [v for _, v in verdicts if len(v.deliveries) == 2]
    assert abs(len(doubled) / N - p) < binomial_tolerance(p, N)
    for verdict in doubled:
        first, second = verdict.deliveries
        assert (first.duplicate, second.duplicate) == (False, True)
        assert first.data == second.data
    assert direction.statistics().duplicated == len(doubled)


def test_corruption_rate_and_single_bit() -> None:
    p = 0.1
    direction = link(LinkProfile(corrupt=p))
    original = bytes(range(200))
    verdicts = [direction.transmit(original, i * 0.001) for i in range(N)]
    corrupted = [v.deliveries[0] for v in verdicts if v.deliveries[0].corrupted]
    assert abs(len(corrupted) / N - p) < binomial_tolerance(p, N)
    for delivery in corrupted:
        diff = sum(bin(a ^ b).count("1") for a, b in zip(original, delivery.data, strict=True))
        assert diff == 1
    assert all(v.deliveries[0].data == original for v in verdicts if not v.deliveries[0].corrupted)
    assert direction.statistics().corrupted == len(corrupted)


def test_empty_packet_is_never_corrupted() -> None:
    verdict = link(LinkProfile(corrupt=1.0)).transmit(b"", 0.0)
    assert verdict.deliveries == (Delivery(0.0, b"", corrupted=False),)


# --- MTU and outage ---------------------------------------------------------------------------


def test_mtu_boundary() -> None:
    direction = link(LinkProfile(mtu_bytes=1400))
    assert direction.transmit(bytes(1400), 0.0).dropped is None
    assert direction.transmit(bytes(1401), 0.0).dropped is DropReason.MTU


@pytest.mark.parametrize(
    ("now", "dropped"), [(0.999999, False), (1.0, True), (1.999999, True), (2.0, False)]
)
def test_outage_window_boundaries(now: float, dropped: bool) -> None:
    direction = link(LinkProfile(outages=(Outage(5.0, 6.0), Outage(1.0, 2.0))))
    verdict = direction.transmit(b"x", now)
    assert (verdict.dropped is DropReason.OUTAGE) is dropped


def test_packet_in_flight_at_outage_start_is_delivered() -> None:
    direction = link(LinkProfile(delay_s=0.5, outages=(Outage(1.0, 2.0),)))
    assert direction.transmit(b"x", 0.9).deliveries[0].at == pytest.approx(1.4)


# --- rate limit and queue ---------------------------------------------------------------------


def test_rate_limit_throughput_and_bounded_queueing_delay() -> None:
    rate_bps, queue_bytes, size = 1e6, 30_000, 1000
    direction = link(LinkProfile(rate_bps=rate_bps, queue_bytes=queue_bytes))
    verdicts = send_series(direction, 2500, interval_s=0.004, size=size)  # 2 Mbit/s for 10 s
    delivered = [(sent, v.deliveries[0].at) for sent, v in verdicts if v.deliveries]
    in_window = sum(at <= 10.0 + 1e-9 for _, at in delivered)
    assert in_window * size * 8 / 10.0 == pytest.approx(rate_bps, rel=0.01)
    sojourns = [at - sent for sent, at in delivered]
    assert max(sojourns) <= queue_bytes * 8 / rate_bps + 1e-9
    assert max(sojourns) > 0.9 * queue_bytes * 8 / rate_bps  # bufferbloat: the queue filled
    assert sojourns[0] == pytest.approx(size * 8 / rate_bps)
    assert direction.statistics().drops[DropReason.QUEUE] == 2500 - len(delivered)


def test_drop_tail_when_queue_full() -> None:
    direction = link(LinkProfile(rate_bps=8000.0, queue_bytes=10_000))  # 1 s per 1000 bytes
    verdicts = [direction.transmit(bytes(1000), 0.0) for _ in range(11)]
    assert [v.dropped for v in verdicts] == [None] * 10 + [DropReason.QUEUE]
    assert [v.deliveries[0].at for v in verdicts[:10]] == pytest.approx(range(1, 11))
    assert direction.backlog_bytes(0.0) == 10_000
    assert direction.transmit(bytes(1000), 0.5).dropped is DropReason.QUEUE
    assert direction.backlog_bytes(1.0) == 9000
    late = direction.transmit(bytes(1000), 1.0)
    assert late.deliveries[0].at == pytest.approx(11.0)


def test_rate_change_keeps_backlog() -> None:
    direction = link(LinkProfile(rate_bps=8000.0))
    direction.transmit(bytes(1000), 0.0)  # leaves at 1.0
    direction.set_profile(LinkProfile(rate_bps=16000.0))
    assert direction.backlog_bytes(0.5) == 1000
    assert direction.transmit(bytes(1000), 0.5).deliveries[0].at == pytest.approx(1.5)


# --- determinism and independence ---------------------------------------------------------------


RICH = LinkProfile(
    delay_s=0.03,
    jitter_s=0.02,
    reorder=True,
    burst=GilbertElliott(0.02, 0.3, loss_good=0.01),
    duplicate=0.05,
    corrupt=0.05,
    rate_bps=2e6,
    queue_bytes=20_000,
)


def decisions(direction: LinkDirection) -> list[Verdict]:
    return [v for _, v in send_series(direction, 3000, interval_s=0.0005, size=300)]


def test_same_seed_gives_identical_decisions() -> None:
    first = decisions(LinkDirection(RICH, derive_rng(99, "link", "h", "up")))
    second = decisions(LinkDirection(RICH, derive_rng(99, "link", "h", "up")))
    assert first == second


def test_different_labels_give_different_decisions() -> None:
    up = decisions(LinkDirection(RICH, derive_rng(99, "link", "h", "up")))
    down = decisions(LinkDirection(RICH, derive_rng(99, "link", "h", "down")))
    assert up != down


def test_directions_are_independent() -> None:
    p = 0.3
    up = LinkDirection(LinkProfile(loss=p), derive_rng(5, "link", "h", "up"))
    down = LinkDirection(LinkProfile(loss=p), derive_rng(5, "link", "h", "down"))
    both = 0
    for i in range(N):
        lost_up = up.transmit(b"x", i * 0.001).dropped is not None
        lost_down = down.transmit(b"x", i * 0.001).dropped is not None
        both += lost_up and lost_down
    assert abs(both / N - p * p) < binomial_tolerance(p * p, N)


# --- profile validation and scenario mappings ---------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"delay_s": -1.0},
        {"jitter_s": math.nan},
        {"loss": 1.5},
        {"duplicate": -0.1},
        {"mtu_bytes": 0},
        {"rate_bps": 0.0},
        {"queue_bytes": -1},
    ],
)
def test_profile_rejects_bad_values(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"^bad link profile"):
        LinkProfile().with_changes(**changes)


def test_model_values_reject_bad_values() -> None:
    with pytest.raises(ValueError, match="probability"):
        GilbertElliott(p_good_to_bad=2.0, p_bad_to_good=0.1)
    with pytest.raises(ValueError, match="end is before start"):
        Outage(2.0, 1.0)


def test_from_mapping_parses_units_and_round_trips() -> None:
    profile = LinkProfile.from_mapping(
        {
            "delay": "25ms",
            "jitter": "5ms",
            "reorder": True,
            "loss": "1%",
            "burst": {"p_good_to_bad": 0.01, "p_bad_to_good": "30%"},
            "duplicate": 0.02,
            "corrupt": "0.1%",
            "mtu": "1400",
            "rate": "1mbit",
            "queue": "32KiB",
            "outages": [["1s", "2s"], {"start": 3, "end": "4500ms"}],
            "trace": "Verizon-LTE-short.down",
        }
    )
    assert profile.delay_s == pytest.approx(0.025)
    assert profile.burst == GilbertElliott(0.01, 0.3)
    assert profile.queue_bytes == 32768
    assert profile.outages == (Outage(1.0, 2.0), Outage(3.0, 4.5))
    assert profile.trace is not None
    assert profile.trace.name == "Verizon-LTE-short.down"
    assert LinkProfile.from_mapping(profile.to_mapping()) == profile
    assert LinkProfile().to_mapping() == {}
    assert LinkProfile(delay_s=0.1).to_mapping() == {"delay": 0.1}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"dealy": "25ms"}, "unknown link profile key 'dealy': expected one of delay, jitter"),
        ({"delay": "25 parsecs"}, "bad link profile 'delay': bad duration '25 parsecs'"),
        ({"loss": "150%"}, "bad link profile 'loss': bad ratio '150%'"),
        ({"reorder": "yes"}, "bad link profile 'reorder': bad flag 'yes'"),
        ({"rate": True}, "bad link profile 'rate': bad value True"),
        ({"burst": {"p_good_to_bad": 0.1}}, "bad link profile 'burst': bad burst"),
        (
            {"burst": {"p_good_to_bad": 0.1, "p_bad_to_good": 0.2, "x": 1}},
            "bad link profile 'burst': bad burst key 'x'",
        ),
        ({"outages": [[1]]}, "bad link profile 'outages': bad outage [1]"),
        ({"outages": [[2, 1]]}, "bad link profile 'outages': bad outage 2.0..1.0"),
        ({"outages": "1s-2s"}, "bad link profile 'outages': bad outages"),
        ({"trace": "No-Such-Trace.down"}, "bad link profile 'trace': bad trace 'No-Such"),
        ({"trace": 5}, "bad link profile 'trace': bad trace 5"),
        ({"mtu": 0}, "bad link profile mtu_bytes=0"),
    ],
)
def test_from_mapping_errors_are_one_clear_line(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as info:
        LinkProfile.from_mapping(data)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)
