"""The peer caches' details as their reference code (ToCa's normalised score and schedule,
DuCa's step order, TaylorSeer's warm-up, FreqCa's damped forecast): each test fails under
fdbench's earlier reading."""

from __future__ import annotations

import pytest
import torch

from fdbench.cache import (
    CacheEngine,
    DuCaConfig,
    FreqCaConfig,
    StepInfo,
    TaylorSeerCacheConfig,
    ToCaConfig,
    make_policy,
)
from fdbench.cache.freqca import hermite_forecast, lagrange_weights
from fdbench.cache.module_reuse import Computed
from fdbench.cache.taylorseer import taylor_forecast, update_differences
from fdbench.errors import ConfigError
from fdbench.flops import matmul_total, module_forward_flops
from tests.test_cache_peers import (
    BATCH,
    NET,
    STEPS,
    M,
    N,
    run,
    times,
)


def series(steps: int, seed: int = 0, batch: int = BATCH) -> list[torch.Tensor]:
    """A smooth noisy path of ``steps`` inputs (``trajectory`` with another length)."""
    g = torch.Generator().manual_seed(seed)
    start, end = torch.randn(batch, N, M, generator=g), torch.randn(batch, N, M, generator=g)
    return [start + (end - start) * i / steps + 0.05 * torch.randn(batch, N, M, generator=g)
            for i in range(steps)]


def started(config, steps: int = STEPS, batch: int = 1):
    """The policy of a fresh engine after ``start_batch`` (bound and reset)."""
    engine = CacheEngine(NET, make_policy(config))
    engine.start_batch(steps, torch.arange(batch))
    return engine.policy


def step_kinds(engine: CacheEngine) -> str:
    """Per call: F full step, C an FFN subset recomputed, A nothing recomputed."""
    return "".join("F" if r.full else ("C" if r.executed_fraction > 0 else "A")
                   for r in engine.stats.records())


@pytest.mark.parametrize("readings,chosen", [
    ({}, 1),                                                    # the ToCa code
    ({"score_norm": "none", "age_scale": "tokens"}, 0),         # the earlier reading
    ({"score_norm": "l2", "age_scale": "tokens"}, 0),
    ({"score_norm": "none", "age_scale": "interval"}, 0),
])
def test_toca_scores_normalised_attention_plus_age_over_the_interval(readings, chosen) -> None:
    """8 tokens, one chosen per layer, no forced band. Token 0 receives the most attention
    (3.0), token 1 a little less (2.6) but is 3 cache steps stale. The code's score
    s / ||s||_2 + 0.25 * 3 / N (N = 4) picks token 1 (0.808 > 0.716); raw sums, or the
    age over n_tokens = 8, keep token 0."""
    policy = started(ToCaConfig(K=None, fresh_ratio=0.125, schedule="constant", **readings))
    layers = NET.config.n_layers
    sums = torch.tensor([[3.0, 2.6, 1.2, 0.4, 0.3, 0.2, 0.2, 0.1]])
    age = torch.tensor([[0.0, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    policy.scores = [sums.clone() for _ in range(layers)]
    policy.age = [age.clone() for _ in range(layers)]
    tokens = policy.select(StepInfo(5, STEPS, times(5, 1)))
    assert [t.tolist() for t in tokens] == [[[chosen]]] * layers
    expected_age = age + 1.0
    expected_age[0, chosen] = 0.0
    assert all(torch.equal(a, expected_age) for a in policy.age)


def test_toca_schedule_scales_the_share_by_layer_and_step() -> None:
    """The code's ratio schedule r * (1.8 - 1.6 l / (L - 1)) * (1.4 - 0.8 s / T), s = T-1-i:
    2 layers, r = 0.5, 8 tokens, step 5 of 10 (s = 4, step factor 1.08): ceil(7.78) = 8
    tokens in layer 0, ceil(0.86) = 1 in layer 1; the constant schedule gives 4 and 4."""
    step = StepInfo(5, 10, times(5, 1))
    assert started(ToCaConfig(K=None, fresh_ratio=0.5), 10).fresh_counts(step) == [8, 1]
    constant = ToCaConfig(K=None, fresh_ratio=0.5, schedule="constant")
    assert started(constant, 10).fresh_counts(step) == [4, 4]
    # the low band is a floor: K=5 forces 6 of the 8 tokens
    assert started(ToCaConfig(fresh_ratio=0.5), 10).fresh_counts(step) == [8, 6]


def test_toca_fresh_steps_follow_the_step_factor() -> None:
    """N = 4 over T = 20 steps: after a fresh step at i the next is round(4 / f(i)) later,
    f(i) = 1.4 - 0.8 (T-1-i) / T: gaps 6, 5, 4, 3, then the last step (0, 6, 11, 15, 18,
    19) — sparse early, dense late; the constant schedule refreshes at 0, 4, 8, 12, 16."""
    for schedule, fresh in (("toca", [0, 6, 11, 15, 18, 19]),
                            ("constant", [0, 4, 8, 12, 16, 19])):
        engine = CacheEngine(NET, make_policy(ToCaConfig(cache_interval=4, schedule=schedule)))
        run(engine, series(20))
        assert [i for i, r in enumerate(engine.stats.records()) if r.full] == fresh, schedule


@pytest.mark.parametrize("interval,order,kinds", [
    (4, "conservative_first", "FCACFCACFF"),      # the PixArt / Open-Sora code, and DiT's
    (5, "conservative_first", "FCACAFCACAF"),
    (4, "before_refresh", "FCACFCACFF"),          # the DiT code (steps counted down)
    (5, "before_refresh", "FACACFACACF"),
    (4, "aggressive_first", "FACAFACAFF"),        # the earlier reading
    (5, "aggressive_first", "FACACFACACF"),
])
def test_duca_alternates_conservative_and_aggressive_steps(interval, order, kinds) -> None:
    """The default order makes the 1st, 3rd, ... cache step after a fresh step conservative
    (FFN on a token subset) and the 2nd, 4th, ... aggressive (nothing recomputed), for even
    and odd N; the DiT code's parity (conservative right before each refresh) agrees for
    even N only."""
    config = DuCaConfig(cache_interval=interval, order=order)
    engine = CacheEngine(NET, make_policy(config))
    run(engine, series(len(kinds)))
    assert step_kinds(engine) == kinds


def test_duca_aggressive_step_reuses_the_previous_final_stream() -> None:
    """The code's aggressive step skips every layer and reuses the last step's final stream
    (this head has no time input: the same score, at the cost of embedding and head only);
    the FORA-like reading reruns the add+LayerNorm path with the new input instead."""
    xs = series(10)
    engine = CacheEngine(NET, make_policy(DuCaConfig()))
    outputs = run(engine, xs)                                  # step 2 is aggressive
    assert torch.allclose(outputs[2], outputs[1], atol=1e-6)
    assert not torch.allclose(outputs[1], outputs[0], atol=1e-4)
    record = engine.stats.records()[2]
    assert record.executed_fraction == 0.0
    assert record.flops == pytest.approx(matmul_total(module_forward_flops(NET.config, BATCH,
                                                                           [])))
    fora_like = run(CacheEngine(NET, make_policy(DuCaConfig(aggressive="modules"))), xs)
    assert not torch.allclose(fora_like[2], fora_like[1], atol=1e-4)


def test_duca_draws_per_layer_and_favours_stale_tokens() -> None:
    """DuCa's score is a fresh uniform draw per layer and sample plus ToCa's age term: with
    a dominant age weight the second conservative step takes exactly the tokens the first
    left out (4 of 8 each), and the two layers draw different subsets."""
    config = DuCaConfig(K=None, fresh_ratio=0.5, age_weight=10.0, cache_interval=8)
    xs = series(8)
    engine = CacheEngine(NET, make_policy(config))
    engine.start_batch(len(xs), torch.arange(BATCH))
    subsets = {}
    for i, x in enumerate(xs[:4]):                             # F C A C
        engine(x, times(i), i)
        if i in (1, 3):
            subsets[i] = [t.tolist() for t in engine.policy.tokens]
    assert step_kinds(engine) == "FCAC"
    for layer in range(NET.config.n_layers):
        for b in range(BATCH):
            first, second = set(subsets[1][layer][b]), set(subsets[3][layer][b])
            assert len(first) == len(second) == 4 and first | second == set(range(8))
    assert subsets[1][0] != subsets[1][1]


def test_taylorseer_warm_up_steps_are_full_and_the_period_starts_after_them() -> None:
    """Defaults as the DiT code: 2 warm-up steps, then a compute step every 4 counted from
    the last warm-up step (1, 5, 9) and the last step; 3 warm-up steps give 0, 1, 2, 6, 10."""
    for config, fresh in ((TaylorSeerCacheConfig(), [0, 1, 5, 9, 11]),
                          (TaylorSeerCacheConfig(warmup_steps=3), [0, 1, 2, 6, 10, 11]),
                          (TaylorSeerCacheConfig(warmup_steps=0), [0, 4, 8, 11])):
        engine = CacheEngine(NET, make_policy(config))
        run(engine, series(12))
        assert [i for i, r in enumerate(engine.stats.records()) if r.full] == fresh, config


def test_taylorseer_differences_start_at_the_last_warm_up_step() -> None:
    """With 3 warm-up steps and order 2 the code forms differences only from step 2 on:
    forecasting starts at order 1 (D_0, D_1 per module: 2 L 2 tensors) and reaches order
    2 at the next compute step (2 L 3), not at step 2 already."""
    config = TaylorSeerCacheConfig(warmup_steps=3, max_order=2)
    engine = CacheEngine(NET, make_policy(config))
    run(engine, series(12))
    layers = NET.config.n_layers
    tensors = engine.stats.trace("cached_tensors")
    assert tensors[2] == tensors[5] == 2 * layers * 2
    assert tensors[6] == tensors[9] == 2 * layers * 3


def test_hermite_forecast_damps_the_second_order_term() -> None:
    """y(i) = i^2 computed at steps 0, 4, 8: D = [64, 12, 2]. At step 10 (t = 2) Taylor
    gives 64 + 24 + 2 * 4 / 2 = 92; Hermite with s = 1/sqrt(2) gives 64 + 24 + 2 (4 - 1) / 2
    = 91 (He_2(t) = t^2 - 1); the code's s = 0.71 gives 64 + 12 * 2 s^2 t + 2 (4 s^2 t^2 - 2)
    s^2 / 2; the polynomial through the points (the earlier reading) gives 100."""
    value = lambda i: torch.tensor([float(i * i)], dtype=torch.float64)  # noqa: E731
    differences = update_differences([value(0)], value(4), 4.0, 2)
    differences = update_differences(differences, value(8), 4.0, 2)
    assert [float(d) for d in differences] == [64.0, 12.0, 2.0]
    assert float(taylor_forecast(differences, 2.0)) == pytest.approx(92.0)
    assert float(hermite_forecast(differences, 2.0, 2 ** -0.5)) == pytest.approx(91.0)
    s = 0.71
    assert float(hermite_forecast(differences, 2.0, s)) == pytest.approx(
        64 + 12 * 2 * s * s * 2 + 2 * (4 * s * s * 4 - 2) * s * s / 2)
    weights = lagrange_weights([0.0, 4.0, 8.0], 10.0)
    assert sum(w * float(value(i)) for w, i in zip(weights, (0, 4, 8), strict=True)) == \
        pytest.approx(100.0)


def test_freqca_reuses_the_low_band_and_forecasts_the_high_band_as_the_code() -> None:
    """Residuals R(i) = i^2 (every token) stored at the warm-up steps 0, 1, 2: the code
    restarts the differences before step 2, so at step 4 (t = 2) the high band is the
    first-order Hermite forecast 4 + 3 * 2 s^2 * 2 (s = 0.71), the low band (bins <= K)
    R(2) = 4; the earlier reading (quadratic through 0, 1, 2) gives 16."""
    def residual_run(config):
        policy = started(config, 12)
        u = torch.zeros(1, NET.config.n_tokens, NET.config.d_model)
        for i in range(3):
            policy.store(StepInfo(i, 12, times(i, 1)), Computed(None, u, u, u + i * i))
        return policy.plan(StepInfo(4, 12, times(4, 1)), u).residual[0, :, 0]

    estimate = residual_run(FreqCaConfig(K=2))
    low = torch.arange(NET.config.n_tokens) <= 2
    assert torch.allclose(estimate[low], torch.tensor(4.0))
    assert torch.allclose(estimate[~low], torch.tensor(4 + 3 * 2 * 0.71 ** 2 * 2))
    earlier = residual_run(FreqCaConfig(K=2, forecast="lagrange"))
    assert torch.allclose(earlier[~low], torch.tensor(16.0), atol=1e-5)


@pytest.mark.parametrize("config", [
    DuCaConfig(order="before_refresh"), DuCaConfig(aggressive="modules"),
    DuCaConfig(schedule="toca", warmup_steps=2), ToCaConfig(warmup_steps=3),
    TaylorSeerCacheConfig(warmup_steps=3, max_order=2),
    FreqCaConfig(forecast="taylor"), FreqCaConfig(forecast="lagrange", warmup_steps=0),
], ids=repr)
def test_stage_one_calls_never_change_state_under_the_reading_options(config) -> None:
    """Heun's second evaluations interleaved leave every stage-0 output as it is (the
    schedule-dependent fresh steps and DuCa's stream included)."""
    xs = series(20, seed=4)
    plain = run(CacheEngine(NET, make_policy(config)), xs)
    with_heun = run(CacheEngine(NET, make_policy(config)), xs, heun=True)
    assert all(torch.equal(a, b) for a, b in zip(plain, with_heun, strict=True))


@pytest.mark.parametrize("config,field", [
    (lambda: ToCaConfig(score_norm="max"), "ToCaConfig.score_norm"),
    (lambda: ToCaConfig(age_scale="steps"), "ToCaConfig.age_scale"),
    (lambda: ToCaConfig(schedule="linear"), "ToCaConfig.schedule"),
    (lambda: ToCaConfig(age_weight=-0.1), "ToCaConfig.age_weight"),
    (lambda: DuCaConfig(order="random"), "DuCaConfig.order"),
    (lambda: DuCaConfig(aggressive="all"), "DuCaConfig.aggressive"),
    (lambda: FreqCaConfig(forecast="spline"), "FreqCaConfig.forecast"),
    (lambda: FreqCaConfig(max_order=3), "FreqCaConfig.max_order"),
    (lambda: FreqCaConfig(damping=0.0), "FreqCaConfig.damping"),
])
def test_reading_options_are_validated(config, field) -> None:
    with pytest.raises(ConfigError, match=f"{field} must be"):
        config()
