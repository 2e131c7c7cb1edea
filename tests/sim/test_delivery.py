"""Exactly-once, in-order delivery both ways over seeded impaired links, for many seeds.

Each test runs the pure discrete-event harness (``tests/sim/harness.py``): a client and a
hub ``Endpoint`` joined by two netsim ``LinkDirection``s. The harness itself checks, as the
run goes, that every message arrives exactly once, in order, byte for byte; that every
message gets exactly one ``MessageDelivered``; that corrupted datagrams are counted drops;
and that buffers stay bounded. These tests add what must hold at the end, and that each
impairment really happened (a loss profile that lost nothing would prove nothing).

Profiles cover the issue's list: clean, Bernoulli loss 2/10/30/50 %, Gilbert-Elliott
bursts, reordering by jitter, duplication, corruption, long asymmetric delay with jitter,
a rate-limited bottleneck, and all of them mixed. Every seed sends 24 messages each way
(0 bytes to 64 KiB); seeds ending in 9 add a client message of 64-256 KiB, and seeds
29, 59, ... one of exactly 1 MiB (``max_message_bytes``).

Replay a failure with the line the conftest prints, e.g.
``pytest 'tests/sim/test_delivery.py::test_delivery[loss50-seed17]' --sim-seed=17``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from netsim.models import GilbertElliott, LinkProfile, derive_rng
from tests.sim.harness import (
    Scenario,
    SimResult,
    Workload,
    established,
    run_simulation,
)
from udpim.core.config import SessionConfig
from udpim.core.events import PeerUnreachable

MESSAGES_PER_SIDE = 24
SEEDS_PER_PROFILE = 40


@dataclass(frozen=True, slots=True)
class Profile:
    """Both link directions of one impairment profile, and what it must exercise."""

    name: str
    up: LinkProfile
    down: LinkProfile
    quiet: bool = True
    """No ``PeerUnreachable`` is expected (only heavy loss may silence a peer for 60 s)."""


def _both(name: str, link: LinkProfile, *, quiet: bool = True) -> Profile:
    return Profile(name, link, link, quiet)


PROFILES = (
    _both("clean", LinkProfile(delay_s=0.02)),
    _both("loss2", LinkProfile(delay_s=0.02, jitter_s=0.005, loss=0.02)),
    _both("loss10", LinkProfile(delay_s=0.02, jitter_s=0.005, loss=0.10)),
    _both("loss30", LinkProfile(delay_s=0.02, jitter_s=0.005, loss=0.30)),
    _both("loss50", LinkProfile(delay_s=0.02, jitter_s=0.005, loss=0.50), quiet=False),
    _both(
        "burst",
        LinkProfile(delay_s=0.02, burst=GilbertElliott(0.05, 0.3, loss_good=0.01, loss_bad=0.8)),
    ),
    _both("reorder", LinkProfile(delay_s=0.03, jitter_s=0.025, reorder=True, loss=0.01)),
    _both("duplicate", LinkProfile(delay_s=0.02, jitter_s=0.01, reorder=True, duplicate=0.2)),
    _both("corrupt", LinkProfile(delay_s=0.02, jitter_s=0.005, corrupt=0.1, loss=0.01)),
    Profile(
        "delay",
        up=LinkProfile(delay_s=0.25, jitter_s=0.1),
        down=LinkProfile(delay_s=0.15, jitter_s=0.05),
    ),
    Profile(
        "bottleneck",
        up=LinkProfile(delay_s=0.02, rate_bps=2e6, queue_bytes=32 * 1024),
        down=LinkProfile(delay_s=0.02, rate_bps=8e6, queue_bytes=64 * 1024),
    ),
    _both(
        "mixed",
        LinkProfile(
            delay_s=0.05,
            jitter_s=0.04,
            reorder=True,
            loss=0.05,
            duplicate=0.05,
            corrupt=0.05,
        ),
    ),
)


def large_message_bytes(seed: int) -> int:
    """Size of the extra large client message of ``seed`` (0: none)."""
    if seed % 30 == 29:
        return SessionConfig().max_message_bytes
    if seed % 10 == 9:
        return derive_rng(seed, "sim", "large").randint(64 * 1024 + 1, 256 * 1024)
    return 0


def scenario_for(profile: Profile, seed: int) -> Scenario:
    """The delivery scenario of ``profile`` for ``seed``."""
    workload = Workload(
        messages_per_side=MESSAGES_PER_SIDE, large_message_bytes=large_message_bytes(seed)
    )
    return Scenario(profile.name, profile.up, profile.down, workload)


def _check_end_state(result: SimResult) -> None:
    for side, peer in (("client", "hub"), ("hub", "client")):
        assert established(result, side), f"{side} ended {result.final[side].state}"
        stats = result.final[side]
        assert stats.messages_sent == result.messages[side]
        assert stats.messages_delivered == result.messages[side]
        assert stats.messages_received == result.messages[peer]
        assert stats.bytes_in_flight == 0


@pytest.mark.sim_seeds(SEEDS_PER_PROFILE)
@pytest.mark.parametrize("profile", PROFILES, ids=[profile.name for profile in PROFILES])
def test_delivery(profile: Profile, sim_seed: int) -> None:
    result = run_simulation(scenario_for(profile, sim_seed), sim_seed)
    _check_end_state(result)
    if profile.quiet:
        for side in ("client", "hub"):
            assert result.events_of(side, PeerUnreachable) == []
    _check_exercised(profile, result)


def _check_exercised(profile: Profile, result: SimResult) -> None:
    """The impairment happened (thresholds chosen so every seed meets them)."""
    up, down = result.links["up"], result.links["down"]
    mean_loss = profile.up.burst.mean_loss if profile.up.burst else profile.up.loss
    if mean_loss >= 0.05:
        assert up.drops or down.drops, "a lossy link lost nothing"
    if profile.up.duplicate:
        assert up.duplicated + down.duplicated > 0
    if profile.up.corrupt:
        assert result.corrupted_arrivals > 0


def test_same_seed_same_run() -> None:
    """The whole run is a function of the seed: nothing reads a clock or global random."""
    mixed = next(profile for profile in PROFILES if profile.name == "mixed")
    first = run_simulation(scenario_for(mixed, 9), 9)
    second = run_simulation(scenario_for(mixed, 9), 9)
    assert first == second
    other = run_simulation(scenario_for(mixed, 10), 10)
    assert (other.steps, other.end_s) != (first.steps, first.end_s)
