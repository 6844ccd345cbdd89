"""First-block cache (FBCache; ParaAttention / diffusers ``hooks/first_block_cache.py``).

Every call runs layer 1 on every sample: h1 = layer_1(u), first residual r1 = h1 - u.
Per sample, if mean|r1 - r1_ref| / mean|r1_ref| < threshold the remaining layers are
skipped and out = h1 + cached(out - h1); otherwise they run and the cached residual and
the reference r1_ref are refreshed. threshold = 0 computes every step. Decisions are per
sample. A stage-1 call runs layer 1 and then computes exactly the samples its stage 0
computed (no reference update)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from fdbench.cache.base import BatchInfo, CacheConfig, StepInfo, check_fields, register_policy
from fdbench.cache.module_reuse import Computed, ModulePolicy, StackPlan, rel_l1, scatter_rows


@dataclass(frozen=True)
class FirstBlockCacheConfig(CacheConfig):
    """Skip layers 2..L while the first layer's residual changes by less than
    ``threshold`` (relative L1) since the last computed step."""

    policy = "fbcache"
    threshold: float = 0.1

    def __post_init__(self) -> None:
        check_fields("FirstBlockCacheConfig",
                     [("threshold", self.threshold >= 0.0, ">= 0")], self)

    def recompute_all(self) -> FirstBlockCacheConfig:
        return FirstBlockCacheConfig(threshold=0.0)


@register_policy
class FirstBlockCache(ModulePolicy):
    config_class = FirstBlockCacheConfig

    def reset(self, batch: BatchInfo) -> None:
        super().reset(batch)
        self.reference: Tensor | None = None     # r1 of the last computed step, (B, n, d)
        self.rest: Tensor | None = None          # out - h1 of the last computed step
        self.compute = torch.ones(batch.batch, dtype=torch.bool, device=batch.device)
        self.change = torch.zeros(batch.batch, device=batch.device)

    def plan(self, step: StepInfo, u: Tensor) -> StackPlan:
        return StackPlan(first_block=True)

    def after_first_block(self, step: StepInfo, u: Tensor,
                          h1: Tensor) -> tuple[Tensor, Tensor | None]:
        if step.stage == 0:
            self.change = rel_l1(h1 - u, self.reference)
            self.compute = self.change >= self.config.threshold
        return self.compute, self.rest

    def store(self, step: StepInfo, computed: Computed) -> None:
        samples = computed.samples
        r1, rest = computed.first - computed.u, computed.out - computed.first
        if samples is None:
            self.reference, self.rest = r1, rest
            self.compute = torch.ones_like(self.compute)
        else:
            self.reference = scatter_rows(self.reference, samples, r1)
            self.rest = scatter_rows(self.rest, samples, rest)

    def step_trace(self) -> dict[str, float | Tensor]:
        return {"indicator": self.change.mean(), "computed_samples": self.compute.float().mean()}

    def state_tensors(self) -> list[Tensor]:
        return [t for t in (self.reference, self.rest) if t is not None]
