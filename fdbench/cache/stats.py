"""Per-run cache statistics: what was computed, what it cost, what the policy saw."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from fdbench.cache.base import StepRecord


@dataclass
class CacheStats:
    """Statistics of one sampling batch under one policy (one :class:`StepRecord` per
    model call)."""

    policy: str
    mode: str
    batch: int
    n_tokens: int
    n_steps: int
    uncached_flops_per_step: float
    steps: list[StepRecord] = field(default_factory=list)
    cache_bytes: int = 0          # peak bytes held by the caches and the policy state

    def __post_init__(self) -> None:
        self._materialised = 0

    def records(self) -> list[StepRecord]:
        """The step records with every value a float (converted once, lazily)."""
        for step in self.steps[self._materialised:]:
            step.materialise()
        self._materialised = len(self.steps)
        return self.steps

    def summary(self) -> dict[str, Any]:
        """Headline numbers: FLOP ratio/speedup vs the uncached network, mean recompute
        fraction, full steps, decision-logic time and cache memory."""
        steps = self.records()
        n = max(1, len(steps))
        flops = sum(step.flops for step in steps)
        uncached = self.uncached_flops_per_step * len(self.steps)
        return {
            "policy": self.policy,
            "mode": self.mode,
            "batch": self.batch,
            "steps": len(self.steps),
            "full_steps": sum(step.full for step in steps),
            "recompute_fraction": sum(s.executed_fraction for s in steps) / n,
            "planned_fraction": sum(s.planned_fraction for s in steps) / n,
            "flop_ratio": flops / uncached if uncached else float("nan"),
            "flop_speedup": uncached / flops if flops else float("inf"),
            "decision_seconds": sum(step.decision_seconds for step in steps),
            "cache_bytes": self.cache_bytes,
        }

    def trace(self, key: str) -> list[float]:
        """Per-step values of ``executed_fraction``/``planned_fraction``/``flops`` or of a
        policy trace key (NaN where the policy did not report it)."""
        if key in ("executed_fraction", "planned_fraction", "flops", "full"):
            return [float(getattr(step, key)) for step in self.records()]
        return [step.extra.get(key, float("nan")) for step in self.records()]

    def to_dict(self) -> dict[str, Any]:
        steps = self.records()
        return {**{k: v for k, v in asdict(self).items() if k != "steps"},
                "summary": self.summary(), "steps": [asdict(s) for s in steps]}

    def to_markdown(self) -> str:
        s = self.summary()
        rows = [("policy", f"{s['policy']} ({s['mode']})"), ("batch", str(s["batch"])),
                ("model calls", str(s["steps"])), ("full steps", str(s["full_steps"])),
                ("recompute fraction", f"{s['recompute_fraction']:.3f}"),
                ("FLOP ratio (cached / uncached)", f"{s['flop_ratio']:.3f}"),
                ("FLOP speedup", f"{s['flop_speedup']:.2f}x"),
                ("decision logic", f"{s['decision_seconds']:.3f} s"),
                ("cache memory", f"{s['cache_bytes'] / 2**20:.2f} MiB")]
        return "| statistic | value |\n|---|---|\n" + "\n".join(
            f"| {name} | {value} |" for name, value in rows)


def combine(stats: list[CacheStats]) -> dict[str, Any]:
    """Summary over several batches: FLOP-weighted ratios, worst-case memory."""
    if not stats:
        return {}
    flops = sum(sum(step.flops for step in s.steps) for s in stats)
    uncached = sum(s.uncached_flops_per_step * len(s.steps) for s in stats)
    steps = [step for s in stats for step in s.records()]
    return {
        "policy": stats[0].policy, "mode": stats[0].mode, "batches": len(stats),
        "recompute_fraction": sum(x.executed_fraction for x in steps) / max(1, len(steps)),
        "flop_ratio": flops / uncached, "flop_speedup": uncached / flops if flops else 0.0,
        "full_steps_per_batch": sum(x.full for x in steps) / len(stats),
        "decision_seconds": sum(x.decision_seconds for x in steps),
        "cache_bytes": max(s.cache_bytes for s in stats),
    }
