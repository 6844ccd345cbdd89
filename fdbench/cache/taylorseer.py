"""TaylorSeer: forecast module outputs instead of reusing them (Liu et al. 2025, "From
Reusing to Forecasting: Accelerating Diffusion Models with TaylorSeers", ICCV 2025), as its
public code (the TaylorSeer repository of Shenyi-Z, DiT and FLUX versions) does it.

Compute steps (``is_forecast_compute_step``) run every layer and update, per layer and per
module output Y in {A_l, F_l}, the divided differences in the step index up to order
m = max_order (eq. 8, ``update_differences``):
  D_0 = Y(i),  D_k = (D_{k-1}(i) - D_{k-1}(i_prev)) / (i - i_prev),  k = 1..m
Cached steps j predict each module output by the truncated Taylor series (eq. 9)
  Y(j) ~ sum_k D_k (j - i_ref)^k / k!
and run each layer's add+LayerNorm path with the predictions. max_order = 0 is FORA's reuse.

The reference's schedule and warm-up (the code's ``first_enhance`` and counter):

* the first w = ``warmup_steps`` steps compute; afterwards a compute step every N =
  ``cache_interval`` steps counted from the last warm-up step (the counter restarts at
  every full step): compute steps 0..w-1, w-1+N, w-1+2N, ...; the last step computes too
  (fdbench's shared rule; the DiT code does not force it). diffusers' port computes at
  w+1, w+1+N, ... instead; the authors' counter is followed here.
* differences are formed only from step w-1 on (earlier warm-up steps restart the chain at
  D_0), so forecasting starts at order 1 from the last two warm-up steps (spacing 1); an
  order k is formed only where order k-1 existed, so the order grows by one per compute
  step up to m.
* defaults there: DiT N = 4, m = 4, w = 2; FLUX N = 6, m = 1, w = 3 (diffusers'
  ``TaylorSeerCacheConfig``: ``cache_interval`` 5, ``disable_cache_before_step`` 3,
  ``max_order`` 1). Here N = 4 and w = 2 (the DiT code: the class-conditional model closest
  to this one) and m = 1 (FLUX, diffusers); m <= 2 is offered (presets taylorseer1/2).

Memory: 2 L (m+1) tensors of shape (B, n_tokens, d) (``step_trace``). A stage-1 call (at
t_{i+1}) of a cached step forecasts at j = i + 1; one of a compute step computes; neither
updates the differences."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from torch import Tensor

from fdbench.cache.base import BatchInfo, CacheConfig, StepInfo, check_fields, register_policy
from fdbench.cache.module_reuse import Computed, LayerPlan, ModulePolicy, StackPlan


@dataclass(frozen=True)
class TaylorSeerCacheConfig(CacheConfig):
    """Forecast A_l, F_l to order ``max_order`` between compute steps every
    ``cache_interval`` after ``warmup_steps`` full steps (names as diffusers'
    ``TaylorSeerCacheConfig``)."""

    policy = "taylorseer"
    cache_interval: int = 4
    max_order: int = 1
    warmup_steps: int = 2

    def __post_init__(self) -> None:
        check_fields("TaylorSeerCacheConfig", [
            ("cache_interval", self.cache_interval >= 1, ">= 1"),
            ("max_order", self.max_order in (0, 1, 2), "0, 1 or 2"),
            ("warmup_steps", self.warmup_steps >= 0, ">= 0")], self)

    def recompute_all(self) -> TaylorSeerCacheConfig:
        return replace(self, cache_interval=1)


def is_forecast_compute_step(step: StepInfo, interval: int, warmup: int) -> bool:
    """TaylorSeer's (and FreqCa's) schedule: steps i < w, then every ``interval``-th step
    counted from the last warm-up step w - 1 (from step 0 without warm-up), and the last."""
    anchor = max(warmup, 1) - 1
    return step.index < warmup or (step.index - anchor) % interval == 0 or step.last


def update_differences(old: list[Tensor], value: Tensor, distance: float,
                       max_order: int) -> list[Tensor]:
    """New divided differences [D_0..D_k] from the previous ones and a fresh value
    (TaylorSeer eq. 8); k grows by one per compute step up to ``max_order``."""
    new = [value]
    for order in range(1, min(max_order, len(old)) + 1):
        new.append((new[order - 1] - old[order - 1]) / distance)
    return new


def next_differences(old: list[Tensor], value: Tensor, index: int, reference: int,
                     warmup: int, max_order: int) -> list[Tensor]:
    """The differences after a compute step at ``index`` (previous one at ``reference``):
    restarted at [value] at the first step and before the last warm-up step w - 1 (the
    reference code forms none there), else ``update_differences``."""
    if not old or index < warmup - 1:
        return [value]
    return update_differences(old, value, float(index - reference), max_order)


def taylor_forecast(differences: list[Tensor], offset: float) -> Tensor:
    """sum_k D_k offset^k / k! (TaylorSeer eq. 9)."""
    value = differences[0]
    for order in range(1, len(differences)):
        value = value + differences[order] * (offset ** order / math.factorial(order))
    return value


@register_policy
class TaylorSeer(ModulePolicy):
    config_class = TaylorSeerCacheConfig

    def reset(self, batch: BatchInfo) -> None:
        super().reset(batch)
        self.attention: list[list[Tensor]] = []   # per layer [D_0..D_m] of A_l
        self.ffn: list[list[Tensor]] = []
        self.reference = 0                        # i_ref: the last compute step

    def plan(self, step: StepInfo, u: Tensor) -> StackPlan | LayerPlan:
        config = self.config
        if is_forecast_compute_step(step, config.cache_interval, config.warmup_steps):
            return StackPlan()
        offset = float(step.index + step.stage - self.reference)
        return LayerPlan([taylor_forecast(d, offset) for d in self.attention],
                         [taylor_forecast(d, offset) for d in self.ffn])

    def store(self, step: StepInfo, computed: Computed) -> None:
        config, index = self.config, step.index
        old_attention = self.attention or [[] for _ in computed.attention]
        old_ffn = self.ffn or [[] for _ in computed.ffn]
        self.attention = [next_differences(old, a, index, self.reference, config.warmup_steps,
                                           config.max_order)
                          for old, a in zip(old_attention, computed.attention, strict=True)]
        self.ffn = [next_differences(old, f, index, self.reference, config.warmup_steps,
                                     config.max_order)
                    for old, f in zip(old_ffn, computed.ffn, strict=True)]
        self.reference = index

    def step_trace(self) -> dict[str, float | Tensor]:
        return {"cached_tensors": float(sum(len(d) for d in self.attention + self.ffn))}

    def state_tensors(self) -> list[Tensor]:
        return [t for differences in self.attention + self.ffn for t in differences]
