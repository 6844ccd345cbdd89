"""The ``fdbench`` command: train, sample, run the main job, and bench caches.

Every user-facing error (bad argument, bad data, bad config value, missing or corrupt
file) ends the command with one ``fdbench: error: ...`` line and exit code 2, raised
before any compute starts. torch is imported inside the handlers only, so ``--help`` and
``--version`` answer at once."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from fdbench import __version__
from fdbench.argtypes import (
    CHECKPOINT_HELP,
    add_threads,
    checkpoint_arg,
    non_negative_int,
    positive_int,
    solver_steps,
)
from fdbench.cli_help import GRID_NAMES, SOLVER_NAMES, SWEEP_METHODS
from fdbench.commands import register_all
from fdbench.errors import FdbenchError, UsageError

EXIT_USAGE = 2
MIN_JUDGED = 10  # fdbench.judges.MIN_SERIES, here so `run` refuses before torch loads
_SWEEP_METHODS = SWEEP_METHODS  # the name tests/test_sweep.py checks against the sweep


class Parser(argparse.ArgumentParser):
    """argparse with its usage errors as one ``fdbench: error:`` line (raised as
    :class:`UsageError`, so :func:`main` returns 2 instead of exiting)."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("fdbench").strip()  # "sample", "calibrate teacache"
        where = f"{command}: " if command else ""
        raise UsageError(f"{where}{message} (see {self.prog} --help)")


def _cmd_train(args: argparse.Namespace) -> int:
    from fdbench.io import check_writable_dir

    check_writable_dir(args.out, "--out")  # before torch's import: a bad path fails at once
    import torch

    from fdbench.data import load_dataset
    from fdbench.model import ModelConfig
    from fdbench.sde import VESDE, VPSDE
    from fdbench.train import TrainConfig, train

    train_config = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                               eval_every=args.eval_every, seed=args.seed,
                               ema_decay=args.ema_decay,
                               warmup_fraction=args.warmup_fraction)
    from fdbench.commands.data import options_from_args  # --delimiter, --dropna, --split

    data = load_dataset(args.data, seed=args.data_seed, options=options_from_args(args))
    overrides = {"parametrisation": args.parametrisation}
    if args.dropout is not None:
        overrides["dropout"] = args.dropout
    model_config = ModelConfig.from_preset(args.preset, data.n_steps, data.n_channels,
                                           layout=args.layout, **overrides)
    sde = VPSDE() if args.sde == "vp" else VESDE()
    command = "fdbench " + shlex.join(sys.argv[1:]) if sys.argv[1:] else "fdbench train"
    print(f"training {args.preset}/{args.layout} on {data.name} "
          f"(train {data.train.shape[0]} series of N={data.n_steps}, M={data.n_channels}), "
          f"{torch.get_num_threads()} threads -> {args.out}")
    history = train(model_config, train_config, data, args.out, sde=sde, resume=args.resume,
                    meta={"command": command, "data_seed": args.data_seed})
    print(f"best validation loss {history['best_val_loss']:.5g} at step "
          f"{history['best_step']}; checkpoint in {args.out}")
    return 0


def _cmd_sample(args: argparse.Namespace) -> int:
    from fdbench.io import atomic_save_npy, check_writable_file

    # everything refusable is refused before the weights load and before any sampling;
    # the path checks even before torch's import, so they answer at once
    check_writable_file(args.out, "--out")
    if args.out.suffix != ".npy":
        raise FdbenchError(f"--out must end in .npy, got {args.out}")
    import torch

    from fdbench.bench import policy_engine, validate_policy_spec
    from fdbench.checkpoint import load_checkpoint, read_config
    from fdbench.generate import generate
    from fdbench.solvers import SolverConfig

    SolverConfig(args.solver, args.steps, args.grid, args.eta,
                 noise_free_last_step=args.noise_free_last_step)
    validate_policy_spec(args.cache, read_config(args.checkpoint)["model"]["n_steps"])
    model = load_checkpoint(args.checkpoint, device=args.device)
    engine = policy_engine(model, args.cache)
    samples = generate(model, args.num_samples, n_steps=args.steps, seed=args.seed,
                       batch_size=args.batch_size, first_index=args.first_index,
                       noise_free_last_step=args.noise_free_last_step,
                       solver=args.solver, grid=args.grid, eta=args.eta, engine=engine,
                       desc=f"sampling ({args.cache})")
    if not torch.isfinite(samples).all():
        raise FdbenchError(f"sampling {args.checkpoint} gave non-finite values; the "
                           "checkpoint's weights may be corrupt (nothing written)")
    atomic_save_npy(args.out, samples.numpy())
    print(f"wrote {tuple(samples.shape)} samples ({args.cache}) to {args.out}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from fdbench.io import check_writable_dir

    check_writable_dir(args.runs_dir, "--runs-dir")
    if args.num_samples < MIN_JUDGED:  # the judges' classifier needs a test part
        raise FdbenchError(f"--num-samples must be >= {MIN_JUDGED} (the judges), got "
                           f"{args.num_samples}")
    import torch

    from fdbench.checkpoint import read_config
    from fdbench.run import run_main_job, summary_table

    if args.checkpoint is not None:
        read_config(args.checkpoint)
    print(f"fdbench run {args.name!r}: {torch.get_num_threads()} threads")
    results = run_main_job(args.name, runs_dir=args.runs_dir, checkpoint=args.checkpoint,
                           retrain=args.retrain, n_samples=args.num_samples,
                           n_steps=args.steps, seed=args.seed, batch_size=args.batch_size,
                           judge_repeats=args.judge_repeats)
    print(summary_table(results))
    print(f"({results['n_held_out']} held-out beats; {results['seconds']['total']:.0f} s) "
          f"-> {Path(args.runs_dir) / args.name}/results.json, samples.png, samples.npy, "
          f"report/index.html")
    return 0


def _add_train(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser(
        "train", help="train a score model (denoising score matching)",
        description="Train a ScoreTransformer on a dataset (registry name or a .npy/.npz/"
                    ".csv file of shape (B, N[, M])) and keep the best-on-validation "
                    "checkpoint (model.safetensors + config.json, which records the "
                    "weights' sha256) in --out. Interrupted runs continue with --resume.")
    train.add_argument("--data", default="ecg", help="dataset name or file (default: ecg)")
    train.add_argument("--data-seed", type=non_negative_int, default=0,
                       help="seed of the train/test split (default: 0)")
    train.add_argument("--out", type=Path, required=True, help="checkpoint directory")
    train.add_argument("--preset", default="compact",
                       help="paper | compact | small | tiny (default compact: the shipped "
                            "models' size)")
    train.add_argument("--layout", default="bins", choices=("time", "chart", "bins"),
                       help="token layout; chart/bins are frequency-domain (default bins)")
    train.add_argument("--sde", default="vp", choices=("vp", "ve"), help="default vp")
    train.add_argument("--parametrisation", default="preconditioned",
                       choices=("score", "noise", "preconditioned"),
                       help="what the head predicts: an EDM-style preconditioned noise "
                            "correction (default: trains on every embedded dataset), the "
                            "score (the paper's network; diverges on ECG at small sizes) "
                            "or the noise z; see docs/DESIGN.md")
    train.add_argument("--steps", type=positive_int, default=2000, help="optimiser steps")
    train.add_argument("--batch-size", type=positive_int, default=64)
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--dropout", type=float, default=None,
                       help="override the preset's dropout (default 0.1)")
    train.add_argument("--ema-decay", type=float, default=0.999,
                       help="EMA of the weights, the copy validated, saved and sampled "
                            "(default 0.999; 0 keeps the raw weights)")
    train.add_argument("--warmup-fraction", type=float, default=0.1,
                       help="share of the steps with a linear learning-rate warm-up, "
                            "cosine decay after it (default 0.1)")
    train.add_argument("--eval-every", type=positive_int, default=100,
                       help="steps between validation (and training-state saves)")
    train.add_argument("--seed", type=non_negative_int, default=0)
    train.add_argument("--resume", action="store_true", help="continue a run in --out")
    add_threads(train)
    from fdbench.commands.data import add_data_options  # light: argparse only

    add_data_options(train)
    train.set_defaults(handler=_cmd_train)


def _add_sample(commands: argparse._SubParsersAction) -> None:
    sample = commands.add_parser(
        "sample", help="draw samples from a checkpoint",
        description="Sample with a reverse solver (default: reverse Euler-Maruyama, the "
                    "paper's) and save the time-domain series (num_samples, N, M) as .npy. "
                    "Sample i depends only on (seed, first_index + i), never on the batch "
                    "size. The output path, solver options and cache spec are checked "
                    "before the checkpoint loads.")
    sample.add_argument("--checkpoint", type=checkpoint_arg, required=True,
                        help=CHECKPOINT_HELP)
    sample.add_argument("--num-samples", type=positive_int, required=True)
    sample.add_argument("--steps", type=solver_steps, default=1000,
                        help="reverse steps T >= 2 (default 1000, the paper's)")
    sample.add_argument("--seed", type=non_negative_int, default=0)
    sample.add_argument("--first-index", type=non_negative_int, default=0)
    sample.add_argument("--batch-size", type=positive_int, default=64)
    sample.add_argument("--noise-free-last-step", action="store_true",
                        help="drop the noise of the last step (em only; the base code "
                             "keeps it)")
    sample.add_argument("--solver", default="em",
                        help=f"{' | '.join(SOLVER_NAMES)} (default em); ode_heun makes 2 "
                             "score calls per step")
    sample.add_argument("--grid", default="uniform",
                        help=f"time grid: {' | '.join(GRID_NAMES)} (default uniform)")
    sample.add_argument("--eta", type=float, default=0.0,
                        help="DDIM stochasticity in [0, 1] (0 deterministic, 1 DDPM; ddim "
                             "only)")
    sample.add_argument("--cache", default="uncached", metavar="SPEC",
                        help="uncached (default), network_off (the control: the network's "
                             "output replaced by zeros) or a cache policy NAME[:field=value,"
                             "...], e.g. e2crf, fora:cache_interval=3 (`fdbench bench "
                             "--help` lists every policy and its knobs)")
    sample.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    sample.add_argument("--out", type=Path, required=True, help="output .npy file")
    add_threads(sample)
    sample.set_defaults(handler=_cmd_sample)


def _add_run(commands: argparse._SubParsersAction) -> None:
    run = commands.add_parser(
        "run", help="the main job on the embedded ECG data",
        description="Sample the shipped ECG model (bins layout) with 1000-step reverse EM "
                    "and score the samples against held-out beats next to real-vs-real "
                    "and mean-beat references. Writes runs/NAME/{results.json,samples.npy,"
                    "samples.png}; an interrupted run resumes from its finished batches.")
    run.add_argument("--name", default="default", help="run directory name (default: default)")
    run.add_argument("--runs-dir", type=Path, default=Path("runs"))
    run.add_argument("--checkpoint", type=checkpoint_arg, default=None,
                     help="use this checkpoint instead of the shipped one: "
                          + CHECKPOINT_HELP)
    run.add_argument("--retrain", action="store_true",
                     help="train the default model from scratch first (~20 min on 2 cores)")
    run.add_argument("--num-samples", type=positive_int, default=256)
    run.add_argument("--steps", type=solver_steps, default=1000)
    run.add_argument("--batch-size", type=positive_int, default=64)
    run.add_argument("--seed", type=non_negative_int, default=0)
    run.add_argument("--judge-repeats", type=positive_int, default=5,
                     help="repeats of the discriminative and predictive judges (default 5)")
    add_threads(run)
    run.set_defaults(handler=_cmd_run)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="fdbench",
        description="Frequency-domain diffusion for time series: train, sample, and the "
                    "main job. Errors exit with code 2.")
    parser.add_argument("--version", action="version", version=f"fdbench {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_train, _add_sample, _add_run):
        add(commands)
    register_all(commands)
    return parser


def _error(message: object) -> int:
    text = " ".join(str(message).split()) or "failed"  # one line, whatever the message
    print(f"fdbench: error: {text}", file=sys.stderr)
    return EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as err:
        return _error(err)
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)
    try:
        return args.handler(args)
    except FdbenchError as err:
        return _error(err)
    except OSError as err:  # a file the checks above could not foresee (removed, full disk)
        return _error(f"{err.strerror or err}: {err.filename}" if err.filename else err)
    except KeyboardInterrupt:
        print("fdbench: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
