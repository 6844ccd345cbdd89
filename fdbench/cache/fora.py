"""FORA-style static reuse (Selvaraju et al. 2024, "FORA: Fast-Forward Caching in
Diffusion Transformer Acceleration").

Compute steps: i < warmup_steps, i mod cache_interval == 0, the first and the last step;
they run normally and store A_l and F_l of every layer. Other steps: every layer only does
its two add+LayerNorms with the stored A_l and F_l (``reuse="modules"``, FORA proper), or
the whole stack is skipped, output = u + stored(out - u) (``reuse="residual"``, the
variant of docs/BASELINES.md). Uniform over the batch; a stage-1 call follows its
step."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from fdbench.cache.base import BatchInfo, CacheConfig, StepInfo, check_fields, register_policy
from fdbench.cache.module_reuse import (
    Computed,
    LayerPlan,
    ModulePolicy,
    StackPlan,
    is_compute_step,
)

REUSE = ("modules", "residual")


@dataclass(frozen=True)
class FORAConfig(CacheConfig):
    """Static reuse every ``cache_interval`` steps after ``warmup_steps`` full steps."""

    policy = "fora"
    cache_interval: int = 3       # n: compute every n-th step (1: never reuse)
    warmup_steps: int = 0         # w: steps 0..w-1 always computed
    reuse: str = "modules"        # "modules" (A_l, F_l per layer) | "residual" (out - u)

    def __post_init__(self) -> None:
        check_fields("FORAConfig", [
            ("cache_interval", self.cache_interval >= 1, ">= 1"),
            ("warmup_steps", self.warmup_steps >= 0, ">= 0"),
            ("reuse", self.reuse in REUSE, f"one of {REUSE}")], self)

    def recompute_all(self) -> FORAConfig:
        return FORAConfig(cache_interval=1, warmup_steps=self.warmup_steps, reuse=self.reuse)


@register_policy
class FORA(ModulePolicy):
    config_class = FORAConfig

    def reset(self, batch: BatchInfo) -> None:
        super().reset(batch)
        self.attention: list[Tensor] = []
        self.ffn: list[Tensor] = []
        self.residual: Tensor | None = None

    def plan(self, step: StepInfo, u: Tensor) -> StackPlan | LayerPlan:
        config = self.config
        if is_compute_step(step, config.cache_interval, config.warmup_steps):
            return StackPlan()
        if config.reuse == "residual":
            return StackPlan(torch.zeros(u.shape[0], dtype=torch.bool, device=u.device),
                             self.residual)
        return LayerPlan(list(self.attention), list(self.ffn))

    def store(self, step: StepInfo, computed: Computed) -> None:
        # full steps are uniform over the batch here: every sample computed
        if self.config.reuse == "residual":
            self.residual = computed.out - computed.u
        else:
            self.attention, self.ffn = computed.attention, computed.ffn

    def state_tensors(self) -> list[Tensor]:
        return self.attention + self.ffn + ([self.residual] if self.residual is not None else [])
