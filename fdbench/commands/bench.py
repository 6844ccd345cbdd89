"""``fdbench bench``: cached vs uncached sampling (speed in wall time and FLOPs, and
quality), or with ``--sweep`` the solver x cache sweep. Every input is checked before a
model is built or loaded (``_checks``); heavy modules are imported in the handler."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fdbench.argtypes import (
    CHECKPOINT_HELP,
    SplitCommas,
    add_threads,
    checkpoint_arg,
    non_negative_int,
    positive_int,
    solver_steps,
)
from fdbench.cli_help import POLICY_CATALOG, SWEEP_METHODS
from fdbench.errors import FdbenchError

if TYPE_CHECKING:
    from fdbench.bench import BenchConfig


def _checks(args: argparse.Namespace) -> tuple[BenchConfig, Path | None]:
    """Everything ``bench`` can refuse, refused before any model is built or loaded:
    returns the validated config and the checkpoint (None: a random model)."""
    from fdbench.io import check_writable_dir

    check_writable_dir(args.out, "--out")  # before torch's import: a bad path fails at once
    from fdbench.bench import BenchConfig, validate_policy_spec
    from fdbench.checkpoint import read_config

    config = BenchConfig(policies=tuple(args.policies), batch_sizes=tuple(args.batch_sizes),
                         n_steps=args.steps, num_samples=args.num_samples,
                         sample_batch=args.sample_batch,
                         rounds=args.rounds, seed=args.seed, threads=args.threads or 1,
                         n_boot=args.n_boot, device=args.device, precision=args.precision,
                         compile=args.compile, judge_repeats=args.judge_repeats)
    if args.random_model:
        from fdbench.model import ModelConfig

        n_steps = 187  # random_checkpoint's default data: the ECG beats
        ModelConfig.from_preset(args.random_model, n_steps, 1)  # an unknown preset fails here
        checkpoint = None
    else:
        checkpoint = args.checkpoint or checkpoint_arg("ecg")
        n_steps = read_config(checkpoint)["model"]["n_steps"]
    for spec in config.policies:
        validate_policy_spec(spec, n_steps)
    return config, checkpoint


def _cmd_bench(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from fdbench.bench import run_bench
    from fdbench.bench_table import format_table
    from fdbench.distributed import init_from_env, shutdown

    config, checkpoint = _checks(args)
    if args.random_model:
        from fdbench.bench import random_checkpoint

        checkpoint = random_checkpoint(args.out / "random-checkpoint", preset=args.random_model)
        print(f"random {args.random_model} weights: timing and FLOPs only, quality is "
              "meaningless for this model")
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
    print(f"fdbench bench: T={config.n_steps}, threads={config.threads}, batches "
          f"{list(config.batch_sizes)}, {config.rounds} interleaved rounds -> {args.out}")
    try:
        records = run_bench(checkpoint, args.out, config, job=job)
    finally:
        shutdown(job)
    print(format_table(records))
    print(f"-> {args.out}/results.jsonl")
    return 0


BENCH_DESCRIPTION = """\
Time the uncached sampler and each cache policy interleaved in one process (warm-up, fixed
threads, per-round ratios), and score each policy's samples against held-out data and
against the uncached samples drawn with the same noise. Results: OUT/results.jsonl with
its settings in OUT/results.settings.json; a rerun with the same settings resumes (and
says what it skipped), a rerun with other settings into the same OUT is refused, naming
the settings that differ (give another --out)."""


def register(commands: Any) -> None:
    bench = commands.add_parser(
        "bench", help="cached vs uncached sampling: speed (wall and FLOPs) and quality",
        description=BENCH_DESCRIPTION, epilog=POLICY_CATALOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    bench.add_argument("--checkpoint", type=checkpoint_arg, default=None,
                       help=CHECKPOINT_HELP + " (default: ecg)")
    bench.add_argument("--random-model", default=None, metavar="PRESET",
                       help="bench a randomly initialised PRESET model (chart layout, ECG "
                            "shape) instead of a checkpoint: timing and FLOPs only")
    bench.add_argument("--policies", nargs="+", metavar="SPEC",
                       default=["e2crf", "e2crf_literal", "e2crf_paper", "e2crf_best",
                                "fixed", "naive_kv"],
                       help="cache policies NAME[:field=value,...] (listed below; default "
                            "%(default)s)")
    bench.add_argument("--batch-sizes", type=positive_int, nargs="+", default=[1, 64])
    bench.add_argument("--steps", type=solver_steps, default=1000,
                       help="reverse steps T >= 2 (default 1000)")
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
    bench.add_argument("--sweep-steps", type=solver_steps, nargs="+",
                       default=[10, 20, 50, 100, 200, 500, 1000],
                       help="solver steps T of the sweep (default 10 20 50 100 200 500 1000)")
    bench.add_argument("--sweep-methods", nargs="+", action=SplitCommas, known=SWEEP_METHODS,
                       default=list(SWEEP_METHODS), metavar="METHOD",
                       help="cache methods of the sweep, space- or comma-separated "
                            f"(default: all: {' '.join(SWEEP_METHODS)})")
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
    add_threads(bench, default="1, the timing protocol's")
    bench.set_defaults(handler=_cmd_bench)


