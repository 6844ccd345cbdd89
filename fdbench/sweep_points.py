"""The cache operating points of ``fdbench bench --sweep``: every method at >= 4 points,
mild to aggressive, E²-CRF's ablations among them. Kept apart from ``fdbench.sweep`` so
the figures and the CLI can read them without loading the sampler."""

from __future__ import annotations


def _grid(method: str, field: str, values: tuple[float, ...]) -> tuple[str, ...]:
    return tuple(f"{method}:{field}={value:g}" for value in values)


INTERVALS = (2, 3, 4, 6)
E2CRF_TAU_0 = (0.05, 0.2, 0.5, 1.0, 3.0)
# E²-CRF's ablations (Liu et al. 2026, Table 3): each component off, the fixed schedule
# and the naive K/V cache; drawn beside e2crf in sweep_ablation.png, not run on the solver
ABLATIONS = ("e2crf_no_event", "e2crf_no_feedback", "e2crf_no_energy", "e2crf_no_probe",
             "fixed", "naive_kv")
# E²-CRF under fdbench 0.1's readings: drawn beside e2crf, not run on the solver
READING_VARIANTS = ("e2crf_v01",)
# methods the composites (each method on the best solver) leave out
NOT_ON_SOLVER = ABLATIONS + READING_VARIANTS
# every cache method at >= 4 operating points, from mild to aggressive (the order the
# curves are drawn in); the single source of the sweep's methods
CACHE_POINTS = {
    "e2crf": _grid("e2crf", "tau_0", E2CRF_TAU_0),
    # fdbench 0.1's readings (R only the feedback period, plain intensity, relative
    # delta): the "before" curve of the faithful readings
    "e2crf_v01": _grid("e2crf_v01", "tau_0", E2CRF_TAU_0),
    "fora": _grid("fora", "cache_interval", INTERVALS),
    "toca": _grid("toca", "cache_interval", INTERVALS),
    "duca": _grid("duca", "cache_interval", INTERVALS),
    "teacache": _grid("teacache", "rel_l1_thresh", (0.1, 0.3, 0.6, 1.0)),
    "fbcache": _grid("fbcache", "threshold", (0.05, 0.1, 0.2, 0.4)),
    "taylorseer1": _grid("taylorseer1", "cache_interval", INTERVALS),
    "taylorseer2": _grid("taylorseer2", "cache_interval", INTERVALS),
    "freqca": _grid("freqca", "cache_interval", INTERVALS),
    **{name: _grid(name, "tau_0", E2CRF_TAU_0) for name in ABLATIONS[:4]},
    "fixed": _grid("fixed", "R", (2, 3, 5, 10)),
    "naive_kv": _grid("naive_kv", "K", (10, 5, 2, 0)),
}


def composite_spec(specs: tuple[str, ...]) -> str:
    """The operating point a method runs at on top of the best solver: the middle one of
    its points, on the mild side for an even count."""
    return specs[(len(specs) - 1) // 2]


# the methods of sweep_ablation.png: E²-CRF beside each of its ablations
ABLATION_FIGURE = ("e2crf", "e2crf_v01", *ABLATIONS)


def setting_key(spec: str) -> tuple:
    """Where an operating point sits on its method's curve: its rank in
    ``CACHE_POINTS`` (mild to aggressive), then, for a point outside the grid, its
    override values (numbers before words, so the key always compares)."""
    method, _, overrides = spec.partition(":")
    grid = CACHE_POINTS.get(method, ())
    rank = grid.index(spec) if spec in grid else len(grid)
    values = []
    for item in filter(None, overrides.split(",")):
        text = item.partition("=")[2].strip()
        try:
            values.append((0, float(text), ""))
        except ValueError:
            values.append((1, 0.0, text))
    return rank, tuple(values)
