"""Planted faults inside a cache policy, by wrapping the policy object (fdbench.cache is
not edited: only its public interface — ``make_policy``, ``Decision``, ``Observation`` —
is used).

A :class:`PlantedPolicy` forwards everything to the wrapped policy and changes one thing:

* ``recompute="invert"`` — the high band's recompute set is complemented (the tokens the
  policy chose to reuse are recomputed and vice versa; the low band {0..K} stays), a wrong
  token set as an indexing bug would give;
* ``recompute="all"`` / ``"none"`` — every token recomputed / every token reused (low band
  included) on the cached steps: a trigger that fires always / never;
* ``roll_final=True`` — the policy observes the final residual stream of another sample
  (the batch rolled by the step index), so its event intensity compares different samples:
  an intensity that no longer follows the sample's own dynamics;
* ``drift=gamma`` — on every cached step the reused final stream is scaled by
  (1 + gamma) through the policy's correction: a cache that drifts.

Used by the observation checks (O.*) and the paper-comparison checks to show that the
*measurement* flips the verdict when the computation is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor

from fdbench.cache import CacheConfig, Decision, StepInfo, make_policy
from fdbench.cache.base import Correction

RECOMPUTE = (None, "invert", "all", "none")


@dataclass(frozen=True)
class Fault:
    """One planted fault (the default plants nothing). Hashable: runs are memoised on it."""

    recompute: str | None = None
    roll_final: bool = False
    drift: float = 0.0

    def __post_init__(self) -> None:
        if self.recompute not in RECOMPUTE:
            raise ValueError(f"recompute must be one of {RECOMPUTE}, got {self.recompute!r}")

    @property
    def planted(self) -> bool:
        return self != Fault()

    def describe(self) -> str:
        parts = []
        if self.recompute:
            parts.append(f"recompute set '{self.recompute}'")
        if self.roll_final:
            parts.append("intensity from another sample's stream")
        if self.drift:
            parts.append(f"cache drift {self.drift:g} per step")
        return ", ".join(parts) or "none"


class PlantedPolicy:
    """A cache policy with a :class:`Fault` planted (see the module docstring)."""

    def __init__(self, policy: Any, fault: Fault):
        self.inner, self.fault = policy, fault
        self.k_low = getattr(policy.config, "K", -1)

    # the engine reads these from the policy
    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @property
    def units(self) -> str:
        return self.inner.units

    @property
    def mode(self) -> str:
        return self.inner.mode

    def reset(self, batch: Any) -> None:
        self.inner.reset(batch)

    def make_executor(self, engine: Any) -> Any:
        return self.inner.make_executor(engine)

    def step_trace(self) -> dict[str, Any]:
        return self.inner.step_trace()

    def decide(self, step: StepInfo, units_x: Tensor) -> Decision:
        decision = self.inner.decide(step, units_x)
        mask, kind = decision.recompute, self.fault.recompute
        if mask is None or kind is None:
            return decision
        low = torch.zeros_like(mask)
        low[:, : self.k_low + 1] = True
        if kind == "invert":
            mask = ~mask | low
        elif kind == "all":
            mask = torch.ones_like(mask)
        else:
            mask = torch.zeros_like(mask)
        measure = None if decision.measure is None else decision.measure & mask
        return Decision(mask, measure)

    def observe(self, step: StepInfo, observation: Any) -> Tensor | None:
        if self.fault.roll_final:
            # consecutive steps roll by different shifts: never the sample's own stream
            shift = step.index % observation.final.shape[0]
            observation = replace(observation,
                                  final=observation.final.roll(shift, dims=0))
        correction = self.inner.observe(step, observation)
        if self.fault.drift and not bool(observation.fresh.all()):
            drift = self.fault.drift * observation.final * (~observation.fresh)[..., None]
            if isinstance(correction, Correction):   # the engine's in-place form, made dense
                correction = correction.weight * correction.value
            correction = drift if correction is None else correction + drift
        return correction


def planted_policy(config: CacheConfig, fault: Fault | None = None) -> Any:
    """``make_policy(config)``, wrapped with ``fault`` when one is planted."""
    policy = make_policy(config)
    if fault is None or not fault.planted:
        return policy
    return PlantedPolicy(policy, fault)
