"""Calibration and validation noise for ``fdbench tune``, disjoint by construction.

A sample's noise is the stream of (seed, global sample index) (``fdbench.randomness``), so
a set of noise draws is a range of indices under one seed. The tuner scores every trial
on the calibration range and the pick once more on the validation range; the two ranges
must never share an index, or the validation would re-read the noise the pick was chosen
on and flatter it (the held-out principle of every calibration, e.g. TeaCache's
per-model fit, Liu et al. 2025, Sec. 3.3)."""

from __future__ import annotations

from dataclasses import dataclass

from fdbench.errors import ConfigError
from fdbench.randomness import sample_seed

#: First global sample index of the validation draws: far above any calibration count.
VALIDATION_FIRST = 1_000_000


class SeedOverlapError(ConfigError):
    """Calibration and validation draws would share noise."""


@dataclass(frozen=True)
class NoiseRange:
    """Samples ``first .. first + count - 1`` of run ``seed``."""

    seed: int
    first: int
    count: int
    tag: str

    def __post_init__(self) -> None:
        if self.seed < 0 or self.first < 0 or self.count < 1:
            raise ConfigError(f"noise range {self.tag}: need seed >= 0, first >= 0, "
                              f"count >= 1, got {self.seed}, {self.first}, {self.count}")

    def head(self, count: int) -> NoiseRange:
        """The first ``count`` draws of this range (the reduced-sample search)."""
        if not 1 <= count <= self.count:
            raise ConfigError(f"{self.tag}: cannot take {count} of {self.count} draws")
        return NoiseRange(self.seed, self.first, count, self.tag)

    def keys(self) -> set[tuple[int, int]]:
        return {(self.seed, i) for i in range(self.first, self.first + self.count)}

    def generator_seeds(self) -> set[int]:
        """The per-sample generator seeds the sampler will use for these draws."""
        return {sample_seed(s, i) for s, i in self.keys()}


@dataclass(frozen=True)
class SeedPlan:
    """Calibration draws (seed, 0 .. n_calibration - 1) and validation draws (seed,
    ``validation_first`` ...); refused when they overlap."""

    seed: int
    n_calibration: int
    n_validation: int
    validation_first: int = VALIDATION_FIRST

    def __post_init__(self) -> None:
        self.calibration.keys()   # validates the ranges
        if not self.calibration.keys().isdisjoint(self.validation.keys()):
            raise SeedOverlapError(
                f"validation draws (first index {self.validation_first}) overlap the "
                f"{self.n_calibration} calibration draws; validation must use fresh noise")

    @property
    def calibration(self) -> NoiseRange:
        return NoiseRange(self.seed, 0, self.n_calibration, "calibration")

    @property
    def validation(self) -> NoiseRange:
        return NoiseRange(self.seed, self.validation_first, self.n_validation, "validation")


def check_fresh(validation: NoiseRange, used: set[tuple[int, int]]) -> None:
    """Refuse a validation whose draws were used by any calibration trial."""
    shared = validation.keys() & used
    if shared:
        raise SeedOverlapError(f"{len(shared)} validation draws were used for calibration "
                               f"(e.g. (seed, index) {min(shared)}); refusing to validate")
