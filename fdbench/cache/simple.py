"""The reference policies: ``none``, ``fixed`` and ``naive_kv``.

* ``none`` — recompute everything every step (the uncached network through the engine:
  measures the engine's own overhead).
* ``fixed`` — E²-CRF's "fixed schedule" ablation (Liu et al. 2026, Table 3): a full step
  every R steps, every layer reused in between (FORA-like whole-network reuse).
* ``naive_kv`` — the public E²-CRF code's idea done correctly: the K/V of the high band
  (bins > K) are reused from the last full step, every token still gets its query,
  attention row, out-projection and FFN; optional full refresh every R steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from fdbench.cache.base import (
    MODES,
    CacheConfig,
    CachePolicy,
    Decision,
    StepInfo,
    check_fields,
    register_policy,
)


@dataclass(frozen=True)
class NoCacheConfig(CacheConfig):
    """Recompute every token at every step."""

    policy = "none"


@register_policy
class NoCache(CachePolicy):
    config_class = NoCacheConfig

    def decide(self, step: StepInfo, units_x: Tensor) -> Decision:
        return Decision(None)


@dataclass(frozen=True)
class FixedConfig(CacheConfig):
    """Full recompute every ``R`` steps, full reuse otherwise (Liu et al. 2026, Table 3
    "fixed schedule")."""

    policy = "fixed"
    R: int = 10
    reuse_mode: str = "subset"

    def __post_init__(self) -> None:
        check_fields("FixedConfig", [("R", self.R >= 1, ">= 1"),
                                     ("reuse_mode", self.reuse_mode in MODES[:2],
                                      f"one of {MODES[:2]}")], self)


@register_policy
class Fixed(CachePolicy):
    config_class = FixedConfig

    def decide(self, step: StepInfo, units_x: Tensor) -> Decision:
        if step.index % self.config.R == 0:
            return Decision(None)
        return Decision(torch.zeros(units_x.shape[:2], dtype=torch.bool,
                                    device=units_x.device))


@dataclass(frozen=True)
class NaiveKVConfig(CacheConfig):
    """Reuse the K/V of bins > K (Liu et al. 2026, Table 3 "naive KV cache"); a full
    refresh every ``R`` steps if R is set (the public code refreshes every 500)."""

    policy = "naive_kv"
    K: int = 5
    R: int | None = None

    def __post_init__(self) -> None:
        check_fields("NaiveKVConfig", [("K", self.K >= 0, ">= 0"),
                                       ("R", self.R is None or self.R >= 1, ">= 1 or None")],
                     self)


@register_policy
class NaiveKV(CachePolicy):
    config_class = NaiveKVConfig
    units = "bins"

    @property
    def mode(self) -> str:
        return "kv_only"

    def decide(self, step: StepInfo, units_x: Tensor) -> Decision:
        if self.config.R is not None and step.index % self.config.R == 0:
            return Decision(None)
        low_band = torch.zeros(units_x.shape[:2], dtype=torch.bool, device=units_x.device)
        low_band[:, : self.config.K + 1] = True
        return Decision(low_band)
