"""path.py: the PathManager on its own: budget, migration, challenge, fallback."""

from __future__ import annotations

from tests.core.pairs import seeded_rng
from udpim.core.events import PathChanged
from udpim.core.frames import PathChallengeFrame
from udpim.core.path import PathManager, PathState

HOME = ("127.16.0.2", 40000)
AWAY = ("127.1.0.9", 51000)
ELSEWHERE = ("127.1.0.10", 52000)


def validated() -> PathManager:
    return PathManager(HOME, validated=True, received_bytes=0, timeout_s=2.0)


def migrate(path: PathManager, address: tuple[str, int] = AWAY, size: int = 100) -> bytes:
    path.on_authenticated(address, size, is_largest=True, now=10.0, rng=seeded_rng(1))
    challenge = path.take_challenge()
    assert challenge is not None
    return challenge.data


def test_validated_path_has_no_budget() -> None:
    path = validated()
    assert path.state is PathState.VALIDATED
    assert path.send_budget() is None
    path.on_sent(10_000)
    assert path.send_budget() is None
    assert path.deadline() is None
    assert path.take_challenge() is None


def test_unvalidated_path_budget_is_bytes_received_minus_sent() -> None:
    path = PathManager(HOME, validated=False, received_bytes=141, timeout_s=2.0)
    assert path.send_budget() == 141
    path.on_sent(89)
    assert path.send_budget() == 52
    path.on_authenticated(HOME, 30, is_largest=True, now=0.0, rng=seeded_rng(1))
    assert path.send_budget() == 82
    path.on_sent(100)
    assert path.send_budget() == 0  # never negative
    path.mark_validated()
    assert path.send_budget() is None
    assert path.take_challenge() is None  # the responder's first path needs none


def test_migration_challenges_the_new_address_with_its_own_budget() -> None:
    path = validated()
    path.on_authenticated(AWAY, 60, is_largest=True, now=10.0, rng=seeded_rng(1))
    assert path.address == AWAY
    assert path.state is PathState.VALIDATING
    assert path.send_budget() == 60
    assert path.deadline() == 12.0
    challenge = path.take_challenge()
    assert challenge == PathChallengeFrame(seeded_rng(1)(8))
    assert path.take_challenge() is None  # handed out once
    assert path.on_response(b"\0" * 8) is None  # not ours
    assert path.state is PathState.VALIDATING
    assert path.on_response(challenge.data) == PathChanged(HOME, AWAY)
    assert path.state is PathState.VALIDATED
    assert path.migrations == 1
    assert path.deadline() is None
    assert path.on_response(challenge.data) is None  # a duplicate response changes nothing
    assert path.migrations == 1


def test_packets_that_are_not_the_largest_never_migrate() -> None:
    path = validated()
    path.on_authenticated(AWAY, 60, is_largest=False, now=10.0, rng=seeded_rng(1))
    assert (path.address, path.state) == (HOME, PathState.VALIDATED)
    assert path.take_challenge() is None


def test_a_lost_challenge_is_sent_again_only_while_it_matters() -> None:
    path = validated()
    data = migrate(path)
    path.on_challenge_lost(PathChallengeFrame(data))
    assert path.take_challenge() == PathChallengeFrame(data)
    path.on_challenge_lost(PathChallengeFrame(b"old-one!"))
    assert path.take_challenge() is None
    path.on_response(data)
    path.on_challenge_lost(PathChallengeFrame(data))
    assert path.take_challenge() is None


def test_timeout_falls_back_to_the_validated_address() -> None:
    path = validated()
    data = migrate(path)
    path.on_timeout(11.999)
    assert path.address == AWAY
    path.on_timeout(12.0)
    assert (path.address, path.state) == (HOME, PathState.VALIDATED)
    assert path.deadline() is None
    assert path.on_response(data) is None  # too late
    assert path.migrations == 0


def test_moving_twice_keeps_the_last_validated_address_as_fallback() -> None:
    path = validated()
    migrate(path, AWAY)
    second = migrate(path, ELSEWHERE)
    assert path.on_response(second) == PathChanged(HOME, ELSEWHERE)


def test_returning_to_the_fallback_needs_no_new_proof() -> None:
    path = validated()
    challenge = migrate(path, AWAY)
    path.on_authenticated(HOME, 40, is_largest=True, now=1.0, rng=lambda n: b"\x00" * n)
    assert (path.address, path.state) == (HOME, PathState.VALIDATED)
    assert path.send_budget() is None
    assert path.take_challenge() is None
    assert path.deadline() is None
    assert path.on_response(challenge) is None  # the abandoned challenge proves nothing now
    assert path.migrations == 0


def test_timeout_without_a_fallback_keeps_the_address() -> None:
    path = PathManager(HOME, validated=False, received_bytes=141, timeout_s=2.0)
    path.on_timeout(100.0)
    assert path.address == HOME
    assert path.state is PathState.VALIDATING


def test_without_a_fallback_a_timeout_challenges_the_address_again() -> None:
    # A responder's first path is unvalidated; its initiator's first packet came from
    # elsewhere. There is nothing to fall back to, so validation starts over.
    path = PathManager(HOME, validated=False, received_bytes=141, timeout_s=2.0)
    data = migrate(path)
    assert (path.address, path.deadline()) == (AWAY, 12.0)
    path.on_timeout(12.0)
    assert (path.address, path.state, path.send_budget()) == (AWAY, PathState.VALIDATING, 100)
    assert path.deadline() == 14.0
    assert path.take_challenge() == PathChallengeFrame(data)  # the same one, sent again
    path.on_timeout(14.0)
    path.on_timeout(15.0)  # early: nothing changes
    assert path.deadline() == 16.0
    assert path.on_response(data) is None  # validated, but no path changed
    assert (path.address, path.state, path.deadline()) == (AWAY, PathState.VALIDATED, None)
    assert path.migrations == 0
