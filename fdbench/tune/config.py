"""Settings of ``fdbench tune``: samplers, settings (a spec on a sampler) and the run's
configuration (frozen, validated before any checkpoint is loaded)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fdbench.errors import ConfigError
from fdbench.solvers import SolverConfig
from fdbench.tune.knobs import FAST_SOLVERS
from fdbench.tune.targets import Target

UNCACHED = "uncached"


@dataclass(frozen=True)
class Sampler:
    solver: str
    grid: str
    n_steps: int

    @property
    def label(self) -> str:
        return f"{self.solver}/{self.grid} T={self.n_steps}"

    def config(self) -> SolverConfig:
        return SolverConfig(self.solver, self.n_steps, self.grid)

    @property
    def evaluations(self) -> int:
        return self.config().n_evaluations

    def cli(self) -> str:
        return f"--solver {self.solver} --grid {self.grid} --steps {self.n_steps}"


def pf_ode_reference(n_steps: int) -> Sampler:
    """The paired reference of shortened deterministic solvers: DPM-Solver++(2M) on the
    log-SNR grid with the baseline's T (second order, so the most accurate at that T)."""
    return Sampler("dpmpp_2m", "log_snr", n_steps)


@dataclass(frozen=True)
class Setting:
    """``spec`` on ``sampler``, scored against the uncached run of ``paired``."""

    sampler: Sampler
    spec: str
    paired: Sampler

    @property
    def label(self) -> str:
        return f"{self.spec} @ {self.sampler.label}"

    def cli(self) -> str:
        cache = "" if self.spec == UNCACHED else f" --cache {self.spec}"
        return self.sampler.cli() + cache


@dataclass(frozen=True)
class TuneConfig:
    """What one ``fdbench tune`` run searches and how it scores."""

    target: Target
    solver: str = "em"
    grid: str | None = None        # None: the solver's usual grid (knobs.FAST_SOLVERS)
    steps: int = 1000
    batch_size: int = 32
    num_samples: int = 64
    search_samples: int | None = None   # None: num_samples // 4 (at least the judges' 10)
    budget: int = 12               # search trials per method (reduced samples)
    confirm: int = 2               # confirmation trials per method (full samples)
    seed: int = 0
    judge_repeats: int = 3
    n_directions: int = 500
    n_boot: int = 200
    timing_rounds: int = 3         # 0: no wall-time measurement
    timing_batch: int = 16         # samples per timed run (all picks round robin)

    def __post_init__(self) -> None:
        for name, low in (("budget", 1), ("confirm", 1), ("batch_size", 1),
                          ("num_samples", 2), ("judge_repeats", 1), ("n_directions", 1),
                          ("n_boot", 2), ("timing_rounds", 0), ("timing_batch", 1),
                          ("seed", 0)):
            if getattr(self, name) < low:
                raise ConfigError(f"tune: {name.replace('_', '-')} must be >= {low}, got "
                                  f"{getattr(self, name)}")
        if self.solver not in FAST_SOLVERS:
            raise ConfigError(f"tune: unknown solver {self.solver!r}; known: "
                              f"{sorted(FAST_SOLVERS)}")
        self.baseline.config()     # validates steps and grid
        if not 2 <= self.n_search <= self.num_samples:
            raise ConfigError(f"tune: search-samples must be in [2, num-samples = "
                              f"{self.num_samples}], got {self.n_search}")
        if self.target.metric == "discriminative_score":
            from fdbench.judges import MIN_SERIES

            if self.n_search < MIN_SERIES:
                raise ConfigError(f"tune: the discriminative score needs >= {MIN_SERIES} "
                                  f"search samples, got {self.n_search}")

    @property
    def baseline(self) -> Sampler:
        return Sampler(self.solver, self.grid or FAST_SOLVERS[self.solver], self.steps)

    @property
    def n_search(self) -> int:
        if self.search_samples is not None:
            return self.search_samples
        return min(self.num_samples, max(10, self.num_samples // 4))

    def settings(self, checkpoint: str | Path, threads: int) -> dict[str, Any]:
        """Everything a trial's numbers depend on (not the target: see ``store``)."""
        return {"checkpoint": str(Path(checkpoint).resolve()), "baseline": self.baseline.label,
                "batch_size": self.batch_size, "num_samples": self.num_samples,
                "search_samples": self.n_search, "seed": self.seed, "threads": threads,
                "judge_repeats": self.judge_repeats, "n_directions": self.n_directions,
                "metric": self.target.metric, "n_boot": self.n_boot,
                "torch": torch.__version__}


def parse_sampler(label: str) -> Sampler:
    """``"em/uniform T=1000"`` -> ``Sampler("em", "uniform", 1000)``."""
    solver_grid, _, steps = label.partition(" T=")
    solver, _, grid = solver_grid.partition("/")
    return Sampler(solver, grid, int(steps))
