"""``python -m proofs_check``: decide every appendix claim and print the table."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from proofs_check.registry import ClaimResult, Context, run_checks


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="python -m proofs_check")
    parser.description = (
        "Decide every appendix claim of the E²-CRF paper (docs/METHOD.md §3) with an "
        "executable check: verdict (holds / violated / vacuous), the reading that decided it "
        "with its measured value, bound and tightness (measured / bound), and the settings. "
        "Verdicts are computed from measurements against a stated tolerance. Exit code 0 "
        "whatever the verdicts (a violated claim is a finding, not a failure); 2 on bad "
        "input.")
    parser.add_argument("--quick", action="store_true",
                        help="CI mode: smaller sizes, all checks in <= 60 s on 2 cores "
                             "(default: full mode, <= 10 min)")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="trained model for the model-dependent claims "
                             "(default: the shipped ECG model)")
    parser.add_argument("--only", nargs="+", default=None, metavar="ID",
                        help="run only these claim ids (e.g. A.4 P3.1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, dest="json_out",
                        help="write the results as JSON here (written atomically)")
    return parser


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def reading_cells(result: ClaimResult) -> str:
    """Every reading with its verdict and (measured vs bound); identities marked."""
    cells = []
    for name, verdict in result.readings.items():
        tag = "identity, " if name in result.identities else ""
        measured, bound = result.reading_values.get(name, (None, None))
        numbers = "" if measured is None else f" {_cell(measured)} vs {_cell(bound)}"
        cells.append(f"{name}: {tag}{verdict}{numbers}")
    return "; ".join(cells)


def format_table(results: Sequence[ClaimResult]) -> str:
    """Markdown table: id, claim, verdict, the reading that decided it, that reading's
    measured value and bound, tightness, settings (mode first), all readings."""
    lines = ["| id | claim | verdict | decided by | measured | bound | tightness | settings "
             "| readings |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r.claim_id} | {r.statement} | **{r.verdict}** | "
                     f"{r.decided_by or '-'} | {_cell(r.measured)} | {_cell(r.bound)} | "
                     f"{_cell(r.tightness)} | {r.settings or '-'} | {reading_cells(r)} |")
    return "\n".join(lines)


def results_payload(ctx: Context, results: Sequence[ClaimResult], seconds: float) -> dict:
    import platform

    import torch

    return {"kind": "proofs_check", "quick": ctx.quick, "seed": ctx.seed,
            "checkpoint": str(ctx.checkpoint_dir), "seconds": seconds,
            "machine": platform.node(), "python": platform.python_version(),
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "claims": [r.to_dict() for r in results]}


def main_with_args(args: argparse.Namespace) -> int:
    from fdbench.errors import InputError
    from fdbench.io import atomic_write_json

    if args.checkpoint is not None and not (args.checkpoint / "config.json").is_file():
        raise InputError(f"--checkpoint {args.checkpoint}: no config.json there")
    ctx = Context(quick=args.quick, checkpoint=args.checkpoint, seed=args.seed)
    started = time.perf_counter()
    # `fdbench check` passes a progress bar (fdbench/commands/check.py)
    progress = getattr(args, "progress", None) or (
        lambda cid: print(f"checking {cid} ...", file=sys.stderr))
    try:
        results = run_checks(ctx, only=args.only, progress=progress)
    except KeyError as err:
        raise InputError(str(err.args[0])) from None
    seconds = time.perf_counter() - started
    print(format_table(results))
    counts = {v: sum(r.verdict == v for r in results) for v in ("holds", "violated", "vacuous")}
    print(f"{len(results)} claims in {seconds:.0f} s: " +
          ", ".join(f"{n} {v}" for v, n in counts.items()))
    if args.json_out is not None:
        atomic_write_json(args.json_out, results_payload(ctx, results, seconds))
        print(f"-> {args.json_out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from fdbench.errors import FdbenchError

    args = build_parser().parse_args(argv)
    try:
        return main_with_args(args)
    except FdbenchError as err:
        print(f"proofs_check: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
