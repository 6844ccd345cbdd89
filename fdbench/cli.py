"""The ``fdbench`` command: train, sample, run the main job, and bench caches.

Every user-facing error (bad data, bad config value, missing or corrupt file) ends the
command with one ``fdbench: error: ...`` line and exit code 2."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from fdbench.argtypes import non_negative_int, positive_int
from fdbench.commands import register_all
from fdbench.errors import FdbenchError

EXIT_USAGE = 2
# kept in step with fdbench.sweep.CACHE_POINTS (a test checks), so --help stays cheap
_SWEEP_METHODS = ("e2crf", "e2crf_v01", "fora", "toca", "duca", "teacache", "fbcache",
                  "taylorseer1", "taylorseer2", "freqca", "e2crf_no_event", "e2crf_no_feedback",
                  "e2crf_no_energy", "e2crf_no_probe", "fixed", "naive_kv")


def _add_threads(parser: argparse.ArgumentParser, default: str = "torch's choice") -> None:
    parser.add_argument("--threads", type=positive_int, default=None,
                        help=f"torch CPU threads (default: {default}); printed at start")


def _cmd_train(args: argparse.Namespace) -> int:
    from fdbench.data import load_dataset
    from fdbench.model import ModelConfig
    from fdbench.sde import VESDE, VPSDE
    from fdbench.train import TrainConfig, train

    data = load_dataset(args.data, seed=args.data_seed)
    overrides = {"parametrisation": args.parametrisation}
    if args.dropout is not None:
        overrides["dropout"] = args.dropout
    model_config = ModelConfig.from_preset(args.preset, data.n_steps, data.n_channels,
                                           layout=args.layout, **overrides)
    train_config = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                               eval_every=args.eval_every, seed=args.seed,
                               ema_decay=args.ema_decay,
                               warmup_fraction=args.warmup_fraction)
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
    from fdbench.bench import policy_engine
    from fdbench.checkpoint import load_checkpoint
    from fdbench.generate import generate
    from fdbench.io import atomic_save_npy, check_writable_file

    if args.out.suffix != ".npy":
        raise FdbenchError(f"--out must end in .npy, got {args.out}")
    check_writable_file(args.out, "--out")
    model = load_checkpoint(args.checkpoint, device=args.device)
    engine = policy_engine(model, args.cache)  # a bad spec fails here, before sampling
    samples = generate(model, args.num_samples, n_steps=args.steps, seed=args.seed,
                       batch_size=args.batch_size, first_index=args.first_index,
                       noise_free_last_step=args.noise_free_last_step,
                       solver=args.solver, grid=args.grid, eta=args.eta, engine=engine)
    if not torch.isfinite(samples).all():
        raise FdbenchError(f"sampling {args.checkpoint} gave non-finite values; the "
                           "checkpoint's weights may be corrupt (nothing written)")
    atomic_save_npy(args.out, samples.numpy())
    print(f"wrote {tuple(samples.shape)} samples ({args.cache}) to {args.out}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from fdbench.run import run_main_job, summary_table

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


def _cmd_bench(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from fdbench.bench import BenchConfig, format_table, run_bench
    from fdbench.distributed import init_from_env, shutdown
    from fdbench.run import shipped_checkpoint

    checkpoint = args.checkpoint or shipped_checkpoint()
    if args.random_model:
        from fdbench.bench import random_checkpoint

        checkpoint = random_checkpoint(args.out / "random-checkpoint", preset=args.random_model)
        print(f"random {args.random_model} weights: timing and FLOPs only, quality is "
              "meaningless for this model")
    config = BenchConfig(policies=tuple(args.policies), batch_sizes=tuple(args.batch_sizes),
                         n_steps=args.steps, num_samples=args.num_samples,
                         sample_batch=args.sample_batch,
                         rounds=args.rounds, seed=args.seed, threads=args.threads or 1,
                         n_boot=args.n_boot, device=args.device, precision=args.precision,
                         compile=args.compile, judge_repeats=args.judge_repeats)
    job = init_from_env(args.device)  # torchrun: shard the quality pass over the ranks
    if args.sweep and job.active:
        shutdown(job)
        raise FdbenchError("--sweep runs in one process; start it without torchrun")
    if not job.is_main:
        try:
            run_bench(checkpoint, args.out, config, progress=False, job=job)
        finally:
            shutdown(job)
        return 0
    print(f"fdbench bench: {checkpoint}, device {job.device}, {job.world_size} process(es), "
          f"precision {config.precision}")
    if not args.sweep:
        print(f"fdbench bench: T={config.n_steps}, threads={config.threads}, batches "
              f"{list(config.batch_sizes)}, {config.rounds} interleaved rounds -> {args.out}")
    if args.sweep:
        print(f"fdbench bench --sweep: baseline reverse EM T={args.steps}, "
              f"{config.num_samples} samples per point in one batch, threads="
              f"{config.threads} -> {args.out}")
        from fdbench.sweep import (
            BASELINE,
            CACHE_POINTS,
            default_points,
            format_sweep_table,
            run_sweep,
        )

        unknown = sorted(set(args.sweep_methods) - set(CACHE_POINTS))
        if unknown:
            raise FdbenchError(f"--sweep-methods: unknown {unknown}; known: "
                               f"{sorted(CACHE_POINTS)}")
        baseline = replace(BASELINE, n_steps=args.steps)
        points = default_points(tuple(args.sweep_steps),
                                {m: CACHE_POINTS[m] for m in args.sweep_methods}, baseline)
        records = run_sweep(checkpoint, args.out, config, points=points,
                            composites=not args.no_composites, log=print)
        print(format_sweep_table(records))
        written = [name for name in ("sweep.jsonl", "sweep.png", "sweep_curves.png",
                                     "sweep_ablation.png") if (Path(args.out) / name).exists()]
        print("-> " + ", ".join(f"{args.out}/{name}" for name in written))
        return 0
    try:
        records = run_bench(checkpoint, args.out, config, job=job)
    finally:
        shutdown(job)
    print(format_table(records))
    print(f"-> {args.out}/results.jsonl")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fdbench",
        description="Frequency-domain diffusion for time series: train, sample, and the "
                    "main job. Errors exit with code 2.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser(
        "train", help="train a score model (denoising score matching)",
        description="Train a ScoreTransformer on a dataset (registry name or a .npy/.npz/"
                    ".csv file of shape (B, N[, M])) and keep the best-on-validation "
                    "checkpoint (model.safetensors + config.json) in --out. Interrupted "
                    "runs continue with --resume.")
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
    _add_threads(train)
    train.set_defaults(handler=_cmd_train)

    sample = commands.add_parser(
        "sample", help="draw samples from a checkpoint",
        description="Sample with a reverse solver (default: reverse Euler-Maruyama, the "
                    "paper's) and save the time-domain series (num_samples, N, M) as .npy. "
                    "Sample i depends only on (seed, first_index + i), never on the batch "
                    "size.")
    sample.add_argument("--checkpoint", type=Path, required=True)
    sample.add_argument("--num-samples", type=positive_int, required=True)
    sample.add_argument("--steps", type=positive_int, default=1000,
                        help="reverse steps T (default 1000, the paper's)")
    sample.add_argument("--seed", type=non_negative_int, default=0)
    sample.add_argument("--first-index", type=non_negative_int, default=0)
    sample.add_argument("--batch-size", type=positive_int, default=64)
    sample.add_argument("--noise-free-last-step", action="store_true",
                        help="drop the noise of the last step (the base code keeps it)")
    sample.add_argument("--solver", default="em",
                        help="em | ode_euler | ode_heun | ddim | dpmpp_2m (default em); "
                             "ode_heun makes 2 score calls per step")
    sample.add_argument("--grid", default="uniform",
                        help="time grid: uniform | log_snr | edm (default uniform)")
    sample.add_argument("--eta", type=float, default=0.0,
                        help="DDIM stochasticity in [0, 1] (0 deterministic, 1 DDPM)")
    sample.add_argument("--cache", default="uncached", metavar="SPEC",
                        help="uncached (default), network_off (the control: the network's "
                             "output replaced by zeros) or a cache policy NAME[:field=value,"
                             "...], e.g. e2crf, fora:cache_interval=3 (README lists them)")
    sample.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    sample.add_argument("--out", type=Path, required=True, help="output .npy file")
    _add_threads(sample)
    sample.set_defaults(handler=_cmd_sample)

    run = commands.add_parser(
        "run", help="the main job on the embedded ECG data",
        description="Sample the shipped ECG model (bins layout) with 1000-step reverse EM "
                    "and score the samples against held-out beats next to real-vs-real "
                    "and mean-beat references. Writes runs/NAME/{results.json,samples.npy,"
                    "samples.png}; an interrupted run resumes from its finished batches.")
    run.add_argument("--name", default="default", help="run directory name (default: default)")
    run.add_argument("--runs-dir", type=Path, default=Path("runs"))
    run.add_argument("--checkpoint", type=Path, default=None,
                     help="use this checkpoint instead of the shipped one")
    run.add_argument("--retrain", action="store_true",
                     help="train the default model from scratch first (~20 min on 2 cores)")
    run.add_argument("--num-samples", type=positive_int, default=256)
    run.add_argument("--steps", type=positive_int, default=1000)
    run.add_argument("--batch-size", type=positive_int, default=64)
    run.add_argument("--seed", type=non_negative_int, default=0)
    run.add_argument("--judge-repeats", type=positive_int, default=5,
                     help="repeats of the discriminative and predictive judges (default 5)")
    _add_threads(run)
    run.set_defaults(handler=_cmd_run)

    bench = commands.add_parser(
        "bench", help="cached vs uncached sampling: speed (wall and FLOPs) and quality",
        description="Time the uncached sampler and each cache policy interleaved in one "
                    "process (warm-up, fixed threads, per-round ratios), and score each "
                    "policy's samples against held-out data and against the uncached "
                    "samples drawn with the same noise. Policies are NAME[:field=value,...] "
                    "(names: none, fixed, naive_kv, e2crf, e2crf_literal, e2crf_paper, "
                    "e2crf_best, e2crf_public, e2crf_no_event, e2crf_no_feedback, "
                    "e2crf_no_energy, e2crf_no_probe). Results: OUT/results.jsonl, resumable.")
    bench.add_argument("--checkpoint", type=Path, default=None,
                       help="checkpoint directory (default: the shipped ECG model)")
    bench.add_argument("--random-model", default=None, metavar="PRESET",
                       help="bench a randomly initialised PRESET model (chart layout, ECG "
                            "shape) instead of a checkpoint: timing and FLOPs only")
    bench.add_argument("--policies", nargs="+", default=["e2crf", "e2crf_literal",
                                                         "e2crf_paper", "e2crf_best",
                                                         "fixed", "naive_kv"])
    bench.add_argument("--batch-sizes", type=positive_int, nargs="+", default=[1, 64])
    bench.add_argument("--steps", type=positive_int, default=1000, help="reverse steps T")
    bench.add_argument("--num-samples", type=positive_int, default=64,
                       help="samples per policy for the quality pass")
    bench.add_argument("--sample-batch", type=positive_int, default=32,
                       help="batch size of the quality pass (default 32); torchrun ranks take "
                            "whole batches, so their samples equal one process's bit for bit")
    bench.add_argument("--rounds", type=positive_int, default=3,
                       help="interleaved timing rounds per batch size")
    bench.add_argument("--n-boot", type=positive_int, default=100,
                       help="bootstrap resamples for standard errors")
    bench.add_argument("--seed", type=non_negative_int, default=0)
    bench.add_argument("--judge-repeats", type=non_negative_int, default=5,
                       help="repeats of the discriminative and predictive judges on every "
                            "quality row (default 5; 0 skips the judges)")
    bench.add_argument("--out", type=Path, default=Path("runs/bench"))
    bench.add_argument("--sweep", action="store_true",
                       help="instead: the speed/quality sweep against reverse EM with --steps "
                            "steps: every solver at --sweep-steps, every cache method (E²-CRF's "
                            "ablations too) at four or more operating points and the "
                            "network_off control, then each method but the ablations "
                            "on the best solver (the fewest evaluations whose discriminative "
                            "score is within 2 SE of the baseline's); one batch of "
                            "--num-samples per point, baseline re-timed between points; "
                            "writes sweep.jsonl (resumable), sweep.png and the curves "
                            "sweep_curves.png, sweep_ablation.png")
    bench.add_argument("--sweep-steps", type=positive_int, nargs="+",
                       default=[10, 20, 50, 100, 200, 500, 1000],
                       help="solver steps T of the sweep (default 10 20 50 100 200 500 1000)")
    bench.add_argument("--sweep-methods", nargs="+", default=list(_SWEEP_METHODS),
                       help=f"cache methods of the sweep (default: all: "
                            f"{' '.join(_SWEEP_METHODS)})")
    bench.add_argument("--no-composites", action="store_true",
                       help="skip the caches on top of the best solver")
    bench.add_argument("--device", default="cpu",
                       help="cpu, cuda, cuda:K or auto (cuda when available); default cpu. "
                            "On cuda the timings use CUDA events with synchronisation")
    bench.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"),
                       help="autocast precision of the network (default fp32); bench reports "
                            "the paired error of the samples against fp32")
    bench.add_argument("--compile", action="store_true",
                       help="also time and score the uncached sampler through torch.compile "
                            "(opt-in: on this CPU it gave ~1.1x after minutes of compiling)")
    _add_threads(bench, default="1, the timing protocol's")
    bench.set_defaults(handler=_cmd_bench)
    register_all(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    try:
        return args.handler(args)
    except (FdbenchError, FileNotFoundError) as err:
        print(f"fdbench: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("fdbench: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
