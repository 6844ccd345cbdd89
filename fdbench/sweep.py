"""``fdbench bench --sweep``: E²-CRF over a (K, tau_0, R) grid — FLOP speedup against
quality (SW ratio to uncached, paired error), JSON lines and a Pareto plot.

Wall-clock is not measured here (one sample run per point cannot follow the interleaved
protocol); the x axis is the FLOP speedup, labelled as such."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from fdbench.bench import UNCACHED, BenchConfig, ResultStore, held_out_data, policy_samples
from fdbench.cache import E2CRFConfig, parse_policy
from fdbench.checkpoint import load_checkpoint
from fdbench.plots import plot_tradeoff
from fdbench.quality import quality_summary

SWEEP_FILE = "sweep.jsonl"


def spec_of(K: int, tau_0: float, R: int, base: str = "e2crf") -> str:
    return f"{base}:K={K},tau_0={tau_0},R={R}"


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points not dominated in (higher x, lower y)."""
    front = []
    for i, (x, y) in enumerate(points):
        dominated = any(x2 >= x and y2 <= y and (x2, y2) != (x, y) for x2, y2 in points)
        if not dominated:
            front.append(i)
    return front


def run_sweep(checkpoint: str | Path, out_dir: str | Path, config: BenchConfig, *,
              K: list[int], tau_0: list[float], R: list[int],
              progress: bool = True) -> list[dict[str, Any]]:
    """Quality and FLOP speedup of E²-CRF at every grid point (same noise as uncached)."""
    torch.set_num_threads(config.threads)
    model = load_checkpoint(checkpoint)
    out_dir = Path(out_dir)
    grid = [spec_of(k, tau, r) for k, tau, r in itertools.product(K, tau_0, R)]
    for spec in grid:
        parse_policy(spec, model.n_steps)
    settings = {"n_steps": config.n_steps, "num_samples": config.num_samples,
                "seed": config.seed, "checkpoint": str(Path(checkpoint).resolve())}
    store = ResultStore(out_dir / SWEEP_FILE, settings)
    reference = held_out_data(model)
    sweep_config = replace(config, policies=tuple(grid))
    uncached = policy_samples(model, UNCACHED, sweep_config, out_dir / "samples", store, progress)
    base = quality_summary(uncached, reference, n_directions=config.n_directions,
                           seed=config.seed, n_boot=config.n_boot)
    for spec in grid:
        if store.find("sweep", spec) is not None:
            continue
        samples = policy_samples(model, spec, sweep_config, out_dir / "samples", store, progress)
        cache = store.find("samples", spec)["cache"]
        quality = quality_summary(samples, reference, paired_reference=uncached,
                                  n_directions=config.n_directions, seed=config.seed,
                                  n_boot=config.n_boot)
        config_fields = parse_policy(spec, model.n_steps)
        assert isinstance(config_fields, E2CRFConfig)
        store.add({"kind": "sweep", "policy": spec, "K": config_fields.K,
                   "tau_0": config_fields.tau_0, "R": config_fields.R,
                   "flop_speedup": cache["flop_speedup"],
                   "recompute_fraction": cache["recompute_fraction"],
                   "sw_time": quality["sw_time"], "sw_ratio":
                   quality["sw_time"]["value"] / base["sw_time"]["value"],
                   "uncached_sw_time": base["sw_time"],
                   "paired_mean": quality["paired"]["mean"]})
    points = [r for r in store.records if r["kind"] == "sweep"]
    plot_tradeoff(points, out_dir / "sweep.png", uncached_sw=base["sw_time"])
    return points
