"""Quality targets of ``fdbench tune``: ``METRIC<=THRESHOLD``, one metric at a time.

Every metric is lower-is-better, so a target is an upper bound (``<=`` or ``<``):

* ``paired_error`` — mean per-sample relative L2 error to the uncached sampler drawn with
  the same noise (``fdbench.quality.paired_relative_error``; TeaCache, Liu et al. 2025,
  Sec. 3, uses the same relative distance);
* ``discriminative_score`` — TimeGAN's post-hoc classifier score of the samples against
  held-out series (``fdbench.judges.discriminative_score``; 0 = indistinguishable);
* ``sw_ratio`` — sliced Wasserstein-2 of the samples to held-out series over that of the
  uncached samples drawn with the same noise (``fdbench.metrics.sliced_wasserstein``;
  1 = as far from the data as the uncached sampler).

A target is never relaxed: a setting meets it or it does not (``Target.met``)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from fdbench.errors import ConfigError

METRICS = {
    "paired_error": "mean paired relative error to the uncached sampler (same noise)",
    "discriminative_score": "discriminative score against held-out series (0 = "
                            "indistinguishable, 0.5 = always told apart)",
    "sw_ratio": "SW(samples, held-out) / SW(uncached samples, held-out), same noise",
}
OPERATORS = ("<=", "<")
_PATTERN = re.compile(r"^\s*([A-Za-z_]+)\s*(<=|<|>=|>|==|=)\s*([^<>=\s]+)\s*$")


class TargetError(ConfigError):
    """A ``--target`` that does not parse, names an unknown metric or a bad bound."""


@dataclass(frozen=True)
class Target:
    """``metric op threshold``: a setting meets it when its metric value satisfies it."""

    metric: str
    op: str
    threshold: float

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise TargetError(f"unknown target metric {self.metric!r}; known: "
                              f"{sorted(METRICS)}")
        if self.op not in OPERATORS:
            raise TargetError(f"target operator must be one of {OPERATORS} (every metric "
                              f"is lower-is-better), got {self.op!r}")
        if not (math.isfinite(self.threshold) and self.threshold > 0):
            raise TargetError(f"target threshold must be a finite number > 0, got "
                              f"{self.threshold!r}")

    def met(self, value: float | None) -> bool:
        """Whether ``value`` satisfies the bound (None or NaN never does)."""
        if value is None or not math.isfinite(value):
            return False
        return value <= self.threshold if self.op == "<=" else value < self.threshold

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.threshold:g}"

    @property
    def slug(self) -> str:
        """The target as a file-name part: ``paired_error_le_0.01``."""
        return f"{self.metric}_{'le' if self.op == '<=' else 'lt'}_{self.threshold:g}"


def parse_target(text: str) -> Target:
    """``"paired_error<=0.01"`` -> ``Target("paired_error", "<=", 0.01)``.

    >>> parse_target("sw_ratio <= 1.1")
    Target(metric='sw_ratio', op='<=', threshold=1.1)
    """
    match = _PATTERN.match(text or "")
    if match is None:
        raise TargetError(f"--target must look like METRIC<=VALUE (metrics: "
                          f"{', '.join(sorted(METRICS))}), got {text!r}")
    metric, op, value = match.groups()
    try:
        threshold = float(value)
    except ValueError:
        raise TargetError(f"target threshold must be a number, got {value!r}") from None
    return Target(metric, op, threshold)
