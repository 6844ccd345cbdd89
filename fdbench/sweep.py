"""``fdbench bench --sweep``: every cache method and every solver against 1000-step EM.

Points (``default_points``): the baseline (reverse EM, T = 1000, uncached); each solver on
its grid at T in ``SOLVER_STEPS``; each cache method (E²-CRF's ablations included) at
>= 4 operating points on the baseline sampler (``CACHE_POINTS``); the ``network_off``
control on the baseline sampler; and, once the solvers are measured, each method but the
ablations on top of the best solver (``best_solver``: the fewest score evaluations whose
discriminative score is within 2 SE of the baseline's and separated from the control; by
SW within 5 % when no judges were run). Per point: one sampling run of ``num_samples``
series in one batch, the same per-sample noise for all, timed; the baseline is re-timed
every ``rebase_every`` points and each point's wall ratio is taken against the mean of
the baseline timings just before and after it (A B B B A ..., the drift of a shared
machine cancels to first order). Beside it: the FLOP ratio (executed FLOPs, padding
included) and the planned one (no padding; see ``fdbench.cache.stats``), SW time and
frequency +- bootstrap SE, marginal W, the realism judges (``judge_repeats``), and the
paired error against the uncached run of the same solver and noise where one exists.
Records go to ``sweep.jsonl`` (one per point, resumable); ``sweep.png`` is the
speed-vs-quality plot with the front marked, ``sweep_curves.png`` / ``sweep_ablation.png``
each method's (each ablation's) speedups against paired error as a curve through its
operating points (``fdbench.plots.plot_curves``)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from fdbench.bench import (
    NETWORK_OFF,
    BenchConfig,
    NetworkOff,
    ResultStore,
    file_stem,
    judge_summary,
    training_data,
)
from fdbench.cache import CacheConfig, CacheEngine, combine, make_policy, parse_policy
from fdbench.cache.teacache_calibration import FILE_NAME as CALIBRATION_FILE
from fdbench.checkpoint import load_checkpoint
from fdbench.flops import forward_flops, matmul_total
from fdbench.generate import generate
from fdbench.io import atomic_save_npy
from fdbench.judges import check_judge_sizes, separation
from fdbench.pipeline import ScoreModel
from fdbench.quality import quality_summary
from fdbench.solvers import SolverConfig
from fdbench.sweep_points import (  # noqa: F401 (ABLATIONS: re-exported)
    ABLATIONS,
    CACHE_POINTS,
    NOT_ON_SOLVER,
    composite_spec,
)

SWEEP_FILE = "sweep.jsonl"
SOLVER_STEPS = (10, 20, 50, 100, 200, 500, 1000)
# each solver on the grid it is usually run with (k-diffusion / DPM-Solver defaults)
SOLVER_GRIDS = {"em": "uniform", "ode_euler": "edm", "ode_heun": "edm", "ddim": "log_snr",
                "dpmpp_2m": "log_snr"}
SW_TOLERANCE = 0.05  # "within 5 % of 1000-step EM" (issue 6)


@dataclass(frozen=True)
class SweepPoint:
    """One way of sampling: a solver on a grid with T steps, optionally under a cache."""

    family: str            # baseline | solver | cache | cache+solver | control
    solver: str
    grid: str
    n_steps: int
    policy: str | None = None

    @property
    def label(self) -> str:
        base = f"{self.solver}/{self.grid} T={self.n_steps}"
        return base if self.policy is None else f"{self.policy} @ {base}"

    @property
    def uncached(self) -> SweepPoint:
        """The same solver and noise without the cache (the paired reference; samples are
        stored by label, so the baseline serves as the reference of caches on it)."""
        return SweepPoint("solver", self.solver, self.grid, self.n_steps)

    def solver_config(self) -> SolverConfig:
        return SolverConfig(self.solver, self.n_steps, self.grid)


BASELINE = SweepPoint("baseline", "em", "uniform", 1000)


def default_points(solver_steps: tuple[int, ...] = SOLVER_STEPS,
                   cache_points: dict[str, tuple[str, ...]] | None = None,
                   baseline: SweepPoint = BASELINE) -> list[SweepPoint]:
    """Baseline, solvers x steps, caches on the baseline (the composites come later)."""
    points = [baseline]
    for solver, grid in SOLVER_GRIDS.items():
        for n in solver_steps:
            point = SweepPoint("solver", solver, grid, n)
            if point.label != baseline.label:
                points.append(point)
    for specs in (CACHE_POINTS if cache_points is None else cache_points).values():
        points.extend(replace(baseline, family="cache", policy=spec) for spec in specs)
    return points


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points not dominated in (higher x, lower y)."""
    front = []
    for i, (x, y) in enumerate(points):
        dominated = any(x2 >= x and y2 <= y and (x2, y2) != (x, y) for x2, y2 in points)
        if not dominated:
            front.append(i)
    return front


JUDGE = "discriminative_score"


def matches_baseline(record: dict[str, Any], baseline: dict[str, Any],
                     control: dict[str, Any] | None = None) -> bool:
    """The record's discriminative score is no worse than the baseline's by more than
    2 SE of the difference (the judge finds no difference) and, given the ``control``
    record (network_off) with judges, the record is separated from it. False for a
    record or baseline without judges."""
    ours, base = record.get("judges") or {}, baseline.get("judges") or {}
    if ours.get(JUDGE) is None or base.get(JUDGE) is None:
        return False
    se = math.hypot(ours.get(f"{JUDGE}_se") or 0.0, base.get(f"{JUDGE}_se") or 0.0)
    if ours[JUDGE] > base[JUDGE] + 2 * se:
        return False
    if control and control.get("judges"):
        return separation(ours, control["judges"])["separated"]
    return True


def best_solver(records: list[dict[str, Any]], baseline_sw: float,
                baseline: dict[str, Any] | None = None,
                control: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The uncached solver point with the fewest score evaluations that is as good as the
    baseline: by the discriminative score within 2 SE when ``baseline`` and the records
    carry judges (the realism judge that can tell a model from network_off) and, given the
    ``control`` record (network_off), separated from it; else by SW within
    ``SW_TOLERANCE`` of ``baseline_sw``; if none is, the best by that judge."""
    solvers = [r for r in records if r["family"] == "solver"]
    if not solvers:
        return None
    if baseline is not None and baseline.get("judges") and all(r.get("judges")
                                                               for r in solvers):
        good = [r for r in solvers if matches_baseline(r, baseline, control)]
        if good:
            return min(good, key=lambda r: (r["evaluations"], r["judges"][JUDGE]))
        return min(solvers, key=lambda r: r["judges"][JUDGE])
    good = [r for r in solvers if r["sw_time"]["value"] <= (1 + SW_TOLERANCE) * baseline_sw]
    if good:
        return min(good, key=lambda r: (r["evaluations"], r["sw_time"]["value"]))
    return min(solvers, key=lambda r: r["sw_time"]["value"])


class Sweeper:
    """Runs points one at a time against one model, held-out set and noise seed."""

    def __init__(self, model: ScoreModel, config: BenchConfig, out_dir: Path,
                 store: ResultStore, *, checkpoint: Path, baseline: SweepPoint = BASELINE,
                 rebase_every: int = 6, progress: bool = True):
        self.model, self.config, self.out_dir, self.store = model, config, out_dir, store
        self.checkpoint = Path(checkpoint)
        self.baseline = baseline
        self.rebase_every, self.progress = rebase_every, progress
        self.split = training_data(model)
        self.reference = self.split.test
        if config.judge_repeats:   # refused now, not after the baseline's run
            check_judge_sizes(config.num_samples, len(self.split.test), len(self.split.train))
        self.full_flops = matmul_total(forward_flops(model.network.config, config.num_samples))
        self.baseline_seconds: list[float] = []
        self.since_rebase = 0

    def sample(self, point: SweepPoint) -> tuple[torch.Tensor, float, dict[str, Any]]:
        """Samples, wall seconds and cache summary of one run of ``point``."""
        engine: CacheEngine | NetworkOff | None = None
        if point.policy == NETWORK_OFF:
            engine = NetworkOff()
        elif point.policy is not None:
            config = self.with_calibration(parse_policy(point.policy, self.model.n_steps))
            engine = CacheEngine(self.model.network, make_policy(config))
        solver = point.solver_config()
        started = time.perf_counter()
        samples = generate(self.model, self.config.num_samples, n_steps=point.n_steps,
                           seed=self.config.seed, batch_size=self.config.num_samples,
                           engine=engine, solver=solver.name, grid=solver.grid,
                           progress=False)
        seconds = time.perf_counter() - started
        evaluations = solver.n_evaluations
        if isinstance(engine, NetworkOff):   # no network call at all
            cache = {"flop_ratio": 0.0, "planned_flop_ratio": 0.0, "recompute_fraction": 0.0}
        elif engine is None:
            cache = {"flop_ratio": 1.0, "planned_flop_ratio": 1.0, "recompute_fraction": 1.0}
        else:
            cache = combine(engine.history)
        cache["flops"] = cache["flop_ratio"] * evaluations * self.full_flops
        cache["planned_flops"] = cache["planned_flop_ratio"] * evaluations * self.full_flops
        return samples, seconds, cache

    def with_calibration(self, config: CacheConfig) -> CacheConfig:
        """TeaCache without coefficients uses the checkpoint's calibration file when there
        is one (``fdbench calibrate teacache``), as a TeaCache user would."""
        path = self.checkpoint / CALIBRATION_FILE
        if (config.policy == "teacache" and config.coefficients is None
                and config.calibration is None and path.exists()):
            return replace(config, calibration=str(path))
        return config

    def time_baseline(self) -> float:
        samples, seconds, _ = self.sample(self.baseline)
        self.baseline_seconds.append(seconds)
        self.since_rebase = 0
        self.save(self.baseline, samples)
        return seconds

    def save(self, point: SweepPoint, samples: torch.Tensor) -> None:
        atomic_save_npy(self.out_dir / "samples" / f"{file_stem(point.label)}.npy",
                        samples.numpy())

    def reference_samples(self, point: SweepPoint) -> torch.Tensor | None:
        path = self.out_dir / "samples" / f"{file_stem(point.label)}.npy"
        if path.exists():
            import numpy as np

            return torch.from_numpy(np.load(path))
        return None

    def run(self, point: SweepPoint) -> dict[str, Any]:
        if (found := self.store.find("sweep", point.label)) is not None:
            return found
        if not self.baseline_seconds or self.since_rebase >= self.rebase_every:
            self.time_baseline()
        before = self.baseline_seconds[-1]
        if point == self.baseline and self.since_rebase == 0:
            # the baseline timing just taken is this point's run (same noise, same code)
            samples, seconds = self.reference_samples(point), before
            flops = point.solver_config().n_evaluations * self.full_flops
            cache = {"flop_ratio": 1.0, "recompute_fraction": 1.0, "flops": flops,
                     "planned_flops": flops}
        else:
            samples, seconds, cache = self.sample(point)
            self.save(point, samples)
        self.since_rebase += 1
        paired = None if point.policy is None else self.reference_samples(point.uncached)
        quality = quality_summary(samples, self.reference, paired_reference=paired,
                                  n_directions=self.config.n_directions,
                                  seed=self.config.seed, n_boot=self.config.n_boot)
        baseline_flops = self.baseline.solver_config().n_evaluations * self.full_flops
        record = {
            "kind": "sweep", "policy": point.label, "family": point.family,
            "method": point.policy.partition(":")[0] if point.policy else "uncached",
            "cache": point.policy, "solver": point.solver, "grid": point.grid,
            "n_steps": point.n_steps, "evaluations": point.solver_config().n_evaluations,
            "seconds": seconds, "baseline_seconds_before": before,
            "flop_ratio": cache["flops"] / baseline_flops,
            "flop_speedup": baseline_flops / cache["flops"] if cache["flops"] else None,
            # had every sample computed only its own recompute set (== executed unless a
            # token-subset cache padded the sets of a batch to its largest)
            "planned_flop_ratio": cache["planned_flops"] / baseline_flops,
            "planned_flop_speedup": (baseline_flops / cache["planned_flops"]
                                     if cache["planned_flops"] else None),
            "recompute_fraction": cache.get("recompute_fraction", 1.0),
            "sw_time": quality["sw_time"], "sw_freq": quality["sw_freq"],
            "marginal_w_time": quality["marginal_w_time"],
            "marginal_w_freq": quality["marginal_w_freq"],
            "spectral_density_error": quality["spectral_density_error"],
            "paired": quality["paired"],
        }
        if self.config.judge_repeats:
            record.update(judge_summary(samples, self.split, self.config,
                                        references=point.family == "baseline"))
        return record

    def finish(self, record: dict[str, Any]) -> dict[str, Any]:
        """Close the bracket: the next baseline timing (taken now if the next point would
        not take one) gives the point its wall ratio."""
        after = self.time_baseline() if self.since_rebase >= self.rebase_every else None
        before = record["baseline_seconds_before"]
        baseline = before if after is None else (before + after) / 2
        record = {**record, "baseline_seconds_after": after, "baseline_seconds": baseline,
                  "wall_speedup": baseline / record["seconds"]}
        record["wall_over_flop"] = (record["wall_speedup"] / record["flop_speedup"]
                                    if record["flop_speedup"] else None)
        self.store.add(record)
        return record


def run_sweep(checkpoint: str | Path, out_dir: str | Path, config: BenchConfig, *,
              points: list[SweepPoint] | None = None, composites: bool = True,
              control: bool = True, progress: bool = True,
              log: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Measure every point (resuming finished ones) and, with ``control``, the
    ``network_off`` control on the baseline sampler; then the caches on the best
    solver."""
    torch.set_num_threads(config.threads)
    model = load_checkpoint(checkpoint)
    out_dir = Path(out_dir)
    points = default_points() if points is None else points
    baseline = next((p for p in points if p.family == "baseline"), BASELINE)
    if baseline not in points:
        points = [baseline, *points]
    if control and not any(p.policy == NETWORK_OFF for p in points):
        points = [*points, replace(baseline, family="control", policy=NETWORK_OFF)]
    for point in points:           # validate every spec before the long run starts
        point.solver_config()
        if point.policy not in (None, NETWORK_OFF):
            parse_policy(point.policy, model.n_steps)
    settings = {"baseline": baseline.label, "num_samples": config.num_samples, "seed": config.seed,
                "threads": config.threads, "n_directions": config.n_directions,
                "n_boot": config.n_boot, "judge_repeats": config.judge_repeats,
                "checkpoint": str(Path(checkpoint).resolve())}
    store = ResultStore(out_dir / SWEEP_FILE, settings)
    sweeper = Sweeper(model, config, out_dir, store, checkpoint=Path(checkpoint),
                      baseline=baseline, progress=progress)
    _run_all(sweeper, points, progress, log)
    if composites:
        records = [r for r in store.records if r["kind"] == "sweep"]
        baseline = next(r for r in records if r["family"] == "baseline")
        control_record = next((r for r in records if r["family"] == "control"), None)
        best = best_solver(records, baseline["sw_time"]["value"], baseline, control_record)
        if best is not None:
            on = SweepPoint("cache+solver", best["solver"], best["grid"], best["n_steps"])
            if log is not None:
                log(f"best solver: {on.label}; caches on top of it")
            extra = [replace(on, policy=composite_spec(specs))
                     for method, specs in CACHE_POINTS.items() if method not in NOT_ON_SOLVER]
            _run_all(sweeper, extra, progress, log)
    records = [r for r in store.records if r["kind"] == "sweep"]
    from fdbench.plots import plot_pareto, plot_sweep_curves

    plot_pareto([r for r in records if r["family"] != "control"], out_dir / "sweep.png")
    plot_sweep_curves(records, out_dir)
    return records


def _run_all(sweeper: Sweeper, points: list[SweepPoint], progress: bool,
             log: Callable[[str], None] | None) -> None:
    for point in tqdm(points, disable=None if progress else True, desc="sweep points"):
        if sweeper.store.find("sweep", point.label) is not None:
            continue
        record = sweeper.finish(sweeper.run(point))
        if log is not None:
            judged = record.get("judges")
            log(f"{record['policy']}: wall {record['wall_speedup']:.2f}x, FLOPs "
                f"{_x(record['flop_speedup'])}, SW {record['sw_time']['value']:.4f}"
                + (f", discriminative {judged[JUDGE]:.3f}" if judged else ""))


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def format_sweep_table(records: list[dict[str, Any]]) -> str:
    """Markdown: one row per point, wall speedup beside its FLOP speedups (executed and
    planned) and efficiency, the discriminative score beside SW; the network_off control
    last."""
    lines = ["| point | family | NFE | wall speedup | FLOP speedup | planned FLOP speedup "
             "| wall/FLOP | SW time +- SE | SW freq | discriminative | paired error |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    order = {"baseline": 0, "solver": 1, "cache": 2, "cache+solver": 3, "control": 4}
    for r in sorted(records, key=lambda r: (order.get(r["family"], 9), r["solver"],
                                            r["n_steps"], r["policy"])):
        paired = r["paired"]["mean"] if r.get("paired") else None
        se = r["sw_time"]["se"]
        judged = r.get("judges")
        disc_se = (judged or {}).get(f"{JUDGE}_se")
        disc = "-" if not judged else (f"{judged[JUDGE]:.3f}"
                                       + ("" if disc_se is None else f" +- {disc_se:.3f}"))
        efficiency = r.get("wall_over_flop")
        lines.append(
            f"| {r['policy']} | {r['family']} | {r['evaluations']} | {r['wall_speedup']:.2f}x "
            f"| {_x(r['flop_speedup'])} | {_x(r.get('planned_flop_speedup'))} "
            f"| {'-' if efficiency is None else f'{efficiency:.2f}'}"
            f" | {r['sw_time']['value']:.4f} +- {se if se is None else f'{se:.4f}'} | "
            f"{r['sw_freq']['value']:.4f} | {disc} | "
            f"{'-' if paired is None else f'{paired:.4f}'} |")
    return "\n".join(lines)
