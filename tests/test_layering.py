"""The layering rules, checked on the source: who may import whom.

* netsim never imports udpim, and udpim never imports netsim (tests/ and tools/ join them).
* The sans-IO layers (udpim/core, udpim/im) import no I/O, clock, randomness or logging:
  time is passed in, randomness is injected, output is pulled by the caller.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SANS_IO_FORBIDDEN = {"trio", "socket", "time", "os", "random", "logging", "sqlite3", "threading"}


def imported_modules(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports (absolute imports only)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def sources(package: str) -> list[Path]:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no sources under {package}"
    return files


@pytest.mark.parametrize(("package", "forbidden"), [("netsim", "udpim"), ("udpim", "netsim")])
def test_udpim_and_netsim_do_not_import_each_other(package: str, forbidden: str) -> None:
    offenders = [
        str(p.relative_to(ROOT)) for p in sources(package) if forbidden in imported_modules(p)
    ]
    assert offenders == []


@pytest.mark.parametrize("package", ["udpim/core", "udpim/im"])
def test_sans_io_layers_import_no_io(package: str) -> None:
    offenders = {
        str(p.relative_to(ROOT)): sorted(imported_modules(p) & SANS_IO_FORBIDDEN)
        for p in sources(package)
        if imported_modules(p) & SANS_IO_FORBIDDEN
    }
    assert offenders == {}


def test_the_check_sees_imports() -> None:
    # The checker itself must notice an import, or the tests above could never fail.
    assert {"trio", "time"} <= imported_modules(ROOT / "udpim" / "net" / "udp.py")
    assert "udpim" in imported_modules(ROOT / "tools" / "demo.py")
