"""mem: "O(1) memory overhead" of the cache.

Every registered cache policy (``fdbench.cache.POLICY_PRESETS``, so policies added later
are included) runs a few reverse EM steps on tiny random networks while one of L (layers),
N (series length) and B (batch) grows from a base point; ``engine.cache_bytes()`` after
the steps is recorded and its growth exponent along each axis fitted (least-squares slope
of log bytes on log size). O(1) means exponent 0; per-layer K/V caches are O(L N B d)."""

from __future__ import annotations

import math
from collections.abc import Callable

from fdbench.cache import POLICY_PRESETS, CacheEngine
from fdbench.errors import FdbenchError
from fdbench.model import ModelConfig, ScoreTransformer, build_model
from proofs_check.claim_a08_cache_size import run_engine
from proofs_check.registry import ClaimResult, Context, register

# an exponent >= 0.5 along an axis means the memory grows at least like sqrt(size): not
# O(1); the expected exponents are 1 (O(L N B d)), the O(1) claim's is 0
EXPONENT_MAX = 0.5
BASE = {"L": 2, "N": 32, "B": 2}


def slope(sizes: list[float], values: list[float]) -> float:
    """Least-squares slope of log(values) on log(sizes)."""
    xs, ys = [math.log(s) for s in sizes], [math.log(max(v, 1.0)) for v in values]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / \
        sum((x - mx) ** 2 for x in xs)


def _bytes(engine: CacheEngine) -> int:
    return engine.cache_bytes()


@register("mem", "O(1) memory overhead of the caches (bytes vs L, N, B)")
def check(ctx: Context, *, measure: Callable[[CacheEngine], int] = _bytes) -> ClaimResult:
    """Fault: ``measure`` (e.g. a constant, as if the caches did not grow)."""
    # quick: two sizes per axis (a slope needs two); full: four
    grid = {"L": ctx.pick((1, 4), (1, 2, 4, 8)), "N": ctx.pick((16, 64), (16, 32, 64, 128)),
            "B": ctx.pick((1, 4), (1, 2, 4, 8))}
    n_steps = 3  # step 0 fills the caches, step 1 runs cached, step 2 (last) is full
    numbers: dict[str, float] = {}
    series: dict[str, list[float]] = {}
    skipped, growing, worst = [], [], 0.0
    networks: dict[tuple[int, int], ScoreTransformer] = {}   # shared by all policies

    def network(n_layers: int, n_steps_series: int) -> ScoreTransformer:
        if (n_layers, n_steps_series) not in networks:
            config = ModelConfig.from_preset("tiny", n_steps_series, 1, layout="bins",
                                             n_layers=n_layers)
            networks[n_layers, n_steps_series] = build_model(config, seed=ctx.seed).eval()
        return networks[n_layers, n_steps_series]

    for name in POLICY_PRESETS:
        exponents, measured = {}, {}   # measured: (L, N, B) -> bytes (base point once)
        try:
            for axis, sizes in grid.items():
                values = []
                for size in sizes:
                    point = {**BASE, axis: size}
                    key = (point["L"], point["N"], point["B"])
                    if key not in measured:
                        engine = run_engine(network(point["L"], point["N"]), name,
                                            n_steps=n_steps, batch=point["B"], seed=ctx.seed)
                        measured[key] = float(measure(engine))
                    values.append(measured[key])
                exponents[axis] = slope(list(sizes), values)
                series[f"{name}_bytes_vs_{axis}"] = values
        except (FdbenchError, ValueError) as err:  # config/shape errors at tiny sizes only
            skipped.append(f"{name} ({type(err).__name__}: {err})")
            continue
        for axis, value in exponents.items():
            numbers[f"{name}_exp_{axis}"] = round(value, 4)
        top = max(exponents.values())
        worst = max(worst, top)
        if top >= EXPONENT_MAX:
            growing.append(name)
    tested = len(POLICY_PRESETS) - len(skipped)
    verdict = "violated" if growing else ("holds" if tested else "vacuous")
    headline = {f"e2crf_exp_{axis}": numbers[f"e2crf_exp_{axis}"] for axis in grid
                if f"e2crf_exp_{axis}" in numbers}
    numbers = {"policies_growing": float(len(growing)), **headline,
               "policies_tested": float(tested), "max_exponent": worst, **numbers}
    series["sizes_L"] = [float(v) for v in grid["L"]]
    series["sizes_N"] = [float(v) for v in grid["N"]]
    series["sizes_B"] = [float(v) for v in grid["B"]]
    return ClaimResult(
        "mem", "cache memory overhead is O(1)", verdict, numbers,
        tolerance=(f"violated if any policy's fitted exponent of bytes along L, N or B is >= "
                   f"{EXPONENT_MAX} (O(1) means 0; K/V caches give 1)"),
        measured=worst, bound=EXPONENT_MAX,
        note=(f"base point {BASE}, tiny preset (d_model 16), M = 1, bins layout, "
              f"{n_steps} EM steps, bytes = engine.cache_bytes() after the last step; "
              f"growing: {growing}" + (f"; skipped: {skipped}" if skipped else "")),
        series=series)
