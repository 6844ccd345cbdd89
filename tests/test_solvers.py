"""Solvers, time grids, per-sample noise and sample generation. The solver tests use
Gaussian data with the analytic score (solvers.py's derivation under test), see
``gaussian_score`` below."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fdbench.cache import POLICY_PRESETS, CacheEngine, make_policy, parse_policy
from fdbench.errors import ConfigError
from fdbench.generate import generate
from fdbench.randomness import PerSampleNoise, sample_seed
from fdbench.sde import SDE, VESDE, VPSDE, prior_sample
from fdbench.solvers import (
    SOLVERS,
    SolverConfig,
    data_prediction,
    ddim,
    dpmpp_2m,
    noise_prediction,
    ode_heun,
    reverse_euler_maruyama,
    uniform_times,
)
from fdbench.spectral import chart, chart_lambda
from fdbench.time_grids import GRIDS, edm_times, half_log_snr, log_snr_times, make_grid
from tests.conftest import make_score_model


def test_uniform_times_is_the_base_grid() -> None:
    times = uniform_times(1000, 1e-5)
    assert times[0] == 1.0 and abs(float(times[-1]) - 1e-5) < 1e-15
    assert torch.allclose(times[:-1] - times[1:], torch.full((999,), (1 - 1e-5) / 999,
                                                              dtype=torch.float64))
    with pytest.raises(ConfigError, match="steps"):
        uniform_times(1, 1e-5)


def test_em_step_matches_the_written_update() -> None:
    """One EM step is x + dt [beta/2 x + beta Lambda^2 s] + sqrt(beta dt) Lambda z
    (docs/METHOD.md §1), with the score evaluated at t_i."""
    sde, n = VPSDE(), 7
    lam = chart_lambda(n, dtype=torch.float64)
    x = torch.randn(3, n, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    z = torch.randn(3, n, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    times = torch.tensor([0.7, 0.6], dtype=torch.float64)

    def score_fn(x: torch.Tensor, t: torch.Tensor, step: int) -> torch.Tensor:
        return -x * (1 + t[:, None, None])

    seen = []
    out = reverse_euler_maruyama(score_fn, x, times[:2], sde, lam, lambda shape: z,
                                 callback=lambda i, t, x, s: seen.append(i))
    assert seen == [0, 1]
    # spell the two steps out
    dt, y = 0.1, x.clone()
    for t in (0.7, 0.6):
        beta = 0.1 + t * 19.9
        s = -y * (1 + t)
        y = y + dt * (beta / 2 * y + beta * lam[:, None] ** 2 * s) + math.sqrt(beta * dt) * \
            lam[:, None] * z
    assert torch.allclose(out, y, atol=1e-12)


def test_noise_free_last_step_only_drops_the_last_noise() -> None:
    sde, lam = VPSDE(), chart_lambda(5)
    x = torch.zeros(2, 5, 1)
    times = uniform_times(3, sde.eps)
    ones = lambda shape: torch.ones(2, *shape)  # noqa: E731
    zero_score = lambda x, t, i: torch.zeros_like(x)  # noqa: E731
    noisy = reverse_euler_maruyama(zero_score, x, times, sde, lam, ones)
    clean = reverse_euler_maruyama(zero_score, x, times, sde, lam, ones,
                                   noise_free_last_step=True)
    g_last = float(sde.diffusion(times[-1:]))
    dt = float(times[0] - times[1])
    assert torch.allclose(noisy - clean, math.sqrt(dt) * g_last * lam[:, None].expand(2, 5, 1))


def test_per_sample_noise_does_not_depend_on_the_batch() -> None:
    together = PerSampleNoise(3, [0, 1, 2, 3])
    alone = [PerSampleNoise(3, [i]) for i in range(4)]
    for _ in range(3):  # successive draws continue each sample's own stream
        batch = together((5, 2))
        single = torch.cat([noise((5, 2)) for noise in alone])
        assert torch.equal(batch, single)
    assert sample_seed(0, 1) != sample_seed(1, 0) != sample_seed(0, 0)


def test_same_seed_gives_bit_identical_samples(tiny_split) -> None:
    model = make_score_model(tiny_split)
    first = generate(model, 5, n_steps=20, seed=7, batch_size=5, progress=False)
    second = generate(model, 5, n_steps=20, seed=7, batch_size=5, progress=False)
    other = generate(model, 5, n_steps=20, seed=8, batch_size=5, progress=False)
    assert torch.equal(first, second)
    assert not torch.allclose(first, other)


@pytest.mark.parametrize("layout", ["bins", "chart", "time"])
def test_batch_size_does_not_change_samples(tiny_split, layout) -> None:
    """Sample i depends only on (seed, i): batch 1 and batch 8 (and an offset start)
    give the same series."""
    model = make_score_model(tiny_split, layout=layout)
    batched = generate(model, 8, n_steps=30, seed=1, batch_size=8, progress=False)
    single = generate(model, 8, n_steps=30, seed=1, batch_size=1, progress=False)
    tail = generate(model, 3, n_steps=30, seed=1, batch_size=2, first_index=5, progress=False)
    assert torch.allclose(batched, single, rtol=1e-5, atol=1e-5)
    assert torch.allclose(batched[5:], tail, rtol=1e-5, atol=1e-5)


def test_samples_are_real_series_of_the_right_shape(tiny_split) -> None:
    model = make_score_model(tiny_split)
    samples = generate(model, 4, n_steps=10, seed=0, batch_size=3, progress=False)
    assert samples.shape == (4, 16, 2) and samples.dtype == torch.float32
    assert torch.isfinite(samples).all()


def test_sampler_reproduces_gaussian_covariance_with_analytic_score() -> None:
    """For data x0 ~ N(0, I) in chart coordinates, x_t ~ N(0, (m^2 + s^2 Lambda^2)) per
    coordinate and the exact score is -x / (m^2 + s^2 Lambda^2); reverse EM with it must
    end near the data covariance I (tolerance: 4000 samples, std of a variance estimate
    ~ sqrt(2/4000) = 0.022, plus O(dt) discretisation bias; we allow 0.1)."""
    sde, n = VPSDE(), 6
    lam = chart_lambda(n, dtype=torch.float64)

    def score_fn(x: torch.Tensor, t: torch.Tensor, step: int) -> torch.Tensor:
        m = sde.mean_coeff(t)[:, None, None]
        s = sde.std(t)[:, None, None]
        return -x / (m**2 + s**2 * lam[:, None] ** 2)

    generator = torch.Generator().manual_seed(0)
    noise = lambda shape: torch.randn((4000, *shape), generator=generator,  # noqa: E731
                                      dtype=torch.float64)
    x = prior_sample(sde, noise((n, 1)), lam)
    out = reverse_euler_maruyama(score_fn, x, uniform_times(500, sde.eps), sde, lam, noise,
                                 noise_free_last_step=True)
    variance = out.var(dim=0).squeeze(-1)
    assert torch.allclose(variance, torch.ones(n, dtype=torch.float64), atol=0.1), variance


# --- time grids ----------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(GRIDS))
def test_grids_run_from_one_to_eps(name) -> None:
    sde = VPSDE()
    times = make_grid(name, 17, sde)
    assert times.dtype == torch.float64 and times.shape == (17,)
    assert times[0] == 1.0 and times[-1] == sde.eps
    assert (times[:-1] > times[1:]).all()


def test_grids_are_uniform_in_their_variable() -> None:
    """log_snr: equal steps of log(m/s); edm: equal steps of sigma^(1/7), sigma = s/m."""
    sde = VPSDE()
    lam = half_log_snr(sde, log_snr_times(12, sde))
    assert torch.allclose(lam.diff(), lam.diff()[:1].expand(11), rtol=1e-9)
    t = edm_times(12, sde)
    root = (sde.std(t) / sde.mean_coeff(t)) ** (1 / 7)
    assert torch.allclose(root.diff(), root.diff()[:1].expand(11), rtol=1e-9)


def test_bad_grid_arguments_raise() -> None:
    with pytest.raises(ConfigError, match="unknown time grid"):
        make_grid("cosine", 10, VPSDE())
    with pytest.raises(ConfigError, match=">= 2"):
        make_grid("edm", 1, VPSDE())
    with pytest.raises(ConfigError, match="rho"):
        edm_times(10, VPSDE(), rho=0.0)


@pytest.mark.parametrize(("fields", "field"), [
    ({"name": "rk45"}, "name"), ({"grid": "cosine"}, "grid"), ({"n_steps": 1}, "n_steps"),
    ({"name": "ddim", "eta": 1.5}, "eta"), ({"name": "em", "eta": 0.5}, "eta"),
    ({"rho": -1.0}, "rho"), ({"name": "ode_heun", "noise_free_last_step": True},
                             "noise_free_last_step")])
def test_solver_config_names_the_bad_field(fields, field) -> None:
    with pytest.raises(ConfigError, match=f"SolverConfig.{field} must be"):
        SolverConfig(**fields)


def test_generate_rejects_unknown_solver(tiny_model) -> None:
    with pytest.raises(ConfigError, match="SolverConfig.name"):
        generate(tiny_model, 2, n_steps=5, solver="rk4", progress=False)


# --- the analytic Gaussian ---------------------------------------------------------------

N_CHART, SDE_VP = 6, VPSDE()
LAM = chart_lambda(N_CHART, dtype=torch.float64)


def _data_covariance() -> torch.Tensor:
    """C = Q Sigma Q^T: an AR(1)-like time-domain Sigma seen through the chart matrix Q."""
    q = chart(torch.eye(N_CHART, dtype=torch.float64)[:, :, None])[..., 0].T  # (N, N)
    lag = (torch.arange(N_CHART)[:, None] - torch.arange(N_CHART)[None, :]).abs()
    sigma = 0.8 * 0.6 ** lag.double() + 0.2 * torch.eye(N_CHART, dtype=torch.float64)
    return q @ sigma @ q.T


COV = _data_covariance()


def gaussian_score_of(sde: SDE):
    """Exact score of x_t for x_0 ~ N(0, C) and mirrored noise: x_t ~ N(0, m^2 C + s^2
    Lambda^2), score -(m^2 C + s^2 Lambda^2)^{-1} x (one t per batch)."""
    def score(x: torch.Tensor, t: torch.Tensor, step: int, stage: int = 0) -> torch.Tensor:
        m, s = float(sde.mean_coeff(t[:1])), float(sde.std(t[:1]))
        cov = m * m * COV + s * s * torch.diag(LAM.square())
        return -torch.linalg.solve(cov, x[..., 0].T).T[..., None]
    return score


gaussian_score = gaussian_score_of(SDE_VP)


def exact_flow(x_T: torch.Tensor) -> torch.Tensor:
    """The probability-flow ODE's exact solution at t = 0. In w = U^T Lambda^{-1} x, with
    Lambda^{-1} C Lambda^{-1} = U diag(d) U^T, the ODE decouples into
    dw/dt = beta/2 (1/v - 1) w, v = m^2 d + s^2, solved by w(t) = w(1) sqrt(v(t)/v(1))."""
    d, u = torch.linalg.eigh(torch.diag(1 / LAM) @ COV @ torch.diag(1 / LAM))
    one = torch.ones(1, dtype=torch.float64)
    v1 = SDE_VP.mean_coeff(one) ** 2 * d + SDE_VP.std(one) ** 2
    w = (x_T[..., 0] / LAM) @ u * torch.sqrt(d / v1)
    return ((w @ u.T) * LAM)[..., None]


def draw(n: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    noise = lambda shape: torch.randn((n, *shape), generator=generator,  # noqa: E731
                                      dtype=torch.float64)
    return prior_sample(SDE_VP, noise((N_CHART, 1)), LAM), noise


def whitened_covariance_error(samples: torch.Tensor) -> float:
    """max |C^{-1/2} C_hat C^{-1/2} - I| with C_hat the (known zero mean) second moment."""
    evals, evecs = torch.linalg.eigh(COV)
    root = evecs @ torch.diag(evals.rsqrt()) @ evecs.T
    x = samples[..., 0]
    return float((root @ (x.T @ x / len(x)) @ root - torch.eye(N_CHART)).abs().max())


# Samples per covariance test and the tolerance: an entry of the whitened second moment
# W = C^{-1/2} C_hat C^{-1/2} of B exact samples has std sqrt(2/B) (diagonal) or sqrt(1/B)
# (off-diagonal), 0.022 for B = 4000; we allow 5 of those, 0.11, for sampling error plus
# discretisation bias (the step counts below keep the bias under ~0.04; measured).
N_COV, COV_TOL = 4000, 5 * math.sqrt(2 / 4000)
COV_CASES = [SolverConfig("em", 200), SolverConfig("em", 200, "log_snr"),
             SolverConfig("ode_euler", 50), SolverConfig("ode_heun", 20, "edm"),
             SolverConfig("ddim", 100), SolverConfig("ddim", 200, "log_snr", eta=1.0),
             SolverConfig("ddim", 100, "edm", eta=0.5), SolverConfig("dpmpp_2m", 40, "log_snr")]


def _label(config: SolverConfig) -> str:
    return f"{config.name}-{config.grid}-{config.n_steps}-eta{config.eta}"


@pytest.mark.parametrize("config", COV_CASES, ids=_label)
def test_solvers_reproduce_the_data_covariance(config) -> None:
    """Every solver, from the mirrored prior with the exact score, ends at N(0, C)."""
    x_T, noise = draw(N_COV)
    out = config.run(gaussian_score, x_T, SDE_VP, LAM, noise)
    assert whitened_covariance_error(out) < COV_TOL


@pytest.mark.parametrize("config", COV_CASES[::2], ids=_label)
def test_dropping_lambda_squared_breaks_the_covariance(config) -> None:
    """Proposition 3.1 needs Lambda^2 in the reverse drift: the same run with lam=None
    (the score and the prior still mirrored) misses C by far more than the tolerance."""
    x_T, noise = draw(N_COV)
    out = config.run(gaussian_score, x_T, SDE_VP, None, noise)
    assert whitened_covariance_error(out) > 2 * COV_TOL


def test_solvers_agree_on_the_ve_flow() -> None:
    """The (m, s) formulas hold for the VE-SDE too: DDIM (eta = 0) and DPM-Solver++(2M)
    integrate the same probability-flow ODE as Heun, to the same end point t = 0."""
    sde = VESDE()
    x_T = prior_sample(sde, draw(16, seed=4)[0] / LAM[:, None], LAM)
    runs = {name: SolverConfig(name, 200, "log_snr").run(gaussian_score_of(sde), x_T, sde,
                                                          LAM, None)
            for name in ("ode_heun", "ddim", "dpmpp_2m")}
    scale = float(runs["ode_heun"].abs().max())
    assert float((runs["ddim"] - runs["ode_heun"]).abs().max()) < 0.01 * scale
    assert float((runs["dpmpp_2m"] - runs["ode_heun"]).abs().max()) < 1e-4 * scale


def test_exact_flow_matches_a_fine_numerical_solve() -> None:
    """The reference of the order test agrees with 1000 Heun steps of the same ODE (whose
    error, ~2e-3 (40/1000)^2 = 3e-6, is far below the errors the order test measures)."""
    x_T, _ = draw(16, seed=3)
    fine = SolverConfig("ode_heun", 1001).run(gaussian_score, x_T, SDE_VP, LAM, None)
    assert (fine - exact_flow(x_T)).abs().max() < 1e-5


@pytest.mark.parametrize(("name", "grid", "order", "sizes"), [
    ("ode_euler", "uniform", 1, (21, 41, 81)), ("ddim", "uniform", 1, (21, 41, 81)),
    ("ode_heun", "uniform", 2, (11, 21, 41)), ("dpmpp_2m", "log_snr", 2, (41, 81, 161))])
def test_ode_solvers_converge_at_their_order(name, grid, order, sizes) -> None:
    """Error at t = 0 against the exact flow from the same x_T; halving every step
    (n - 1 intervals -> 2(n - 1)) divides it by ~2^order: the fitted order is within
    0.25 of the declared one on both halvings."""
    x_T, _ = draw(64, seed=1)
    errors = [float((SolverConfig(name, n, grid).run(gaussian_score, x_T, SDE_VP, LAM, None)
                     - exact_flow(x_T)).abs().max()) for n in sizes]
    observed = [math.log2(a / b) for a, b in zip(errors[:-1], errors[1:], strict=True)]
    assert all(abs(p - order) < 0.25 for p in observed), (errors, observed)


@settings(max_examples=20)
@given(st.floats(0.01, 1.0), st.integers(0, 2**31 - 1))
def test_noise_and_data_predictions_recompose_x(t, seed) -> None:
    """x = m x0_hat + s Lambda eps_hat for any score (the two predictions of the docstring)."""
    g = torch.Generator().manual_seed(seed)
    x, score = torch.randn(2, 3, N_CHART, 2, dtype=torch.float64, generator=g)
    tt = torch.tensor([t], dtype=torch.float64)
    m, s = float(SDE_VP.mean_coeff(tt)), float(SDE_VP.std(tt))
    recomposed = m * data_prediction(x, score, m, s, LAM) + \
        s * LAM[:, None] * noise_prediction(score, s, LAM)
    assert torch.allclose(recomposed, x, atol=1e-10)


def test_two_step_ddim_and_dpmpp_agree() -> None:
    """DPM-Solver++(2M)'s first step is DDIM (eta = 0) and both land on m' x0_hat at s = 0:
    with two steps they are the same map."""
    x_T, _ = draw(8, seed=2)
    times = uniform_times(2, SDE_VP.eps)
    a = ddim(gaussian_score, x_T, times, SDE_VP, LAM)
    b = dpmpp_2m(gaussian_score, x_T, times, SDE_VP, LAM)
    assert torch.allclose(a, b, atol=1e-12)


def test_em_on_a_non_uniform_grid_uses_each_spacing() -> None:
    """dt_i = t_i - t_{i+1}, the last step repeating the last spacing."""
    sde, lam = VPSDE(), chart_lambda(4, dtype=torch.float64)
    x = torch.randn(2, 4, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    z = torch.ones(2, 4, 1, dtype=torch.float64)
    times = torch.tensor([0.9, 0.5, 0.4], dtype=torch.float64)
    out = reverse_euler_maruyama(lambda y, t, i: -y, x, times, sde, lam, lambda shape: z)
    y = x.clone()
    for t, dt in ((0.9, 0.4), (0.5, 0.1), (0.4, 0.1)):
        beta = 0.1 + t * 19.9
        y = y + dt * (beta / 2 * y - beta * lam[:, None] ** 2 * y) + \
            math.sqrt(beta * dt) * lam[:, None] * z
    assert torch.allclose(out, y, atol=1e-12)


def test_heun_calls_stage_one_at_the_step_end() -> None:
    """Step i: stage 0 at t_i, stage 1 at t_{i+1} (not on the last step, which goes to 0)."""
    calls = []

    def spy(x, t, step, stage=0):
        calls.append((step, stage, round(float(t[0]), 6)))
        return gaussian_score(x, t, step)

    times = uniform_times(4, SDE_VP.eps)
    ode_heun(spy, draw(2)[0], times, SDE_VP, LAM)
    t = [round(v, 6) for v in times.tolist()]
    assert calls == [(0, 0, t[0]), (0, 1, t[1]), (1, 0, t[1]), (1, 1, t[2]), (2, 0, t[2]),
                     (2, 1, t[3]), (3, 0, t[3])]
    assert SolverConfig("ode_heun", 4).n_evaluations == len(calls)


# --- composition with the cache engine ------------------------------------------------------

@pytest.mark.parametrize(("policy", "solver"), [("fixed:R=3", "ode_heun"),
                                                 ("e2crf", "ode_heun"),
                                                 ("e2crf", "dpmpp_2m")])
def test_recompute_all_cache_on_a_solver_equals_uncached(tiny_split, policy, solver) -> None:
    """A cache engine forced to recompute everything, driven by a two-evaluation (or
    multistep) solver with batch 3, gives the uncached samples; the policy sees each
    step's stage 0 and (Heun) stage 1 call under the solver's step index."""
    model = make_score_model(tiny_split)
    engine = CacheEngine(model.network, make_policy(parse_policy(policy, model.n_steps)),
                         force_recompute_all=True)
    seen = []
    decide = engine.policy.decide
    engine.policy.decide = lambda info, units: seen.append((info.index, info.stage)) or \
        decide(info, units)
    kwargs = dict(n_steps=6, seed=2, batch_size=3, progress=False, solver=solver,
                  grid="log_snr")
    cached = generate(model, 3, engine=engine, **kwargs)
    plain = generate(model, 3, **kwargs)
    assert torch.allclose(cached, plain, atol=1e-5, rtol=1e-5)
    stages = (0, 1) if solver == "ode_heun" else (0,)
    expected = [(i, s) for i in range(6) for s in stages if not (i == 5 and s == 1)]
    assert seen == expected


@pytest.mark.parametrize("solver", sorted(SOLVERS))
def test_every_policy_runs_on_every_solver(tiny_split, solver) -> None:
    """Composition smoke test: each registered cache preset under each solver gives
    finite samples of the right shape (the engine is keyed by step index and stage)."""
    model = make_score_model(tiny_split)
    for name in sorted(POLICY_PRESETS):
        engine = CacheEngine(model.network, make_policy(parse_policy(name, model.n_steps)))
        out = generate(model, 2, n_steps=5, seed=0, batch_size=2, progress=False,
                       solver=solver, engine=engine)
        assert out.shape == (2, 16, 2) and torch.isfinite(out).all(), name
