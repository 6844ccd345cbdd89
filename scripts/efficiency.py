"""Wall/FLOP efficiency of cached sampling (issue 17): one process, one thread by default,
the uncached sampler and each cache run interleaved (round robin, after a warm-up), the
same weights and the same noise (seed) for every candidate.

Per configuration (model x batch) and policy it prints the wall speedup (median of the
per-round ratios to the same round's uncached run, with their IQR), the FLOP speedup
planned (every sample its own recompute set) and paid (what ran, padding included),
the efficiency wall / paid FLOP speedup (and wall / planned), the planned/paid FLOP
ratio and the decision logic's share of the cached run's wall time; then the per-step
stage profile (``fdbench.cache.step_profile``) of uncached, the policies and FORA.

With ``--compile`` the caches run their static-shape compiled step path
(``fdbench.cache.compiled``) and are timed against the compiled uncached sampler
(``fdbench.bench.CompiledNetwork``, the fair baseline) as well as the eager one; the
warm-up is then one whole run, so every recompute-set bucket is compiled before timing.

Configurations (issue 17's bars): the paper preset with random weights (N = 187, chart
layout, as ``fdbench bench --random-model paper``) and the shipped model
(``fdbench/checkpoints/ecg-bins-compact``), each at batch 1 and 64, T = 1000 EM steps.

Usage:
  python scripts/efficiency.py [--steps 1000] [--repeats 5] [--batch-sizes 1 64]
      [--models paper shipped] [--policies e2crf] [--device cpu] [--threads 1]
      [--compile] [--ragged auto] [--no-profile] [--out runs/efficiency/efficiency.json]
  python scripts/efficiency.py --quick        # smoke run: small T, batch, repeats (< 1 min)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from fdbench.bench import COMPILED, CompiledNetwork, random_checkpoint
from fdbench.cache import CacheEngine, combine, make_policy, parse_policy
from fdbench.cache.step_profile import format_profile, profile_steps
from fdbench.checkpoint import load_checkpoint
from fdbench.generate import generate
from fdbench.io import atomic_write_text
from fdbench.pipeline import ScoreModel
from fdbench.timing import ratio_summary, time_call

SHIPPED = Path(__file__).resolve().parents[1] / "fdbench" / "checkpoints" / "ecg-bins-compact"


def load_models(names: list[str], device: str, workdir: Path) -> dict[str, ScoreModel]:
    models = {}
    for name in names:
        if name == "paper":
            path = random_checkpoint(workdir / "paper", preset="paper")
        elif name == "shipped":
            path = SHIPPED
        else:
            path = Path(name)
        models[name] = load_checkpoint(path, device=device)
    return models


def measure(model: ScoreModel, batch: int, policies: list[str], args: argparse.Namespace
            ) -> list[dict[str, Any]]:
    """Interleaved rounds of uncached and every policy at one batch size."""
    engines: dict[str, Any] = {"uncached": None}
    if args.compile:              # the fair baseline of compiled caches: compiled uncached
        engines[COMPILED] = CompiledNetwork(model.network)
    for spec in policies:
        engines[spec] = CacheEngine(model.network, make_policy(parse_policy(spec, model.n_steps)),
                                    ragged=args.ragged, compile_layers=args.compile)

    def sample(name: str, steps: int) -> None:
        generate(model, batch, n_steps=steps, seed=args.seed, batch_size=batch,
                 engine=engines[name], progress=False)

    for name in engines:          # warm-up: allocator, kernels (and compilation)
        # a compiled engine compiles one graph per recompute-set bucket: one whole run
        # (same seed, so the same buckets) leaves nothing to compile in the timed rounds
        sample(name, args.steps if args.compile else args.warmup)
    seconds: dict[str, list[float]] = {name: [] for name in engines}
    stats: dict[str, list[dict[str, Any]]] = {name: [] for name in policies}
    for _ in range(args.repeats):
        for name, engine in engines.items():
            if engine is not None:
                engine.history.clear()
            seconds[name].append(time_call(lambda n=name: sample(n, args.steps), model.device))
            if isinstance(engine, CacheEngine):
                stats[name].append(combine(engine.history))
    rows = []
    for spec in policies:
        ratio = ratio_summary(seconds[spec], seconds["uncached"])
        cache = stats[spec][-1]
        wall = 1.0 / ratio.median
        shares = [s["decision_seconds"] / t for s, t in zip(stats[spec], seconds[spec],
                                                              strict=True)]
        rows.append({
            "policy": spec, "batch": batch, "steps": args.steps, "repeats": args.repeats,
            "wall_speedup": wall, "wall_speedup_iqr": [1.0 / ratio.q75, 1.0 / ratio.q25],
            "uncached_median_s": ratio.baseline_median_s,
            "cached_median_s": ratio.candidate_median_s,
            "flop_speedup_paid": cache["flop_speedup"],
            "flop_speedup_planned": cache["planned_flop_speedup"],
            "efficiency": wall / cache["flop_speedup"],
            "efficiency_planned": wall / cache["planned_flop_speedup"],
            "padded_planned_ratio": cache["padded_planned_ratio"],
            "decision_share": statistics.median(shares),
            "seconds": seconds[spec], "uncached_seconds": seconds["uncached"]})
        if args.compile:          # against the compiled uncached sampler as well
            fair = ratio_summary(seconds[spec], seconds[COMPILED])
            rows[-1].update({
                "wall_speedup_vs_compiled": 1.0 / fair.median,
                "wall_speedup_vs_compiled_iqr": [1.0 / fair.q75, 1.0 / fair.q25],
                "efficiency_vs_compiled": 1.0 / fair.median / cache["flop_speedup"],
                "compiled_uncached_median_s": fair.baseline_median_s,
                "compiled_uncached_seconds": seconds[COMPILED]})
    return rows


def format_rows(model_name: str, rows: list[dict[str, Any]]) -> str:
    compiled = any("wall_speedup_vs_compiled" in r for r in rows)
    extra = " vs compiled uncached (IQR) | wall/FLOP vs compiled |" if compiled else ""
    lines = [f"### {model_name}",
             "| policy | batch | wall speedup (IQR) | FLOP planned | FLOP paid | wall/FLOP "
             "(paid) | wall/FLOP (planned) | planned/paid FLOPs | decision share |" + extra,
             "|---|---|---|---|---|---|---|---|---|" + ("---|---|" if compiled else "")]
    for r in rows:
        low, high = r["wall_speedup_iqr"]
        line = (f"| {r['policy']} | {r['batch']} | {r['wall_speedup']:.2f}x "
                f"({low:.2f}-{high:.2f}) | {r['flop_speedup_planned']:.2f}x "
                f"| {r['flop_speedup_paid']:.2f}x | {r['efficiency']:.2f} "
                f"| {r['efficiency_planned']:.2f} | {r['padded_planned_ratio']:.3f} "
                f"| {100 * r['decision_share']:.1f} % |")
        if compiled:
            low, high = r["wall_speedup_vs_compiled_iqr"]
            line += (f" {r['wall_speedup_vs_compiled']:.2f}x ({low:.2f}-{high:.2f}) "
                     f"| {r['efficiency_vs_compiled']:.2f} |")
        lines.append(line)
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["paper", "shipped"],
                        help="paper (random weights), shipped, or checkpoint directories")
    parser.add_argument("--policies", nargs="+", default=["e2crf"])
    parser.add_argument("--profile-policies", nargs="+", default=["e2crf", "fora"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 64])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--profile-steps", type=int, default=None,
                        help="EM steps of the stage profile (default: --steps)")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ragged", default="auto", choices=["auto", "always", "never"])
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the token-subset layers of the caches")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: T=20, batch 1 and 4, 2 repeats, shipped model")
    parser.add_argument("--out", type=Path, default=Path("runs/efficiency/efficiency.json"))
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.repeats, args.warmup = 20, 2, 4
        args.batch_sizes = [1, 4]
        args.profile_steps = 10
        if args.models == ["paper", "shipped"]:
            args.models = ["shipped"]
    if args.steps < 2 or args.repeats < 1 or args.warmup < 2 or args.threads < 1:
        parser.error("need --steps >= 2, --repeats >= 1, --warmup >= 2, --threads >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(args.threads)
    result: dict[str, Any] = {"settings": {k: str(v) if isinstance(v, Path) else v
                                           for k, v in vars(args).items()},
                              "torch": torch.__version__, "threads": torch.get_num_threads(),
                              "timing": {}, "profile": {}}
    with tempfile.TemporaryDirectory() as workdir:
        models = load_models(args.models, args.device, Path(workdir))
        for name, model in models.items():
            rows = [row for batch in args.batch_sizes
                    for row in measure(model, batch, args.policies, args)]
            result["timing"][name] = rows
            print(format_rows(name, rows), flush=True)
            if args.no_profile:
                continue
            if args.compile:      # a fresh profiled engine would time its own compilation
                print("\nstage profile skipped with --compile", flush=True)
                continue
            steps = args.profile_steps or args.steps
            profiles = [profile_steps(model, spec, batch=batch, n_steps=steps, seed=args.seed,
                                      engine_options={"ragged": args.ragged}
                                      if spec is not None and not spec.startswith("fora")
                                      else None)
                        for batch in args.batch_sizes
                        for spec in (None, *args.profile_policies)]
            result["profile"][name] = profiles
            print(f"\nstage profile, ms per model call (T={steps}):\n"
                  + format_profile(profiles) + "\n", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(result, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
