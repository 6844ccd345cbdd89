"""FreqCa-style split of the residual — an *adaptation* for frequency-token models of FreqCa
(Liu et al. 2025, "FreqCa: Accelerating Diffusion Models via Frequency-Aware Caching"; code:
the FreqCa repository of Tammytcl, FLUX and Qwen-Image versions, titled "Accelerating Image
Generation and Editing via Frequency-Aware Caching"), not the published method.

The reference caches only the cumulative residual feature (the stack's output minus its
input), splits it into a low and a high band (FFT along the tokens for Qwen-Image, 2-D DCT
for FLUX, cutoff 0.1 of the largest frequency), reuses the low band (its order 0) and
forecasts the high band with a "second-order Hermite predictor": TaylorSeer's divided
differences D_k in the step index (formed as in TaylorSeer's code: from step w - 1 on, the
order growing by one per compute step) combined with physicists' Hermite polynomials of
the scaled distance (``hermite_forecast``)
  R_high(i_ref + t) ~ sum_k D_k H_k(s t) s^k / k!,  s = 0.71.
With s = 1/sqrt(2) this is sum_k D_k He_k(t) / k! (probabilists' Hermite): the first-order
term is Taylor's D_1 t (2 s^2 = 1.008 at s = 0.71) and the second-order one is damped from
Taylor's D_2 t^2 / 2 to D_2 (t^2 - 1) / 2, i.e. by D_2 / 2 at every distance. Its schedule
is TaylorSeer's (``is_forecast_compute_step``: w = 3 warm-up steps, then every N-th step from
the last of them); paper settings N = 6 (or 9), w = 3, order 2 — the defaults here. Its
experimental look-ahead schedule ("z cache") is not reproduced.

Here the tokens already are frequency bins, so the split is by the token's bin: cached
steps output u + R_hat with R_hat = R(last) on the low band (bins k <= K) and the forecast
on the high band: ``forecast="hermite"`` (the reference, ``damping`` = s), ``"taylor"``
(the reference's other predictor, TaylorSeer eq. 9) or ``"lagrange"`` (the earlier
fdbench reading: the polynomial through the last max_order + 1 residuals). Needs a
frequency-domain model (layout bins or chart). A stage-1 call of a cached step forecasts
at i + 1; no stage-1 call changes the history."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor

from fdbench.cache.base import BatchInfo, CacheConfig, StepInfo, check_fields, register_policy
from fdbench.cache.engine import unit_of_token
from fdbench.cache.module_reuse import Computed, ModulePolicy, StackPlan
from fdbench.cache.taylorseer import is_forecast_compute_step, next_differences, taylor_forecast

FORECASTS = ("hermite", "taylor", "lagrange")


@dataclass(frozen=True)
class FreqCaConfig(CacheConfig):
    """Low band reused, high band forecast, fresh every ``cache_interval`` steps after
    ``warmup_steps`` full steps."""

    policy = "freqca"
    cache_interval: int = 6       # N (paper: 6 or 9)
    warmup_steps: int = 3         # w (the code's first_enhance)
    K: int = 5                    # low band k <= K: reused as is
    forecast: str = "hermite"     # "hermite" (the reference) | "taylor" | "lagrange"
    max_order: int = 2            # forecast order of the high band
    damping: float = 0.71         # s: Hermite argument scale (1/sqrt(2): He_k)

    def __post_init__(self) -> None:
        check_fields("FreqCaConfig", [
            ("cache_interval", self.cache_interval >= 1, ">= 1"),
            ("warmup_steps", self.warmup_steps >= 0, ">= 0"),
            ("K", self.K >= 0, ">= 0"),
            ("forecast", self.forecast in FORECASTS, f"one of {FORECASTS}"),
            ("max_order", self.max_order in (0, 1, 2), "0, 1 or 2"),
            ("damping", self.damping > 0.0, "> 0")], self)

    def recompute_all(self) -> FreqCaConfig:
        return replace(self, cache_interval=1)


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


def hermite(x: float, order: int) -> float:
    """Physicists' Hermite polynomial H_n(x): H_0 = 1, H_1 = 2x,
    H_{n+1} = 2x H_n - 2n H_{n-1}."""
    previous, current = 1.0, 2.0 * x
    if order == 0:
        return previous
    for n in range(1, order):
        previous, current = current, 2.0 * x * current - 2.0 * n * previous
    return current


def hermite_forecast(differences: list[Tensor], offset: float, scale: float) -> Tensor:
    """FreqCa's high-band predictor sum_k D_k H_k(s t) s^k / k! at distance t = ``offset``
    from the last compute step (the reference's signs: its distances and differences are
    both negated, which cancels)."""
    value = differences[0]
    for order in range(1, len(differences)):
        weight = hermite(scale * offset, order) * scale ** order / math.factorial(order)
        value = value + differences[order] * weight
    return value


@register_policy
class FreqCa(ModulePolicy):
    config_class = FreqCaConfig

    def bind(self, network: Any) -> None:
        # refuses a time-layout model with a clear ConfigError
        self.low_band = (unit_of_token(network, "bins") <= self.config.K)[None, :, None]

    def reset(self, batch: BatchInfo) -> None:
        super().reset(batch)
        self.low_band = self.low_band.to(batch.device)
        self.history: list[tuple[float, Tensor]] = []   # "lagrange": (step, R), oldest first
        self.differences: list[Tensor] = []             # otherwise: [D_0..D_k] of R
        self.reference = 0                              # the last compute step

    def plan(self, step: StepInfo, u: Tensor) -> StackPlan:
        config = self.config
        if is_forecast_compute_step(step, config.cache_interval, config.warmup_steps):
            return StackPlan()
        target = step.index + step.stage
        estimate = torch.where(self.low_band, self.latest(), self.high_band(target))
        return StackPlan(torch.zeros(u.shape[0], dtype=torch.bool, device=u.device), estimate)

    def latest(self) -> Tensor:
        return self.history[-1][1] if self.config.forecast == "lagrange" else self.differences[0]

    def high_band(self, target: int) -> Tensor:
        """The forecast residual at step ``target`` (used on the high band)."""
        config = self.config
        if config.forecast == "lagrange":
            points = [index for index, _ in self.history]
            weights = lagrange_weights(points, float(target))
            return sum(w * r for w, (_, r) in zip(weights, self.history, strict=True))
        offset = float(target - self.reference)
        if config.forecast == "hermite":
            return hermite_forecast(self.differences, offset, config.damping)
        return taylor_forecast(self.differences, offset)

    def store(self, step: StepInfo, computed: Computed) -> None:
        config, residual = self.config, computed.out - computed.u
        if config.forecast == "lagrange":
            keep = config.max_order + 1
            self.history = (self.history + [(float(step.index), residual)])[-keep:]
        else:
            self.differences = next_differences(self.differences, residual, step.index,
                                                self.reference, config.warmup_steps,
                                                config.max_order)
        self.reference = step.index

    def state_tensors(self) -> list[Tensor]:
        return [residual for _, residual in self.history] + self.differences
