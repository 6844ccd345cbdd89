"""Checks of one cache policy's own rule, for the conformance suite (its lab, runs and
generic checks are in tests/cache_conformance.py): TaylorSeer's and FreqCa's forecasts
driven with synthetic module outputs, TeaCache's accumulate-and-skip rule, E²-CRF's error
feedback and periodic refresh. Each is a plain ``check(lab, name)`` raising
AssertionError."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch
from torch import Tensor

from fdbench.cache import CacheConfig, make_policy
from fdbench.cache.base import BatchInfo, StepInfo
from fdbench.cache.module_reuse import Computed, StackPlan
from tests.cache_conformance import (
    ATOL,
    BATCH,
    LONG,
    N_TOKENS,
    NET,
    SMOOTH,
    UNEVEN,
    Lab,
    assert_exact,
    deviation,
    has_field,
    preset,
    run,
    uncached,
)


def _driven(config: CacheConfig, value: Callable[[int], list[Tensor]], *, order: int,
            wanted: Callable) -> None:
    """Drive a module policy's ``plan``/``store`` as ModuleExecutor does (first and last
    steps computed, a stage-1 call after every step, stores only at stage 0) with
    synthetic modules ``value(i)`` = [u, out, A_1, A_2, F_1, F_2]; on cached calls after
    more than ``order`` stores, ``wanted(plan, j, last)`` gives (got, expected) pairs
    (j: the step forecast, last: the last stored step)."""
    policy = make_policy(config)
    policy.bind(NET)
    policy.reset(BatchInfo(BATCH, N_TOKENS, LONG, torch.arange(BATCH), torch.device("cpu")))
    stored, last, checked = 0, 0, 0
    for i in range(LONG):
        for stage in (0, 1):
            step = StepInfo(i, LONG, SMOOTH.ts[i], stage)
            u = value(i + stage)[0]
            plan = StackPlan() if step.first or step.last else policy.plan(step, u)
            if isinstance(plan, StackPlan) and plan.compute is None:
                if stage == 0:
                    u, out, *modules = value(i)
                    policy.store(step, Computed(None, u, u, out, modules[:2], modules[2:]))
                    stored, last = stored + 1, i
                continue
            if stored > order:
                for got, expected in wanted(plan, i + stage, last):
                    gap = deviation(got, expected)
                    assert gap <= 1e-9, f"step {i} stage {stage}: forecast off by {gap:.3g}"
                checked += 1
    assert checked > 0, "no cached call was checked"


def _polynomial(degree: int, seed: int) -> Callable[[int], list[Tensor]]:
    """i -> [u, out, A_1, A_2, F_1, F_2], each sum_k C_k i^k of random (B, n, d) C_k."""
    g = torch.Generator().manual_seed(seed)
    shape = (BATCH, N_TOKENS, NET.config.d_model)
    coefficients = [[torch.randn(shape, generator=g, dtype=torch.float64)
                     for _ in range(degree + 1)] for _ in range(6)]
    return lambda i: [sum(c * float(i) ** k for k, c in enumerate(cs)) for cs in coefficients]


def taylorseer_linear_exact(lab: Lab, name: str) -> None:
    """TaylorSeer of order >= 1 forecasts module outputs that are linear in the step index
    exactly (its divided differences then hold the slope; Liu et al. 2025, eq. 8-9),
    stage-1 calls at j = i + 1 included."""
    value = _polynomial(1, seed=3)
    _driven(preset(name), value, order=1, wanted=lambda plan, j, last: zip(
        plan.attention + plan.ffn, value(j)[2:], strict=True))


def freqca_extrapolation_exact(lab: Lab, name: str) -> None:
    """FreqCa reuses the last computed residual out - u on its low band k <= K and, with
    TaylorSeer's forecast (``forecast="taylor"``; the Lagrange reading is exact too),
    extrapolates a residual linear in the step index exactly on the high band."""
    value, config = _polynomial(1, seed=4), preset(name)
    low = torch.arange(N_TOKENS) <= config.K          # bins layout: token k is bin k
    if has_field(config, "forecast"):
        config = replace(config, forecast="taylor")

    def residual(i: int) -> Tensor:
        u, out, *_ = value(i)
        return out - u

    def wanted(plan, j, last):
        return [(plan.residual[:, ~low], residual(j)[:, ~low]),
                (plan.residual[:, low], residual(last)[:, low])]

    _driven(config, value, order=1, wanted=wanted)


def teacache_follows_its_rule(lab: Lab, name: str) -> None:
    """TeaCache, per sample: acc += max(0, p(d)), d = mean|u - u_ref| / mean|u_ref| (u_ref:
    the previous step's u, or the last computed one's); acc >= threshold computes and
    resets acc, otherwise out = u + the residual of the sample's last computed step
    (Liu et al. 2024, eq. 4-6; p from ``coefficients``, the identity when none are given)."""
    config = preset(name)
    p = np.poly1d(config.coefficients or (0.0, 0.0, 0.0, 1.0, 0.0))
    for trajectory in (SMOOTH, UNEVEN):
        result = lab.default_run(name, trajectory)
        with torch.no_grad():
            us = [NET.embed(x, t) for x, t in zip(trajectory.xs, trajectory.ts, strict=True)]
            residuals = [NET.backbone(u) - u for u in us]
        for b in range(BATCH):
            acc, u_ref, residual = 0.0, us[0][b], residuals[0][b]
            for i in range(1, trajectory.steps):
                u = us[i][b]
                acc += max(0.0, float(p(float((u - u_ref).abs().mean() / u_ref.abs().mean()))))
                compute = acc >= config.rel_l1_thresh or i == trajectory.steps - 1
                if compute or config.reference == "previous":
                    u_ref = u
                if compute:
                    acc, residual = 0.0, residuals[i][b]
                with torch.no_grad():
                    expected = NET.head((u + residual)[None])
                gap = deviation(result.outputs[i][b:b + 1], expected)
                assert gap <= ATOL, (f"{trajectory.name} sample {b} step {i} ({compute=}): "
                                     f"off the rule by {gap:.3g}")


def feedback_acts(lab: Lab, name: str) -> None:
    """With error feedback every 3 steps, probes measure a non-zero staleness on the
    moving trajectory, so the output differs from the no_feedback ablation and a gain is
    reported."""
    config = preset(name)
    every = "feedback_every" if has_field(config, "feedback_every") else "R"
    config = replace(config, **{every: 3})
    on, off = run(config, UNEVEN), run(replace(config, use_feedback=False), UNEVEN)
    gap = max(deviation(a, b) for a, b in zip(on.outputs, off.outputs, strict=True))
    assert gap > 1e-6, f"feedback changed no output (max difference {gap:.3g})"
    gains = [g for g in on.stats.trace("feedback_alpha") if not math.isnan(g)]
    assert gains and max(gains) > 0, "no feedback gain was reported"


def periodic_refresh(lab: Lab, name: str) -> None:
    """With ``refresh`` on and R = 4, every 4th step is a full recomputation (recorded
    full, output exactly uncached) and no other step between the first and last is."""
    config = replace(preset(name), refresh=True, R=4)
    result = run(config, UNEVEN)
    expected = {0, UNEVEN.steps - 1} | set(range(0, UNEVEN.steps, 4))
    assert set(result.full) == expected, f"full steps {result.full}, expected {sorted(expected)}"
    assert_exact(result.outputs, uncached(UNEVEN), sorted(expected), "refresh step")
