"""FreqCa-style split of the residual — an *adaptation* for frequency-token models of the
idea of FreqCa (Liu et al. 2025, "FreqCa: Accelerating Diffusion Models via Frequency-Aware
Caching": low-frequency features are stable and reused, high-frequency ones are
predicted), not the published method, which splits image features by a 2-D FFT.

Here the tokens already are frequency bins, so the split is by the token's bin. Fresh steps
(i < warmup_steps, i mod cache_interval == 0, first and last) run the stack and keep the
final residual R = out - u and its two predecessors (with their step indices). Cached
steps output u + R_hat where R_hat = R(last) on the low band (bins k <= K) and, on the high
band, the second-order (Lagrange) extrapolation in the step index through the kept
residuals (first order / reuse while fewer are kept). Needs a frequency-domain model
(layout bins or chart). A stage-1 call of a cached step extrapolates to i + 1."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from fdbench.cache.base import BatchInfo, CacheConfig, StepInfo, check_fields, register_policy
from fdbench.cache.engine import unit_of_token
from fdbench.cache.module_reuse import Computed, ModulePolicy, StackPlan, is_compute_step

HISTORY = 3   # R and its two predecessors: second-order extrapolation


@dataclass(frozen=True)
class FreqCaConfig(CacheConfig):
    """Low band reused, high band extrapolated, fresh every ``cache_interval`` steps."""

    policy = "freqca"
    cache_interval: int = 3
    warmup_steps: int = 0
    K: int = 5                    # low band k <= K: reused as is

    def __post_init__(self) -> None:
        check_fields("FreqCaConfig", [
            ("cache_interval", self.cache_interval >= 1, ">= 1"),
            ("warmup_steps", self.warmup_steps >= 0, ">= 0"),
            ("K", self.K >= 0, ">= 0")], self)

    def recompute_all(self) -> FreqCaConfig:
        return FreqCaConfig(cache_interval=1, warmup_steps=self.warmup_steps, K=self.K)


def lagrange_weights(points: list[float], target: float) -> list[float]:
    """Weights w_j with p(target) = sum_j w_j y_j for the polynomial through (points, y)."""
    weights = []
    for j, xj in enumerate(points):
        w = 1.0
        for m, xm in enumerate(points):
            if m != j:
                w *= (target - xm) / (xj - xm)
        weights.append(w)
    return weights


@register_policy
class FreqCa(ModulePolicy):
    config_class = FreqCaConfig

    def bind(self, network) -> None:
        # refuses a time-layout model with a clear ConfigError
        self.low_band = (unit_of_token(network, "bins") <= self.config.K)[None, :, None]

    def reset(self, batch: BatchInfo) -> None:
        super().reset(batch)
        self.low_band = self.low_band.to(batch.device)
        self.history: list[tuple[float, Tensor]] = []   # (step index, R), oldest first

    def plan(self, step: StepInfo, u: Tensor) -> StackPlan:
        config = self.config
        if is_compute_step(step, config.cache_interval, config.warmup_steps):
            return StackPlan()
        target = float(step.index + step.stage)
        points = [index for index, _ in self.history]
        weights = lagrange_weights(points, target)
        high = sum(w * residual for w, (_, residual) in zip(weights, self.history, strict=True))
        estimate = torch.where(self.low_band, self.history[-1][1], high)
        return StackPlan(torch.zeros(u.shape[0], dtype=torch.bool, device=u.device), estimate)

    def store(self, step: StepInfo, computed: Computed) -> None:
        self.history = (self.history + [(float(step.index), computed.out - computed.u)])[-HISTORY:]

    def state_tensors(self) -> list[Tensor]:
        return [residual for _, residual in self.history]
