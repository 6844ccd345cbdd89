"""Token-wise feature caching: ToCa (Zou et al. 2024, "Accelerating Diffusion Transformers
with Token-wise Feature Caching", ICLR 2025) and DuCa (Zou et al. 2024, "Rethinking
Token-wise Feature Caching: Accelerating Diffusion Transformers with Dual Feature
Caching"), read from their public code (the DiT, PixArt-alpha and Open-Sora versions in
the ToCa and DuCa repositories of Shenyi-Z).

Fresh steps compute every layer and cache A_l and F_l for all tokens. Cache steps reuse
A_l for all tokens (the codes' module factor for attention is 0: attention is never
recomputed there; each layer runs its add+LayerNorms) and recompute F_l on a subset of the
tokens of each layer, gathered from h' = LN1(h + A_l), computed and scattered into the
cache. For time series the low band (tokens of bins k <= K) is always in the subset, so
the methods are comparable with E²-CRF (K=None: no forced band; needed for time layouts).

ToCa as its DiT code (the defaults; the earlier fdbench reading as the other option):

* score (``token_score``): the column sums of the head-averaged self-attention map of the
  last fresh step (the attention each token receives; the PixArt version's cross-attention
  entropy has no counterpart in a self-attention-only model), L2-normalised over the tokens
  of each sample (``score_norm="l2"``; ``"none"``: raw sums), plus the age term
  λ · age / N with λ = 0.25 and N the fresh interval (``age_scale="interval"``;
  ``"tokens"``: λ · age / n_tokens). age = cache steps since the token's F_l was last
  computed, per layer, read before it is updated; reset at fresh steps.
* ``schedule="toca"`` (the code's "ToCa" ratio scheduler and force scheduler): layer l of L
  at step i recomputes r · f_layer(l) · f_step(i) of its tokens and a fresh step at i is
  followed by the next one at i + round(N / f_step(i)) (``layer_factor``,
  ``step_factor``): more tokens in early layers and late in sampling, fresh steps every 7
  steps early and every 3 late for N = 4. ``"constant"``: share r and interval N throughout.
* defaults: N = 4 (``fresh_threshold``), r = 0.175 = the code's fresh ratio 0.07 times its
  FFN module factor 2.5 (so ``fresh_ratio`` here is the FFN share averaged over layers and
  steps).
* not carried over: the spatial-uniformity bonus s4 (it raises the best token of each 2x2
  patch of a square image grid; series tokens have no such grid, the forced low band gives
  coverage instead).

DuCa as its code: cache steps alternate conservative (ToCa's partial FFN recompute) and
aggressive ones.

* order: the PixArt and Open-Sora versions (steps counted up) make the j-th cache step
  after a fresh step conservative for odd j: C, A, C, ... (``order="conservative_first"``).
  The DiT version counts steps down and tests the parity of the step modulo N, so there
  the step just before the next fresh step is conservative (``"before_refresh"``): the same
  C, A, C for even N, A, C, A, C for odd N. ``"aggressive_first"``: the earlier reading.
* aggressive step: every layer is skipped and the final residual stream of the previous
  step is reused (the codes' cached "noise"; ``aggressive="stream"``; this model's head is
  not time-conditioned, so the score repeats the previous step's). ``"modules"``: A_l and
  F_l reused with the add+LayerNorm path rerun (FORA-like, the earlier reading).
* tokens: uniform random scores, drawn per layer and sample, plus ToCa's age term (the DiT
  code adds it to random scores as well); per-sample generators seeded by (seed, sample
  index). ``schedule`` defaults to ``"constant"``: the DiT script's schedule (step weight
  2.0, layer weight -0.2, clamped to [0, 1], so no token is recomputed during the first
  quarter of sampling) is not reproduced.

A stage-1 call follows its step's stage 0: a fresh step computes, a conservative step
recomputes the same subset into a copy of the cache, an aggressive step reuses the same
stream; ages, caches and the stream are untouched."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from fdbench.cache.base import BatchInfo, CacheConfig, StepInfo, check_fields, register_policy
from fdbench.cache.engine import unit_of_token
from fdbench.cache.module_reuse import (
    Computed,
    LayerPlan,
    ModuleExecutor,
    ModulePolicy,
    StackPlan,
)
from fdbench.randomness import sample_seed

STEP_WEIGHT = 0.4     # ToCa code: linear step weight of its ratio and interval schedules
LAYER_WEIGHT = 0.8    # ToCa code: layer weight of its ratio schedule
LOW_BAND_BOOST = 1e9  # the forced low band outranks every score
SCORE_NORMS = ("l2", "none")
AGE_SCALES = ("interval", "tokens")
SCHEDULES = ("toca", "constant")
ORDERS = ("conservative_first", "before_refresh", "aggressive_first")
AGGRESSIVE = ("stream", "modules")


@dataclass(frozen=True)
class ToCaConfig(CacheConfig):
    """ToCa: fresh step every ``cache_interval`` (stretched by ``schedule``); FFN recomputed
    on a share of the tokens chosen by attention score and age; low band k <= K always."""

    policy = "toca"
    cache_interval: int = 4       # N: fresh interval (the code's fresh_threshold)
    warmup_steps: int = 0
    fresh_ratio: float = 0.175    # r: FFN token share on cache steps (before the schedule)
    K: int | None = 5             # low band always recomputed (None: none forced)
    age_weight: float = 0.25      # λ of the age term (the code's soft_fresh_weight)
    score_norm: str = "l2"        # "l2" (the code) | "none"
    age_scale: str = "interval"   # age / N (the code) | age / n_tokens ("tokens")
    schedule: str = "toca"        # "toca" (layer and step factors) | "constant"

    def __post_init__(self) -> None:
        check_fields(type(self).__name__, [
            ("cache_interval", self.cache_interval >= 1, ">= 1"),
            ("warmup_steps", self.warmup_steps >= 0, ">= 0"),
            ("fresh_ratio", 0.0 <= self.fresh_ratio <= 1.0, "in [0, 1]"),
            ("K", self.K is None or self.K >= 0, ">= 0 or None"),
            ("age_weight", self.age_weight >= 0.0, ">= 0"),
            ("score_norm", self.score_norm in SCORE_NORMS, f"one of {SCORE_NORMS}"),
            ("age_scale", self.age_scale in AGE_SCALES, f"one of {AGE_SCALES}"),
            ("schedule", self.schedule in SCHEDULES, f"one of {SCHEDULES}")], self)

    def recompute_all(self) -> ToCaConfig:
        return replace(self, cache_interval=1, schedule="constant")


@dataclass(frozen=True)
class DuCaConfig(ToCaConfig):
    """DuCa: conservative (ToCa-like, random tokens) and aggressive cache steps alternate."""

    policy = "duca"
    schedule: str = "constant"
    seed: int = 0                     # token draws, per (seed, sample index)
    order: str = "conservative_first"  # see the module docstring
    aggressive: str = "stream"        # "stream" (the code) | "modules" (FORA-like)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_fields("DuCaConfig", [
            ("seed", self.seed >= 0, ">= 0"),
            ("order", self.order in ORDERS, f"one of {ORDERS}"),
            ("aggressive", self.aggressive in AGGRESSIVE, f"one of {AGGRESSIVE}")], self)


def step_factor(index: int, total: int) -> float:
    """ToCa's step factor 1 + w - 2 w s / T (w = 0.4), s = T - 1 - i the code's step
    counter, which counts down: about 0.6 at the first step, 1.4 at the last."""
    countdown = total - 1 - index
    return 1.0 + STEP_WEIGHT - 2.0 * STEP_WEIGHT * countdown / total


def layer_factor(layer: int, n_layers: int) -> float:
    """ToCa's layer factor 1 + w - 2 w l / (L - 1) (w = 0.8): 1.8 at the first layer, 0.2
    at the last (1 for a one-layer network)."""
    position = layer / (n_layers - 1) if n_layers > 1 else 0.5
    return 1.0 + LAYER_WEIGHT - 2.0 * LAYER_WEIGHT * position


def token_score(base: Tensor, age: Tensor, config: ToCaConfig, n_tokens: int,
                normalise: bool = True) -> Tensor:
    """ToCa's token score s = norm(base) + λ · age / D ((B, n) each): base the attention
    column sums (s1; L2-normalised per sample under ``score_norm="l2"`` when
    ``normalise``), λ · age / D the age term (s3), D = N or n_tokens (``age_scale``)."""
    if normalise and config.score_norm == "l2":
        base = F.normalize(base, p=2, dim=1)
    scale = config.cache_interval if config.age_scale == "interval" else n_tokens
    return base + config.age_weight * age / scale


@register_policy
class ToCa(ModulePolicy):
    config_class = ToCaConfig

    @property
    def wants_scores(self) -> bool:
        return not self.never_caches         # no cache step ever reads the map otherwise

    @property
    def never_caches(self) -> bool:
        return self.config.cache_interval == 1 and self.config.schedule == "constant"

    def bind(self, network: Any) -> None:
        self.n_tokens = network.config.n_tokens
        self.n_layers = network.config.n_layers
        if self.config.K is None:
            self.low_band = torch.zeros(self.n_tokens, dtype=torch.bool)
        else:   # refuses time-layout models with a clear error (bins need a frequency model)
            self.low_band = unit_of_token(network, "bins") <= self.config.K
        self.n_low = int(self.low_band.sum())

    def reset(self, batch: BatchInfo) -> None:
        super().reset(batch)
        self.low_band = self.low_band.to(batch.device)
        self.attention: list[Tensor] = []
        self.ffn: list[Tensor] = []
        self.scores: list[Tensor] = []
        self.age: list[Tensor] = []
        self.last_fresh = 0
        self.next_fresh = 1
        self.tokens: list[Tensor] | None = None   # the subsets of the current step

    def is_fresh(self, step: StepInfo) -> bool:
        """Stage 0: the schedule's decision; stage 1 follows it (its stage 0 stored)."""
        if step.stage == 1:
            return self.last_fresh == step.index
        return step.index >= self.next_fresh

    def next_fresh_after(self, index: int, total: int) -> int:
        """The fresh step after one at ``index`` (warm-up steps and the last step included)."""
        config = self.config
        if index + 1 < config.warmup_steps:
            return index + 1
        if config.schedule == "toca":
            gap = max(1, round(config.cache_interval / step_factor(index, total)))
            return min(index + gap, total - 1)
        return min((index // config.cache_interval + 1) * config.cache_interval, total - 1)

    def mark_fresh(self, step: StepInfo) -> None:
        self.last_fresh = step.index
        self.next_fresh = self.next_fresh_after(step.index, step.total)

    def fresh_counts(self, step: StepInfo) -> list[int]:
        """Per layer, the tokens whose F_l is recomputed at this cache step (>= low band)."""
        config, counts = self.config, []
        for layer in range(self.n_layers):
            share = config.fresh_ratio
            if config.schedule == "toca":
                share *= layer_factor(layer, self.n_layers) * step_factor(step.index, step.total)
            wanted = math.ceil(share * self.n_tokens)
            counts.append(min(self.n_tokens, max(self.n_low, wanted)))
        return counts

    def plan(self, step: StepInfo, u: Tensor) -> StackPlan | LayerPlan:
        if self.is_fresh(step):
            return StackPlan()
        if step.stage == 0:
            self.tokens = self.select(step)
        return LayerPlan(list(self.attention), list(self.ffn), self.tokens)

    def select(self, step: StepInfo) -> list[Tensor]:
        """Per layer the (B, m_l) tokens of highest score (ages updated)."""
        return self.choose(step, list(self.scores), normalise=True)

    def choose(self, step: StepInfo, bases: list[Tensor], normalise: bool) -> list[Tensor]:
        """Top tokens of ``token_score`` per layer; chosen ages reset, the others age."""
        boost = self.low_band * LOW_BAND_BOOST
        chosen = []
        for layer, (count, base) in enumerate(zip(self.fresh_counts(step), bases, strict=True)):
            age = self.age[layer]
            total = token_score(base, age, self.config, self.n_tokens, normalise) + boost
            tokens = total.topk(count, dim=1).indices                       # (B, m_l)
            self.age[layer] = (age + 1.0).scatter_(1, tokens, 0.0)
            chosen.append(tokens)
        return chosen

    def store(self, step: StepInfo, computed: Computed) -> None:
        self.attention, self.ffn = computed.attention, computed.ffn
        self.scores = computed.scores
        self.age = [torch.zeros(f.shape[:2], device=f.device) for f in computed.ffn]
        self.mark_fresh(step)

    def state_tensors(self) -> list[Tensor]:
        return self.attention + self.ffn + self.scores + self.age


class StreamKeepingExecutor(ModuleExecutor):
    """The module executor that also hands the policy the final stream of each stage-0
    layer-plan call (``keep_stream``), which DuCa's aggressive steps reuse."""

    def _layers(self, info: StepInfo, u: Tensor, plan: LayerPlan) -> Tensor:
        h = super()._layers(info, u, plan)
        if info.stage == 0:
            self._timed(self.policy.keep_stream, info, h)
        return h


@register_policy
class DuCa(ToCa):
    config_class = DuCaConfig
    wants_scores = False

    def make_executor(self, engine: Any) -> ModuleExecutor:
        return StreamKeepingExecutor(engine)

    def reset(self, batch: BatchInfo) -> None:
        super().reset(batch)
        self.generators = [torch.Generator().manual_seed(sample_seed(self.config.seed, int(i)))
                           for i in batch.sample_ids.tolist()]
        self.stream: Tensor | None = None     # final stream of the last stage-0 call

    def is_aggressive(self, step: StepInfo) -> bool:
        """DuCa's alternation for a cache step (``order``, see the module docstring)."""
        if self.config.order == "before_refresh":
            return (self.next_fresh - step.index) % 2 == 0
        since_fresh = step.index - self.last_fresh
        return (since_fresh % 2 == 0) == (self.config.order == "conservative_first")

    def plan(self, step: StepInfo, u: Tensor) -> StackPlan | LayerPlan:
        if self.is_fresh(step):
            return StackPlan()
        if self.is_aggressive(step):
            if self.config.aggressive == "stream":
                skip = torch.zeros(u.shape[0], dtype=torch.bool, device=u.device)
                return StackPlan(skip, self.stream - u)
            return LayerPlan(list(self.attention), list(self.ffn))
        if step.stage == 0:
            self.tokens = self.select(step)
        return LayerPlan(list(self.attention), list(self.ffn), self.tokens)

    def select(self, step: StepInfo) -> list[Tensor]:
        """Per layer, uniform random scores per sample (plus the age term and low band)."""
        draws = torch.stack([torch.rand(self.n_layers, self.n_tokens, generator=g)
                             for g in self.generators], dim=1)             # (L, B, n)
        return self.choose(step, list(draws.to(self.low_band.device)), normalise=False)

    def store(self, step: StepInfo, computed: Computed) -> None:
        self.attention, self.ffn = computed.attention, computed.ffn
        self.age = [torch.zeros(f.shape[:2], device=f.device) for f in computed.ffn]
        self.stream = computed.out
        self.mark_fresh(step)

    def keep_stream(self, step: StepInfo, out: Tensor) -> None:
        self.stream = out

    def state_tensors(self) -> list[Tensor]:
        return self.attention + self.ffn + self.age + ([self.stream] if self.stream is not None
                                                       else [])
