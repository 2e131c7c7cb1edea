"""Refresh the real outputs and plots of docs/SCENARIOS.md by running every shipped scenario.

What it owns: for each ``scenarios/NAME.toml``, running ``netsim run scenarios/NAME.toml
--record NAME.trace.gz`` and ``netsim report NAME.trace.gz --plot ...`` exactly as a user would
(the ``netsim`` command's own ``main``, in this process), then

* replacing the text between ``<!-- BEGIN output NAME -->`` and ``<!-- END output NAME -->``
  in docs/SCENARIOS.md with the command line and what it printed, and
* writing the plot to docs/img/scenarios/NAME.png.

Run it from the repository root after a change that moves the figures:

    python -m tools.scenario_docs [NAME ...]

Rules: nothing but those marked blocks and the PNG files is written; traces go to a
temporary directory (the printed paths are the relative ones of the commands shown).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import sys
import tempfile
from pathlib import Path

from netsim.cli import main as netsim_main

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "SCENARIOS.md"
IMAGES = ROOT / "docs" / "img" / "scenarios"


def run_one(name: str, workdir: Path) -> str:
    """Run scenario ``name`` and draw its plot; return the console block for the doc."""
    scenario = ROOT / "scenarios" / f"{name}.toml"
    trace = f"{name}.trace.gz"
    output, report = io.StringIO(), io.StringIO()
    previous = Path.cwd()
    os.chdir(workdir)
    try:
        with contextlib.redirect_stdout(output):
            code = netsim_main(["run", str(scenario), "--no-progress", "--record", trace])
        if code == 0:
            with contextlib.redirect_stdout(report):
                code = netsim_main(["report", trace, "--plot", str(IMAGES / f"{name}.png")])
    finally:
        os.chdir(previous)
    if code != 0:
        raise SystemExit(f"{name}: netsim exited with {code}")
    printed = output.getvalue()
    command = f"$ netsim run scenarios/{name}.toml --record {trace}"
    return f"```console\n{command}\n{printed.rstrip()}\n```"


def replace_block(text: str, name: str, block: str) -> str:
    """``text`` with the marked output block of ``name`` replaced by ``block``."""
    pattern = re.compile(
        rf"(<!-- BEGIN output {re.escape(name)} -->\n).*?(<!-- END output {re.escape(name)} -->)",
        re.DOTALL,
    )
    if not pattern.search(text):
        raise SystemExit(f"{DOC}: no output block for {name}")
    return pattern.sub(lambda match: match.group(1) + block + "\n" + match.group(2), text)


def main(argv: list[str] | None = None) -> int:
    """Refresh the named scenarios' outputs and plots (all shipped ones by default)."""
    parser = argparse.ArgumentParser(prog="python -m tools.scenario_docs", description=__doc__)
    parser.add_argument("names", nargs="*", help="scenario names (default: all)")
    args = parser.parse_args(argv)
    names = args.names or sorted(path.stem for path in (ROOT / "scenarios").glob("*.toml"))
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    IMAGES.mkdir(parents=True, exist_ok=True)
    text = DOC.read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="scenario-docs-") as tmp:
        for name in names:
            print(f"running {name} ...", file=sys.stderr)
            text = replace_block(text, name, run_one(name, Path(tmp)))
    DOC.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
