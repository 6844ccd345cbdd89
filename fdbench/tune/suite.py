"""``fdbench tune --all``: every method at the same target, then (optionally) each cache
on the best solver found by "fewer solver steps" (issue 16, items 2 and 3)."""

from __future__ import annotations

from typing import Any

from fdbench.sweep_points import NOT_ON_SOLVER
from fdbench.tune.config import parse_sampler
from fdbench.tune.knobs import FAST_SOLVERS, FEWER_STEPS
from fdbench.tune.runner import Tuner


def best_solver(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The "fewer steps" row with the largest FLOP speedup whose value met the target on
    fresh seeds (None when none did)."""
    good = [r for r in rows if r["method"].startswith(f"{FEWER_STEPS}:")
            and (r.get("validation") or {}).get("met")]
    return max(good, key=lambda r: r["flop_speedup"], default=None)


def tune_methods(tuner: Tuner, methods: list[str], *, cache_on_solver: bool = False,
                 time_wall: bool = True) -> dict[str, Any]:
    """Rows for ``methods`` (``fewer_steps`` gives one row per fast solver), the best
    solver, and with ``cache_on_solver`` every cache but the ablations on it."""
    rows: list[dict[str, Any]] = []
    for method in methods:
        if method == FEWER_STEPS:
            rows.extend(tuner.tune_steps(solver) for solver in FAST_SOLVERS)
        else:
            rows.append(tuner.tune_cache(method))
    best = best_solver(rows)
    if cache_on_solver:
        if best is None:
            tuner.log("cache on solver: no solver met the target on fresh seeds; skipped")
        else:
            on = parse_sampler(best["sampler"])
            tuner.log(f"cache on solver: each cache on {on.label}")
            for method in methods:
                if method != FEWER_STEPS and method not in NOT_ON_SOLVER:
                    rows.append({**tuner.tune_cache(method, sampler=on), "on": on.label})
    if time_wall:
        tuner.time_wall(rows)
    config = tuner.config
    return {"target": str(config.target), "metric": config.target.metric,
            "baseline": config.baseline.label, "settings": tuner.store.settings,
            "best_solver": best["cli"] if best else None, "rows": rows,
            "seed_plan": {"seed": tuner.plan.seed,
                          "calibration": [0, tuner.plan.n_calibration],
                          "validation": [tuner.plan.validation_first,
                                         tuner.plan.validation_first
                                         + tuner.plan.n_validation]}}
