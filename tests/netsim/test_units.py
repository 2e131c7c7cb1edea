"""netsim.units: good inputs parse to base units, bad ones raise one clear ValueError line."""

from __future__ import annotations

import pytest

from netsim.units import (
    format_duration,
    format_rate,
    format_size,
    parse_duration,
    parse_endpoint,
    parse_rate,
    parse_ratio,
    parse_size,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("25ms", 0.025),
        ("1.5s", 1.5),
        ("2min", 120.0),
        ("1h", 3600.0),
        ("250us", 0.00025),
        ("25 ms", 0.025),
        ("25MS", 0.025),
        ("3", 3.0),
        ("0", 0.0),
        (".5s", 0.5),
        ("1e3ms", 1.0),
        (2, 2.0),
        (0.75, 0.75),
    ],
)
def test_parse_duration_good(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds, rel=1e-12)


@pytest.mark.parametrize(
    "text", ["25 parsecs", "", "ms", "-1s", "1.5.3s", "5 m s", "nan", "inf", True, float("inf")]
)
def test_parse_duration_bad(text: str | float) -> None:
    with pytest.raises(ValueError, match=r"^bad duration .*: expected a number with unit") as info:
        parse_duration(text)
    assert "\n" not in str(info.value)


def test_parse_duration_message_names_value_and_form() -> None:
    with pytest.raises(ValueError) as info:
        parse_duration("25 parsecs")
    assert str(info.value) == (
        "bad duration '25 parsecs': expected a number with unit us, ms, s, min or h"
    )


@pytest.mark.parametrize(
    ("text", "ratio"),
    [("10%", 0.1), ("0.1", 0.1), (0.1, 0.1), ("100%", 1.0), ("0%", 0.0), (1, 1.0), (" 5 % ", 0.05)],
)
def test_parse_ratio_good(text: str | float, ratio: float) -> None:
    assert parse_ratio(text) == pytest.approx(ratio, rel=1e-12)


@pytest.mark.parametrize("text", ["150%", "1.5", "-0.1", "-1%", "ten", "10 percent", False])
def test_parse_ratio_bad(text: str | float) -> None:
    with pytest.raises(ValueError, match=r"^bad ratio .*: expected a number in \[0, 1\]"):
        parse_ratio(text)


@pytest.mark.parametrize(
    ("text", "bps"),
    [
        ("1mbit", 1e6),
        ("500kbit", 5e5),
        ("10mbps", 1e7),
        ("2gbit", 2e9),
        ("8000bit", 8000.0),
        ("8000", 8000.0),
        ("1.5Mbit/s", 1.5e6),
        ("64 kbps", 64e3),
        (9600, 9600.0),
    ],
)
def test_parse_rate_good(text: str | float, bps: float) -> None:
    assert parse_rate(text) == pytest.approx(bps, rel=1e-12)


@pytest.mark.parametrize("text", ["0", "0mbit", "-1mbit", "1 furlong", "1MB", "fast", None])
def test_parse_rate_bad(text: str | float) -> None:
    with pytest.raises(ValueError, match=r"^bad rate .*: expected a positive number with unit"):
        parse_rate(text)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1500", 1500),
        (1500, 1500),
        ("64KiB", 65536),
        ("1MiB", 1048576),
        ("64kB", 64000),
        ("1MB", 1000000),
        ("1GiB", 1024**3),
        ("1.5KiB", 1536),
        ("0", 0),
        ("100 B", 100),
    ],
)
def test_parse_size_good(text: str | int, size: int) -> None:
    assert parse_size(text) == size
    assert isinstance(parse_size(text), int)


@pytest.mark.parametrize("text", ["1.5", "1.5B", "-1", "64 KB/s", "big", 1.0, True])
def test_parse_size_bad(text: str | int) -> None:
    with pytest.raises(ValueError, match=r"^bad size .*: expected a whole number of bytes"):
        parse_size(text)


@pytest.mark.parametrize(
    ("text", "endpoint"),
    [
        ("127.0.0.1:9000", ("127.0.0.1", 9000)),
        ("127.1.0.7:0", ("127.1.0.7", 0)),
        ("127.16.2.3:65535", ("127.16.2.3", 65535)),
    ],
)
def test_parse_endpoint_good(text: str, endpoint: tuple[str, int]) -> None:
    assert parse_endpoint(text) == endpoint


@pytest.mark.parametrize(
    "text",
    [
        "127.0.0.1",
        "127.0.0.1:",
        "127.0.0.1:65536",
        "127.0.0.1:-1",
        "127.0.0.01:80",
        "127.0.0:80",
        "localhost:80",
        "[::1]:80",
        ":80",
        "127.0.0.1:8x",
    ],
)
def test_parse_endpoint_bad(text: str) -> None:
    with pytest.raises(ValueError, match=r"^bad endpoint .*: expected an IPv4 address and port"):
        parse_endpoint(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.025, "25ms"),
        (1.5, "1.5s"),
        (120.0, "2min"),
        (0.00025, "250us"),
        (7200.0, "2h"),
        (0, "0s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds, rel=1e-12)


@pytest.mark.parametrize(
    ("bps", "text"), [(1e6, "1mbit"), (1.5e3, "1.5kbit"), (800.0, "800bit"), (2.5e9, "2.5gbit")]
)
def test_format_rate(bps: float, text: str) -> None:
    assert format_rate(bps) == text
    assert parse_rate(text) == pytest.approx(bps, rel=1e-12)


@pytest.mark.parametrize(
    ("size", "text"), [(1500, "1500B"), (65536, "64KiB"), (1048576, "1MiB"), (0, "0B")]
)
def test_format_size(size: int, text: str) -> None:
    assert format_size(size) == text
    assert parse_size(text) == size
