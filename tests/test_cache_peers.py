"""One conformance suite over every *registered* cache policy (a new policy gets it for
free: its config's defaults and its ``recompute_all()`` degenerate setting), plus the peer
methods' own rules (FLOP accounting, forecasts, TeaCache calibration)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fdbench.cache import (
    POLICIES,
    CacheEngine,
    DuCaConfig,
    E2CRFConfig,
    FirstBlockCacheConfig,
    FORAConfig,
    FreqCaConfig,
    TaylorSeerCacheConfig,
    TeaCacheConfig,
    ToCaConfig,
    make_policy,
)
from fdbench.cache.freqca import lagrange_weights
from fdbench.cache.module_reuse import ModulePolicy
from fdbench.cache.taylorseer import taylor_forecast, update_differences
from fdbench.cache.teacache_calibration import (
    calibrate,
    fit_polynomial,
    load_calibration,
    save_calibration,
)
from fdbench.errors import ConfigError, InputError
from fdbench.flops import forward_flops, matmul_total, module_forward_flops
from fdbench.model import ModelConfig, build_model
from tests.conftest import make_score_model

ALL = sorted(POLICIES)
MODULE_POLICIES = [name for name in ALL if issubclass(POLICIES[name], ModulePolicy)]
N, M, STEPS, BATCH = 14, 2, 10, 3
# operating points that skip work on the tiny untrained model (defaults elsewhere)
SKIPPING = {"e2crf": E2CRFConfig(K=1, tau_0=1.0),
            "teacache": TeaCacheConfig(rel_l1_thresh=1.0),
            "fbcache": FirstBlockCacheConfig(threshold=1.0)}


def network(layout: str = "bins"):
    config = ModelConfig.from_preset("tiny", N, M, layout=layout, dropout=0.0)
    return build_model(config, seed=1).eval()


NET = network()


def trajectory(seed: int = 0, batch: int = BATCH) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    start, end = torch.randn(batch, N, M, generator=g), torch.randn(batch, N, M, generator=g)
    return [start + (end - start) * i / STEPS + 0.05 * torch.randn(batch, N, M, generator=g)
            for i in range(STEPS)]


def uneven(seed: int = 3) -> list[torch.Tensor]:
    """Samples moving at very different speeds: adaptive policies decide differently per
    sample (mixed batches)."""
    g = torch.Generator().manual_seed(seed)
    start, end = torch.randn(BATCH, N, M, generator=g), torch.randn(BATCH, N, M, generator=g)
    speed = torch.tensor([0.1, 1.0, 8.0])[:, None, None]
    return [start + (end - start) * speed * i / STEPS for i in range(STEPS)]


def times(i: int, batch: int = BATCH) -> torch.Tensor:
    return torch.full((batch,), 1.0 - i / STEPS)


def default(name: str):
    return SKIPPING.get(name, POLICIES[name].config_class())


def degenerate_engine(name: str, net=NET) -> CacheEngine:
    """The policy's recompute-all setting, or the engine's forced one if it has none."""
    config = default(name).recompute_all()
    if config is None:
        return CacheEngine(net, make_policy(default(name)), force_recompute_all=True)
    return CacheEngine(net, make_policy(config))


def run(engine: CacheEngine, xs, ids=None, heun: bool = False) -> list[torch.Tensor]:
    """Stage-0 outputs along ``xs``; with ``heun`` a stage-1 call (at the next input)
    follows every step, as a two-evaluation solver makes it."""
    batch = xs[0].shape[0]
    engine.start_batch(len(xs), torch.arange(batch) if ids is None else ids)
    outputs = []
    for i, x in enumerate(xs):
        outputs.append(engine(x, times(i, batch), i))
        if heun:
            engine(xs[min(i + 1, len(xs) - 1)], times(i + 1, batch), i, stage=1)
    return outputs


def uncached(xs, net=NET) -> list[torch.Tensor]:
    with torch.no_grad():
        return [net(x, times(i, x.shape[0])) for i, x in enumerate(xs)]


@pytest.mark.parametrize("name", ALL)
def test_degenerate_setting_reproduces_the_uncached_run(name) -> None:
    """Interval 1 / threshold 0 (or forced recompute-all) equals the plain network
    per sample, batch > 1, with executed fraction and FLOP ratio 1."""
    xs = trajectory()
    engine = degenerate_engine(name)
    for out, ref in zip(run(engine, xs), uncached(xs), strict=True):
        assert (out - ref).abs().amax(dim=(1, 2)).max() <= 1e-5, name
    summary = engine.stats.summary()
    assert summary["recompute_fraction"] == pytest.approx(1.0)
    assert summary["flop_ratio"] == pytest.approx(1.0)


@pytest.mark.parametrize("name", MODULE_POLICIES)
def test_module_degenerate_setting_with_stage_one_calls_is_exact(name) -> None:
    """With Heun's second evaluation interleaved, the degenerate setting stays exact."""
    xs = trajectory(1)
    engine = degenerate_engine(name)
    engine.start_batch(STEPS, torch.arange(BATCH))
    for i, x in enumerate(xs):
        for stage, (x_in, t) in enumerate(((x, times(i)), (x * 0.9, times(i + 1)))):
            out = engine(x_in, t, i, stage=stage)
            with torch.no_grad():
                assert torch.allclose(out, NET(x_in, t), atol=1e-5), (name, i, stage)


@pytest.mark.parametrize("name", MODULE_POLICIES)
def test_stage_one_calls_never_change_policy_state(name) -> None:
    """Caching is keyed by the step index: interleaving stage-1 calls leaves every stage-0
    output as it is without them."""
    xs = trajectory(2)
    plain = run(CacheEngine(NET, make_policy(default(name))), xs)
    with_heun = run(CacheEngine(NET, make_policy(default(name))), xs, heun=True)
    for a, b in zip(plain, with_heun, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", [n for n in ALL if n != "none"])
def test_non_degenerate_setting_skips_work_and_changes_the_output(name) -> None:
    xs = trajectory()
    engine = CacheEngine(NET, make_policy(default(name)))
    outputs = run(engine, xs)
    summary = engine.stats.summary()
    assert summary["recompute_fraction"] < 1.0 and summary["flop_ratio"] < 1.0
    assert any(not torch.allclose(o, r, atol=1e-4)
               for o, r in zip(outputs, uncached(xs), strict=True))
    records = engine.stats.records()
    assert records[0].full and records[-1].full            # first and last step computed
    assert all(0.0 <= r.executed_fraction <= 1.0 and r.decision_seconds >= 0
               for r in records)
    assert summary["cache_bytes"] > 0


@pytest.mark.parametrize("name", ALL)
def test_enable_disable_restores_the_uncached_output(name) -> None:
    net = network()
    xs = trajectory()
    plain = uncached(xs, net)
    net.enable_cache(default(name))
    with pytest.raises(RuntimeError, match="already enabled"):
        net.enable_cache(default(name))
    with torch.no_grad(), net.cache_context(len(xs), torch.arange(BATCH)):
        for i, x in enumerate(xs):
            net(x, times(i), step=i)
    assert net.cache_stats() is not None
    net.disable_cache()
    again = uncached(xs, net)
    assert all(torch.equal(a, b) for a, b in zip(again, plain, strict=True))


@pytest.mark.parametrize("name", ALL)
def test_state_is_reset_per_batch(name) -> None:
    engine = CacheEngine(NET, make_policy(default(name)))
    run(engine, trajectory(5))
    after = run(engine, trajectory(6))
    fresh = run(CacheEngine(NET, make_policy(default(name))), trajectory(6))
    assert all(torch.equal(a, b) for a, b in zip(after, fresh, strict=True))
    assert len(engine.history) == 2


@pytest.mark.parametrize("name", ALL)
def test_batch_equals_per_sample_runs(name) -> None:
    """Every policy is per sample: TeaCache's accumulator and FBCache's test are per
    sample, DuCa's and E²-CRF's draws per sample index, E²-CRF's padding repeats a token
    already computed; a sample's output does not depend on its batch."""
    xs = uneven()
    engine = CacheEngine(NET, make_policy(default(name)))
    batched = run(engine, xs)
    for b in range(BATCH):
        single = run(CacheEngine(NET, make_policy(default(name))), [x[b:b + 1] for x in xs],
                     ids=torch.tensor([b]))
        for out, one in zip(batched, single, strict=True):
            assert torch.allclose(out[b:b + 1], one, atol=1e-5), (name, b)
    if name in ("teacache", "fbcache"):    # the batch really mixed compute and reuse
        assert any(0 < v < 1 for v in engine.stats.trace("computed_samples"))


@pytest.mark.parametrize("config,field", [
    (lambda: FORAConfig(cache_interval=0), "FORAConfig.cache_interval"),
    (lambda: FORAConfig(reuse="all"), "FORAConfig.reuse"),
    (lambda: ToCaConfig(fresh_ratio=1.5), "ToCaConfig.fresh_ratio"),
    (lambda: ToCaConfig(K=-1), "ToCaConfig.K"),
    (lambda: DuCaConfig(seed=-1), "DuCaConfig.seed"),
    (lambda: TeaCacheConfig(rel_l1_thresh=-0.1), "TeaCacheConfig.rel_l1_thresh"),
    (lambda: TeaCacheConfig(coefficients=(1.0, 2.0)), "TeaCacheConfig.coefficients"),
    (lambda: TeaCacheConfig(coefficients=(0.0,) * 5, calibration="x.json"),
     "TeaCacheConfig.calibration"),
    (lambda: FirstBlockCacheConfig(threshold=-1.0), "FirstBlockCacheConfig.threshold"),
    (lambda: TaylorSeerCacheConfig(max_order=3), "TaylorSeerCacheConfig.max_order"),
    (lambda: FreqCaConfig(warmup_steps=-1), "FreqCaConfig.warmup_steps"),
])
def test_config_errors_name_the_field(config, field) -> None:
    with pytest.raises(ConfigError, match=f"{field} must be"):
        config()


def test_band_policies_refuse_time_models_and_toca_works_without_band() -> None:
    for config in (FreqCaConfig(), ToCaConfig()):
        with pytest.raises(ConfigError, match="frequency-domain"):
            CacheEngine(network("time"), make_policy(config))
    CacheEngine(network("time"), make_policy(ToCaConfig(K=None)))


def test_module_flops_match_the_uncached_count_and_toca_plan() -> None:
    """All tokens everywhere = forward_flops; 'attention reused, FFN on m tokens' costs
    the norms and m FFN rows per layer only."""
    config = NET.config
    n, batch, m = config.n_tokens, 2, 3
    full = module_forward_flops(config, batch, [(batch * n,) * 3 + (0,)] * config.n_layers)
    assert full == pytest.approx(forward_flops(config, batch))
    toca = module_forward_flops(config, batch, [(0, batch * m, batch * n, 0)] * config.n_layers)
    layers = config.n_layers * batch * m * 4.0 * config.d_model * config.d_ff
    assert matmul_total(toca) == pytest.approx(layers + toca["embed"] + toca["head"])
    assert toca["qkv"] == toca["attention"] == toca["out_proj"] == 0.0


def test_toca_subset_contains_the_low_band_and_has_the_planned_size() -> None:
    engine = CacheEngine(NET, make_policy(ToCaConfig(K=2, fresh_ratio=0.5, schedule="constant")))
    run(engine, trajectory())
    policy = engine.policy
    assert policy.tokens is not None
    for tokens in policy.tokens:
        assert tokens.shape == (BATCH, 4)                    # ceil(0.5 * 8 bins)
        assert all({0, 1, 2} <= set(row) for row in tokens.tolist())


def test_taylorseer_reports_its_memory() -> None:
    engine = CacheEngine(NET, make_policy(TaylorSeerCacheConfig(max_order=2,
                                                                cache_interval=2)))
    run(engine, trajectory())
    layers = NET.config.n_layers
    assert engine.stats.records()[-1].extra["cached_tensors"] == 2 * layers * 3


@settings(max_examples=25, deadline=None)
@given(slope=st.floats(-3, 3), intercept=st.floats(-3, 3), gap=st.integers(1, 5),
       offset=st.integers(1, 6))
def test_first_order_taylor_forecast_is_exact_on_linear_features(slope, intercept, gap,
                                                                  offset) -> None:
    """Divided differences of a linear sequence give its slope: the order-1 forecast
    extrapolates a linear module output exactly (TaylorSeer eq. 8-9)."""
    value = lambda i: torch.tensor([slope * i + intercept], dtype=torch.float64)  # noqa: E731
    diffs = update_differences([value(0)], value(gap), float(gap), 1)
    forecast = taylor_forecast(diffs, float(offset))
    assert torch.allclose(forecast, value(gap + offset), atol=1e-9)


@settings(max_examples=25, deadline=None)
@given(coeffs=st.lists(st.floats(-2, 2), min_size=3, max_size=3), target=st.integers(4, 12))
def test_freqca_extrapolation_is_exact_on_quadratics(coeffs, target) -> None:
    """The Lagrange weights through three points reproduce any quadratic."""
    points = [0.0, 2.0, 3.0]
    a, b, c = coeffs
    y = [a * p * p + b * p + c for p in points]
    weights = lagrange_weights(points, float(target))
    assert sum(w * v for w, v in zip(weights, y, strict=True)) == pytest.approx(
        a * target ** 2 + b * target + c, abs=1e-6)


def test_teacache_calibration_fits_saves_and_loads(tmp_path, tiny_split) -> None:
    model = make_score_model(tiny_split)
    result = calibrate(model, num_trajectories=2, n_steps=8)
    assert len(result["coefficients"]) == 5 and np.isfinite(result["coefficients"]).all()
    assert result["n_points"] == 2 * 7 and np.isfinite(result["fit_rmse"])
    path = save_calibration(tmp_path / "teacache_calibration.json", result)
    assert load_calibration(path) == tuple(result["coefficients"])
    engine = CacheEngine(model.network, make_policy(TeaCacheConfig(calibration=str(path))))
    assert engine.policy.coefficients == tuple(result["coefficients"])


def test_teacache_calibration_bad_input_is_a_clear_error(tmp_path, tiny_split) -> None:
    with pytest.raises(InputError, match="at least 6"):
        fit_polynomial(np.ones(3), np.ones(3))
    with pytest.raises(InputError, match="NaN"):
        fit_polynomial(np.array([0.1, 0.2, 0.3, np.nan, 0.5, 0.6]), np.ones(6))
    with pytest.raises(ConfigError, match="num_trajectories"):
        calibrate(make_score_model(tiny_split), num_trajectories=0)
    with pytest.raises(ConfigError, match="no such file"):
        make_policy(TeaCacheConfig(calibration=str(tmp_path / "missing.json")))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"coefficients": [1.0, "x"]}))
    with pytest.raises(ConfigError, match="5 finite coefficients"):
        make_policy(TeaCacheConfig(calibration=str(bad)))


def test_calibrate_command_writes_next_to_the_checkpoint(tmp_path, tiny_split) -> None:
    from fdbench.checkpoint import save_checkpoint
    from fdbench.cli import main

    checkpoint = save_checkpoint(tmp_path / "ckpt", make_score_model(tiny_split))
    assert main(["calibrate", "teacache", "--checkpoint", str(checkpoint),
                 "--num-trajectories", "2", "--steps", "6"]) == 0
    saved = json.loads((checkpoint / "teacache_calibration.json").read_text())
    assert saved["steps"] == 6 and len(saved["coefficients"]) == 5
    assert main(["calibrate", "teacache", "--checkpoint", str(tmp_path / "nope")]) == 2


def test_parse_policy_overrides_reach_peer_fields() -> None:
    from fdbench.cache import parse_policy

    assert parse_policy("fora:cache_interval=5,warmup_steps=2", N) == FORAConfig(5, 2)
    assert parse_policy("teacache:coefficients=0;0;0;2;0", N).coefficients == (0, 0, 0, 2, 0)
    assert parse_policy("teacache:calibration=c.json", N).calibration == "c.json"
    assert parse_policy("taylorseer2", N) == replace(TaylorSeerCacheConfig(), max_order=2)


def test_every_module_cache_runs_on_every_solver(tiny_split) -> None:
    """Composition: on every solver (Heun's stage-1 calls included) each module policy's
    degenerate setting reproduces the uncached samples and its default setting runs,
    skips work and stays finite."""
    from fdbench.generate import generate
    from fdbench.solvers import SOLVERS

    model = make_score_model(tiny_split)
    kwargs = {"n_steps": 6, "seed": 0, "progress": False}
    for solver in sorted(SOLVERS):
        plain = generate(model, 2, solver=solver, **kwargs)
        for name in MODULE_POLICIES:
            exact = CacheEngine(model.network, make_policy(default(name).recompute_all()))
            cached = generate(model, 2, solver=solver, engine=exact, **kwargs)
            assert torch.allclose(cached, plain, atol=1e-5), (solver, name)
            engine = CacheEngine(model.network, make_policy(default(name)))
            assert torch.isfinite(generate(model, 2, solver=solver, engine=engine,
                                           **kwargs)).all()
            assert engine.stats.summary()["recompute_fraction"] < 1.0, (solver, name)


@pytest.mark.parametrize("name", MODULE_POLICIES)
def test_recorded_flops_equal_the_executed_op_count(name) -> None:
    """Every call's recorded FLOPs (from the executed shapes) equal what FlopCounterMode
    counts for it: reused modules cost nothing, subsets cost their rows, the decision's
    own matmuls (ToCa's attention map) are included."""
    from fdbench.flops import count_executed_flops

    xs = uneven()
    engine = CacheEngine(NET, make_policy(default(name)))
    engine.start_batch(len(xs), torch.arange(BATCH))
    for i, x in enumerate(xs):
        counted = count_executed_flops(lambda: engine(x, times(i), i))  # noqa: B023
        assert engine.stats.steps[-1].flops == pytest.approx(counted, rel=1e-9), (name, i)
