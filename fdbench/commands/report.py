"""``fdbench report``: render result directories into Markdown, PNGs and one HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _handler(args: Any) -> int:
    from fdbench.errors import InputError
    from fdbench.io import check_writable_dir

    # refused before any figure is drawn: an output path through a file, a missing input
    check_writable_dir(args.out, "--out")
    missing = [str(path) for path in args.run_dirs if not path.exists()]
    if missing:
        raise InputError(f"{missing[0]}: no such result directory or file"
                         + (f" (nor {', '.join(missing[1:])})" if missing[1:] else ""))
    from fdbench.report import render_report

    out = render_report(args.run_dirs, args.out, title=args.title,
                        datasets=args.datasets)
    print(f"-> {out / 'index.md'}, {out / 'index.html'}")
    return 0


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "report", help="render bench / sweep / proofs_check / run results as a report",
        description="Render the JSON results in RUN_DIR... (directories holding results.jsonl, "
                    "sweep.jsonl, proofs_check.json, results.json, traces.json; or a "
                    "proofs_check JSON file) into OUT/index.md, PNG figures and a "
                    "self-contained OUT/index.html. Identical input gives identical bytes.")
    parser.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR")
    parser.add_argument("--out", type=Path, required=True, help="report directory (replaced "
                        "atomically), e.g. reports/<name>/")
    parser.add_argument("--title", default="fdbench report")
    parser.add_argument("--datasets", nargs="+", default=None, metavar="NAME",
                        help="data sets of the localisation figure ('all' = every registered "
                             "one; default: the runs' data, else ecg)")
    parser.set_defaults(handler=_handler)
