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


def test_a03_paper_settings_and_computed_cosine(ctx: Context) -> None:
    result = claim_a03_hit_rate.check(ctx)
    assert result.verdict == "violated"
    assert result.numbers["K_paper"] == 16 // 10 and result.numbers["K_op"] == 5
    cosine = next(name for name in result.readings if name.startswith("cos("))
    rho, bound = result.reading_values[cosine]
    assert bound == pytest.approx(1.0, abs=1e-9)              # delta(K) = 0: rho >= 1
    assert rho < 1 - 2 / 9 + 1e-9                             # the low band is recomputed
    assert result.readings[cosine] == "violated"
    assert (result.measured, result.bound) == result.reading_values[result.decided_by]
    # a wrong chart (energy over time positions) in the computation of delta(K) makes
    # the bound loose enough to hold on the cosine path
    faulty = claim_a03_hit_rate.check(ctx, wrong_chart=True)
    assert faulty.readings[cosine] == "holds"
    assert faulty.reading_values[cosine][1] < 0.5


def test_a05_sharp_identity_and_missing_conversion(ctx: Context) -> None:
    result = claim_a05_head_lipschitz.check(ctx)
    sharp = result.identities[0]
    assert sharp.startswith("L(t)") and result.readings[sharp] == "holds"
    assert 0 < result.numbers["max_ratio_over_L"] <= 1 + 1e-6
    assert result.decided_by != sharp
    # the tiny model's parametrisation is 'score' (gain 1): sigma_max(W) bounds it, and
    # a cached path whose conversion has a wrong gain breaks both readings
    assert result.verdict == "holds"
    assert claim_a05_head_lipschitz.check(ctx, no_conversion=True).verdict == "holds"
    faulty = claim_a05_head_lipschitz.check(ctx, cached_gain=1.5)
    assert faulty.verdict == "violated" and faulty.readings[sharp] == "violated"


def test_a07_exact_gap_and_sampler_without_g2_violates(ctx: Context) -> None:
    result = claim_a07_one_step.check(ctx)
    assert result.verdict == "holds"
    assert result.numbers["gap_vs_closed_form_rel"] < 1e-6
    faulty = claim_a07_one_step.check(ctx, sampler_drops_g2=True)
    assert faulty.verdict == "violated"
    assert faulty.numbers["gap_vs_closed_form_rel"] > 1e-3     # the gap itself changed


def test_a09_population_term_holds_for_exact_score_fails_for_wrong_lambda(ctx: Context
                                                                         ) -> None:
    result = claim_a09_loss_gap.check(ctx)
    assert result.verdict == "holds"
    assert result.decided_by.startswith("population") and result.measured <= 4
    assert result.numbers["c2"] > 0
    faulty = claim_a09_loss_gap.check(ctx, wrong_lambda=True)
    assert faulty.verdict == "violated" and faulty.measured > 4
    # the finite-batch reading (one draw per x_t) is shown, not counted: slope ~ 1
    assert abs(result.numbers["slope_finite_batch"] - 1) < 0.3


def test_a10_time_counterexample_and_frozen_time(ctx: Context) -> None:
    result = claim_a10_feature_error.check(ctx)
    assert result.verdict == "violated"
    assert result.numbers["counterexample_rel_change"] > 1e-6
    assert len(result.identities) == 1 and result.decided_by not in result.identities
    frozen = claim_a10_feature_error.check(ctx, freeze_time=True)
    assert frozen.verdict == "holds"
    assert set(frozen.identities) == set(frozen.readings)      # by construction: shown so


def test_lin_cache_faults_flip_the_exponent(ctx: Context) -> None:
    result = claim_lin_growth.check(ctx)
    assert result.verdict in VERDICTS and "FixedConfig(R=" in result.settings
    # a geometrically drifting cache (a fault in the cached scores) must show as a much
    # larger exponent, and the verdict follows it
    drift = claim_lin_growth.check(ctx, fault="drift", strength=0.2)
    assert drift.verdict == "violated" and drift.measured > result.measured + 1


def test_tv_sampler_without_lambda_noise_violates(ctx: Context) -> None:
    """The bound is a theorem for these chains; a sampler that drops Lambda from its noise
    (a fault in the computation) has score error 0, hence bound 0, yet samples differ."""
    result = claim_tv.check(ctx)
    assert result.verdict in ("holds", "vacuous")
    assert result.bound > 0
    faulty = claim_tv.check(ctx, sampler_drops_lambda=True)
    assert faulty.bound == 0.0 and faulty.verdict == "violated"
    assert faulty.measured > 2 * faulty.numbers["standard_error"]


def test_event_tolerance_from_spread() -> None:
    early, late, z = claim_obs_findings.early_late_z([1.0, 1.2, 0.8, 1.1, 0.9] + [0.5] * 10
                                                     + [0.1, 0.12, 0.08, 0.11, 0.09])
    assert early > late and z > 10
    assert claim_obs_findings.early_late_z([0.3] * 20)[2] == 0.0
    noisy = [1.0, 0.0] * 10          # no trend: |z| well below the 2-se threshold
    assert abs(claim_obs_findings.early_late_z(noisy)[2]) < 2


def test_energy_wrong_chart_flips(ctx: Context) -> None:
    """O.energy with energy counted over time positions (a fault in the computation)."""
    result = claim_obs_findings.energy(ctx)
    assert result.verdict in VERDICTS
    assert claim_obs_findings.energy(ctx, wrong_chart=True).measured != result.measured


def test_observations_at_paper_settings_and_operating_point(ctx: Context) -> None:
    for fn in (claim_obs_findings.event, claim_obs_findings.hitrate,
               claim_obs_findings.recompute):
        result = fn(ctx)
        assert any("paper settings" in r for r in result.readings)
        assert any("operating point" in r for r in result.readings)
        assert (result.measured, result.bound) == result.reading_values[result.decided_by]


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


def test_tv_scaling_with_planted_score_error(ctx: Context) -> None:
    from proofs_check import claim_tv_scaling

    result = claim_tv_scaling.check(ctx)
    assert result.series["bound"] == pytest.approx([e / 2 for e in claim_tv_scaling.EPSILONS],
                                                   rel=1e-4)
    assert result.verdict == "holds"
    # a sampler whose noise kick is off (a fault in the chains) leaves the bound's
    # assumptions: TV exceeds it
    assert claim_tv_scaling.check(ctx, noise_scale=0.5).verdict == "violated"
