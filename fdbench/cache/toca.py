"""Token-wise feature caching: ToCa (Zou et al. 2024, "Accelerating Diffusion Transformers
with Token-wise Feature Caching", ICLR 2025) and DuCa (Zou et al. 2024, "Accelerating
Diffusion Transformers with Dual Feature Caching").

Fresh steps (i < warmup_steps, i mod cache_interval == 0, first and last) compute every
layer and cache A_l and F_l for all tokens. Cache steps reuse A_l for all tokens (each
layer runs only its add+LayerNorms) and recompute F_l on ceil(fresh_ratio * n_tokens)
tokens per layer, gathered from h' = LN1(h + A_l), computed and scattered into the cache:

* ToCa — the tokens with the highest score s = colsum(attention map of the last fresh
  step, averaged over heads) + 0.25 * age / n_tokens (age: steps since the token's F_l
  was last computed), per layer and per sample (BASELINES.md's form of ToCa's score).
* DuCa — uniformly random tokens (per-sample generators seeded by (seed, sample index)),
  and cache steps alternate: the 1st, 3rd, ... after a fresh step are aggressive (reuse
  all of A_l and F_l, FORA-like), the 2nd, 4th, ... conservative (ToCa's recompute).

For time series the low band (tokens of bins k <= K) is always in the subset, so the
methods are comparable with E²-CRF (K=None: no forced band; needed for time-layout models).
A stage-1 call of a cache step recomputes the same subset as its stage 0 into a copy of the
cache (ages and cache untouched)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from fdbench.cache.base import BatchInfo, CacheConfig, StepInfo, check_fields, register_policy
from fdbench.cache.engine import unit_of_token
from fdbench.cache.module_reuse import (
    Computed,
    LayerPlan,
    ModulePolicy,
    StackPlan,
    is_compute_step,
)
from fdbench.randomness import sample_seed

AGE_WEIGHT = 0.25  # BASELINES.md: s = colsum + 0.25 * age / n_tokens


@dataclass(frozen=True)
class ToCaConfig(CacheConfig):
    """ToCa: fresh step every ``cache_interval``; FFN recomputed on ``fresh_ratio`` of the
    tokens, chosen by attention score and age; low band k <= K always included."""

    policy = "toca"
    cache_interval: int = 3
    warmup_steps: int = 0
    fresh_ratio: float = 0.25     # r: share of tokens whose F_l is recomputed on cache steps
    K: int | None = 5             # low band always recomputed (None: none forced)

    def __post_init__(self) -> None:
        check_fields(type(self).__name__, [
            ("cache_interval", self.cache_interval >= 1, ">= 1"),
            ("warmup_steps", self.warmup_steps >= 0, ">= 0"),
            ("fresh_ratio", 0.0 <= self.fresh_ratio <= 1.0, "in [0, 1]"),
            ("K", self.K is None or self.K >= 0, ">= 0 or None")], self)

    def recompute_all(self) -> ToCaConfig:
        return type(self)(**{**self.__dict__, "cache_interval": 1})


@dataclass(frozen=True)
class DuCaConfig(ToCaConfig):
    """DuCa: random token selection, aggressive and conservative cache steps alternating."""

    policy = "duca"
    seed: int = 0                 # token selection randomness, per (seed, sample index)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_fields("DuCaConfig", [("seed", self.seed >= 0, ">= 0")], self)


@register_policy
class ToCa(ModulePolicy):
    config_class = ToCaConfig

    @property
    def wants_scores(self) -> bool:
        return self.config.cache_interval > 1     # no cache step ever reads the map

    def bind(self, network) -> None:
        n_tokens = network.config.n_tokens
        self.n_tokens = n_tokens
        if self.config.K is None:
            self.low_band = torch.zeros(n_tokens, dtype=torch.bool)
        else:   # refuses time-layout models with a clear error (bins need a frequency model)
            self.low_band = unit_of_token(network, "bins") <= self.config.K
        self.n_fresh = max(int(self.low_band.sum()),
                           math.ceil(self.config.fresh_ratio * n_tokens))

    def reset(self, batch: BatchInfo) -> None:
        super().reset(batch)
        self.low_band = self.low_band.to(batch.device)
        self.attention: list[Tensor] = []
        self.ffn: list[Tensor] = []
        self.scores: list[Tensor] = []
        self.age: list[Tensor] = []
        self.last_fresh = 0
        self.tokens: list[Tensor] | None = None   # the subset of the current step

    def plan(self, step: StepInfo, u: Tensor) -> StackPlan | LayerPlan:
        config = self.config
        if is_compute_step(step, config.cache_interval, config.warmup_steps):
            return StackPlan()
        if step.stage == 0:
            self.tokens = self.select(step)
        return LayerPlan(list(self.attention), list(self.ffn), self.tokens)

    def select(self, step: StepInfo) -> list[Tensor] | None:
        """Per layer (B, m) tokens whose F_l is recomputed (ages updated)."""
        boost = self.low_band * 1e9           # the low band outranks every score
        chosen = []
        for layer, (score, age) in enumerate(zip(self.scores, self.age, strict=True)):
            total = score + AGE_WEIGHT * age / self.n_tokens + boost
            tokens = total.topk(self.n_fresh, dim=1).indices            # (B, m)
            age += 1
            age.scatter_(1, tokens, 0.0)
            chosen.append(tokens)
            self.age[layer] = age
        return chosen

    def store(self, step: StepInfo, computed: Computed) -> None:
        self.attention, self.ffn = computed.attention, computed.ffn
        self.scores = computed.scores
        self.age = [torch.zeros_like(score) for score in computed.scores]
        self.last_fresh = step.index

    def state_tensors(self) -> list[Tensor]:
        return self.attention + self.ffn + self.scores + self.age


@register_policy
class DuCa(ToCa):
    config_class = DuCaConfig
    wants_scores = False

    def reset(self, batch: BatchInfo) -> None:
        super().reset(batch)
        self.generators = [torch.Generator().manual_seed(sample_seed(self.config.seed, int(i)))
                           for i in batch.sample_ids.tolist()]

    def plan(self, step: StepInfo, u: Tensor) -> StackPlan | LayerPlan:
        config = self.config
        if is_compute_step(step, config.cache_interval, config.warmup_steps):
            return StackPlan()
        if (step.index - self.last_fresh) % 2 == 1:      # aggressive: reuse A_l and F_l
            return LayerPlan(list(self.attention), list(self.ffn))
        if step.stage == 0:
            self.tokens = self.select(step)
        return LayerPlan(list(self.attention), list(self.ffn), self.tokens)

    def select(self, step: StepInfo) -> list[Tensor]:
        """One uniformly random subset per sample (plus the low band) for every layer."""
        draws = torch.stack([torch.rand(self.n_tokens, generator=g) for g in self.generators])
        draws = draws.to(self.low_band.device) + self.low_band * 2.0    # (B, n)
        tokens = draws.topk(self.n_fresh, dim=1).indices
        return [tokens] * len(self.ffn)

    def store(self, step: StepInfo, computed: Computed) -> None:
        self.attention, self.ffn = computed.attention, computed.ffn
        self.last_fresh = step.index

    def state_tensors(self) -> list[Tensor]:
        return self.attention + self.ffn
