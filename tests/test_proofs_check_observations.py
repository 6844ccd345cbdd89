"""proofs_check's observation and paper-comparison checks (O.*, A.7.inc) on a tiny random
model: each gives a verdict in quick mode, a fault planted inside the computation (a
wrapped policy, a wrong chart, a sampler without its noise) flips it, and the decision
rules are unit-tested on their own."""

from __future__ import annotations

import pytest
import torch

from fdbench.cache import E2CRFConfig
from fdbench.checkpoint import save_checkpoint
from fdbench.data import SeriesSplit
from fdbench.data.synthetic import sines
from fdbench.flops import forward_flops
from proofs_check import (
    claim_a07_one_step_noise,
    claim_obs_ablations,
    claim_obs_findings,
    claim_obs_flops,
    claim_obs_pearson,
    trajectories,
)
from proofs_check.planted_policies import Fault, PlantedPolicy, planted_policy
from proofs_check.registry import VERDICTS, Context
from tests.conftest import make_score_model


@pytest.fixture(scope="module")

def ctx(tmp_path_factory: pytest.TempPathFactory) -> Context:
    """Quick mode on a tiny untrained checkpoint (N=16, M=2, bins layout), shared by the
    module's tests (the recording and the policy runs are memoised on it)."""
    x = sines(96, n_steps=16, n_channels=2, generator=torch.Generator().manual_seed(0))
    split = SeriesSplit(name="tiny-sines", train=x[:80], test=x[80:], description="test")
    directory = tmp_path_factory.mktemp("tiny-ckpt-obs")
    save_checkpoint(directory, make_score_model(split))
    return Context(quick=True, checkpoint=directory, seed=0)


def _complete(result) -> None:
    """The report draws from these: every reading has its values, the decided one is
    the headline."""
    assert result.verdict in VERDICTS and result.decided_by in result.readings
    assert set(result.reading_values) == set(result.readings)
    assert (result.measured, result.bound) == result.reading_values[result.decided_by]
    assert result.settings


# --- the planted-policy wrapper -----------------------------------------------------

def test_wrapper_without_fault_is_the_policy_and_all_recomputes_exactly(ctx: Context
                                                                       ) -> None:
    config = E2CRFConfig()
    assert not isinstance(planted_policy(config, Fault()), PlantedPolicy)
    exact = trajectories.policy_run(ctx, config, Fault(recompute="all"))
    reference = trajectories.record(ctx).x_ref[-1]
    # every cached step recomputes every token: the uncached samples to float rounding
    assert torch.allclose(exact.samples, reference, rtol=1e-4, atol=1e-5)
    assert exact.engine.stats.summary()["planned_fraction"] == pytest.approx(1.0)
    plain = trajectories.policy_run(ctx, config)
    assert torch.equal(plain.samples, trajectories.record(ctx).x_cache[-1])


def test_inverted_recompute_set_keeps_the_low_band(ctx: Context) -> None:
    config = E2CRFConfig()
    plain = trajectories.policy_run(ctx, config).engine.stats.trace("planned_fraction")
    inverted = trajectories.policy_run(ctx, config, Fault(recompute="invert")
                                       ).engine.stats.trace("planned_fraction")
    n_bins = 16 // 2 + 1
    assert min(inverted) >= (config.K + 1) / n_bins - 1e-6
    assert inverted != plain
    with pytest.raises(ValueError, match="recompute"):
        Fault(recompute="some")


# --- decision rules (pure functions) ------------------------------------------------

def test_decision_rules() -> None:
    early, late, z = claim_obs_findings.early_late_z([1.0, 1.2, 0.8, 1.1, 0.9] + [0.5] * 10
                                                     + [0.1, 0.12, 0.08, 0.11, 0.09])
    assert early > late and z > 10
    assert claim_obs_findings.early_late_z([0.3] * 20)[2] == 0.0
    assert abs(claim_obs_findings.early_late_z([1.0, 0.0] * 10)[2]) < 2
    assert claim_obs_findings.hitrate_rule([0.4] * 10 + [0.6] * 80 + [0.75] * 10)[2] == "holds"
    assert claim_obs_findings.hitrate_rule([0.9] * 100)[2] == "violated"
    assert claim_obs_findings.share_rule(0.33) == "holds"
    assert claim_obs_findings.share_rule(0.6) == "violated"
    assert claim_obs_findings.band_ratio(torch.tensor([1.0, 1.0, 0.5, 0.5]), 1) == 0.5
    assert claim_obs_ablations.band_verdict(0.7, 0.0, (0.6, 0.8)) == "holds"
    assert claim_obs_ablations.band_verdict(0.5, 0.04, (0.6, 0.8)) == "violated"
    assert claim_obs_ablations.band_verdict(0.5, 0.06, (0.6, 0.8)) == "holds"
    value, se = claim_obs_ablations.jackknife_ratio(torch.tensor([1.0, 1.0, 1.0]),
                                                    torch.tensor([2.0, 2.0, 2.0]))
    assert value == pytest.approx(0.5) and se == pytest.approx(0.0, abs=1e-12)
    assert claim_obs_pearson.pearson(torch.arange(5.0), 2 * torch.arange(5.0)) == \
        pytest.approx(1.0)
    assert claim_obs_pearson.pearson(torch.arange(5.0), -torch.arange(5.0)) == \
        pytest.approx(-1.0)


def test_component_flops_split_the_engines_count() -> None:
    """K/V + queries = the qkv entry, MLP = ffn, attention = attention of
    ``fdbench.flops.forward_flops`` (one layer, one sample), in every reuse mode."""
    from fdbench.model import ModelConfig

    config = ModelConfig.from_preset("tiny", 16, 2, layout="bins")
    n = config.n_tokens
    for mode in ("subset", "literal", "literal_kv"):
        for m in (0, 3, n):
            parts = claim_obs_flops.component_flops(config.d_model, config.d_ff, n, mode, m)
            total = forward_flops(config, 1, mode=mode, computed=m)
            rows = claim_obs_flops.token_counts(mode, n, m)[0]
            if mode == "subset" and m == 0:
                rows = 0
            query = 2.0 * config.d_model ** 2 * rows * config.n_layers
            assert parts["MLP"] * config.n_layers == total["ffn"]
            assert parts["attention"] * config.n_layers == total["attention"]
            assert parts["K/V"] * config.n_layers + query == total["qkv"]


# --- the checks, and a fault in the computation that flips each ---------------------

FLIPS = {
    # the intensity taken between different samples: no longer falls over the run
    "O.event": (claim_obs_findings.event, {"fault": Fault(roll_final=True)}),
    # samplers without their noise kick: the increments differ by the drift gap only
    "A.7.inc": (claim_a07_one_step_noise.check, {"sampler_noise_scale": 0.0}),
}


@pytest.mark.parametrize("claim", sorted(FLIPS))
def test_fault_in_the_computation_flips_the_verdict(ctx: Context, claim: str) -> None:
    fn, fault = FLIPS[claim]
    result = fn(ctx)
    _complete(result)
    faulty = fn(ctx, **fault)
    _complete(faulty)
    assert faulty.verdict != result.verdict, (claim, result.reading_values,
                                              faulty.reading_values)


def test_a07_increment_noise_is_outside_the_bound_and_shared_noise_is_an_identity(
        ctx: Context) -> None:
    result = claim_a07_one_step_noise.check(ctx)
    assert result.verdict == "violated" and result.identities
    shared = result.identities[0]
    assert result.readings[shared] == "holds" and result.decided_by != shared
    assert result.numbers["share_steps_violated_independent"] > 0.1


def test_recompute_sets_drive_hitrate_and_recompute(ctx: Context) -> None:
    """A cache that reuses every token between its full steps (a fault in the policy):
    the hit rate is then exactly 1 on cached steps and the recomputed share exactly the
    share of full steps, whatever the trigger saw."""
    result = claim_obs_findings.hitrate(ctx)
    _complete(result)
    never = claim_obs_findings.hitrate(ctx, fault=Fault(recompute="none"))
    _complete(never)
    curve = never.series["hit_rate_paper"]
    batch, steps = trajectories.sizes(ctx)
    paper_r = trajectories.paper_config(ctx).R
    assert curve == [0.0 if (i + 1) % paper_r == 0 else 1.0 for i in range(steps - 2)]
    share = claim_obs_findings.recompute(ctx, fault=Fault(recompute="none"))
    full_steps = sum(1 for i in range(steps) if i % 5 == 0 or i == steps - 1)
    assert share.numbers["recomputed_share_operating"] == pytest.approx(full_steps / steps)


def test_pearson_follows_the_intensity_computation(ctx: Context) -> None:
    result = claim_obs_pearson.check(ctx)
    _complete(result)
    assert len(result.readings) == 3 and "r_cache_error_op" in result.numbers
    rolled = claim_obs_pearson.check(ctx, fault=Fault(roll_final=True))
    _complete(rolled)
    assert len(rolled.readings) == 2                # the recorded-error reading needs no fault
    assert abs(rolled.numbers["r_token_change_op"] - result.numbers["r_token_change_op"]) > 0.5


def test_feedback_and_trigger_measure_the_arms(ctx: Context) -> None:
    """An arm that recomputes every token is exact: the reduction is then 1 (nothing of
    the ablation's degradation left); E²-CRF whose trigger never fires is the fixed
    schedule at its own R, so the matched comparison gives exactly 0 improvement."""
    feedback = claim_obs_ablations.feedback(ctx)
    _complete(feedback)
    exact = claim_obs_ablations.feedback(ctx, fault=Fault(recompute="all"))
    assert exact.numbers["value_op"] == pytest.approx(1.0, abs=1e-3)
    assert exact.readings[next(r for r in exact.readings if "operating" in r)] == "violated"
    trigger = claim_obs_ablations.trigger(ctx)
    _complete(trigger)
    never = claim_obs_ablations.trigger(ctx, fault=Fault(recompute="none"))
    assert never.numbers["value_op"] == pytest.approx(0.0, abs=1e-9)
    assert never.numbers["fixed_R_hi_op"] == 5.0                # E2CRFConfig().R
    assert claim_obs_ablations.fixed_flop_ratio(ctx, 1) == pytest.approx(1.0)


def test_flops_reductions_follow_the_recompute_sets(ctx: Context) -> None:
    result = claim_obs_flops.check(ctx)
    _complete(result)
    never = claim_obs_flops.check(ctx, fault=Fault(recompute="none"))
    steps = trajectories.sizes(ctx)[1]
    full_steps = sum(1 for i in range(steps) if i % 5 == 0 or i == steps - 1)
    for component in ("K/V", "MLP", "attention"):
        assert never.numbers[f"{component}_reduction_operating_point_subset"] == \
            pytest.approx(1 - full_steps / steps, abs=1e-9)
    # the paper text's reuse keeps every attention row: no attention reduction
    assert never.numbers["attention_reduction_paper_settings_literal"] == 0.0


def test_a03_policy_fault_flips_the_readings_it_acts_on(ctx: Context) -> None:
    """A cache that reuses every token between full steps makes the paper-settings hit
    rate reading hold; the computed cosine counterexample stays violated (rho < 1 - tol
    for any cache that keeps its full steps: no single fault flips A.3)."""
    from proofs_check import claim_a03_hit_rate

    result = claim_a03_hit_rate.check(ctx)
    never = claim_a03_hit_rate.check(ctx, fault=Fault(recompute="none"))
    paper = next(r for r in result.readings if r.startswith("hit rate, paper"))
    cosine = next(r for r in result.readings if r.startswith("cos("))
    assert result.readings[paper] == "violated" and never.readings[paper] == "holds"
    assert never.readings[cosine] == "violated" and never.verdict == "violated"


# --- on the shipped model (quick mode): faults that flip where the tiny model cannot ---

@pytest.fixture(scope="module")
def shipped() -> Context:
    return Context(quick=True)


def test_shipped_highfreq_lin_and_recompute_flip(shipped: Context) -> None:
    from proofs_check import claim_lin_growth

    high = claim_obs_findings.highfreq(shipped)
    assert high.verdict == "holds"
    assert claim_obs_findings.highfreq(shipped, wrong_chart=True).verdict == "violated"
    lin = claim_lin_growth.check(shipped)
    assert lin.verdict == "violated"
    # a constant per-step score error accumulates linearly: the same estimator holds
    assert claim_lin_growth.check(shipped, fault="bias", strength=0.1).verdict == "holds"
    share = claim_obs_findings.recompute(shipped)
    inverted = claim_obs_findings.recompute(shipped, fault=Fault(recompute="invert"))
    assert all(share.readings[r] != inverted.readings[r] for r in share.readings)
