"""udpim.identity and udpim.settings: key files, key text, data dirs, udpim.toml, addresses."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from udpim.identity import (
    IDENTITY_FILE,
    IdentityError,
    load_identity,
    load_or_create_identity,
    parse_public_key,
    public_key_text,
)
from udpim.settings import (
    SettingsError,
    default_data_dir,
    format_address,
    load_config_file,
    parse_address,
)


def counter_rng(n: int) -> bytes:
    return bytes(range(1, n + 1))


def test_identity_is_created_private_and_loaded_back(tmp_path: Path) -> None:
    data = tmp_path / "alice"
    key, created = load_or_create_identity(data, counter_rng)
    assert created
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / IDENTITY_FILE).stat().st_mode) == 0o600
    again, created_again = load_or_create_identity(data, counter_rng)
    assert not created_again
    assert again.public == key.public
    assert load_identity(data).public == key.public


def test_identity_readable_by_others_is_refused(tmp_path: Path) -> None:
    load_or_create_identity(tmp_path, counter_rng)
    os.chmod(tmp_path / IDENTITY_FILE, 0o644)
    with pytest.raises(IdentityError, match="chmod 600"):
        load_identity(tmp_path)


@pytest.mark.parametrize("content", ["", "xyz\n", "00" * 31 + "\n", "zz" * 32])
def test_malformed_identity_is_one_clear_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / IDENTITY_FILE
    path.write_text(content)
    os.chmod(path, 0o600)
    with pytest.raises(IdentityError, match="not a udpim identity") as info:
        load_identity(tmp_path)
    assert "\n" not in str(info.value)


def test_missing_identity_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(IdentityError, match="udpim keygen"):
        load_identity(tmp_path)


def test_public_key_text_round_trip() -> None:
    key = bytes(range(32))
    assert parse_public_key(public_key_text(key)) == key
    assert parse_public_key("  " + key.hex().upper() + "\n") == key


@pytest.mark.parametrize("text", ["", "abc", "00" * 31, "gg" * 32, "00" * 33])
def test_bad_public_keys(text: str) -> None:
    with pytest.raises(IdentityError, match="expected 64 hex characters"):
        parse_public_key(text)


def test_default_data_dirs_follow_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_data_dir("user") == tmp_path / "udpim"
    assert default_data_dir("hub") == tmp_path / "udpim-hub"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert default_data_dir("user") == Path.home() / ".local" / "share" / "udpim"


def test_config_file(tmp_path: Path) -> None:
    assert load_config_file(tmp_path) == {}
    (tmp_path / "udpim.toml").write_text('user = "alice"\nclosed = true\n')
    assert load_config_file(tmp_path) == {"user": "alice", "closed": True}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("user = ", "not valid TOML"),
        ('nickname = "x"', "unknown key 'nickname'"),
        ("user = 3", "user has the wrong type"),
    ],
)
def test_bad_config_files(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "udpim.toml").write_text(content)
    with pytest.raises(SettingsError, match=message):
        load_config_file(tmp_path)


def test_addresses() -> None:
    assert parse_address("127.0.0.1:9000") == ("127.0.0.1", 9000)
    assert parse_address("localhost:0") == ("127.0.0.1", 0)
    assert format_address(("127.0.0.1", 9000)) == "127.0.0.1:9000"


@pytest.mark.parametrize("text", ["", "9000", "127.0.0.1", "host:9000", "127.0.0.1:65536", ":1"])
def test_bad_addresses(text: str) -> None:
    with pytest.raises(SettingsError, match="bad hub"):
        parse_address(text, what="hub")
