"""mem: "O(1) memory overhead" of the cache.

Every registered cache policy (``fdbench.cache.POLICY_PRESETS``, so policies added later
are included) runs reverse EM steps on tiny random networks while one of L (layers),
N (series length), B (batch) and T (sampler steps) grows from a base point. The overhead
is ``engine.cache_bytes()`` after the steps minus the same count for the no-cache
baseline ``none`` at the same point (the engine keeps K/V on full steps whatever the
policy, so that share is not the cache's); its growth exponent along each axis is the
least-squares slope of log bytes on log size. O(1) means exponent 0; per-layer K/V caches
are O(L N B d)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from fdbench.cache import POLICY_PRESETS, CacheEngine
from fdbench.errors import FdbenchError
from fdbench.model import ModelConfig, ScoreTransformer, build_model
from proofs_check.claim_a08_cache_size import run_engine
from proofs_check.registry import ClaimResult, Context, register

# an exponent >= 0.5 along an axis means the memory grows at least like sqrt(size): not
# O(1); the expected exponents are 1 (O(L N B d)), the O(1) claim's is 0
EXPONENT_MAX = 0.5
BASE = {"L": 2, "N": 32, "B": 2, "T": 3}
BASELINE = "none"


def slope(sizes: list[float], values: list[float]) -> float:
    """Least-squares slope of log(values) on log(sizes)."""
    xs, ys = [math.log(s) for s in sizes], [math.log(max(v, 1.0)) for v in values]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / \
        sum((x - mx) ** 2 for x in xs)


def _bytes(engine: CacheEngine, drop_store: bool) -> float:
    if drop_store:   # the planted fault: an engine that frees its stores after the run
        engine.caches, engine.final = None, None
    return float(engine.cache_bytes())


@register("mem", "O(1) memory overhead of the caches (bytes vs L, N, B, T)")
def check(ctx: Context, *, policies: Sequence[str] | None = None,
          drop_store: bool = False) -> ClaimResult:
    """``policies``: the presets to test (default all but the baseline). Fault:
    ``drop_store`` frees every engine's K/V and feature stores after its run (a cache
    that keeps nothing), under which the overhead is O(1)."""
    # quick: two sizes per axis (a slope needs two); full: four
    grid = {"L": ctx.pick((1, 4), (1, 2, 4, 8)), "N": ctx.pick((16, 64), (16, 32, 64, 128)),
            "B": ctx.pick((1, 4), (1, 2, 4, 8)), "T": ctx.pick((3, 12), (3, 6, 12, 24))}
    names = [p for p in (policies or POLICY_PRESETS) if p != BASELINE]
    numbers: dict[str, float] = {}
    series: dict[str, list[float]] = {}
    skipped, growing, worst = [], [], 0.0
    networks: dict[tuple[int, int], ScoreTransformer] = {}   # shared by all policies
    measured: dict[tuple[str, int, int, int, int], float] = {}

    def network(n_layers: int, n_steps_series: int) -> ScoreTransformer:
        if (n_layers, n_steps_series) not in networks:
            config = ModelConfig.from_preset("tiny", n_steps_series, 1, layout="bins",
                                             n_layers=n_layers)
            networks[n_layers, n_steps_series] = build_model(config, seed=ctx.seed).eval()
        return networks[n_layers, n_steps_series]

    def bytes_at(name: str, point: dict[str, int], fault: bool) -> float:
        key = (name, point["L"], point["N"], point["B"], point["T"])
        if key not in measured:
            engine = run_engine(network(point["L"], point["N"]), name, n_steps=point["T"],
                                batch=point["B"], seed=ctx.seed)
            measured[key] = _bytes(engine, fault)
        return measured[key]

    for name in names:
        exponents = {}
        try:
            for axis, sizes in grid.items():
                values = []
                for size in sizes:
                    point = {**BASE, axis: size}
                    values.append(bytes_at(name, point, drop_store)
                                  - bytes_at(BASELINE, point, False))
                exponents[axis] = slope(list(sizes), values)
                series[f"{name}_overhead_bytes_vs_{axis}"] = values
        except (FdbenchError, ValueError) as err:  # config/shape errors at tiny sizes only
            skipped.append(f"{name} ({type(err).__name__}: {err})")
            continue
        for axis, value in exponents.items():
            numbers[f"{name}_exp_{axis}"] = round(value, 4)
        top = max(exponents.values())
        worst = max(worst, top)
        if top >= EXPONENT_MAX:
            growing.append(name)
    tested = len(names) - len(skipped)
    verdict = "violated" if growing else ("holds" if tested else "vacuous")
    headline = {f"e2crf_exp_{axis}": numbers[f"e2crf_exp_{axis}"] for axis in grid
                if f"e2crf_exp_{axis}" in numbers}
    numbers = {"policies_growing": float(len(growing)), **headline,
               "policies_tested": float(tested), "max_exponent": worst, **numbers}
    for axis, sizes in grid.items():
        series[f"sizes_{axis}"] = [float(v) for v in sizes]
    reading = f"overhead over '{BASELINE}' has exponent < {EXPONENT_MAX} along L, N, B, T"
    return ClaimResult(
        "mem", "cache memory overhead is O(1)", verdict, numbers,
        tolerance=(f"violated if any policy's fitted exponent of overhead bytes along L, N, B "
                   f"or T is >= {EXPONENT_MAX} (O(1) means 0; K/V caches give 1)"),
        measured=worst, bound=EXPONENT_MAX, readings={reading: verdict},
        reading_values={reading: (worst, EXPONENT_MAX)}, decided_by=reading,
        settings=(f"base point {BASE}, grid {dict(grid)}, tiny preset (d_model 16), M = 1, "
                  "bins layout" + ("; planted: stores dropped" if drop_store else "")),
        note=(f"overhead = engine.cache_bytes() after the last step minus '{BASELINE}''s; "
              f"growing: {growing}" + (f"; skipped: {skipped}" if skipped else "")),
        series=series)
