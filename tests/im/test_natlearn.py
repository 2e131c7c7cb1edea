"""NatLearner on scripted time: a pure model of a NAT and a hub answers its actions.

``ScriptedPath`` plays the network: an observe refreshes the probe mapping when it
reaches the NAT (half an RTT after it was sent) and is answered ``seen`` one RTT after it
was sent; a probe request reaches the hub half an RTT after it was sent and the hub's
echo reaches the NAT ``delay`` later; it gets through if the mapping was idle for less
than the NAT's timeout. Everything runs in exact float time, one event at a time.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from udpim.im.natlearn import (
    ECHO_GRACE_S,
    HISTORY_LENGTH,
    PROBE_DELAYS_S,
    RETRY_FIRST_S,
    RETRY_MAX_S,
    REVALIDATE_AFTER_S,
    SEEN_ATTEMPTS,
    SEEN_WAIT_S,
    LearnAction,
    LearnPhase,
    NatLearner,
    RequestProbe,
    SendObserve,
    SetHeartbeat,
)

RTT = 0.0625


def learner(**options: object) -> NatLearner:
    return NatLearner(rng=random.Random(5).randbytes, **options)  # type: ignore[arg-type]


@dataclass
class ScriptedPath:
    """The network and hub around one learner (see the module docstring)."""

    nat_timeout_s: float
    learner: NatLearner
    answers_observe: bool = True
    public_ip: str = "127.1.1.1"
    lose_echo: Callable[[bytes, float], bool] = lambda token, delay: False
    now: float = 0.0
    refreshed_at: float = -1e9
    heartbeats: list[tuple[float, SetHeartbeat]] = field(default_factory=list)
    observes: int = 0
    probes: list[float] = field(default_factory=list)
    _queue: list[tuple[float, int, str, bytes]] = field(default_factory=list)
    _sequence: int = 0

    def apply(self, actions: list[LearnAction]) -> None:
        for action in actions:
            if isinstance(action, SendObserve):
                self.observes += 1
                self._at(self.now + RTT / 2, "refresh", action.token)
                if self.answers_observe:
                    self._at(self.now + RTT, "seen", action.token)
            elif isinstance(action, RequestProbe):
                self.probes.append(action.delay_s)
                reaches_nat = self.now + RTT / 2 + action.delay_s + RTT / 4
                lost = self.lose_echo(action.token, action.delay_s)
                self._at(reaches_nat, "echo-at-nat", action.token if not lost else b"")
            else:
                self.heartbeats.append((self.now, action))

    def _at(self, when: float, kind: str, token: bytes) -> None:
        self._sequence += 1
        heapq.heappush(self._queue, (when, self._sequence, kind, token))

    def run(self, until: float) -> None:
        while True:
            timer = self.learner.get_timer()
            event_at = self._queue[0][0] if self._queue else None
            nexts = [t for t in (timer, event_at) if t is not None]
            if not nexts or min(nexts) > until:
                break
            self.now = max(self.now, min(nexts))
            if event_at is not None and event_at <= self.now:
                _, _, kind, token = heapq.heappop(self._queue)
                self._event(kind, token)
            else:
                self.apply(self.learner.on_timer(self.now))
        self.now = until

    def _event(self, kind: str, token: bytes) -> None:
        if kind == "refresh":
            if self.now - self.refreshed_at >= self.nat_timeout_s:
                self.refreshed_at = self.now  # a new mapping
            self.refreshed_at = self.now
        elif kind == "seen":
            self.apply(self.learner.on_seen(token, self.now, (self.public_ip, 40000)))
        elif kind == "echo-at-nat" and token:
            if self.now - self.refreshed_at < self.nat_timeout_s:
                self._at(self.now + RTT / 4, "echo", token)
        elif kind == "echo":
            self.apply(self.learner.on_echo(token, self.now))


def learn(nat_timeout_s: float, until: float = 3 * 3600.0, **options: object) -> ScriptedPath:
    path = ScriptedPath(nat_timeout_s, learner(**options))
    path.apply(path.learner.start(0.0))
    path.run(until)
    return path


@pytest.mark.parametrize(
    ("nat_timeout_s", "survived_s", "failed_s", "interval_s"),
    [
        (20.0, 18.75, 20.625, 14.0),
        (30.0, 28.125, 30.0, 21.5),
        (60.0, 56.25, 60.0, 44.0),
        (120.0, 112.5, 120.0, 89.0),
        (300.0, 270.0, 300.0, 215.0),
        (3600.0, 900.0, None, 600.0),  # survives everything: the upper bound
        (12.0, None, 15.0, 10.0),  # fails the first delay: the lower bound
    ],
)
def test_learns_a_safe_interval_below_the_nat_timeout(
    nat_timeout_s: float, survived_s: float | None, failed_s: float | None, interval_s: float
) -> None:
    path = learn(nat_timeout_s)
    state = path.learner
    assert state.phase is LearnPhase.SETTLED
    status = state.status()
    assert status["learned_timeout_s"] == survived_s
    assert status["failed_at_s"] == failed_s
    assert state.interval_s == interval_s
    assert state.interval_s < nat_timeout_s
    assert path.heartbeats[-1][1] == SetHeartbeat(interval_s, survived_s)
    # Every probe delay is one the hub accepts, and the growth is geometric.
    assert max(path.probes) <= PROBE_DELAYS_S[-1]
    grown = [d for d in path.probes if d in PROBE_DELAYS_S]
    assert grown[: len(set(grown))] == sorted(set(grown))


def test_the_default_interval_stays_while_learning_unless_a_shorter_delay_failed() -> None:
    path = learn(20.0, until=140.0)
    state = path.learner
    assert state.phase is LearnPhase.LEARNING
    # 15 s survived, 30 s failed twice (confirmed), 22.5 s failed: 25 s is not safe, and
    # 0.8 x 15 - 1 = 11 s is, as soon as 22.5 s failed (by 22.5 + grace after its seen).
    assert path.probes == [15.0, 30.0, 30.0, 22.5, 18.75]
    ((when, capped),) = path.heartbeats
    assert capped == SetHeartbeat(11.0, None)
    assert when < 130.0
    path.run(3600.0)
    assert state.interval_s == 14.0


def test_the_default_interval_stays_while_a_longer_nat_is_learned() -> None:
    path = learn(300.0, until=1500.0)
    assert path.learner.phase is LearnPhase.LEARNING
    assert path.heartbeats == []
    assert path.learner.interval_s == 25.0


def test_one_lost_echo_is_confirmed_and_does_not_halve_the_interval() -> None:
    lost: list[float] = []

    def lose_first_60(token: bytes, delay: float) -> bool:
        if delay == 60.0 and not lost:
            lost.append(delay)
            return True
        return False

    path = ScriptedPath(120.0, learner(), lose_echo=lose_first_60)
    path.apply(path.learner.start(0.0))
    path.run(3 * 3600.0)
    assert lost == [60.0]
    assert path.probes[:5] == [15.0, 30.0, 60.0, 60.0, 120.0]
    assert path.learner.interval_s == 89.0
    outcomes = [r["outcome"] for r in path.learner.status()["history"]]  # type: ignore[union-attr]
    assert outcomes[2:4] == ["expired", "survived"]


def test_the_echo_deadline_is_delay_plus_grace() -> None:
    state = learner()
    (observe,) = state.start(0.0)
    assert isinstance(observe, SendObserve)
    assert state.get_timer() == SEEN_WAIT_S
    assert state.on_seen(observe.token, 0.5) == [RequestProbe(observe.token, 15.0)]
    assert state.get_timer() == 0.5 + 15.0 + ECHO_GRACE_S
    assert state.on_timer(0.5 + 15.0 + ECHO_GRACE_S - 0.01) == []
    (again,) = state.on_timer(0.5 + 15.0 + ECHO_GRACE_S)  # expired: confirm once
    assert isinstance(again, SendObserve)
    assert again.token != observe.token
    assert state.status()["last_result"] == {
        "delay_s": 15.0,
        "outcome": "expired",
        "at": 0.5 + 15.0 + ECHO_GRACE_S,
    }


def test_foreign_tokens_and_late_copies_are_ignored() -> None:
    state = learner()
    (observe,) = state.start(0.0)
    assert state.on_echo(observe.token, 0.1) == []  # no probe requested yet
    assert state.on_seen(b"\x00" * 8, 0.1) == []
    state.on_seen(observe.token, 0.1)
    assert state.on_seen(observe.token, 0.2) == []  # a duplicate seen
    assert state.on_echo(b"\x01" * 8, 15.2) == []
    (nxt,) = state.on_echo(observe.token, 15.2)
    assert isinstance(nxt, SendObserve)
    assert state.on_echo(observe.token, 15.25) == []  # the second copy of the echo
    assert state.tests_run == 1


def test_no_seen_keeps_the_interval_and_retries_with_backoff() -> None:
    path = ScriptedPath(120.0, learner(), answers_observe=False)
    path.apply(path.learner.start(0.0))
    path.run(SEEN_ATTEMPTS * SEEN_WAIT_S)
    state = path.learner
    assert path.observes == SEEN_ATTEMPTS
    assert state.phase is LearnPhase.FALLBACK
    assert state.interval_s == 25.0
    assert path.heartbeats == []
    started = SEEN_ATTEMPTS * SEEN_WAIT_S
    retries: list[float] = []
    timer = state.get_timer()
    while timer is not None and len(retries) < 7:
        retries.append(timer - started)
        path.run(timer + SEEN_ATTEMPTS * SEEN_WAIT_S)
        started = path.now
        timer = state.get_timer()
    hours = [round(r / 3600) for r in retries]
    assert hours == [1, 2, 4, 8, 16, 24, 24]
    assert RETRY_FIRST_S == 3600.0
    assert RETRY_MAX_S == 24 * 3600.0
    # The hub starts answering: learning resumes at the next retry and settles.
    path.answers_observe = True
    assert timer is not None
    path.run(timer + 3600.0)
    assert state.phase is LearnPhase.SETTLED
    assert state.interval_s == 89.0


def test_settled_value_is_revalidated_every_six_hours() -> None:
    path = learn(120.0, until=3600.0)
    state = path.learner
    settled_at = path.heartbeats[-1][0]
    tests = state.tests_run
    assert state.get_timer() == pytest.approx(settled_at + REVALIDATE_AFTER_S)
    path.run(settled_at + REVALIDATE_AFTER_S + 200.0)
    assert state.tests_run == tests + 1
    assert path.probes[-1] == 112.5  # one test, at the learned value
    assert state.phase is LearnPhase.SETTLED
    assert state.interval_s == 89.0


def test_a_revalidation_that_fails_twice_learns_again() -> None:
    path = learn(120.0, until=3600.0)
    state = path.learner
    path.nat_timeout_s = 45.0  # the NAT got stricter
    path.run(10 * 3600.0)
    assert state.phase is LearnPhase.SETTLED
    assert state.learned_timeout_s == 41.25
    assert state.interval_s == 32.0
    revalidations = [d for d in path.probes if d == 112.5]
    assert len(revalidations) == 3  # the learned test, then two at the revalidation
    assert [h for _, h in path.heartbeats] == [
        SetHeartbeat(89.0, 112.5),
        SetHeartbeat(25.0, None),  # relearning at the shorter of default and current
        SetHeartbeat(32.0, 41.25),
    ]


def test_a_new_public_address_means_a_new_path() -> None:
    path = learn(120.0, until=3600.0)
    state = path.learner
    path.public_ip = "127.1.1.9"
    path.nat_timeout_s = 30.0
    path.run(3600.0 + REVALIDATE_AFTER_S + 3600.0)
    assert state.path_changes == 1
    assert state.phase is LearnPhase.SETTLED
    assert state.interval_s == 21.5
    assert [h for _, h in path.heartbeats][1:] == [
        SetHeartbeat(25.0, None),
        SetHeartbeat(21.5, 28.125),
    ]


def test_path_change_restarts_learning_at_the_default_interval() -> None:
    path = learn(120.0, until=3600.0)
    state = path.learner
    path.apply(state.on_path_changed(path.now))
    assert state.phase is LearnPhase.LEARNING
    assert state.interval_s == 25.0
    assert path.heartbeats[-1][1] == SetHeartbeat(25.0, None)
    assert state.learned_timeout_s is None
    path.run(path.now + 3600.0)
    assert state.interval_s == 89.0
    assert state.status()["path_changes"] == 1


def test_path_change_before_learning_started_is_only_counted() -> None:
    state = learner()
    assert state.on_path_changed(5.0) == []
    assert state.phase is LearnPhase.IDLE
    assert state.path_changes == 1
    assert state.get_timer() is None
    assert state.on_timer(100.0) == []


def test_an_interrupted_test_runs_again() -> None:
    state = learner()
    (observe,) = state.start(0.0)
    state.on_seen(observe.token, 0.1)
    assert state.on_interrupted(5.0) == []
    assert state.get_timer() == 5.0
    assert state.on_echo(observe.token, 15.2) == []  # void
    (again,) = state.on_timer(6.0)
    assert isinstance(again, SendObserve)
    assert state.on_seen(again.token, 6.1) == [RequestProbe(again.token, 15.0)]
    assert state.tests_run == 0
    assert state.on_interrupted(7.0) == []
    path = ScriptedPath(60.0, state, now=7.0)
    path.run(3600.0)
    assert state.interval_s == 44.0


def test_an_interrupted_revalidation_resumes_as_a_revalidation() -> None:
    path = learn(120.0, until=3600.0)
    state = path.learner
    path.run(path.heartbeats[-1][0] + REVALIDATE_AFTER_S + 1.0)
    assert state.phase is LearnPhase.REVALIDATING
    state.on_interrupted(path.now)
    path.run(path.now + 200.0)
    assert state.phase is LearnPhase.SETTLED
    assert path.probes[-1] == 112.5


def test_settled_on_nothing_learns_again_after_six_hours() -> None:
    path = learn(12.0, until=3600.0)
    state = path.learner
    probes = len(path.probes)
    path.run(3600.0 + REVALIDATE_AFTER_S)
    assert path.probes[probes] == 15.0  # learning from the start, not a revalidation
    assert state.interval_s == 10.0


def test_history_is_bounded() -> None:
    path = learn(120.0, until=10 * 24 * 3600.0)
    history = path.learner.status()["history"]
    assert isinstance(history, list)
    assert len(history) == HISTORY_LENGTH
    assert path.learner.tests_run > HISTORY_LENGTH


@pytest.mark.parametrize(
    "options",
    [
        {"min_interval_s": 0.0},
        {"min_interval_s": 30.0, "max_interval_s": 20.0},
        {"default_interval_s": -1.0},
        {"safety": 0.0},
        {"safety": 1.5},
    ],
)
def test_bad_settings_are_refused(options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        learner(**options)
