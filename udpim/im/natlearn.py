"""``NatLearner``: learns how long the NAT keeps an idle UDP mapping, and the heartbeat
interval that keeps the daemon's session reachable at the lowest cost.

Sans-IO, like the cores: no trio, os, time or random. ``now`` is float seconds passed
in, tokens come from the injected ``rng``, and every effect goes out as a ``LearnAction``
the daemon's shell executes (``udpim.net.natlearning``). docs/IM.md section 16 is the
specification.

Theory of operation (the *sacrificial mapping*). The daemon owns a second UDP socket, the
probe socket, whose NAT mapping carries no session and is refreshed by nothing else. A
test of delay ``d``:

1. ``SendObserve(token)``: the probe socket sends an *observe* datagram to the hub. It
   creates or refreshes the probe mapping (an outbound refresh) and the hub answers
   ``seen`` at once (``on_seen``), naming the public address it saw.
2. ``RequestProbe(token, d)``: over the authenticated session the daemon asks the hub
   (``nat_probe``) to send an *echo* of the token to that address ``d`` seconds later.
3. The echo arrives (``on_echo``): the mapping survived ``d`` idle seconds. It does not
   arrive by ``d + ECHO_GRACE_S`` (``on_timer``): the mapping expired sooner.

The main session's mapping lives on the same NAT with the same kind of flow, so a
heartbeat shorter than the largest survived delay keeps it alive.

Algorithm (kept simple and robust):

* Delays grow geometrically, ``PROBE_DELAYS_S`` = 15, 30, 60, ... 900 s, while echoes
  come back. The first missing echo is confirmed once (the same delay again): a lost
  echo must not halve the interval. A confirmed miss starts bisection between the
  largest survived and the smallest failed delay, until they are within
  ``BISECT_PRECISION`` (10 %) or ``MAX_BISECT_TESTS`` more tests ran.
* Heartbeat = clamp(``safety`` x largest survived - 1 s, ``min_interval_s``,
  ``max_interval_s``); ``min_interval_s`` if even the first delay failed.
* While learning, the default interval stays in force, except that it never stays at or
  above a delay that failed: then the best safe value known so far applies at once.
* No ``seen`` after ``SEEN_ATTEMPTS`` observes (an old hub, a blocked port): the interval
  in force stays (the default, until something was learned) and learning is retried
  after ``RETRY_FIRST_S``, doubling up to ``RETRY_MAX_S``.
* Once settled, one test at the learned value every ``REVALIDATE_AFTER_S``; a confirmed
  failure starts learning again (at the default interval or the current one, whichever
  is shorter). A path change (``on_path_changed``, or ``seen`` reporting another public
  IP than the test before) restarts learning at the default interval.
* A test the session could not finish (``on_interrupted``) is void: it runs again.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Final, final

__all__ = [
    "BISECT_PRECISION",
    "ECHO_GRACE_S",
    "HISTORY_LENGTH",
    "MAX_BISECT_TESTS",
    "PROBE_DELAYS_S",
    "REVALIDATE_AFTER_S",
    "RETRY_FIRST_S",
    "RETRY_MAX_S",
    "SEEN_ATTEMPTS",
    "SEEN_WAIT_S",
    "TOKEN_BYTES",
    "LearnAction",
    "LearnPhase",
    "NatLearner",
    "Outcome",
    "RequestProbe",
    "SendObserve",
    "SetHeartbeat",
    "TestResult",
]

PROBE_DELAYS_S: Final = (15.0, 30.0, 60.0, 120.0, 240.0, 480.0, 900.0)
"""The geometric growth of test delays (the last is the hub's maximum, 900 s)."""
SEEN_WAIT_S: Final = 2.0
"""How long one observe waits for its ``seen``."""
SEEN_ATTEMPTS: Final = 8
"""Observes sent for one test before concluding the hub does not answer: at 30 % loss
each way one round trip fails half the time, so 8 attempts fail together about 0.5 % of
the time (a few dozen bytes each; a hub that never answers costs 16 s of tries)."""
ECHO_GRACE_S: Final = 10.0
"""How long after the delay an echo may still arrive (delays of the request and echo)."""
BISECT_PRECISION: Final = 0.1
"""Bisection stops once ``smallest failed - largest survived <= 10 % x largest survived``."""
MAX_BISECT_TESTS: Final = 3
"""... or after this many bisection tests."""
REVALIDATE_AFTER_S: Final = 6 * 3600.0
"""A settled value is tested again this often."""
RETRY_FIRST_S: Final = 3600.0
RETRY_MAX_S: Final = 24 * 3600.0
"""Retry learning after no ``seen`` came back: 1 h, doubling up to 24 h."""
HISTORY_LENGTH: Final = 16
"""Test results kept for ``status()``."""
TOKEN_BYTES: Final = 8


@final
class LearnPhase(Enum):
    """Where learning stands."""

    IDLE = "idle"  # not started
    LEARNING = "learning"
    SETTLED = "settled"
    REVALIDATING = "revalidating"
    FALLBACK = "fallback"  # no seen came back: interval in force kept, retry later


@final
class _Step(Enum):
    """Where the current test stands."""

    NONE = "none"  # no test running; ``_next_at`` may start one
    AWAITING_SEEN = "awaiting-seen"
    AWAITING_ECHO = "awaiting-echo"


@final
class Outcome(Enum):
    """How one test ended."""

    SURVIVED = "survived"  # the echo arrived
    EXPIRED = "expired"  # no echo by delay + grace
    NO_ANSWER = "no-answer"  # no seen: the hub does not answer observes


@final
@dataclass(frozen=True, slots=True)
class SendObserve:
    """Send an observe datagram carrying ``token`` from the probe socket to the hub."""

    token: bytes


@final
@dataclass(frozen=True, slots=True)
class RequestProbe:
    """Ask the hub (``nat_probe``) to echo ``token`` to the probe socket in ``delay_s``."""

    token: bytes
    delay_s: float


@final
@dataclass(frozen=True, slots=True)
class SetHeartbeat:
    """Use ``interval_s`` from now on and announce it (``keepalive``) with the learned
    NAT timeout (the largest delay that survived), or None while it is not known."""

    interval_s: float
    learned_timeout_s: float | None


LearnAction = SendObserve | RequestProbe | SetHeartbeat


@final
@dataclass(frozen=True, slots=True)
class TestResult:
    """One finished test: its delay, how it ended, and when (learner time, seconds)."""

    delay_s: float
    outcome: Outcome
    at: float


@final
class NatLearner:
    """The learning state machine (see the module docstring).

    Args:
        default_interval_s: the heartbeat in force until something is learned.
        min_interval_s: the shortest heartbeat ever set.
        max_interval_s: the longest heartbeat ever set.
        safety: the fraction of the largest survived delay to use (minus 1 s).
        rng: randomness for the tokens (``os.urandom`` in production).

    Raises:
        ValueError: non-positive intervals, ``min_interval_s > max_interval_s``, or a
            safety fraction outside (0, 1].
    """

    def __init__(
        self,
        *,
        default_interval_s: float = 25.0,
        min_interval_s: float = 10.0,
        max_interval_s: float = 600.0,
        safety: float = 0.8,
        rng: Callable[[int], bytes],
    ) -> None:
        if not 0 < min_interval_s <= max_interval_s or not default_interval_s > 0:
            raise ValueError("intervals must be positive, with min_interval_s <= max_interval_s")
        if not 0 < safety <= 1:
            raise ValueError(f"safety must be in (0, 1], not {safety}")
        self._default_s = default_interval_s
        self._min_s = min_interval_s
        self._max_s = max_interval_s
        self._safety = safety
        self._rng = rng
        self.phase = LearnPhase.IDLE
        self.interval_s = default_interval_s
        self._step = _Step.NONE
        self._token = b""
        self._delay_s = PROBE_DELAYS_S[0]
        self._attempts = 0
        self._deadline = math.inf
        self._next_at: float | None = None
        self._survived_s: float | None = None
        self._failed_s: float | None = None
        self._bisecting = False
        self._confirming = False
        self._bisect_tests = 0
        self._retry_s = RETRY_FIRST_S
        self._observed_ip: str | None = None
        self._history: deque[TestResult] = deque(maxlen=HISTORY_LENGTH)
        self.tests_run = 0
        self.path_changes = 0

    @property
    def learned_timeout_s(self) -> float | None:
        """The largest delay the probe mapping survived (the NAT keeps idle mappings at
        least this long), or None."""
        return self._survived_s

    # ------------------------------------------------------------------ inputs

    def start(self, now: float) -> list[LearnAction]:
        """Begin (or restart) learning from the first delay; the interval in force stays."""
        self.phase = LearnPhase.LEARNING
        self._survived_s = self._failed_s = None
        self._bisecting = self._confirming = False
        self._bisect_tests = 0
        return self._begin_test(PROBE_DELAYS_S[0], now)

    def on_seen(
        self, token: bytes, now: float, observed: tuple[str, int] | None = None
    ) -> list[LearnAction]:
        """The hub saw our observe ``token`` (from public address ``observed``)."""
        if self._step is not _Step.AWAITING_SEEN or token != self._token:
            return []
        self._retry_s = RETRY_FIRST_S
        if observed is not None:
            previous, self._observed_ip = self._observed_ip, observed[0]
            if previous is not None and previous != observed[0]:
                return self._path_changed(now)
        self._step = _Step.AWAITING_ECHO
        self._deadline = now + self._delay_s + ECHO_GRACE_S
        return [RequestProbe(token, self._delay_s)]

    def on_echo(self, token: bytes, now: float) -> list[LearnAction]:
        """The hub's echo of ``token`` arrived: the probe mapping survived the delay."""
        if self._step is not _Step.AWAITING_ECHO or token != self._token:
            return []  # a late copy, or a test that was abandoned
        self._step = _Step.NONE
        return self._on_result(Outcome.SURVIVED, now)

    def on_timer(self, now: float) -> list[LearnAction]:
        """Run whatever is due by ``now`` (safe to call early)."""
        if self._step is _Step.AWAITING_SEEN and now >= self._deadline:
            if self._attempts < SEEN_ATTEMPTS:
                self._attempts += 1
                self._deadline = now + SEEN_WAIT_S
                return [SendObserve(self._token)]
            return self._fall_back(now)
        if self._step is _Step.AWAITING_ECHO and now >= self._deadline:
            self._step = _Step.NONE
            return self._on_result(Outcome.EXPIRED, now)
        if self._step is _Step.NONE and self._next_at is not None and now >= self._next_at:
            self._next_at = None
            return self._resume(now)
        return []

    def on_path_changed(self, now: float) -> list[LearnAction]:
        """The path changed (a new local address: another network, another NAT): go back
        to the default interval and learn again (if learning was started at all)."""
        self._observed_ip = None
        return self._path_changed(now)

    def on_interrupted(self, now: float) -> list[LearnAction]:
        """The session to the hub ended: the running test is void and runs again when
        the shell feeds timers again (it does so only while welcomed)."""
        if self._step is not _Step.NONE:
            self._step = _Step.NONE
            self._next_at = now
        return []

    def get_timer(self) -> float | None:
        """When ``on_timer`` must run next, or None."""
        if self._step is not _Step.NONE:
            return self._deadline
        return self._next_at

    def status(self) -> dict[str, object]:
        """A JSON-ready snapshot (times are learner time, seconds)."""
        last = self._history[-1] if self._history else None
        return {
            "phase": self.phase.value,
            "step": self._step.value,
            "learned_timeout_s": self._survived_s,
            "failed_at_s": self._failed_s,
            "heartbeat_interval_s": self.interval_s,
            "default_interval_s": self._default_s,
            "testing_delay_s": self._delay_s if self._step is not _Step.NONE else None,
            "tests_run": self.tests_run,
            "path_changes": self.path_changes,
            "next_test_at": self._next_at,
            "last_result": None if last is None else _result_json(last),
            "history": [_result_json(result) for result in self._history],
        }

    # ------------------------------------------------------------------ internals

    def _begin_test(self, delay_s: float, now: float) -> list[LearnAction]:
        self._delay_s = delay_s
        self._token = self._rng(TOKEN_BYTES)
        self._step = _Step.AWAITING_SEEN
        self._attempts = 1
        self._deadline = now + SEEN_WAIT_S
        self._next_at = None
        return [SendObserve(self._token)]

    def _resume(self, now: float) -> list[LearnAction]:
        if self.phase is LearnPhase.SETTLED and self._survived_s is not None:
            self.phase = LearnPhase.REVALIDATING
            self._confirming = False
            return self._begin_test(self._survived_s, now)
        if self.phase in (LearnPhase.SETTLED, LearnPhase.FALLBACK):
            return self.start(now)  # settled on nothing, or the hub did not answer
        return self._begin_test(self._delay_s, now)  # a voided test, again

    def _record(self, outcome: Outcome, now: float) -> None:
        self.tests_run += 1
        self._history.append(TestResult(self._delay_s, outcome, now))

    def _on_result(self, outcome: Outcome, now: float) -> list[LearnAction]:
        self._record(outcome, now)
        survived = outcome is Outcome.SURVIVED
        if self.phase is LearnPhase.REVALIDATING:
            return self._on_revalidated(survived, now)
        delay = self._delay_s
        if survived:
            self._survived_s = max(self._survived_s or 0.0, delay)
            self._confirming = False
            if self._bisecting:
                self._bisect_tests += 1
                return self._bisect_or_finish(now)
            later = [d for d in PROBE_DELAYS_S if d > delay]
            return self._begin_test(later[0], now) if later else self._finish(now)
        if not self._bisecting and not self._confirming:
            self._confirming = True
            return self._begin_test(delay, now)  # confirm the miss once
        self._confirming = False
        self._failed_s = delay if self._failed_s is None else min(self._failed_s, delay)
        if self._bisecting:
            self._bisect_tests += 1
        self._bisecting = True
        return self._cap_interval(delay) + self._bisect_or_finish(now)

    def _on_revalidated(self, survived: bool, now: float) -> list[LearnAction]:
        if survived:
            self.phase = LearnPhase.SETTLED
            self._next_at = now + REVALIDATE_AFTER_S
            return []
        if not self._confirming:
            self._confirming = True
            return self._begin_test(self._delay_s, now)
        actions: list[LearnAction] = []
        if self.interval_s > self._default_s:
            self.interval_s = self._default_s
            actions.append(SetHeartbeat(self.interval_s, None))
        return actions + self.start(now)

    def _bisect_or_finish(self, now: float) -> list[LearnAction]:
        survived, failed = self._survived_s, self._failed_s
        assert failed is not None  # bisection starts with a confirmed failure
        if (
            survived is None
            or failed - survived <= BISECT_PRECISION * survived
            or self._bisect_tests >= MAX_BISECT_TESTS
        ):
            return self._finish(now)
        return self._begin_test((survived + failed) / 2, now)

    def _safe_interval_s(self) -> float:
        if self._survived_s is None:
            return self._min_s
        return min(self._max_s, max(self._min_s, self._safety * self._survived_s - 1.0))

    def _cap_interval(self, failed_s: float) -> list[LearnAction]:
        """Never keep a heartbeat at or above a delay that failed."""
        safe = self._safe_interval_s()
        if self.interval_s < failed_s or self.interval_s <= safe:
            return []
        self.interval_s = safe
        return [SetHeartbeat(safe, None)]

    def _finish(self, now: float) -> list[LearnAction]:
        self.phase = LearnPhase.SETTLED
        self._next_at = now + REVALIDATE_AFTER_S
        self.interval_s = self._safe_interval_s()
        return [SetHeartbeat(self.interval_s, self._survived_s)]

    def _fall_back(self, now: float) -> list[LearnAction]:
        self._step = _Step.NONE
        self._record(Outcome.NO_ANSWER, now)
        self.phase = LearnPhase.FALLBACK
        self._next_at = now + self._retry_s
        self._retry_s = min(RETRY_MAX_S, 2 * self._retry_s)
        return []

    def _path_changed(self, now: float) -> list[LearnAction]:
        self.path_changes += 1
        if self.phase is LearnPhase.IDLE:
            return []
        actions: list[LearnAction] = []
        if self.interval_s != self._default_s or self._survived_s is not None:
            self.interval_s = self._default_s
            actions.append(SetHeartbeat(self._default_s, None))
        self._step = _Step.NONE
        return actions + self.start(now)


def _result_json(result: TestResult) -> dict[str, object]:
    return {"delay_s": result.delay_s, "outcome": result.outcome.value, "at": result.at}
