"""``--session KEY=VALUE``: run a network benchmark with other udpim session tunables.

What it owns: the option and its translation into a ``SessionConfig``, so timer tuning
(issue 6, step 3) can be tried from the command line, e.g.
``tools/bench latency --session max_ack_delay_s=0.005 --session packet_threshold=2``.

Rules it keeps:

* Only ``SessionConfig`` fields with a number default can be set; the value is parsed as
  that field's type (int or float). ``SessionConfig`` itself validates the result.
* Any override is printed with the report and written to the JSON, so a tuned run is
  never mistaken for the default configuration.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from typing import Any

from udpim.core.config import SessionConfig

__all__ = ["add_session_option", "session_config", "session_overrides"]

_TUNABLE: dict[str, type[int] | type[float]] = {
    f.name: float if isinstance(f.default, float) else int
    for f in dataclasses.fields(SessionConfig)
    if isinstance(f.default, int | float) and not isinstance(f.default, bool)
}


def add_session_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--session KEY=VALUE`` (repeatable) to ``parser``."""
    parser.add_argument(
        "--session",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a udpim SessionConfig number for both ends (repeatable), "
        "e.g. max_ack_delay_s=0.005",
    )


def session_overrides(pairs: Sequence[str]) -> dict[str, int | float]:
    """Parse ``KEY=VALUE`` texts into typed overrides.

    Raises:
        ValueError: an unknown key, or a value of the wrong type.
    """
    overrides: dict[str, int | float] = {}
    for pair in pairs:
        key, _, text = pair.partition("=")
        kind = _TUNABLE.get(key.strip())
        if kind is None:
            raise ValueError(f"unknown session tunable {key!r}: one of {', '.join(_TUNABLE)}")
        try:
            overrides[key.strip()] = kind(text.strip())
        except ValueError:
            raise ValueError(f"bad value for {key}: {text!r} is not {kind.__name__}") from None
    return overrides


def session_config(pairs: Sequence[str]) -> SessionConfig:
    """The ``SessionConfig`` with ``--session`` overrides applied.

    Raises:
        ValueError: a bad override (see ``session_overrides``) or a value
            ``SessionConfig`` refuses.
    """
    overrides: dict[str, Any] = dict(session_overrides(pairs))
    return dataclasses.replace(SessionConfig(), **overrides)
