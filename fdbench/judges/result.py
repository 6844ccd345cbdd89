"""The value every judge returns: a number, its standard error and what it summarises."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["JudgeResult", "summarise_repeats"]


def _finite_or_none(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


@dataclass(frozen=True)
class JudgeResult:
    """One judge's verdict.

    ``value`` is the reported number; ``se`` its standard error where the judge has one
    (over independent repeats: std(values, ddof=1) / sqrt(len(values))), else None;
    ``values`` the numbers ``value`` summarises (per repeat, or per channel: see
    ``details["values_are"]``); ``details`` judge-specific extras (JSON-ready)."""

    name: str
    value: float
    se: float | None = None
    values: tuple[float, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; non-finite floats become None (JSON has no NaN)."""
        return {"name": self.name, "value": _finite_or_none(self.value),
                "se": _finite_or_none(self.se),
                "values": [_finite_or_none(v) for v in self.values],
                "details": {k: _finite_or_none(v) for k, v in self.details.items()}}


def summarise_repeats(name: str, values: Sequence[float], **details: Any) -> JudgeResult:
    """Mean and standard error over independent repeats (SE None for one repeat)."""
    vals = tuple(float(v) for v in values)
    se = statistics.stdev(vals) / math.sqrt(len(vals)) if len(vals) > 1 else None
    return JudgeResult(name=name, value=statistics.fmean(vals), se=se, values=vals,
                       details={"values_are": "repeats", "repeats": len(vals), **details})
