"""The cache engine and every policy: one conformance suite (recompute-all equals the
uncached network per sample with batch > 1, enable/disable, reset, no cross-sample
leakage), plus the E²-CRF decision rules."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fdbench.cache import (
    POLICY_PRESETS,
    CacheEngine,
    E2CRFConfig,
    FixedConfig,
    NaiveKVConfig,
    StepInfo,
    make_policy,
    parse_policy,
)
from fdbench.cache.base import BatchInfo
from fdbench.cache.engine import mask_to_indices, unit_of_token
from fdbench.errors import ConfigError
from fdbench.model import ModelConfig, build_model
from fdbench.spectral import bins, chart

ALL_POLICIES = sorted(POLICY_PRESETS)
N, M, STEPS, BATCH = 14, 2, 12, 3


def network(layout: str = "bins"):
    config = ModelConfig.from_preset("tiny", N, M, layout=layout, dropout=0.0)
    return build_model(config, seed=1).eval()


def trajectory(seed: int = 0, batch: int = BATCH) -> list[torch.Tensor]:
    """A smooth random trajectory of inputs, like a sampler's (B, N, M) iterates."""
    g = torch.Generator().manual_seed(seed)
    start, end = torch.randn(batch, N, M, generator=g), torch.randn(batch, N, M, generator=g)
    return [start + (end - start) * i / STEPS + 0.05 * torch.randn(batch, N, M, generator=g)
            for i in range(STEPS)]


def times(i: int, batch: int = BATCH) -> torch.Tensor:
    return torch.full((batch,), 1.0 - i / STEPS)


def run_engine(engine: CacheEngine, xs, batch: int = BATCH, ids=None) -> list[torch.Tensor]:
    engine.start_batch(len(xs), torch.arange(batch) if ids is None else ids)
    return [engine(x, times(i, batch), i) for i, x in enumerate(xs)]


@pytest.mark.parametrize("layout", ["bins", "chart"])
@pytest.mark.parametrize("name", ALL_POLICIES)
def test_recompute_all_reproduces_the_uncached_network(name, layout) -> None:
    """Forcing S = all tokens (through the gather/scatter path) equals the plain network
    to float tolerance, per sample, with batch > 1, in every reuse mode."""
    net = network(layout)
    config = parse_policy(name, N)
    engine = CacheEngine(net, make_policy(config), force_recompute_all=True)
    xs = trajectory()
    outputs = run_engine(engine, xs)
    with torch.no_grad():
        for i, (x, out) in enumerate(zip(xs, outputs, strict=True)):
            assert torch.allclose(out, net(x, times(i)), atol=1e-5, rtol=1e-5), (name, i)


@pytest.mark.parametrize("name", ALL_POLICIES)
def test_caching_changes_outputs_only_where_it_skips_work(name) -> None:
    """Without forcing, a policy that planned everything matches the network exactly;
    otherwise the executed work (padding included) covers the planned work and the FLOP
    ratio follows the executed fraction."""
    net = network()
    engine = CacheEngine(net, make_policy(parse_policy(name, N)))
    xs = trajectory()
    outputs = run_engine(engine, xs)
    summary = engine.stats.summary()
    with torch.no_grad():
        exact = all(torch.allclose(o, net(x, times(i)), atol=1e-5)
                    for i, (x, o) in enumerate(zip(xs, outputs, strict=True)))
    if summary["planned_fraction"] == 1.0:
        assert exact and summary["flop_ratio"] == pytest.approx(1.0)
    else:
        assert summary["recompute_fraction"] >= summary["planned_fraction"]
        assert summary["flop_ratio"] <= 1.0
        if summary["recompute_fraction"] < 1.0:
            assert summary["flop_ratio"] < 1.0


@pytest.mark.parametrize("name", ALL_POLICIES)
def test_no_cross_sample_leakage(name) -> None:
    """Changing sample 2's inputs never changes samples 0 and 1 (forced plans are per
    sample, and so are adaptive ones)."""
    net = network()
    xs = trajectory()
    altered = [x.clone() for x in xs]
    for x in altered:
        x[2] += 3.0
    first = run_engine(CacheEngine(net, make_policy(parse_policy(name, N))), xs)
    second = run_engine(CacheEngine(net, make_policy(parse_policy(name, N))), altered)
    for a, b in zip(first, second, strict=True):
        assert torch.allclose(a[:2], b[:2], atol=1e-5)


@pytest.mark.parametrize("name", ALL_POLICIES)
def test_state_is_reset_between_batches(name) -> None:
    """A batch run after another gives what it gives when run first."""
    net = network()
    engine = CacheEngine(net, make_policy(parse_policy(name, N)))
    run_engine(engine, trajectory(seed=5))
    after = run_engine(engine, trajectory(seed=6))
    fresh = run_engine(CacheEngine(net, make_policy(parse_policy(name, N))), trajectory(seed=6))
    for a, b in zip(after, fresh, strict=True):
        assert torch.equal(a, b)
    assert len(engine.history) == 2


def test_model_enable_disable_cache_round_trip() -> None:
    net = network()
    xs = trajectory()
    with torch.no_grad():
        plain = [net(x, times(i)) for i, x in enumerate(xs)]
    net.enable_cache(FixedConfig(R=4))
    with pytest.raises(RuntimeError, match="already enabled"):
        net.enable_cache(FixedConfig(R=4))
    with torch.no_grad(), net.cache_context(len(xs), torch.arange(BATCH)):
        cached = [net(x, times(i), step=i) for i, x in enumerate(xs)]
    assert net.cache_stats().summary()["full_steps"] == 4   # steps 0, 4, 8 and the last
    assert not torch.allclose(cached[5], plain[5])
    net.disable_cache()
    assert net.cache_stats() is None
    with torch.no_grad():
        again = [net(x, times(i), step=i) for i, x in enumerate(xs)]
    assert all(torch.equal(a, b) for a, b in zip(again, plain, strict=True))


def test_frequency_policy_on_a_time_model_is_refused() -> None:
    with pytest.raises(ConfigError, match="frequency-domain"):
        CacheEngine(network("time"), make_policy(E2CRFConfig()))
    CacheEngine(network("time"), make_policy(FixedConfig()))  # token policies are fine


def test_chart_layout_moves_re_and_im_of_a_bin_together() -> None:
    units = unit_of_token(network("chart"), "bins")
    half = N // 2 + 1
    assert units[:half].tolist() == list(range(half))
    assert units[half:].tolist() == list(range(1, N - half + 1))


def test_mask_to_indices_pads_by_repeating_the_first_index() -> None:
    mask = torch.tensor([[True, False, True, True], [False, True, False, False]])
    idx, counts = mask_to_indices(mask)
    assert idx.tolist() == [[0, 2, 3], [1, 1, 1]] and counts.tolist() == [3, 1]


@pytest.mark.parametrize("kwargs,field", [({"K": -1}, "K"), ({"tau_0": 0.0}, "tau_0"),
                                          ({"R": 0}, "R"), ({"random_probe_ratio": 1.5},
                                                            "random_probe_ratio"),
                                          ({"reuse_mode": "magic"}, "reuse_mode"),
                                          ({"alpha_max": -0.1}, "alpha_max")])
def test_bad_e2crf_values_name_the_field(kwargs, field) -> None:
    with pytest.raises(ValueError, match=f"E2CRFConfig.{field} must be"):
        E2CRFConfig(**kwargs)


def test_bad_specs_and_other_configs() -> None:
    with pytest.raises(ConfigError, match="unknown cache policy"):
        parse_policy("teleport", N)
    with pytest.raises(ConfigError, match="no field"):
        parse_policy("e2crf:Q=1", N)
    with pytest.raises(ValueError, match="FixedConfig.R"):
        FixedConfig(R=0)
    with pytest.raises(ValueError, match="NaiveKVConfig.K"):
        NaiveKVConfig(K=-2)
    assert parse_policy("e2crf:K=3,tau_0=0.5,use_probes=false", N) == E2CRFConfig(
        K=3, tau_0=0.5, use_probes=False)
    assert parse_policy("e2crf_paper", 187).K == 18


def e2crf_plans(xs: list[torch.Tensor], config: E2CRFConfig) -> list[torch.Tensor]:
    """The recompute masks E²-CRF decides along an input trajectory (no network: the
    decision depends only on the inputs)."""
    policy = make_policy(config)
    batch = xs[0].shape[0]
    policy.reset(BatchInfo(batch, N // 2 + 1, len(xs), torch.arange(batch),
                           torch.device("cpu")))
    plans = []
    for i, x in enumerate(xs):
        decision = policy.decide(StepInfo(i, len(xs), times(i, batch)), bins(x))
        plans.append(torch.ones(batch, N // 2 + 1, dtype=torch.bool)
                     if decision.recompute is None else decision.recompute)
    return plans


@settings(max_examples=20, deadline=None)
@given(shift=st.integers(0, N - 1), seed=st.integers(0, 2**16),
       tau_0=st.sampled_from([0.05, 0.3, 1.0]))
def test_e2crf_plan_is_invariant_under_circular_shift_and_reversal(shift, seed, tau_0) -> None:
    """|c_k| and ||c_k(i) - c_k(j)|| are invariant under a circular time shift (a phase
    per bin) and under time reversal (conjugation and a phase), so the plan is too."""
    xs = trajectory(seed)
    config = E2CRFConfig(K=1, tau_0=tau_0, random_probe_ratio=0.2, use_event=False)
    reference = e2crf_plans(xs, config)
    shifted = e2crf_plans([torch.roll(x, shift, dims=1) for x in xs], config)
    reversed_ = e2crf_plans([torch.flip(x, dims=[1]) for x in xs], config)
    for a, b, c in zip(reference, shifted, reversed_, strict=True):
        assert torch.equal(a, b) and torch.equal(a, c)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16), K=st.integers(0, 7), ratio=st.floats(0.0, 1.0))
def test_e2crf_low_band_always_recomputed_and_probes_reproducible(seed, K, ratio) -> None:
    xs = trajectory(seed)
    config = E2CRFConfig(K=K, tau_0=1e3, random_probe_ratio=ratio, use_event=False)
    first, second = e2crf_plans(xs, config), e2crf_plans(xs, config)
    for a, b in zip(first, second, strict=True):
        assert a[:, : K + 1].all()
        assert torch.equal(a, b)
    # with a huge threshold only the low band and the probes are computed
    n_high = max(0, N // 2 + 1 - (K + 1))
    expected = (K + 1) + math.ceil(ratio * n_high)
    assert first[1].sum(1).tolist() == [min(N // 2 + 1, expected)] * BATCH


def test_e2crf_energy_weighting_makes_high_energy_tokens_stricter() -> None:
    """tau_k = tau_0/(eps + E_k): the same relative change triggers a loud bin and not a
    quiet one; with use_energy=False both compare against tau_0."""
    n_bins = N // 2 + 1
    quiet, loud = torch.full((1, n_bins, 2 * M), 0.1), torch.full((1, n_bins, 2 * M), 3.0)
    base = torch.cat([quiet[:, :4], loud[:, 4:]], dim=1)
    moved = base * 1.05                                    # 5 % relative change everywhere
    for use_energy, expected_loud in ((True, True), (False, False)):
        policy = make_policy(E2CRFConfig(K=0, tau_0=0.1, random_probe_ratio=0.0,
                                         use_event=False, use_energy=use_energy,
                                         delta="relative"))
        policy.reset(BatchInfo(1, n_bins, 5, torch.arange(1), torch.device("cpu")))
        policy.decide(StepInfo(0, 5, torch.ones(1)), base)
        plan = policy.decide(StepInfo(1, 5, torch.ones(1)), moved).recompute[0]
        assert not plan[1:4].any()                          # quiet: tau = 0.1/0.04 = 2.5
        assert bool(plan[4:].all()) == expected_loud        # loud: tau = 0.1/36


def test_e2crf_absolute_delta_with_energy_weighting() -> None:
    """Absolute delta (E²-15 as printed): the loud bin's change 0.3 exceeds
    tau = 0.1/36, the quiet bin's 0.01 stays below 0.1/0.04."""
    n_bins = N // 2 + 1
    base = torch.cat([torch.full((1, 4, 2 * M), 0.1), torch.full((1, n_bins - 4, 2 * M), 3.0)],
                     dim=1)
    policy = make_policy(E2CRFConfig(K=0, tau_0=0.1, random_probe_ratio=0.0, use_event=False,
                                     delta="absolute"))
    policy.reset(BatchInfo(1, n_bins, 5, torch.arange(1), torch.device("cpu")))
    policy.decide(StepInfo(0, 5, torch.ones(1)), base)
    plan = policy.decide(StepInfo(1, 5, torch.ones(1)), base * 1.05).recompute[0]
    assert not plan[1:4].any() and bool(plan[4:].all())


def test_e2crf_warning_forces_full_refresh_and_feedback() -> None:
    """An event intensity above tau_warn recomputes every bin of that sample next step
    and applies error feedback with alpha = min(alpha_max, r/2)."""
    net = network()
    xs = trajectory()
    xs[4] = xs[4] * 10.0                       # a jump: z_L changes a lot at step 4
    config = E2CRFConfig(K=0, tau_0=100.0, R=1000, tau_warn=0.75, random_probe_ratio=0.5,
                         square_intensity=False)
    engine = CacheEngine(net, make_policy(config))
    run_engine(engine, xs)
    trace = engine.stats.records()
    assert trace[5].extra["warned"] > 0 and trace[5].planned_fraction == 1.0
    assert trace[5].extra.get("feedback_alpha", 0) > 0
    assert trace[2].extra["warned"] == 0 and trace[2].planned_fraction < 1.0


def test_chart_and_bins_inputs_agree_for_the_policy() -> None:
    """The policy sees the same bins whether the model is in chart or bins layout."""
    x = chart(trajectory()[0])
    for layout in ("bins", "chart"):
        engine = CacheEngine(network(layout), make_policy(E2CRFConfig()))
        assert torch.allclose(engine.units_view(x), bins(trajectory()[0]), atol=1e-6)


@settings(max_examples=50, deadline=None)
@given(rows=st.lists(st.lists(st.booleans(), min_size=6, max_size=6), min_size=1, max_size=5))
def test_mask_to_indices_matches_nonzero(rows) -> None:
    """Row b's first count_b indices are its True positions in order; the rest repeat
    the first (token 0 for an empty row)."""
    mask = torch.tensor(rows)
    idx, counts = mask_to_indices(mask)
    for b, row in enumerate(mask):
        true = row.nonzero().flatten().tolist()
        assert counts[b] == len(true)
        assert idx[b, : len(true)].tolist() == true
        first = true[0] if true else 0
        assert all(i == first for i in idx[b, len(true):].tolist())


@pytest.mark.parametrize("mode", ["subset", "literal"])
@pytest.mark.parametrize("config", [E2CRFConfig(K=1, tau_0=0.5), FixedConfig(R=3)],
                         ids=["e2crf", "fixed"])
def test_recompute_all_in_both_reuse_modes(config, mode) -> None:
    from dataclasses import replace

    net = network()
    engine = CacheEngine(net, make_policy(replace(config, reuse_mode=mode)),
                         force_recompute_all=True)
    xs = trajectory()
    with torch.no_grad():
        for i, out in enumerate(run_engine(engine, xs)):
            assert torch.allclose(out, net(xs[i], times(i)), atol=1e-5, rtol=1e-5)
    assert engine.mode == mode


# --- the paper's readings (refresh, squared intensity, absolute delta, fresh K/V) ---


@pytest.mark.parametrize("refresh,expected", [(True, [0, 4, 8, 11]), (False, [0, 11])])
def test_refresh_reading_makes_every_R_th_step_a_full_step(refresh, expected) -> None:
    """With ``refresh`` (the paper's reading of R) steps 0, R, 2R, ... and the last are
    full recomputations that equal the uncached network; without it only the first and
    the last are."""
    net = network()
    xs = trajectory()
    config = E2CRFConfig(K=0, tau_0=100.0, R=4, random_probe_ratio=0.0, refresh=refresh)
    engine = CacheEngine(net, make_policy(config))
    outs = run_engine(engine, xs)
    full = [record.index for record in engine.stats.records() if record.full]
    assert full == expected
    with torch.no_grad():
        for i in expected:
            assert torch.allclose(outs[i], net(xs[i], times(i)), atol=1e-5)
        assert not torch.allclose(outs[5], net(xs[5], times(5)), atol=1e-3)


def test_feedback_period_follows_the_reading_of_R() -> None:
    assert E2CRFConfig(R=7, refresh=False).feedback_period == 7   # R = feedback period
    assert E2CRFConfig(R=7, refresh=True).feedback_period == 1    # every cached step
    assert E2CRFConfig(R=7, refresh=True, feedback_every=3).feedback_period == 3
    assert E2CRFConfig.paper_stated(187).refresh and E2CRFConfig.paper_best().refresh
    paper = E2CRFConfig.paper_stated(187)
    assert paper.square_intensity and paper.delta == "absolute" and paper.K == 18


@settings(max_examples=30, deadline=None)
@given(scale=st.floats(0.1, 10.0), seed=st.integers(0, 1000))
def test_token_change_readings_scale_as_stated(scale, seed) -> None:
    """E²-15's delta_k: the absolute reading scales with the tokens, the relative one
    does not (up to its floor)."""
    from fdbench.cache.e2crf import token_change

    g = torch.Generator().manual_seed(seed)
    now, then = torch.randn(2, 5, 2, generator=g, dtype=torch.float64).unbind(0)
    for delta, power in (("absolute", 1), ("relative", 0)):
        base = token_change(now, then, 1e-12, delta)
        scaled = token_change(scale * now, scale * then, 1e-12, delta)
        assert torch.allclose(scaled, scale ** power * base, rtol=1e-9)


def test_event_intensity_is_squared_in_the_paper_reading() -> None:
    from fdbench.cache.e2crf import event_intensity

    now, then = torch.ones(2, 3, 4) * 1.5, torch.ones(2, 3, 4)
    plain = event_intensity(now, then, 1e-6, squared=False)
    assert torch.allclose(plain, torch.full((2,), 0.5), atol=1e-5)
    assert torch.allclose(event_intensity(now, then, 1e-6, squared=True), plain.square())


def test_kv_fresh_needs_literal_mode() -> None:
    with pytest.raises(ConfigError, match="kv_fresh"):
        E2CRFConfig(kv_fresh=True)
    assert make_policy(E2CRFConfig(reuse_mode="literal", kv_fresh=True)).mode == "literal_kv"


@pytest.mark.parametrize("kv_fresh", [True, False])
def test_kv_fresh_gives_recomputed_tokens_their_exact_attention(kv_fresh) -> None:
    """One layer, only the low band recomputed at step 1: with fresh K/V for every token
    the recomputed bins' scores equal the uncached network's (their attention reads no
    stale key); with reused K/V (the paper's literal reading) they do not."""
    config = ModelConfig.from_preset("tiny", N, M, layout="bins", dropout=0.0, n_layers=1)
    net = build_model(config, seed=1).eval()
    xs = trajectory()
    policy = E2CRFConfig(K=1, tau_0=1e6, random_probe_ratio=0.0, reuse_mode="literal",
                         kv_fresh=kv_fresh, use_feedback=False)
    engine = CacheEngine(net, make_policy(policy))
    outs = run_engine(engine, xs[:3])
    with torch.no_grad():
        exact = engine.units_view(net(xs[1], times(1)))[:, :2]
    got = engine.units_view(outs[1])[:, :2]
    assert torch.allclose(got, exact, atol=1e-5) == kv_fresh
