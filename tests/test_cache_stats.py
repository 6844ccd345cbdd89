"""Planned vs executed FLOPs in the cache statistics: padding costs what the formula says,
nothing at batch 1, and nothing for module-reuse policies."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import Tensor

from fdbench.cache import CacheEngine, combine, make_policy, parse_policy
from fdbench.cache.base import CacheConfig, CachePolicy, Decision, StepInfo
from fdbench.flops import forward_flops, matmul_total
from fdbench.generate import generate

N_STEPS = 6


@dataclass(frozen=True)
class StaircaseConfig(CacheConfig):
    """Not registered: built directly, so the registry stays as shipped."""

    policy = "staircase"
    reuse_mode: str = "subset"


class Staircase(CachePolicy):
    """Sample i recomputes tokens 0..i on every step between the first and the last: the
    per-sample sets have known, unequal sizes."""

    config_class = StaircaseConfig

    def decide(self, step: StepInfo, units_x: Tensor) -> Decision:
        batch, n_units = units_x.shape[:2]
        counts = torch.arange(1, batch + 1, device=units_x.device)[:, None]
        return Decision(torch.arange(n_units, device=units_x.device)[None, :] < counts)


def _run(model, policy: CachePolicy, batch: int) -> CacheEngine:
    engine = CacheEngine(model.network, policy)
    generate(model, batch, n_steps=N_STEPS, seed=0, batch_size=batch, engine=engine,
             progress=False)
    return engine


@pytest.mark.parametrize("mode", ["subset", "literal", "kv_only", "literal_kv"])
def test_planned_flops_are_each_samples_own_set(tiny_model, mode: str) -> None:
    batch, config = 3, tiny_model.network.config
    stats = _run(tiny_model, Staircase(StaircaseConfig(mode)), batch).stats
    inner = N_STEPS - 2                      # the first and the last step are full
    full = matmul_total(forward_flops(config, batch))
    own = sum(matmul_total(forward_flops(config, 1, mode=mode, computed=i + 1))
              for i in range(batch))          # sample i alone, i + 1 tokens, no padding
    padded = matmul_total(forward_flops(config, batch, mode=mode, computed=batch))
    assert stats.planned_flops() == pytest.approx(2 * full + inner * own)
    assert sum(step.flops for step in stats.steps) == pytest.approx(2 * full + inner * padded)
    summary = stats.summary()
    assert summary["planned_flop_ratio"] < summary["flop_ratio"] < 1.0
    assert summary["planned_flop_speedup"] == pytest.approx(1 / summary["planned_flop_ratio"])


@pytest.mark.parametrize("spec", ["e2crf", "e2crf:tau_0=1.0", "e2crf_literal", "naive_kv",
                                  "fixed:R=2"])
def test_batch_one_plans_what_it_executes(tiny_model, spec: str) -> None:
    config = parse_policy(spec, tiny_model.network.config.n_steps)
    summary = _run(tiny_model, make_policy(config), 1).stats.summary()
    assert summary["planned_flop_ratio"] == pytest.approx(summary["flop_ratio"], rel=1e-12)


def test_unequal_sets_at_batch_four_plan_fewer_flops(tiny_model) -> None:
    # on the untrained tiny model most tokens change past tau_k: a loose threshold, one
    # low bin and no refreshes leave the samples' recompute sets of different sizes
    spec = "e2crf:K=1,tau_0=10,tau_warn=100,R=100"
    config = parse_policy(spec, tiny_model.network.config.n_steps)
    engine = CacheEngine(tiny_model.network, make_policy(config))
    generate(tiny_model, 4, n_steps=12, seed=0, batch_size=4, engine=engine, progress=False)
    stats = engine.stats
    steps = stats.records()
    # precondition: some step padded (the samples' recompute sets differ in size)
    assert any(s.planned_fraction < s.executed_fraction - 1e-9 for s in steps)
    summary = stats.summary()
    assert summary["planned_flop_ratio"] < summary["flop_ratio"]
    assert summary["planned_flop_speedup"] > summary["flop_speedup"]


@pytest.mark.parametrize("spec", ["e2crf", "e2crf_literal", "naive_kv", "fixed:R=2"])
def test_executed_flops_lie_on_the_affine_formula(tiny_model, spec: str) -> None:
    """The planned count assumes the FLOPs are affine in the computed token count; each
    recorded step's executed FLOPs must sit on that line at its executed fraction (a mode
    whose cost is not affine in the count would break planned_flops)."""
    config = parse_policy(spec, tiny_model.network.config.n_steps)
    stats = _run(tiny_model, make_policy(config), 3).stats
    empty, full = stats.empty_flops_per_step, stats.uncached_flops_per_step
    assert empty is not None and empty < full
    for step in stats.records():
        assert step.flops == pytest.approx(empty + (full - empty) * step.executed_fraction)


@pytest.mark.parametrize("spec", ["fora:cache_interval=2", "toca:cache_interval=2",
                                  "teacache:rel_l1_thresh=10", "taylorseer1:cache_interval=2"])
def test_module_policies_plan_what_they_execute(tiny_model, spec: str) -> None:
    config = parse_policy(spec, tiny_model.network.config.n_steps)
    stats = _run(tiny_model, make_policy(config), 3).stats
    assert stats.empty_flops_per_step is None
    summary = stats.summary()
    assert summary["flop_ratio"] < 1.0
    assert summary["planned_flop_ratio"] == summary["flop_ratio"]


def test_combine_sums_planned_flops_over_batches(tiny_model) -> None:
    engine = CacheEngine(tiny_model.network, Staircase(StaircaseConfig()))
    generate(tiny_model, 5, n_steps=N_STEPS, seed=0, batch_size=3, engine=engine,
             progress=False)                 # batches of 3 and 2
    assert len(engine.history) == 2
    planned = sum(s.planned_flops() for s in engine.history)
    uncached = sum(s.uncached_flops_per_step * len(s.steps) for s in engine.history)
    summary = combine(engine.history)
    assert summary["planned_flop_ratio"] == pytest.approx(planned / uncached)
    assert summary["planned_flop_ratio"] < summary["flop_ratio"]
    assert "planned" in engine.history[0].to_markdown()
