"""What ``fdbench tune`` searches per method: one main knob on a ladder from mild to
aggressive, a small grid on one secondary field, and "fewer solver steps".

The main knob of each method is the field its sweep operating points vary
(``fdbench.sweep_points.CACHE_POINTS``), and its direction (does a larger value reuse
more?) is read from their order, mild to aggressive. The ladder spans that range and
beyond: integers (intervals, periods, K) rung by rung, thresholds on a geometric ladder
of ratio ``THRESHOLD_RATIO`` (the search's tolerance: one rung). The secondary grid's
first value is the preset's own default (``fdbench.cache.POLICY_PRESETS``), so the
default configuration is always among the searched ones. Bisection assumes quality
worsens monotonically along the ladder (``fdbench.tune.search``)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from fdbench.cache import POLICY_PRESETS
from fdbench.errors import ConfigError
from fdbench.sweep_points import CACHE_POINTS

#: "fewer solver steps" as a method of its own (the smallest T of each fast solver)
FEWER_STEPS = "fewer_steps"
THRESHOLD_RATIO = 1.25   # geometric rung of a threshold ladder (tolerance 25 % in value)
STEPS_RATIO = 1.15       # geometric rung of the solver-steps ladder (tolerance ~15 % in T)
MIN_SOLVER_STEPS = 4
# secondary field and its extra values (the preset default is prepended): a refresh period
# for E²-CRF (it caps the speedup at R), a warm-up or the fresh share for the others
SECONDARY = {
    "e2crf": ("R", (10,)),
    "fora": ("warmup_steps", (10,)),
    "toca": ("fresh_ratio", (0.35,)),
    "duca": ("fresh_ratio", (0.35,)),
    "taylorseer1": ("warmup_steps", (10,)),
    "taylorseer2": ("warmup_steps", (10,)),
    "freqca": ("max_order", (1,)),
}
# the solvers "fewer steps" shortens, each on its usual grid (as fdbench.sweep)
FAST_SOLVERS = {"ode_euler": "edm", "ode_heun": "edm", "ddim": "log_snr",
                "dpmpp_2m": "log_snr", "em": "uniform"}


def _parse_point(spec: str) -> tuple[str, str, float]:
    method, _, override = spec.partition(":")
    field, _, value = override.partition("=")
    return method, field, float(value)


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.4g}"


def geometric_ladder(low: float, high: float, ratio: float) -> tuple[float, ...]:
    """Values low, low * ratio, ... up to high (high included), rounded to 4 digits."""
    n = max(1, math.ceil(math.log(high / low) / math.log(ratio)))
    return tuple(float(f"{low * (high / low) ** (i / n):.4g}") for i in range(n + 1))


def steps_ladder(n_ref: int, minimum: int = MIN_SOLVER_STEPS,
                 ratio: float = STEPS_RATIO) -> tuple[int, ...]:
    """Solver steps from ``n_ref`` (mild) down to ``minimum`` (aggressive), geometric."""
    if n_ref < minimum:
        return (n_ref,)
    values = {round(x) for x in geometric_ladder(minimum, n_ref, ratio)} | {n_ref, minimum}
    return tuple(sorted(values, reverse=True))


@dataclass(frozen=True)
class Knob:
    """A method's main field on a ladder (mild -> aggressive) and a secondary grid."""

    method: str
    field: str
    ladder: tuple[float, ...]
    grid_field: str | None = None
    grid: tuple[float, ...] = ()
    fixed: str = ""            # extra overrides every spec carries (e.g. calibration=...)

    def __post_init__(self) -> None:
        if len(self.ladder) < 1 or len(set(self.ladder)) != len(self.ladder):
            raise ConfigError(f"knob {self.method}.{self.field}: the ladder must hold "
                              f"distinct values, got {self.ladder}")
        if self.grid_field is not None and not self.grid:
            raise ConfigError(f"knob {self.method}: grid field {self.grid_field} has no values")

    def grid_values(self) -> tuple[float | None, ...]:
        return self.grid if self.grid_field is not None else (None,)

    def spec(self, value: float, grid_value: float | None = None) -> str:
        """The policy spec ``method:field=value[,grid_field=g][,fixed]``."""
        parts = [f"{self.field}={_fmt(value)}"]
        if self.grid_field is not None and grid_value is not None:
            parts.append(f"{self.grid_field}={_fmt(grid_value)}")
        if self.fixed:
            parts.append(self.fixed)
        return f"{self.method}:{','.join(parts)}"


def tunable_methods() -> tuple[str, ...]:
    """Every method of the sweep (``CACHE_POINTS``), then "fewer solver steps"."""
    return (*CACHE_POINTS, FEWER_STEPS)


def check_method(name: str) -> str:
    if name not in tunable_methods():
        raise ConfigError(f"unknown method {name!r} for tune; known: "
                          f"{', '.join(tunable_methods())}")
    return name


def cache_knob(method: str, series_length: int, *, fixed: str = "") -> Knob:
    """The knob of a cache method, derived from its sweep points and preset."""
    check_method(method)
    if method == FEWER_STEPS:
        raise ConfigError("fewer_steps has no cache knob; see steps_ladder")
    points = [_parse_point(spec) for spec in CACHE_POINTS[method]]
    field = points[0][1]
    values = [v for _, _, v in points]
    preset = POLICY_PRESETS[method](series_length)
    integer = isinstance(getattr(preset, field), int)
    larger_is_faster = values[-1] > values[0]
    low, high = min(values), max(values)
    if integer:
        # intervals and periods start at 1 (every step computed); a reuse band K at twice
        # its mildest point; out to twice the sweep's most aggressive point
        if larger_is_faster:
            ladder = tuple(float(v) for v in range(1, int(2 * high) + 1))
        else:
            ladder = tuple(float(v) for v in range(int(2 * high), int(low) - 1, -1))
    else:
        ladder = geometric_ladder(low / 10, high * 3, THRESHOLD_RATIO)
        if not larger_is_faster:
            ladder = ladder[::-1]
    grid_field, grid = None, ()
    if method in SECONDARY:
        grid_field, extra = SECONDARY[method]
        default = getattr(preset, grid_field)
        grid = (default, *(v for v in extra if v != default))
    return Knob(method, field, ladder, grid_field, grid, fixed)
