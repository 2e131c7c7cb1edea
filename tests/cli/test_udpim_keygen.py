"""``udpim keygen`` and the command line's own errors, as real processes."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.udpim_processes import Processes, open_processes

pytestmark = pytest.mark.slow


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    with open_processes(tmp_path) as pool:
        yield pool


def test_keygen_creates_a_private_key_once(processes: Processes) -> None:
    data = processes.environment.data("me")
    first = processes.run("keygen", "--data", str(data))
    assert first.code == 0, first.stderr
    key = first.stdout.strip()
    assert len(key) == 64
    assert int(key, 16) >= 0
    assert first.stderr.strip() == f"udpim keygen: created {data / 'identity.key'}"
    assert stat.S_IMODE((data / "identity.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    again = processes.run("keygen", "--data", str(data), "--json")
    assert again.code == 0
    assert again.json() == {
        "public_key": key,
        "created": False,
        "path": str(data / "identity.key"),
    }


def test_keygen_defaults_to_the_xdg_data_dir(processes: Processes) -> None:
    outcome = processes.run("keygen", "--json")
    assert outcome.code == 0, outcome.stderr
    document = outcome.json()
    assert isinstance(document, dict)
    assert document["created"] is True
    expected = processes.environment.root / "xdg" / "udpim" / "identity.key"
    assert document["path"] == str(expected)
    assert expected.exists()


def test_keygen_refuses_a_key_file_others_can_read(processes: Processes) -> None:
    data = processes.environment.data("leaky")
    assert processes.run("keygen", "--data", str(data)).code == 0
    (data / "identity.key").chmod(0o644)
    outcome = processes.run("keygen", "--data", str(data))
    assert outcome.code == 1
    assert "is accessible by other users" in outcome.error_line()


def test_keygen_refuses_a_data_dir_that_is_a_file(processes: Processes) -> None:
    data = processes.environment.data("file")
    data.write_text("not a directory")
    outcome = processes.run("keygen", "--data", str(data))
    assert outcome.code == 2
    assert outcome.error_line() == f"udpim keygen: error: data directory {data} is not a directory"


def test_bad_config_file_exits_2(processes: Processes) -> None:
    data = processes.environment.data("configured")
    data.mkdir(mode=0o700)
    (data / "udpim.toml").write_text("user = 'alice'\nhub = [1, 2]\n")
    outcome = processes.run("keygen", "--data", str(data))
    assert outcome.code == 2
    assert "udpim.toml: hub has the wrong type" in outcome.error_line()
    (data / "udpim.toml").write_text("user = \n")
    assert "not valid TOML" in processes.run("status", "--data", str(data)).error_line()


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ([], "udpim: error: the following arguments are required: COMMAND"),
        (["chat"], "invalid choice: 'chat'"),
        (["keygen", "extra"], "unrecognized arguments: extra"),
    ],
)
def test_bad_command_lines_exit_2(processes: Processes, args: list[str], error: str) -> None:
    outcome = processes.run(*args)
    assert outcome.code == 2
    assert error in outcome.error_line()


def test_help_and_version_exit_0(processes: Processes) -> None:
    helped = processes.run("--help")
    assert helped.code == 0
    for command in ("keygen", "hub", "daemon", "send", "inbox", "status", "demo"):
        assert command in helped.stdout
    version = processes.run("--version")
    assert (version.code, version.stdout.split()[0]) == (0, "udpim")


def test_debug_adds_the_traceback(processes: Processes) -> None:
    data = processes.environment.data("nobody")
    plain = processes.run("status", "--data", str(data))
    debugged = processes.run("status", "--data", str(data), "--debug")
    assert plain.code == debugged.code == 1
    assert "Traceback (most recent call last)" in debugged.stderr
    assert debugged.stderr.splitlines()[-1] == plain.error_line()
