"""The app loader imports from the current directory, as ``python -m`` does, so the ``netsim``
console script run from a project's root finds that project's apps."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from netsim.app import AppSpecError, load_app_factory, put_cwd_on_path

APP_SOURCE = "class HereApp:\n    def __init__(self, workload):\n        self.workload = workload\n"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory holding ``scenario_here_app.py``; the cwd, with sys.path without it."""
    (tmp_path / "scenario_here_app.py").write_text(APP_SOURCE, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    kept = [p for p in sys.path if p and os.path.abspath(p) != str(tmp_path)]
    monkeypatch.setattr(sys, "path", kept)
    monkeypatch.delitem(sys.modules, "scenario_here_app", raising=False)
    yield tmp_path
    sys.modules.pop("scenario_here_app", None)


def test_a_module_in_the_current_directory_loads(project: Path) -> None:
    factory = load_app_factory("scenario_here_app:HereApp")
    assert factory({"k": 1}).workload == {"k": 1}  # type: ignore[attr-defined]
    assert sys.path[0] == os.getcwd()
    assert Path(sys.path[0]).samefile(project)


def test_the_current_directory_is_added_once(project: Path) -> None:
    put_cwd_on_path()
    put_cwd_on_path()
    assert [p for p in sys.path if p == os.getcwd()] == [os.getcwd()]


def test_an_empty_entry_counts_as_the_current_directory(project: Path) -> None:
    sys.path.insert(0, "")
    before = list(sys.path)
    put_cwd_on_path()
    assert sys.path == before
    assert load_app_factory("scenario_here_app:HereApp") is not None


def test_elsewhere_the_module_is_not_found(
    project: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    with pytest.raises(AppSpecError, match="cannot import 'scenario_here_app'"):
        load_app_factory("scenario_here_app:HereApp")
