"""The cache engine: runs a ScoreTransformer under a cache policy.

Per model call: the policy decides which units (bins or tokens) to recompute; the engine
turns that into per-sample token indices, runs every layer on those tokens only against
per-layer caches (``execute``), lets the policy observe the result, applies its
correction, and records statistics. A decision of ``None`` is a full step: the plain
layers on every token, caches rebuilt. Caches and policy state are reset per batch."""

from __future__ import annotations

import time

import torch
from torch import Tensor

from fdbench.cache.base import BatchInfo, CachePolicy, Decision, Observation, StepInfo, StepRecord
from fdbench.cache.execute import (
    LayerCache,
    all_rows_layer,
    full_layer,
    head_index,
    subset_layer,
    token_index,
)
from fdbench.cache.stats import CacheStats
from fdbench.errors import ConfigError
from fdbench.flops import forward_flops, matmul_total
from fdbench.model import ScoreTransformer
from fdbench.spectral import chart_to_bins, n_bins


def unit_of_token(network: ScoreTransformer, units: str) -> Tensor:
    """(n_tokens,) the frequency bin (``units == "bins"``) or token each token belongs to.
    In the chart layout the Re and Im positions of bin k map to the same unit."""
    config = network.config
    tokens = torch.arange(config.n_tokens)
    if units == "tokens" or config.layout == "bins":
        return tokens
    if config.layout == "time":
        raise ConfigError("frequency-bin cache policies need a frequency-domain model "
                          "(layout 'bins' or 'chart'), this one has layout 'time'")
    half = n_bins(config.n_steps)
    return torch.where(tokens < half, tokens, tokens - half + 1)


def mask_to_indices(mask: Tensor) -> tuple[Tensor, Tensor]:
    """(B, n) bool -> (B, m) indices of the True entries in ascending order, m = the
    largest count, rows padded by repeating their first index (recomputing a token twice
    from the same input writes the same value twice); and the (B,) counts. A row with no
    True entry is padded with token 0, which is then computed: counted as executed.
    (A cumulative sum places each True entry in its slot; cheaper than a sort.)"""
    batch, n = mask.shape
    counts = mask.sum(dim=1)
    m = int(counts.max()) if mask.numel() else 0
    slot = torch.where(mask, mask.cumsum(dim=1) - 1, m)         # (B, n); m = discard slot
    tokens = torch.arange(n, device=mask.device).expand(batch, n)
    idx = torch.zeros(batch, m + 1, dtype=torch.long, device=mask.device)
    idx.scatter_(1, slot, tokens)
    idx = idx[:, :m]
    padding = torch.arange(m, device=mask.device)[None, :] >= counts[:, None]
    return torch.where(padding, idx[:, :1], idx), counts


class CacheEngine:
    """One policy on one network; call :meth:`start_batch` before each sampling batch,
    then call the engine like the score network with the step index."""

    def __init__(self, network: ScoreTransformer, policy: CachePolicy, *,
                 force_recompute_all: bool = False):
        self.network, self.policy = network, policy
        self.config = network.config
        self.unit_of_token = unit_of_token(network, policy.units)
        self.n_units = int(self.unit_of_token.max()) + 1
        self.units_are_tokens = self.n_units == self.config.n_tokens  # bins layout: 1 to 1
        self.mode = policy.mode
        self.reuses_ffn = self.mode in ("literal", "literal_kv")   # FFN outputs cached
        # conformance testing: every decided subset becomes "all tokens" (same code path)
        self.force_recompute_all = force_recompute_all
        self.history: list[CacheStats] = []
        self.caches: list[LayerCache] | None = None
        self.final: Tensor | None = None
        self.steps = 0
        # module-level policies (FORA, ToCa, TeaCache, ...) bring their own executor; the
        # token-subset path below is bypassed for them and unchanged for the others
        self.executor = policy.make_executor(self)

    def start_batch(self, n_steps: int, sample_ids: Tensor) -> None:
        """Reset caches and policy state for a new batch of ``len(sample_ids)`` samples."""
        device = next(self.network.parameters()).device
        self.policy.reset(BatchInfo(len(sample_ids), self.n_units, n_steps,
                                    sample_ids.to(device), device))
        self.unit_of_token = self.unit_of_token.to(device)
        self.caches, self.final, self.steps = None, None, n_steps
        if self.executor is not None:
            self.executor.reset()
        uncached = matmul_total(forward_flops(self.config, len(sample_ids)))
        # the token-path FLOPs are affine in the computed count: this and ``uncached`` give
        # the planned (unpadded) FLOPs of every step (CacheStats.planned_flops)
        empty = None if self.executor is not None else matmul_total(
            forward_flops(self.config, len(sample_ids), mode=self.mode, computed=0))
        self.history.append(CacheStats(type(self.policy.config).policy, self.mode,
                                       len(sample_ids), self.config.n_tokens, n_steps,
                                       uncached, empty_flops_per_step=empty))

    @property
    def stats(self) -> CacheStats:
        if not self.history:
            raise RuntimeError("no batch has run: call start_batch first")
        return self.history[-1]

    def units_view(self, x: Tensor) -> Tensor:
        """The input as the policy sees it: (B, n_units, unit_dim)."""
        if self.policy.units == "bins":
            return chart_to_bins(x)
        return self.network.to_tokens(x)

    def _reused_final(self) -> Tensor | None:
        """The cached feature that stands in for fresh ones at the end of the network and
        that error feedback corrects: the final stream (subset) or the last FFN output."""
        if self.mode == "subset":
            return self.final
        return self.caches[-1].ffn if self.caches is not None else None

    def cache_bytes(self) -> int:
        layers = sum(cache.nbytes() for cache in self.caches or [])
        final = self.final.numel() * self.final.element_size() if self.final is not None else 0
        return layers + final + getattr(self.policy, "state_nbytes", lambda: 0)()

    @torch.no_grad()
    def __call__(self, x: Tensor, t: Tensor, step: int, stage: int = 0) -> Tensor:
        if self.executor is not None:
            return self.executor(x, t, step, stage)
        if self.caches is None and step != 0:
            raise RuntimeError("the first call of a batch must be step 0 (start_batch resets)")
        info = StepInfo(step, self.steps, t, stage)
        started = time.perf_counter()
        decision = self.policy.decide(info, self.units_view(x))
        if info.first or info.last or self.caches is None:
            decision = Decision(None)  # always compute the first and the last step
        elif self.force_recompute_all and decision.recompute is not None:
            decision = Decision(torch.ones_like(decision.recompute), decision.measure)
        fresh, measured = self._to_tokens(decision.recompute), self._to_tokens(decision.measure)
        idx, counts = (None, None) if fresh is None else mask_to_indices(fresh)
        decided = time.perf_counter()

        u = self.network.embed(x, t)                           # (B, n, d)
        before = self._reused_final().clone() if measured is not None else None
        if idx is None:
            h = self._full(u)
        else:
            h = self._cached(u, idx)
        score = self.network.head(h)

        observed = time.perf_counter()
        if fresh is None:
            fresh = torch.ones(h.shape[:2], dtype=torch.bool, device=h.device)
        error = None
        if measured is not None:
            error = (self._reused_final() - before) * measured[..., None]
        correction = self.policy.observe(info, Observation(h, fresh, measured, error,
                                                           self.unit_of_token))
        if correction is not None:
            self._reused_final().add_(correction)
        finished = time.perf_counter()
        self._record(info, idx, counts, decided - started + finished - observed)
        return score

    def _to_tokens(self, unit_mask: Tensor | None) -> Tensor | None:
        """(B, n_units) -> (B, n_tokens); the identity (no copy) when units are tokens."""
        if unit_mask is None or self.units_are_tokens:
            return unit_mask
        return unit_mask[:, self.unit_of_token]

    def _full(self, u: Tensor) -> Tensor:
        caches, h = [], u
        for layer in self.network.backbone.layers:
            h, cache = full_layer(layer, h, keep_ffn=self.reuses_ffn)
            caches.append(cache)
        self.caches = caches
        self.final = h.clone() if self.mode == "subset" else None
        return h

    def _cached(self, u: Tensor, idx: Tensor) -> Tensor:
        config = self.config
        head_dim = config.d_model // config.n_heads
        kv_index = head_index(idx, config.n_heads, head_dim)
        token_idx = token_index(idx, config.d_model)
        layers = zip(self.network.backbone.layers, self.caches, strict=True)
        if self.mode == "subset":
            if idx.shape[1] == 0:
                return self.final                              # every layer reused
            h = torch.gather(u, 1, token_idx)                  # (B, m, d)
            for layer, cache in layers:
                h = subset_layer(layer, h, kv_index, cache)
            self.final.scatter_(1, token_idx, h)
            return self.final
        h = u
        for layer, cache in layers:
            h = all_rows_layer(layer, h, token_idx, kv_index, cache,
                               ffn_subset=self.reuses_ffn, kv_fresh=self.mode == "literal_kv")
        return h

    def _record(self, info: StepInfo, idx: Tensor | None, counts: Tensor | None,
                decision_seconds: float) -> None:
        stats, n = self.stats, self.config.n_tokens
        computed = None if idx is None else idx.shape[1]
        flops = matmul_total(forward_flops(self.config, stats.batch, mode=self.mode,
                                           computed=computed))
        executed = 1.0 if computed is None else computed / n
        planned = 1.0 if counts is None else counts.sum() / (stats.batch * n)
        stats.steps.append(StepRecord(info.index, idx is None, executed, planned, flops,
                                      decision_seconds, self.policy.step_trace()))
        stats.cache_bytes = max(stats.cache_bytes, self.cache_bytes())
