"""Module-level reuse: the executor of the peer caches (FORA, ToCa/DuCa, TeaCache, FBCache,
TaylorSeer, FreqCa).

These methods reuse *module outputs* — A_l (attention incl. out-projection) and F_l
(feed-forward) per post-norm layer, h' = LN1(h + A_l(h)), out = LN2(h' + F_l(h')), or the
whole residual out - u (u = embedded input) — which the token-subset engine does not
express. A :class:`ModulePolicy` answers each call with one of two plans:

* :class:`StackPlan` — samples in ``compute`` run the layer stack, the others take
  ``base + residual`` (base = u, or the first layer's output with ``first_block``; the
  policy then decides after layer 1 through :meth:`ModulePolicy.after_first_block`).
  ``StackPlan()`` is a full step.
* :class:`LayerPlan` — per layer, A_l / F_l are given (reused or forecast) or computed;
  F_l may be computed on a token subset and scattered into the given tensor (ToCa).

Rules shared by every module policy (docs/BASELINES.md): the first and the last step of a run
compute everything (the policy is not asked); after every stage-0 call in which samples
computed, the policy gets :meth:`ModulePolicy.store` with their u, output and per-layer
A_l, F_l; state is reset per batch; decisions are per sample or uniform over the batch.
Stage-1 calls (the second evaluation of two-evaluation solvers such as Heun, within step
i, at t_{i+1}): policies follow the stage-0 decision of the same step (a compute step
computes, a reuse step reuses, forecasts are evaluated at i + 1), and a stage-1 call never
changes policy state (no ``store``, token scatters go into copies), so caching stays keyed
by the step index, not by the call count. Statistics per call: FLOPs from the executed
shapes (``module_forward_flops``), ``executed_fraction`` = layer matmul FLOPs computed /
uncached (attention and FFN pieces weighted by their FLOPs), decision time = the policy's
``plan``, ``after_first_block`` and ``store`` plus the host syncs they cause (ToCa's
attention map counts in FLOPs, not in the executed fraction)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from fdbench.cache.base import CachePolicy, Decision, StepInfo, StepRecord
from fdbench.cache.execute import token_index
from fdbench.flops import layer_matmul_total, matmul_total, module_forward_flops
from fdbench.model.layers import EncoderLayer

LayerCounts = tuple[int, int, int, int]   # (attention, ffn, norm, score) tokens, batch summed


@dataclass
class StackPlan:
    """Run the stack for samples ``compute`` ((B,) bool; None = all); the others output
    ``base + residual``. ``first_block``: layer 1 runs on every sample first and the policy
    sets ``compute`` / ``residual`` after it (FBCache)."""

    compute: Tensor | None = None
    residual: Tensor | None = None        # (B, n, d) stand-in for out - base
    first_block: bool = False


@dataclass
class LayerPlan:
    """Per layer l: ``attention[l]`` / ``ffn[l]`` is the A_l / F_l to use ((B, n, d)) or None
    to compute it; ``ffn_tokens[l]`` ((B, m) token indices) computes F_l on those tokens
    and scatters them into ``ffn[l]`` (in place at stage 0: ToCa's cache update)."""

    attention: list[Tensor | None]
    ffn: list[Tensor | None]
    ffn_tokens: list[Tensor | None] | None = None


@dataclass
class Computed:
    """What a stage-0 call computed, for the samples ``samples`` ((k,) indices; None = all):
    their embedded input u, the stack input ``start`` (u, or layer 1's output with
    ``first_block``), layer 1's output ``first``, the final stream ``out`` and per run
    layer A_l, F_l (and the attention column sums (k, n) where the policy asked)."""

    samples: Tensor | None
    u: Tensor
    start: Tensor
    out: Tensor
    attention: list[Tensor] = field(default_factory=list)
    ffn: list[Tensor] = field(default_factory=list)
    scores: list[Tensor] = field(default_factory=list)
    first: Tensor | None = None    # layer 1's output (FBCache's h1)


class ModulePolicy(CachePolicy):
    """A policy that plans module-level reuse; run by :class:`ModuleExecutor`."""

    wants_scores: ClassVar[bool] = False   # attention column sums at full steps (ToCa)

    @property
    def mode(self) -> str:
        return "modules"

    def make_executor(self, engine: Any) -> ModuleExecutor:
        return ModuleExecutor(engine)

    def bind(self, network: Any) -> None:
        """Learn static facts about the network (token -> bin map, ...) once."""

    def decide(self, step: StepInfo, units_x: Tensor) -> Decision:
        """Unused: module policies answer :meth:`plan` instead of token masks."""
        return Decision(None)

    def plan(self, step: StepInfo, u: Tensor) -> StackPlan | LayerPlan:
        """The plan of a call that is neither the first nor the last step."""
        raise NotImplementedError

    def after_first_block(self, step: StepInfo, u: Tensor,
                          h1: Tensor) -> tuple[Tensor, Tensor | None]:
        """For ``StackPlan(first_block=True)``: (compute mask (B,), residual) from layer 1."""
        raise NotImplementedError

    def store(self, step: StepInfo, computed: Computed) -> None:
        """Keep what a stage-0 call computed (default: nothing)."""

    def state_nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.state_tensors())

    def state_tensors(self) -> list[Tensor]:
        return []


def rel_l1(new: Tensor, old: Tensor) -> Tensor:
    """Per-sample relative L1 change mean|new - old| / mean|old| over tokens and width:
    (B, n, d) -> (B,) (TeaCache's and FBCache's indicator)."""
    return (new - old).abs().mean(dim=(1, 2)) / old.abs().mean(dim=(1, 2)).clamp_min(1e-12)


def is_compute_step(step: StepInfo, interval: int, warmup: int) -> bool:
    """Static schedules: compute at i < warmup, i mod interval == 0 and the last step."""
    return step.index < warmup or step.index % interval == 0 or step.last


def scatter_rows(target: Tensor, samples: Tensor | None, rows: Tensor) -> Tensor:
    """``target`` with the rows of ``samples`` replaced by ``rows`` (all rows: ``rows``)."""
    if samples is None:
        return rows
    return target.index_copy(0, samples, rows)


class ModuleExecutor:
    """Runs the network for a :class:`ModulePolicy` under an engine (whose ``stats`` it
    fills and whose ``force_recompute_all`` it honours)."""

    def __init__(self, engine: Any):
        self.engine, self.network, self.policy = engine, engine.network, engine.policy
        self.layers: list[EncoderLayer] = list(self.network.backbone.layers)
        self.policy.bind(self.network)
        self.started = False

    def reset(self) -> None:
        self.started = False

    @torch.no_grad()
    def __call__(self, x: Tensor, t: Tensor, step: int, stage: int = 0) -> Tensor:
        if not self.started and step != 0:
            raise RuntimeError("the first call of a batch must be step 0 (start_batch resets)")
        self.started = True
        info = StepInfo(step, self.engine.steps, t, stage)
        u = self.network.embed(x, t)                                   # (B, n, d)
        self.overhead, self.counts = 0.0, []
        if info.first or info.last or self.engine.force_recompute_all:
            plan: StackPlan | LayerPlan = StackPlan()
        else:
            plan = self._timed(self.policy.plan, info, u)
        if isinstance(plan, LayerPlan):       # two plan shapes, not a per-policy dispatch
            h = self._layers(info, u, plan)
        else:
            h = self._stack(info, u, plan)
        score = self.network.head(h)
        self._record(info, u.shape[0])
        return score

    def _timed(self, function: Any, *args: Any) -> Any:
        started = time.perf_counter()
        result = function(*args)
        self.overhead += time.perf_counter() - started
        return result

    def _run(self, layer: EncoderLayer, h: Tensor, keep: Computed | None) -> Tensor:
        """The plain layer (same ops in the same order as EncoderLayer.forward), keeping
        A_l and F_l (and the attention column sums) when ``keep`` is given."""
        attention = layer.self_attn
        q, k, v = attention.project_qkv(h)
        a = attention.attend(q, k, v)
        h1 = layer.add_norm1(h, a)
        f = layer.feed_forward(h1)
        tokens = h.shape[0] * h.shape[1]
        score = 0
        if keep is not None:
            keep.attention.append(a)
            keep.ffn.append(f)
            if self.policy.wants_scores:
                keep.scores.append(self._timed(column_sums, q, k))
                score = tokens
        self.counts.append((tokens, tokens, tokens, score))
        return layer.add_norm2(h1, f)

    def _stack(self, info: StepInfo, u: Tensor, plan: StackPlan) -> Tensor:
        store = info.stage == 0                    # stage-1 calls never change state
        base, start = u, 0
        first = Computed(None, u, u, u) if store else None   # layer 1's A_1, F_1
        if plan.first_block:                       # FBCache: layer 1 on every sample
            base, start = self._run(self.layers[0], u, first), 1
            compute, residual = self._timed(self.policy.after_first_block, info, u, base)
        else:
            compute, residual = plan.compute, plan.residual
        samples = None if compute is None else self._timed(_indices, compute)
        if samples is not None and samples.numel() == 0:
            return base + residual                                     # every layer reused
        pick = (lambda t: t) if samples is None else (lambda t: t[samples])  # noqa: E731
        h = pick(base)                                                 # (k, n, d)
        keep = Computed(samples, pick(u), h, h) if store else None
        if keep is not None and plan.first_block:
            keep.attention = [pick(a) for a in first.attention]
            keep.ffn = [pick(f) for f in first.ffn]
            keep.scores, keep.first = [pick(s) for s in first.scores], h
        for layer in self.layers[start:]:
            h = self._run(layer, h, keep)
            if keep is not None and keep.first is None:
                keep.first = h
        if keep is not None:
            keep.out = h
            self._timed(self.policy.store, info, keep)
        return h if samples is None else scatter_rows(base + residual, samples, h)

    def _layers(self, info: StepInfo, u: Tensor, plan: LayerPlan) -> Tensor:
        h = u
        batch, n, width = u.shape
        for index, layer in enumerate(self.layers):
            a, f = plan.attention[index], plan.ffn[index]
            tokens = None if plan.ffn_tokens is None else plan.ffn_tokens[index]
            counts = [0, 0, batch * n, 0]
            if a is None:
                a = layer.self_attn(h)
                counts[0] = batch * n
            h1 = layer.add_norm1(h, a)
            if f is None:
                f = layer.feed_forward(h1)
                counts[1] = batch * n
            elif tokens is not None:
                f = f if info.stage == 0 else f.clone()   # stage 1 leaves the cache alone
                where = token_index(tokens, width)
                f.scatter_(1, where, layer.feed_forward(torch.gather(h1, 1, where)))
                counts[1] = tokens.numel()
            h = layer.add_norm2(h1, f)
            self.counts.append(tuple(counts))
        return h

    def _record(self, info: StepInfo, batch: int) -> None:
        stats, config = self.engine.stats, self.network.config
        flops = module_forward_flops(config, batch, self.counts)
        uncached = module_forward_flops(config, batch, [(batch * config.n_tokens,) * 3 + (0,)]
                                        * config.n_layers)
        # the attention map of ToCa's score is decision cost: in ``flops``, not in the
        # layer-token units computed
        units = module_forward_flops(config, batch, [c[:3] + (0,) for c in self.counts])
        executed = layer_matmul_total(units) / layer_matmul_total(uncached)
        full = (len(self.counts) == config.n_layers
                and all(c[:3] == (batch * config.n_tokens,) * 3 for c in self.counts))
        stats.steps.append(StepRecord(info.index, full, executed, executed, matmul_total(flops),
                                      self.overhead, self.policy.step_trace()))
        stats.cache_bytes = max(stats.cache_bytes, self.policy.state_nbytes())


def _indices(mask: Tensor) -> Tensor | None:
    """(B,) bool -> indices of True (a host sync, timed as decision cost); None if all."""
    samples = mask.nonzero().flatten()
    return None if samples.numel() == mask.numel() else samples


def column_sums(q: Tensor, k: Tensor) -> Tensor:
    """ToCa's attention score: how much attention each token receives, the column sum of
    softmax(q k^T / sqrt(head_dim)) averaged over heads: (B, heads, n, hd) -> (B, n).
    Computed beside the fused kernel (which does not return the map)."""
    weights = torch.softmax(q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5, dim=-1)
    return weights.sum(dim=-2).mean(dim=1)
