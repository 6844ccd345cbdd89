"""TaylorSeer: forecast module outputs instead of reusing them (Liu et al. 2025, "From
Reusing to Forecasting: Accelerating Diffusion Models with TaylorSeers", ICCV 2025).

Compute steps (i < warmup_steps, i mod cache_interval == 0, first and last) run every layer
and update, per layer and per module output Y in {A_l, F_l}, the divided differences in
the step index up to order m = max_order (TaylorSeer's eq. 8, as its public code):
  D_0 = Y(i),  D_k = (D_{k-1}(i) - D_{k-1}(i_prev)) / (i - i_prev),  k = 1..m
(orders beyond the number of compute steps seen so far are not formed). Cached steps j
predict each module output by the truncated Taylor series (eq. 9)
  Y(j) ~ sum_k D_k (j - i_ref)^k / k!
and run each layer's add+LayerNorm path with the predictions. max_order = 0 is FORA's
reuse. Memory: 2 L (m+1) tensors of shape (B, n_tokens, d) (``step_trace``). A stage-1
call (at t_{i+1}) of a cached step forecasts at j = i + 1; one of a compute step computes;
neither updates the differences."""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import Tensor

from fdbench.cache.base import BatchInfo, CacheConfig, StepInfo, check_fields, register_policy
from fdbench.cache.module_reuse import (
    Computed,
    LayerPlan,
    ModulePolicy,
    StackPlan,
    is_compute_step,
)


@dataclass(frozen=True)
class TaylorSeerCacheConfig(CacheConfig):
    """Forecast A_l, F_l to order ``max_order`` between compute steps every
    ``cache_interval`` (names as diffusers' ``TaylorSeerCacheConfig``)."""

    policy = "taylorseer"
    cache_interval: int = 4
    max_order: int = 1
    warmup_steps: int = 0

    def __post_init__(self) -> None:
        check_fields("TaylorSeerCacheConfig", [
            ("cache_interval", self.cache_interval >= 1, ">= 1"),
            ("max_order", self.max_order in (0, 1, 2), "0, 1 or 2"),
            ("warmup_steps", self.warmup_steps >= 0, ">= 0")], self)

    def recompute_all(self) -> TaylorSeerCacheConfig:
        return TaylorSeerCacheConfig(cache_interval=1, max_order=self.max_order,
                                     warmup_steps=self.warmup_steps)


def update_differences(old: list[Tensor], value: Tensor, distance: float,
                       max_order: int) -> list[Tensor]:
    """New divided differences [D_0..D_k] from the previous ones and a fresh value
    (TaylorSeer eq. 8); k grows by one per compute step up to ``max_order``."""
    new = [value]
    for order in range(1, min(max_order, len(old)) + 1):
        new.append((new[order - 1] - old[order - 1]) / distance)
    return new


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
        if is_compute_step(step, config.cache_interval, config.warmup_steps):
            return StackPlan()
        offset = float(step.index + step.stage - self.reference)
        return LayerPlan([taylor_forecast(d, offset) for d in self.attention],
                         [taylor_forecast(d, offset) for d in self.ffn])

    def store(self, step: StepInfo, computed: Computed) -> None:
        order, distance = self.config.max_order, float(step.index - self.reference)
        if not self.attention:
            self.attention = [[a] for a in computed.attention]
            self.ffn = [[f] for f in computed.ffn]
        else:
            self.attention = [update_differences(old, a, distance, order)
                              for old, a in zip(self.attention, computed.attention, strict=True)]
            self.ffn = [update_differences(old, f, distance, order)
                        for old, f in zip(self.ffn, computed.ffn, strict=True)]
        self.reference = step.index

    def step_trace(self) -> dict[str, float | Tensor]:
        return {"cached_tensors": float(sum(len(d) for d in self.attention + self.ffn))}

    def state_tensors(self) -> list[Tensor]:
        return [t for differences in self.attention + self.ffn for t in differences]
