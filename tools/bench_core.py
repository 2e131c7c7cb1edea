"""The old command line of the core micro-benchmarks; ``tools/bench core`` is the new one.

Kept so that ``.venv/bin/python tools/bench_core.py [--repetitions N] [--packets N]
[--messages N] [--json]`` (quoted in udpim/core's comments) still works: it runs
``tools.benchmarks.core`` and prints that subcommand's Markdown table, or its JSON with
``--json`` (on stdout, as before). The cases and their method are documented in
``tools/benchmarks/core.py`` and ``core_cases.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: put the checkout on the path for tools.*
    sys.path.insert(0, str(ROOT))

from tools.benchmarks.core import core_json, core_markdown, measure_core  # noqa: E402


def main(argv: Sequence[str] | None = None) -> int:
    """Run the core micro-benchmarks; print the table (or JSON). Returns 0."""
    parser = argparse.ArgumentParser(description="Same as tools/bench core (kept for old links).")
    parser.add_argument("--repetitions", type=int, default=7, help="rounds (default 7)")
    parser.add_argument("--packets", type=int, default=20_000, help="packets per case per round")
    parser.add_argument("--messages", type=int, default=4_000, help="messages per session round")
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    args = parser.parse_args(argv)
    if args.repetitions < 1 or args.packets < 10 or args.messages < 10:
        parser.error("need --repetitions >= 1, --packets >= 10, --messages >= 10")
    result = measure_core(args.repetitions, args.packets, args.messages, seed=7)
    print(json.dumps(core_json(result), indent=2) if args.json else core_markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
