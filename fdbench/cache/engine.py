"""The cache engine: runs a ScoreTransformer under a cache policy.

Per model call: the policy decides which units (bins or tokens) to recompute; the engine
turns that into per-sample token indices, runs every layer on those tokens only against
per-layer caches (``execute``), lets the policy observe the result, applies its
correction, and records statistics. A decision of ``None`` is a full step: the plain
layers on every token, caches rebuilt. Caches and policy state are reset per batch.

Hot path (issue 17): the policy's input tokens are computed once and embedded as they
are; the staleness the policy measures is taken on the computed rows only (two gathers,
no copy of the stream); corrections are applied in place; FLOPs per step come from a
per-engine table. At batch > 1 in ``subset`` mode a step whose padding would waste
more than a few kernel launches' worth of FLOPs runs *ragged* (``execute.ragged_layer``:
projections, norms and FFN on exactly the planned tokens, attention rows padded), so
the FLOPs paid approach the FLOPs planned. Per-stage timers (``step_profile``) run only
when a profile clock is attached (``engine.profile``)."""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import Tensor

from fdbench.cache.base import (
    BatchInfo,
    CachePolicy,
    Correction,
    Decision,
    Observation,
    StepInfo,
    StepRecord,
)
from fdbench.cache.compiled import CompiledStacks, bucket_width, pad_slots
from fdbench.cache.execute import (
    LayerCache,
    RaggedPlan,
    all_rows_layer,
    full_layer,
    head_index,
    ragged_layer,
    ragged_plan,
    subset_layer,
    token_index,
)
from fdbench.cache.stats import CacheStats
from fdbench.errors import ConfigError
from fdbench.flops import forward_flops, matmul_total, ragged_forward_flops
from fdbench.model import ScoreTransformer
from fdbench.spectral import chart_to_bins, n_bins

RAGGED = ("auto", "always", "never")
# FLOPs one extra group of small kernels costs per layer on one CPU thread (~7 launches
# of ~5 us at ~60 GFLOP/s): the ragged layout pays off only when the padding it removes
# is worth more than that (a measured order of magnitude, not a tuned constant)
RAGGED_OVERHEAD_FLOPS = 2e6


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
    (A cumulative sum places each True entry in its slot; cheaper than a sort. One sample
    needs no padding: its True positions, in four ops instead of sixteen.)"""
    batch, n = mask.shape
    counts = mask.sum(dim=1)
    if batch == 1:
        return mask[0].nonzero().view(1, -1), counts
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
    then call the engine like the score network with the step index.

    ``ragged``: "auto" (the ragged layout where it saves more FLOPs than its overhead,
    ``subset`` mode and batch > 1 only), "always" (wherever it applies) or "never" (every
    sample padded to the batch's largest recompute set, the layout of fdbench <= 0.1).
    ``compile_layers``: in ``subset`` mode, run the padded layer stack of cached steps
    and the full steps through ``torch.compile`` with static shapes (``compiled``:
    recompute sets padded to a multiple of ``compiled.BUCKET`` tokens; the first call at
    each shape compiles, seconds on a CPU). The ragged layout, whose shapes change every
    step, and the other modes stay eager."""

    def __init__(self, network: ScoreTransformer, policy: CachePolicy, *,
                 force_recompute_all: bool = False, ragged: str = "auto",
                 compile_layers: bool = False):
        if ragged not in RAGGED:
            raise ConfigError(f"CacheEngine.ragged must be one of {RAGGED}, got {ragged!r}")
        self.network, self.policy = network, policy
        self.config = network.config
        self.unit_of_token = unit_of_token(network, policy.units)
        self.n_units = int(self.unit_of_token.max()) + 1
        self.units_are_tokens = self.n_units == self.config.n_tokens  # bins layout: 1 to 1
        # the policy's unit view is the network's token view: computed once per call
        self.shares_tokens = policy.units == "tokens" or self.config.layout == "bins"
        self.mode = policy.mode
        self.reuses_ffn = self.mode in ("literal", "literal_kv")   # FFN outputs cached
        # conformance testing: every decided subset becomes "all tokens" (same code path)
        self.force_recompute_all = force_recompute_all
        self.ragged = ragged
        self.compiled = CompiledStacks(network.backbone.layers) \
            if compile_layers and self.mode == "subset" else None
        self.history: list[CacheStats] = []
        self.caches: list[LayerCache] | None = None
        self.final: Tensor | None = None
        self.steps = 0
        self.profile: Any = None        # a step_profile.StageClock while profiling
        self._plan: RaggedPlan | None = None
        self._width = 0                 # slots per sample the layers run this step
        self._host_counts: list[int] | None = None
        self._flops: dict[tuple, float] = {}
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

    def _embed(self, tokens: Tensor, t: Tensor) -> Tensor:
        """``ScoreTransformer.embed`` from tokens already computed (same ops, same order)."""
        net = self.network
        return net.embedder(tokens) + net.pos_encoder() + net.time_encoder(t)[:, None, :]

    @torch.no_grad()
    def __call__(self, x: Tensor, t: Tensor, step: int, stage: int = 0) -> Tensor:
        if self.executor is not None:
            return self.executor(x, t, step, stage)
        if self.caches is None and step != 0:
            raise RuntimeError("the first call of a batch must be step 0 (start_batch resets)")
        clock = self.profile
        info = StepInfo(step, self.steps, t, stage)
        started = time.perf_counter()
        tokens = self.network.to_tokens(x) if self.shares_tokens else None
        decision = self.policy.decide(info, tokens if tokens is not None
                                      else self.units_view(x))
        if info.first or info.last or self.caches is None:
            decision = Decision(None)  # always compute the first and the last step
        elif self.force_recompute_all and decision.recompute is not None:
            decision = Decision(torch.ones_like(decision.recompute), decision.measure)
        fresh, measured = self._to_tokens(decision.recompute), self._to_tokens(decision.measure)
        idx, counts = (None, None) if fresh is None else mask_to_indices(fresh)
        self._plan_layout(idx, counts)
        decided = time.perf_counter()
        if clock is not None:
            clock.mark("decision")

        u = self.network.embed(x, t) if tokens is None else self._embed(tokens, t)
        if clock is not None:
            clock.mark("embed")
        before = where = None
        if measured is not None:          # the computed rows of the reused feature
            where = self._rows(idx)
            before = self._reused_final().reshape(-1, self.config.d_model).index_select(
                0, where)
        h = self._full(u) if idx is None else self._cached(u, idx)
        if clock is not None:
            clock.mark("scatter" if idx is not None and self.mode == "subset" else "layers")
        score = self.network.head(h)
        if clock is not None:
            clock.mark("head")

        observed = time.perf_counter()
        if fresh is None:
            fresh = torch.ones(h.shape[:2], dtype=torch.bool, device=h.device)
        error = None
        if measured is not None:
            keep = measured.gather(1, idx)                      # (B, m) measured slots
            if self._host_counts is not None and idx.shape[1]:  # padding slots: not again
                keep &= torch.arange(idx.shape[1], device=idx.device)[None, :] \
                    < counts[:, None]
            after = self._reused_final().reshape(-1, self.config.d_model).index_select(
                0, where)
            error = (after - before).view(*idx.shape, self.config.d_model) * keep[..., None]
        correction = self.policy.observe(info, Observation(h, fresh, measured, error,
                                                           self.unit_of_token, idx))
        if isinstance(correction, Correction):
            self._reused_final().addcmul_(correction.weight, correction.value)
        elif correction is not None:
            self._reused_final().add_(correction)
        finished = time.perf_counter()
        if clock is not None:
            clock.mark("feedback")
        self._record(info, idx, counts, decided - started + finished - observed)
        return score

    def _rows(self, idx: Tensor) -> Tensor:
        """(B, m) token indices -> (B * m,) rows of a (B * n, d) view of a stream: a row
        gather (index_select) is ~10x faster than ``gather`` with an expanded index."""
        batch, n = idx.shape[0], self.config.n_tokens
        return (torch.arange(0, batch * n, n, device=idx.device)[:, None] + idx).flatten()

    def _to_tokens(self, unit_mask: Tensor | None) -> Tensor | None:
        """(B, n_units) -> (B, n_tokens); the identity (no copy) when units are tokens."""
        if unit_mask is None or self.units_are_tokens:
            return unit_mask
        return unit_mask[:, self.unit_of_token]

    def _plan_layout(self, idx: Tensor | None, counts: Tensor | None) -> None:
        """Padded or ragged layout of this step (``self._plan``), the slots per sample the
        layers run (``self._width``: the padded width, bucketed on the compiled path);
        the per-sample counts on the host (one read, which the shapes need anyway) at
        batch > 1."""
        self._plan, self._host_counts = None, None
        if idx is None:
            return
        self._width = width = idx.shape[1]
        if idx.shape[0] > 1:
            self._host_counts = counts.tolist()
            if self._ragged_pays(idx):
                self._plan = ragged_plan(idx, counts, self.config.n_tokens,
                                         self.config.n_heads)
                return
        if self.compiled is not None and width:
            self._width = bucket_width(width, self.config.n_tokens)

    def _ragged_pays(self, idx: Tensor) -> bool:
        """Whether this batch > 1 step runs ragged (see ``ragged``)."""
        width = idx.shape[1]
        if self.mode != "subset" or self.ragged == "never" or width == 0:
            return False
        waste = idx.shape[0] * width - sum(self._host_counts)
        if self.ragged == "auto" and waste * self._token_flops() <= RAGGED_OVERHEAD_FLOPS:
            return False
        return waste > 0 or self.ragged == "always"

    def _token_flops(self) -> float:
        """Layer FLOPs per computed token and layer, attention aside (what padding wastes)."""
        if "token" not in self._flops:
            config = self.config
            self._flops["token"] = 8.0 * config.d_model ** 2 + 4.0 * config.d_model * config.d_ff
        return self._flops["token"]

    def _full(self, u: Tensor) -> Tensor:
        if self.compiled is not None:
            h, self.caches = self.compiled.full(u)
            self.final = h.clone()
            return h
        caches, h = [], u
        for layer in self.network.backbone.layers:
            h, cache = full_layer(layer, h, keep_ffn=self.reuses_ffn)
            caches.append(cache)
        self.caches = caches
        self.final = h.clone() if self.mode == "subset" else None
        return h

    def _cached(self, u: Tensor, idx: Tensor) -> Tensor:
        config, clock = self.config, self.profile
        layers = zip(self.network.backbone.layers, self.caches, strict=True)
        if self.mode == "subset":
            if idx.shape[1] == 0:
                return self.final                              # every layer reused
            plan = self._plan
            if plan is not None:
                width = config.d_model
                h = u.reshape(-1, width).index_select(0, plan.positions)   # (T, d)
                if clock is not None:
                    clock.mark("gather")
                for layer, cache in layers:
                    h = ragged_layer(layer, h, plan, cache)
                if clock is not None:
                    clock.mark("layers")
                self.final.view(-1, width).index_copy_(0, plan.positions, h)
                return self.final
            if self.compiled is not None:        # one graph: gather and scatter included
                h = self.compiled.subset(u, pad_slots(idx, self._width), self.caches,
                                         self.final)
                if clock is not None:
                    clock.mark("layers")
                return h
            head_dim = config.d_model // config.n_heads
            kv_index = head_index(idx, config.n_heads, head_dim)
            token_idx = token_index(idx, config.d_model)
            h = torch.gather(u, 1, token_idx)                  # (B, m, d)
            if clock is not None:
                clock.mark("gather")
            for layer, cache in layers:
                h = subset_layer(layer, h, kv_index, cache)
            if clock is not None:
                clock.mark("layers")
            self.final.scatter_(1, token_idx, h)
            return self.final
        head_dim = config.d_model // config.n_heads
        kv_index = head_index(idx, config.n_heads, head_dim)
        token_idx = token_index(idx, config.d_model)
        h = u
        for layer, cache in layers:
            h = all_rows_layer(layer, h, token_idx, kv_index, cache,
                               ffn_subset=self.reuses_ffn, kv_fresh=self.mode == "literal_kv")
        return h

    def _step_flops(self, idx: Tensor | None) -> tuple[float, float]:
        """(executed FLOPs, executed fraction of layer-token units) of this step, from a
        per-engine table (the FLOP formula is pure Python: ~10 us a call)."""
        batch = self.stats.batch
        if idx is None:
            return self.stats.uncached_flops_per_step, 1.0
        n = self.config.n_tokens
        if self._plan is not None:
            tokens = sum(self._host_counts)
            key = ("ragged", batch, tokens, idx.shape[1])
            if key not in self._flops:
                self._flops[key] = matmul_total(ragged_forward_flops(
                    self.config, batch, tokens=tokens, attention_rows=batch * idx.shape[1]))
            return self._flops[key], tokens / (batch * n)
        key = (self.mode, batch, self._width)
        if key not in self._flops:
            self._flops[key] = matmul_total(forward_flops(self.config, batch, mode=self.mode,
                                                          computed=self._width))
        return self._flops[key], self._width / n

    def _record(self, info: StepInfo, idx: Tensor | None, counts: Tensor | None,
                decision_seconds: float) -> None:
        stats, n = self.stats, self.config.n_tokens
        flops, executed = self._step_flops(idx)
        if counts is None:
            planned: float | Tensor = 1.0
        elif self._host_counts is not None:
            planned = sum(self._host_counts) / (stats.batch * n)
        elif idx.shape[0] == 1:
            planned = idx.shape[1] / n                         # one sample: no padding
        else:
            planned = counts.sum() / (stats.batch * n)
        stats.steps.append(StepRecord(info.index, idx is None, executed, planned, flops,
                                      decision_seconds, self.policy.step_trace()))
        if idx is None or info.index <= 1:    # caches and policy state are sized by now
            stats.cache_bytes = max(stats.cache_bytes, self.cache_bytes())
