"""``fdbench tune``: each cache at its fastest setting that meets a quality target
(issue 16); ``--all`` compares every method at the same target."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fdbench.argtypes import positive_int

DESCRIPTION = """\
Search a method's knobs for the fastest setting that meets a quality target, then check it
on fresh noise. Bisection on the method's main knob (threshold or interval; quality is
assumed to worsen monotonically along it, and a violation seen is reported), a small grid
on one more field, at most --budget search trials on --search-samples calibration draws;
the fastest setting meeting the target (FLOP speedup over the uncached --solver/--steps
baseline) is confirmed on --num-samples calibration draws, then validated on as many fresh
draws (never the calibration ones) with a 95 % bootstrap interval, and timed against the
uncached baseline, interleaved in one process. A target no setting meets is reported as
unmet (exit code 0), never relaxed.

targets (one at a time; every metric is lower-is-better):
  paired_error<=X          mean relative L2 error to the uncached run with the same noise
  discriminative_score<=X  post-hoc classifier score vs held-out series (0 = indistinguishable)
  sw_ratio<=X              SW to held-out series over the uncached baseline's (same noise)

methods: every method of `fdbench bench --sweep` and fewer_steps (the smallest T of each
fast solver, uncached). Output: the tuned spec (usable as --cache SPEC in sample/bench),
OUT/trials.jsonl (every trial; a rerun with the same settings resumes, other settings are
refused), OUT/tune_<method>_<target>.{json,md,png} or, with --all,
OUT/tune_all_<target>.{json,md,png}."""


def _handler(args: Any) -> int:
    import torch

    from fdbench.errors import ConfigError
    from fdbench.io import check_writable_file
    from fdbench.tune.config import TuneConfig
    from fdbench.tune.knobs import check_method, tunable_methods
    from fdbench.tune.store import TRIALS_FILE, TrialStore
    from fdbench.tune.targets import parse_target

    # every check that needs no checkpoint comes first: bad input costs no compute
    target = parse_target(args.target)
    if args.all == (args.method is not None):
        raise ConfigError("tune: give exactly one of --method NAME and --all")
    if args.methods and not args.all:
        raise ConfigError("tune: --methods goes with --all")
    methods = [check_method(m) for m in (args.methods or list(tunable_methods()))] \
        if args.all else [check_method(args.method)]
    config = TuneConfig(target=target, solver=args.solver, grid=args.grid, steps=args.steps,
                        batch_size=args.batch_size, num_samples=args.num_samples,
                        search_samples=args.search_samples, budget=args.budget,
                        confirm=args.confirm, seed=args.seed,
                        judge_repeats=args.judge_repeats, n_boot=args.n_boot,
                        timing_rounds=args.timing_rounds, timing_batch=args.timing_batch)
    check_writable_file(args.out / TRIALS_FILE, "--out")
    if args.checkpoint is None:
        from fdbench.run import shipped_checkpoint

        args.checkpoint = shipped_checkpoint()
    store = TrialStore(args.out / TRIALS_FILE,
                       config.settings(args.checkpoint, torch.get_num_threads()))
    return _run(args, config, methods, store)


def _run(args: Any, config: Any, methods: list[str], store: Any) -> int:
    import torch

    from fdbench.bench import training_data
    from fdbench.checkpoint import load_checkpoint
    from fdbench.tune.runner import Tuner
    from fdbench.tune.suite import tune_methods
    from fdbench.tune.table import format_table, write_outputs

    model = load_checkpoint(args.checkpoint)
    held_out = None
    if config.target.metric != "paired_error":
        split = training_data(model)
        held_out = split.test
        if config.target.metric == "discriminative_score":
            from fdbench.judges import check_judge_sizes

            check_judge_sizes(config.n_search, len(split.test), len(split.train))
    print(f"fdbench tune: {args.checkpoint}, target {config.target}, baseline "
          f"{config.baseline.label}, {len(methods)} method(s), budget {config.budget} "
          f"search trials on {config.n_search} samples, {config.num_samples} to confirm and "
          f"validate, batch {config.batch_size} (timing {config.timing_batch}), "
          f"{torch.get_num_threads()} thread(s) "
          f"-> {args.out}", flush=True)
    tuner = Tuner(model, config, store, args.out, checkpoint=args.checkpoint,
                  held_out=held_out, log=lambda line: print(line, flush=True))
    result = tune_methods(tuner, methods, cache_on_solver=args.cache_on_solver)
    tuner.bar.close()
    stem = f"tune_all_{config.target.slug}" if args.all else \
        f"tune_{methods[0]}_{config.target.slug}"
    paths = write_outputs(result, args.out, stem)
    print(format_table(result))
    for row in result["rows"]:
        if row.get("cli"):
            print(f"{row['method']}{' @ ' + row['on'] if row.get('on') else ''}: "
                  f"{row['status']}: {row['cli']}")
        else:
            print(f"{row['method']}: {row['status']} ({row.get('reason', '')}); the target "
                  f"{config.target} is not relaxed")
    print("-> " + ", ".join(str(p) for p in [*paths, store.path]))
    return 0


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "tune", help="each cache at its fastest setting for a quality target",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="checkpoint directory (default: the shipped ECG model)")
    parser.add_argument("--method", default=None, help="the method to tune (see above)")
    parser.add_argument("--all", action="store_true", help="every method, one table")
    parser.add_argument("--methods", nargs="+", default=None,
                        help="with --all: only these methods")
    parser.add_argument("--target", required=True, help='e.g. "paired_error<=0.01"')
    parser.add_argument("--cache-on-solver", action="store_true",
                        help="also tune each cache (not the ablations) on the best solver "
                             "found by fewer_steps")
    parser.add_argument("--solver", default="em", help="baseline solver (default em)")
    parser.add_argument("--grid", default=None, help="baseline grid (default: the "
                                                     "solver's usual one; em: uniform)")
    parser.add_argument("--steps", type=int, default=1000, help="baseline T (default 1000)")
    parser.add_argument("--batch-size", type=int, default=32,
                        help="sampling batch of every trial (default 32)")
    parser.add_argument("--num-samples", type=int, default=64,
                        help="draws to confirm and to validate (default 64)")
    parser.add_argument("--search-samples", type=int, default=None,
                        help="draws per search trial (default num-samples / 4, >= 10)")
    parser.add_argument("--budget", type=int, default=12,
                        help="search trials per method (default 12)")
    parser.add_argument("--confirm", type=int, default=2,
                        help="full-sample confirmation trials per method (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    parser.add_argument("--judge-repeats", type=int, default=3,
                        help="classifier repeats of the discriminative score (default 3)")
    parser.add_argument("--n-boot", type=int, default=200,
                        help="bootstrap resamples of the validation interval (default 200)")
    parser.add_argument("--timing-rounds", type=int, default=3,
                        help="interleaved wall-time rounds (default 3; 0: no timing)")
    parser.add_argument("--timing-batch", type=int, default=16,
                        help="samples per timed run (default 16)")
    parser.add_argument("--out", type=Path, default=Path("runs/tune"))
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="torch CPU threads (default: torch's choice)")
    parser.set_defaults(handler=_handler)
