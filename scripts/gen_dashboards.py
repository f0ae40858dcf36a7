"""Writes the Grafana dashboards ``deploy/grafana/dashboards/*.json`` from ``herd.telemetry.dashboards``.

    python scripts/gen_dashboards.py          # regenerate in place
    python scripts/gen_dashboards.py --check  # exit 1, listing stale files, if a dashboard is out of date

The dashboards are code so their queries use the metric names declared in
``herd.telemetry.metrics`` and nothing else; the JSON is committed for Grafana's file provisioning.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: the repository's herd, not another install
    sys.path.insert(0, str(ROOT))

from herd.telemetry.dashboards import DASHBOARDS  # noqa: E402

OUT_DIR = ROOT / "deploy" / "grafana" / "dashboards"


def render(builder) -> str:
    """A dashboard as the exact text of its file (stable key order, trailing newline)."""
    return json.dumps(builder(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale files (exit 1 if any)")
    args = parser.parse_args(argv)
    stale = []
    for name, builder in DASHBOARDS.items():
        path = OUT_DIR / name
        text = render(builder)
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(path.relative_to(ROOT).as_posix())
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if args.check and stale:
        print("stale (run python scripts/gen_dashboards.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    for path in stale:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
