"""``fdbench calibrate teacache``: fit TeaCache's rescaling polynomial on a checkpoint and
save it (by default as teacache_calibration.json next to the checkpoint)."""

from __future__ import annotations

from typing import Any

from fdbench.argtypes import (
    CHECKPOINT_HELP,
    checkpoint_arg,
    non_negative_int,
    positive_int,
    solver_steps,
)


def _teacache(args: Any) -> int:
    from pathlib import Path

    from fdbench.io import check_writable_file

    if args.out:                             # refused now, not after the trajectories
        check_writable_file(args.out, "--out")
    from fdbench.cache.teacache_calibration import FILE_NAME, calibrate, save_calibration
    from fdbench.checkpoint import load_checkpoint, read_config

    read_config(args.checkpoint)
    out = Path(args.out) if args.out else Path(args.checkpoint) / FILE_NAME
    check_writable_file(out, "--out")
    model = load_checkpoint(args.checkpoint)
    result = calibrate(model, num_trajectories=args.num_trajectories, n_steps=args.steps,
                       seed=args.seed, batch_size=args.batch_size)
    result["checkpoint"] = str(args.checkpoint)
    save_calibration(out, result)
    coefficients = ", ".join(f"{c:.4g}" for c in result["coefficients"])
    print(f"TeaCache calibration ({result['n_points']} points, fit RMSE "
          f"{result['fit_rmse']:.3g}): coefficients [{coefficients}] -> {out}")
    print(f"use it with --policies teacache:calibration={out}")
    return 0


def register(commands: Any) -> None:
    parser = commands.add_parser("calibrate", help="calibrate a cache method on a checkpoint")
    methods = parser.add_subparsers(dest="method", required=True, metavar="METHOD")
    teacache = methods.add_parser(
        "teacache", help="fit TeaCache's degree-4 input-change -> output-change polynomial")
    teacache.add_argument("--checkpoint", type=checkpoint_arg, required=True,
                          help=CHECKPOINT_HELP)
    teacache.add_argument("--num-trajectories", type=positive_int, default=8,
                          help="uncached sampling trajectories to fit on (default 8)")
    teacache.add_argument("--steps", type=solver_steps, default=100,
                          help="reverse-SDE steps per trajectory, >= 2 (default 100)")
    teacache.add_argument("--seed", type=non_negative_int, default=0,
                          help="noise seed (default 0)")
    teacache.add_argument("--batch-size", type=positive_int, default=64)
    teacache.add_argument("--out", default=None,
                          help="output file (default CHECKPOINT/teacache_calibration.json)")
    teacache.set_defaults(handler=_teacache)
