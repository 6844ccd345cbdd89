"""Few-step solvers and caches on top of them, judged at the size `fdbench run` judges:
256 samples per point, every judge (discriminative and predictive over 5 repeats), no
wall clock (cost = score evaluations and FLOPs, which are exact).

    python scripts/solver_study.py --solver-steps 10 20 50 100 --threads 2

1. Every solver of the sweep (``fdbench.sweep.SOLVER_GRIDS``) at each --solver-steps T.
2. The baseline (1000-step reverse EM) and the network_off control are the samples of the
   reference `fdbench run` (--baseline-run: its samples.npy / samples_network_off.npy,
   drawn with the same seed, batch size and noise streams); they are judged here too, so
   every row comes from one judge call with one seed.
3. The best solver (``fdbench.sweep.best_solver``: fewest evaluations whose discriminative
   score is within 2 SE of the baseline's and separated from network_off), then every
   cache method of the sweep at its composite operating point(s) on top of it, with the
   paired error to the uncached best-solver samples (same noise).

One JSON line per point in --out (resumable: points already there under the same
settings are skipped; other settings are refused), and a markdown table beside it.
Wall time is deliberately not measured: this study runs while other work may share the
cores; ``fdbench bench --sweep`` measures wall clock on a quiet machine."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fdbench.cache import CacheEngine, combine, make_policy, parse_policy
from fdbench.checkpoint import load_checkpoint
from fdbench.data import load_dataset
from fdbench.generate import generate
from fdbench.io import atomic_write_text
from fdbench.judges import JUDGE_KEYS, evaluate_samples, separation
from fdbench.quality import paired_relative_error
from fdbench.solvers import SolverConfig
from fdbench.sweep import SOLVER_GRIDS, best_solver
from fdbench.sweep_points import CACHE_POINTS, NOT_ON_SOLVER

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT = ROOT / "fdbench/checkpoints/ecg-bins-compact"
BASELINE_RUN = ROOT / "reports/reference-runs/default"


def composite_points(per_method: int) -> list[str]:
    """Each method's ``per_method`` mildest operating points (the composites of the
    study; the sweep runs one, the middle one)."""
    return [spec for method, specs in CACHE_POINTS.items() if method not in NOT_ON_SOLVER
            for spec in specs[:per_method]]


def load_store(path: Path, settings: dict[str, Any]) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    foreign = [r for r in records if r.get("settings") != settings]
    if foreign:
        sys.exit(f"solver_study: error: {path} holds points of other settings "
                 f"({foreign[0].get('settings')}); use another --out")
    return records


def write_table(records: list[dict[str, Any]], path: Path) -> None:
    lines = ["| point | family | NFE | FLOP speedup | discriminative | predictive | SW time "
             "| marginal W | memorisation | paired error | separated from network_off |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        j = r["judges"]
        paired = "-" if r.get("paired_error") is None else f"{r['paired_error']:.4f}"
        speedup = "-" if r["flop_speedup"] is None else f"{r['flop_speedup']:.2f}x"
        sep = r.get("separation") or {}
        lines.append(
            f"| {r['label']} | {r['family']} | {r['evaluations']} | "
            f"{speedup} | {j['discriminative_score']:.3f} +- "
            f"{j['discriminative_score_se']:.3f} | {j['predictive_score']:.4f} | "
            f"{j['sw_time']:.4f} | {j['marginal_w_time']:.4f} | "
            f"{j['memorisation_ratio']:.3f} | {paired} | "
            f"{'-' if not sep else ('yes' if sep['separated'] else 'no')} |")
    atomic_write_text(path, "\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=CHECKPOINT)
    parser.add_argument("--baseline-run", type=Path, default=BASELINE_RUN,
                        help="an `fdbench run` directory with samples.npy and "
                             "samples_network_off.npy (the baseline and the control)")
    parser.add_argument("--solver-steps", type=int, nargs="+", default=[10, 20, 50, 100])
    parser.add_argument("--num-samples", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--composites-per-method", type=int, default=2)
    parser.add_argument("--judge-repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/solver_study.jsonl"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_checkpoint(args.checkpoint)
    data = load_dataset("ecg", seed=0)
    specs = composite_points(args.composites_per_method)
    for spec in specs:                      # bad specs fail before any sampling
        parse_policy(spec, model.n_steps)
    baseline_files = [args.baseline_run / name
                      for name in ("samples.npy", "samples_network_off.npy")]
    for path in baseline_files:
        if not path.is_file():
            sys.exit(f"solver_study: error: {path} does not exist (run `fdbench run`)")
    settings = {"checkpoint": str(args.checkpoint.resolve()), "n_samples": args.num_samples,
                "batch_size": args.batch_size, "seed": args.seed,
                "judge_repeats": args.judge_repeats}
    records = load_store(args.out, settings)
    done = {r["label"] for r in records}
    common = {"seed": args.seed, "batch_size": args.batch_size, "progress": False}

    def judged(label: str, family: str, solver: str, grid: str, n_steps: int,
               samples: torch.Tensor, **extra: Any) -> dict[str, Any]:
        scored = evaluate_samples(samples, held_out=data.test, train=data.train,
                                  seed=args.seed, repeats=args.judge_repeats,
                                  references=False)
        record = {"label": label, "family": family, "solver": solver, "grid": grid,
                  "n_steps": n_steps, "settings": settings,
                  "judges": {key: scored[key] for key in JUDGE_KEYS},
                  "sw_time": {"value": scored["sw_time"]}, **extra}
        records.append(record)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, "".join(json.dumps(r) + "\n" for r in records))
        print(f"{label}: discriminative {scored['discriminative_score']:.3f} +- "
              f"{scored['discriminative_score_se']:.3f}, SW {scored['sw_time']:.4f}"
              + ("" if extra.get("paired_error") is None
                 else f", paired {extra['paired_error']:.4f}"), flush=True)
        return record

    def from_file(path: Path) -> torch.Tensor:
        samples = torch.from_numpy(np.load(path))
        if samples.shape[0] != args.num_samples:
            sys.exit(f"solver_study: error: {path} holds {samples.shape[0]} samples, "
                     f"--num-samples is {args.num_samples}")
        return samples

    for label, family, path in (("em/uniform T=1000", "baseline", baseline_files[0]),
                                ("network_off @ em/uniform T=1000", "control",
                                 baseline_files[1])):
        if label not in done:
            judged(label, family, "em", "uniform", 1000, from_file(path), evaluations=1000,
                   flop_speedup=1.0 if family == "baseline" else None)
    samples_of: dict[str, torch.Tensor] = {}
    for solver, grid in SOLVER_GRIDS.items():
        for n_steps in args.solver_steps:
            label = f"{solver}/{grid} T={n_steps}"
            evaluations = SolverConfig(solver, n_steps, grid).n_evaluations
            if label in done:
                continue
            samples = generate(model, args.num_samples, n_steps=n_steps, solver=solver,
                               grid=grid, **common)
            samples_of[label] = samples
            judged(label, "solver", solver, grid, n_steps, samples,
                   evaluations=evaluations, flop_speedup=1000 / evaluations)

    by_label = {r["label"]: r for r in records}
    control = by_label["network_off @ em/uniform T=1000"]
    for r in records:
        if r["family"] != "control":
            r["separation"] = separation(r["judges"], control["judges"])
    best = best_solver([r for r in records if r["family"] == "solver"],
                       by_label["em/uniform T=1000"]["sw_time"]["value"],
                       by_label["em/uniform T=1000"], control)
    print(f"best solver: {best['label']}", flush=True)
    solver_kwargs = {"n_steps": best["n_steps"], "solver": best["solver"],
                     "grid": best["grid"]}
    reference = samples_of.get(best["label"])
    if reference is None:
        reference = generate(model, args.num_samples, **solver_kwargs, **common)
    for spec in specs:
        label = f"{spec} @ {best['label']}"
        if label in done:
            continue
        engine = CacheEngine(model.network, make_policy(parse_policy(spec, model.n_steps)))
        samples = generate(model, args.num_samples, engine=engine, **solver_kwargs, **common)
        flop_ratio = combine(engine.history)["flop_ratio"]
        record = judged(label, "cache+solver", best["solver"], best["grid"], best["n_steps"],
                        samples, evaluations=best["evaluations"],
                        flop_speedup=best["flop_speedup"] / flop_ratio,
                        paired_error=paired_relative_error(samples, reference).mean().item(),
                        best_solver=best["label"])
        record["separation"] = separation(record["judges"], control["judges"])
    atomic_write_text(args.out, "".join(json.dumps(r) + "\n" for r in records))
    write_table(records, args.out.with_suffix(".md"))
    print(f"-> {args.out}, {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
