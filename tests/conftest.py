"""Suite-wide settings: hypothesis runs derandomized so every run tests the same inputs.

Command-line options of the whole suite live here (pytest only honours
``pytest_addoption`` in the root conftest); their behaviour lives beside the tests that
use them (``tests/sim/conftest.py`` for ``--sim-seed`` and ``--sim-seeds``).
"""

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "udpim",
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("udpim")


def pytest_addoption(parser: pytest.Parser) -> None:
    """Seed selection for the deterministic simulations in tests/sim."""
    group = parser.getgroup("udpim-sim", "udpim deterministic simulations (tests/sim)")
    group.addoption(
        "--sim-seed",
        type=int,
        default=None,
        metavar="N",
        help="run only seed N of every tests/sim scenario (replays a failure)",
    )
    group.addoption(
        "--sim-seeds",
        type=int,
        default=None,
        metavar="K",
        help="run seeds 0..K-1 of every tests/sim scenario instead of the CI default",
    )
