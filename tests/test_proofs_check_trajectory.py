"""proofs_check's trajectory-based checks on a tiny random model: each gives a verdict in
quick mode, and a planted fault flips it."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fdbench.checkpoint import save_checkpoint
from fdbench.data import SeriesSplit
from fdbench.data.synthetic import sines
from proofs_check import (
    claim_a03_hit_rate,
    claim_a05_head_lipschitz,
    claim_a07_one_step,
    claim_a09_loss_gap,
    claim_a10_feature_error,
    claim_lin_growth,
    claim_obs_findings,
    claim_tv,
    trajectories,
)
from proofs_check.registry import VERDICTS, Context
from tests.conftest import make_score_model


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> Context:
    """Quick mode on a tiny untrained checkpoint (N=16, M=2, bins layout); the context
    (and its recorded trajectories) is shared by every test of the module."""
    x = sines(96, n_steps=16, n_channels=2, generator=torch.Generator().manual_seed(0))
    split = SeriesSplit(name="tiny-sines", train=x[:80], test=x[80:], description="test")
    directory = tmp_path_factory.mktemp("tiny-ckpt")
    save_checkpoint(directory, make_score_model(split))
    return Context(quick=True, checkpoint=directory, seed=0)


def test_recording_is_paired_and_shaped(ctx: Context) -> None:
    traj = trajectories.record(ctx)
    batch, steps = trajectories.sizes(ctx)
    assert traj.x_ref.shape == (steps + 1, batch, 16, 2)
    assert traj.noise.shape == (steps, batch, 16, 2)
    # same prior, and the first step is a full step in both runs: identical next state
    assert torch.equal(traj.x_ref[0], traj.x_cache[0])
    assert torch.equal(traj.x_ref[1], traj.x_cache[1])
    assert float(traj.feat_err[0].abs().max()) == 0.0
    assert trajectories.record(ctx) is traj            # memoised per context


def test_a03_flips_with_planted_delta(ctx: Context) -> None:
    assert claim_a03_hit_rate.check(ctx).verdict in VERDICTS
    assert claim_a03_hit_rate.check(ctx, delta_override=1.0).verdict == "holds"
    assert claim_a03_hit_rate.check(ctx, delta_override=0.0).verdict == "violated"


def test_a05_holds_and_understated_gain_violates(ctx: Context) -> None:
    result = claim_a05_head_lipschitz.check(ctx)
    assert result.verdict == "holds"
    assert 0 < result.numbers["max_ratio_over_L"] <= 1 + 1e-6
    assert claim_a05_head_lipschitz.check(ctx, gain_scale=1e-3).verdict == "violated"


def test_a07_exact_gap_and_missing_g2_violates(ctx: Context) -> None:
    result = claim_a07_one_step.check(ctx)
    assert result.verdict == "holds"
    assert result.numbers["gap_vs_closed_form_rel"] < 1e-6
    assert claim_a07_one_step.check(ctx, drop_g2=True).verdict == "violated"


def test_a09_first_order_and_minimiser_second_order(ctx: Context) -> None:
    result = claim_a09_loss_gap.check(ctx)
    assert result.verdict == "violated"
    assert abs(result.numbers["slope_cache_error"] - 1) < 0.2
    forced = claim_a09_loss_gap.check(ctx, zero_residual=True)
    assert forced.verdict == "holds"
    assert abs(forced.measured - 2) < 1e-3


def test_a10_time_counterexample_and_frozen_time(ctx: Context) -> None:
    result = claim_a10_feature_error.check(ctx)
    assert result.verdict == "violated"
    assert result.numbers["counterexample_rel_change"] > 1e-6
    assert claim_a10_feature_error.check(ctx, freeze_time=True).verdict == "holds"


def test_lin_planted_linear_holds_exponential_violates(ctx: Context) -> None:
    assert claim_lin_growth.check(ctx).verdict in VERDICTS
    assert claim_lin_growth.check(ctx, planted="linear").verdict == "holds"
    assert claim_lin_growth.check(ctx, planted="exponential").verdict == "violated"


def test_tv_bound_scaled_down_violates(ctx: Context) -> None:
    """The bound is a theorem for these chains, so a violation needs a planted difference
    between the sample sets (8 pairs resolve TV only to ~0.1) and a bound scaled below it."""
    result = claim_tv.check(ctx)
    assert result.verdict in ("holds", "vacuous")
    assert result.bound > 0
    assert claim_tv.check(ctx, bound_scale=1e-3).verdict == "holds"
    assert claim_tv.check(ctx, bound_scale=1e-3, planted_shift=100.0).verdict == "violated"


@pytest.mark.parametrize(("fn", "agrees", "disagrees"), [
    (claim_obs_findings.event, [1.0] * 5 + [0.5] * 10 + [0.1] * 5, [0.3] * 20),
    (claim_obs_findings.highfreq, [1.0] * 6 + [0.2] * 3, [1.0] * 9),
    (claim_obs_findings.hitrate, [0.4] * 10 + [0.6] * 80 + [0.75] * 10, [0.9] * 100),
    (claim_obs_findings.recompute, 0.33, 0.6),
    (claim_obs_findings.energy, 0.9, 0.3),
])
def test_observations_flip_with_planted_curves(ctx: Context, fn, agrees, disagrees) -> None:
    assert fn(ctx).verdict in VERDICTS
    assert fn(ctx, planted=agrees).verdict == "holds"
    assert fn(ctx, planted=disagrees).verdict == "violated"


@settings(max_examples=20, deadline=None)
@given(power=st.floats(0.2, 3.0), scale=st.floats(1e-3, 1e3))
def test_loglog_slope_recovers_power_laws(power: float, scale: float) -> None:
    x = torch.logspace(-3, 1, 12, dtype=torch.float64)
    assert math.isclose(trajectories.fit_loglog_slope(x, scale * x ** power), power,
                        rel_tol=1e-9)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_girsanov_kl_matches_gaussian_kl(seed: int) -> None:
    """One step: KL of N(mu + dt g^2 L^2 e, g^2 dt L^2) from N(mu, g^2 dt L^2), computed
    directly, equals the per-step term 1/2 dt g^2 ||L e||^2 the bound sums."""
    generator = torch.Generator().manual_seed(seed)
    err = torch.randn(1, 3, 6, 1, generator=generator, dtype=torch.float64)
    lam = torch.rand(6, generator=generator, dtype=torch.float64) + 0.5
    dt, g2 = 0.01, float(torch.rand(1, generator=generator)) * 20 + 0.1
    _, kl = claim_tv.pinsker_girsanov_bound(err, torch.tensor([g2], dtype=torch.float64), dt, lam)
    shift = dt * g2 * lam[:, None] ** 2 * err[0]                          # (3, 6, 1)
    variance = g2 * dt * lam[:, None] ** 2
    direct = float((0.5 * shift.square() / variance).flatten(1).sum(1).mean())
    assert math.isclose(float(kl[0]), direct, rel_tol=1e-10)
