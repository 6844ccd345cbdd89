"""Per-run cache statistics: what was computed, what it cost, what the policy saw.

Two FLOP counts per run: *executed* (``StepRecord.flops``: what ran, with each sample's
recompute set padded to the batch's largest, since a batched gather needs one width) and
*planned* (had every sample computed exactly its own set). The FLOP formula of a
token-subset forward is affine in the per-sample token count for a given reuse mode
(``fdbench.flops.forward_flops``), so the planned FLOPs of a step are the formula at the
step's planned fraction, interpolated between the forward with no token computed
(``empty_flops_per_step``) and the uncached one; summed over samples this is exact.
Module-reuse policies run no padded gather: their planned FLOPs are the executed ones.
A step run in the engine's ragged layout pays no padding except in its attention rows;
its recorded FLOPs count exactly that. ``padded_planned_ratio`` = planned / executed
FLOPs (= executed FLOP speedup / planned FLOP speedup, 1 = no FLOP lost to padding)."""

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
    # FLOPs of one step of this batch with no token computed under ``mode`` (token-subset
    # policies); None for module-reuse policies, whose planned FLOPs are the executed ones
    empty_flops_per_step: float | None = None

    def __post_init__(self) -> None:
        self._materialised = 0

    def records(self) -> list[StepRecord]:
        """The step records with every value a float (converted once, lazily)."""
        for step in self.steps[self._materialised:]:
            step.materialise()
        self._materialised = len(self.steps)
        return self.steps

    def planned_flops(self) -> float:
        """FLOPs had every sample computed exactly its own recompute set (no padding): per
        step the affine FLOP formula at the planned fraction (see the module docstring);
        the executed FLOPs for module-reuse policies."""
        steps = self.records()
        if self.empty_flops_per_step is None:
            return sum(step.flops for step in steps)
        empty, full = self.empty_flops_per_step, self.uncached_flops_per_step
        units = self.batch * self.n_tokens
        # planned_fraction is a float32 ratio of token counts: back to the exact count
        return sum(empty + (full - empty) * round(step.planned_fraction * units) / units
                   for step in steps)

    def summary(self) -> dict[str, Any]:
        """Headline numbers: FLOP ratio/speedup vs the uncached network (executed, i.e.
        padded, and planned), mean recompute fraction, full steps, decision-logic time and
        cache memory."""
        steps = self.records()
        n = max(1, len(steps))
        flops = sum(step.flops for step in steps)
        planned = self.planned_flops()
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
            "planned_flop_ratio": planned / uncached if uncached else float("nan"),
            "planned_flop_speedup": uncached / planned if planned else float("inf"),
            "padded_planned_ratio": planned / flops if flops else 1.0,
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
                ("FLOP speedup (executed, padded)", f"{s['flop_speedup']:.2f}x"),
                ("FLOP speedup (planned, no padding)", f"{s['planned_flop_speedup']:.2f}x"),
                ("planned / executed FLOPs", f"{s['padded_planned_ratio']:.3f}"),
                ("decision logic", f"{s['decision_seconds']:.3f} s"),
                ("cache memory", f"{s['cache_bytes'] / 2**20:.2f} MiB")]
        return "| statistic | value |\n|---|---|\n" + "\n".join(
            f"| {name} | {value} |" for name, value in rows)


def combine(stats: list[CacheStats]) -> dict[str, Any]:
    """Summary over several batches: FLOP-weighted ratios (executed and planned),
    worst-case memory."""
    if not stats:
        return {}
    flops = sum(sum(step.flops for step in s.steps) for s in stats)
    planned = sum(s.planned_flops() for s in stats)
    uncached = sum(s.uncached_flops_per_step * len(s.steps) for s in stats)
    steps = [step for s in stats for step in s.records()]
    return {
        "policy": stats[0].policy, "mode": stats[0].mode, "batches": len(stats),
        "recompute_fraction": sum(x.executed_fraction for x in steps) / max(1, len(steps)),
        "flop_ratio": flops / uncached, "flop_speedup": uncached / flops if flops else 0.0,
        "planned_flop_ratio": planned / uncached,
        "planned_flop_speedup": uncached / planned if planned else 0.0,
        "padded_planned_ratio": planned / flops if flops else 1.0,
        "full_steps_per_batch": sum(x.full for x in steps) / len(stats),
        "decision_seconds": sum(x.decision_seconds for x in steps),
        "cache_bytes": max(s.cache_bytes for s in stats),
    }
