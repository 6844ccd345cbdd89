"""Tests for fdbench.sde: VP/VE marginals against the SDE they come from, the mirrored
forward marginal, the reverse drift with Lambda^2, and config validation (docs/METHOD.md §1).

References are spelled out here from the formulas (Song et al. 2021, eqs. 9, 11, 29, 30;
Crabbé et al. 2024, Prop. 3.1), never taken from the module under test. Exactness is
asserted in float64; Monte Carlo checks use fixed generators and derived tolerances.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from fdbench.errors import ConfigError
from fdbench.sde import (
    VESDE,
    VPSDE,
    marginal_std,
    perturb,
    prior_sample,
    reverse_drift,
    sde_from_dict,
)
from fdbench.spectral import chart_lambda

F64 = torch.float64
TIMES = [0.01, 0.05, 0.2, 0.5, 0.8, 0.95, 0.99]
VP_CASES = [VPSDE(), VPSDE(beta_min=0.5, beta_max=5.0), VPSDE(beta_min=1e-3, beta_max=40.0)]
VE_CASES = [VESDE(), VESDE(sigma_min=0.05, sigma_max=50.0)]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _central_difference(f, t: torch.Tensor, h: float) -> torch.Tensor:
    return (f(t + h) - f(t - h)) / (2 * h)


# --------------------------------------------------------------------------- marginals


@pytest.mark.parametrize("sde", VP_CASES, ids=repr)
def test_vp_marginal_solves_the_sde_moment_equations(sde: VPSDE) -> None:
    """For dx = -beta/2 x dt + sqrt(beta) Lambda dw the mean coefficient and variance obey
    d/dt log m(t) = -beta(t)/2 and d/dt s(t)^2 = beta(t) (1 - s(t)^2) (per unit Lambda^2);
    checked by central differences in float64 at several t."""
    t = torch.tensor(TIMES, dtype=F64)
    beta = sde.beta_min + t * (sde.beta_max - sde.beta_min)  # beta(t), spelled out
    assert torch.allclose(sde.beta(t), beta, rtol=1e-15, atol=0)
    # log m is quadratic in t, so its central difference is exact up to round-off
    dlogm = _central_difference(sde.log_mean_coeff, t, 1e-4)
    assert torch.allclose(dlogm, -beta / 2, rtol=1e-8, atol=0)
    dvar = _central_difference(lambda u: sde.std(u).square(), t, 1e-5)
    s2 = sde.std(t).square()
    assert torch.allclose(dvar, beta * (1 - s2), rtol=1e-6, atol=1e-9)
    # the closed forms (Song et al. 2021, eq. 29) and m^2 + s^2 = 1
    log_m = -(t**2) * (sde.beta_max - sde.beta_min) / 4 - t * sde.beta_min / 2
    assert torch.allclose(sde.mean_coeff(t), log_m.exp(), rtol=1e-14, atol=0)
    assert torch.allclose(s2 + sde.mean_coeff(t).square(), torch.ones_like(t), atol=1e-14)
    # the SDE's coefficients
    x = torch.randn(len(t), 4, 2, generator=_gen(0), dtype=F64)
    assert torch.allclose(sde.drift(x, t), -beta[:, None, None] / 2 * x, rtol=1e-15, atol=0)
    assert torch.allclose(sde.diffusion(t), beta.sqrt(), rtol=1e-15, atol=0)


def test_vp_marginal_at_time_zero_and_small_t() -> None:
    """m(0) = 1 and s(0) = 0 exactly; for small t, s(t)^2 = 1 - m^2 keeps its relative
    precision in float32 (s^2 ~ beta_min t, no cancellation)."""
    sde = VPSDE()
    zero = torch.zeros(1, dtype=F64)
    assert float(sde.mean_coeff(zero)) == 1.0
    assert float(sde.std(zero)) == 0.0
    small = torch.tensor([1e-5, 1e-4, 1e-3])
    exact = torch.sqrt(-torch.expm1(2 * sde.log_mean_coeff(small.to(F64))))
    assert torch.allclose(sde.std(small).to(F64), exact, rtol=1e-5, atol=0)


@pytest.mark.parametrize("sde", VE_CASES, ids=repr)
def test_ve_marginal_solves_the_sde_moment_equation(sde: VESDE) -> None:
    """For dx = g(t) Lambda dw: d/dt std(t)^2 = g(t)^2 with sigma(t) = sigma_min
    (sigma_max/sigma_min)^t and g = sigma sqrt(2 log(sigma_max/sigma_min)); mean 1, no
    drift, prior std sigma_max."""
    t = torch.tensor(TIMES, dtype=F64)
    sigma = sde.sigma_min * (sde.sigma_max / sde.sigma_min) ** t
    g2 = sigma**2 * 2 * math.log(sde.sigma_max / sde.sigma_min)
    assert torch.allclose(sde.std(t), sigma, rtol=1e-14, atol=0)
    assert torch.allclose(sde.diffusion(t).square(), g2, rtol=1e-14, atol=0)
    dvar = _central_difference(lambda u: sde.std(u).square(), t, 1e-5)
    assert torch.allclose(dvar, g2, rtol=1e-7, atol=0)
    assert torch.equal(sde.mean_coeff(t), torch.ones_like(t))
    x = torch.randn(len(t), 3, 2, generator=_gen(1), dtype=F64)
    assert torch.equal(sde.drift(x, t), torch.zeros_like(x))
    assert sde.prior_std() == sde.sigma_max


# --------------------------------------------------------------------------- perturb


@pytest.mark.parametrize("sde", [VPSDE(), VESDE()], ids=["vp", "ve"])
@pytest.mark.parametrize("n_steps", [7, 8])
def test_perturb_is_the_mirrored_marginal(sde, n_steps: int) -> None:
    """perturb(x0, t, z) = m(t) x0 + s(t) Lambda z elementwise, per-sample t; marginal_std
    is s(t) Lambda_j with shape (B, N, 1); prior_sample is prior_std Lambda z; Lambda=None
    means Lambda = I."""
    b, m = 5, 3
    x0 = torch.randn(b, n_steps, m, generator=_gen(2), dtype=F64)
    z = torch.randn(b, n_steps, m, generator=_gen(3), dtype=F64)
    t = torch.linspace(0.1, 0.9, b, dtype=F64)
    lam = chart_lambda(n_steps, dtype=F64)
    mean, std = sde.mean_coeff(t), sde.std(t)
    for i in range(b):
        for j in range(n_steps):
            expected = mean[i] * x0[i, j] + std[i] * lam[j] * z[i, j]
            assert torch.allclose(perturb(sde, x0, t, z, lam)[i, j], expected, atol=1e-14)
    expected_std = std[:, None, None] * lam[None, :, None]
    got_std = marginal_std(sde, t, lam)
    assert got_std.shape == (b, n_steps, 1)
    assert torch.allclose(got_std, expected_std, rtol=1e-15, atol=0)
    assert torch.allclose(perturb(sde, x0, t, z, None), mean[:, None, None] * x0
                          + std[:, None, None] * z, rtol=1e-15, atol=1e-15)
    assert torch.allclose(prior_sample(sde, z, lam), sde.prior_std() * lam[:, None] * z,
                          rtol=1e-15, atol=0)


@pytest.mark.parametrize("sde", [VPSDE(), VESDE()], ids=["vp", "ve"])
@pytest.mark.parametrize("n_steps", [7, 8])
@pytest.mark.parametrize("t_value", [0.1, 0.5, 0.9])
def test_perturb_moments_monte_carlo(sde, n_steps: int, t_value: float) -> None:
    """x_t | x0 has mean m(t) x0 and per-coordinate variance s(t)^2 Lambda_j^2.

    Tolerance: with n draws the sample mean of coordinate j has sd s Lambda_j / sqrt(n)
    and the unbiased sample variance has sd sqrt(2/(n-1)) s^2 Lambda_j^2 (Gaussian).
    A Bonferroni bound over the 2 N M statistics at level alpha = 1e-6 with the Gaussian
    tail 2 Phi(-z) <= exp(-z^2/2) gives z = sqrt(2 ln(2 N M / alpha)); +1 sigma of slack for
    the chi-square skew of the variance at finite n. A missing Lambda moves the variance
    of the 1/sqrt(2) positions by a factor 2 (~ 50 sigma here)."""
    n, m = 20_000, 2
    x0 = torch.randn(1, n_steps, m, generator=_gen(4), dtype=F64).expand(n, -1, -1)
    z = torch.randn(n, n_steps, m, generator=_gen(5), dtype=F64)
    t = torch.full((n,), t_value, dtype=F64)
    lam = chart_lambda(n_steps, dtype=F64)
    xt = perturb(sde, x0, t, z, lam)

    t0 = torch.tensor([t_value], dtype=F64)
    m_t, s_t = float(sde.mean_coeff(t0)), float(sde.std(t0))
    sd_coord = (s_t * lam)[:, None].expand(-1, m)  # (N, M)
    z_crit = math.sqrt(2 * math.log(2 * n_steps * m / 1e-6)) + 1.0

    mean_err = (xt.mean(0) - m_t * x0[0]).abs() / (sd_coord / math.sqrt(n))
    assert float(mean_err.max()) <= z_crit
    var_err = (xt.var(0) - sd_coord.square()).abs() / (math.sqrt(2 / (n - 1)) * sd_coord**2)
    assert float(var_err.max()) <= z_crit


# --------------------------------------------------------------------------- reverse drift


@pytest.mark.parametrize("sde", [VPSDE(), VPSDE(0.5, 5.0), VESDE(), VESDE(0.05, 50.0)],
                         ids=repr)
@pytest.mark.parametrize("n_steps", [5, 6])
def test_reverse_drift_is_f_minus_g2_lambda2_score(sde, n_steps: int) -> None:
    """reverse_drift = f(x, t) - g(t)^2 Lambda^2 score (Anderson 1982 with mirrored noise),
    spelled out per SDE kind; Lambda = None is the same as Lambda = ones."""
    b, m = 4, 3
    x = torch.randn(b, n_steps, m, generator=_gen(6), dtype=F64)
    score = torch.randn(b, n_steps, m, generator=_gen(7), dtype=F64)
    t = torch.tensor([0.02, 0.3, 0.6, 1.0], dtype=F64)
    lam = chart_lambda(n_steps, dtype=F64)
    if isinstance(sde, VPSDE):
        beta = sde.beta_min + t * (sde.beta_max - sde.beta_min)
        f, g2 = -0.5 * beta[:, None, None] * x, beta[:, None, None]
    else:
        sigma = sde.sigma_min * (sde.sigma_max / sde.sigma_min) ** t
        f = torch.zeros_like(x)
        g2 = (sigma**2 * 2 * math.log(sde.sigma_max / sde.sigma_min))[:, None, None]
    expected = f - g2 * lam[None, :, None] ** 2 * score
    got = reverse_drift(sde, x, t, score, lam)
    assert torch.allclose(got, expected, rtol=1e-13, atol=1e-13)
    ones = torch.ones(n_steps, dtype=F64)
    assert torch.allclose(reverse_drift(sde, x, t, score, None),
                          reverse_drift(sde, x, t, score, ones), rtol=0, atol=1e-14)
    assert torch.allclose(reverse_drift(sde, x, t, score, None), f - g2 * score,
                          rtol=1e-13, atol=1e-13)


# --------------------------------------------------------------------------- configs


@pytest.mark.parametrize(
    ("cls", "kwargs", "field"),
    [
        (VPSDE, {"beta_min": 0.0}, "beta_min"),
        (VPSDE, {"beta_min": -0.1}, "beta_min"),
        (VPSDE, {"beta_min": 20.0, "beta_max": 20.0}, "beta_max"),
        (VPSDE, {"beta_min": 5.0, "beta_max": 1.0}, "beta_max"),
        (VPSDE, {"beta_min": float("nan")}, "beta_min"),
        (VPSDE, {"eps": 0.0}, "eps"),
        (VPSDE, {"eps": 1.0}, "eps"),
        (VPSDE, {"eps": -1e-5}, "eps"),
        (VPSDE, {"eps": float("nan")}, "eps"),
        (VESDE, {"sigma_min": 0.0}, "sigma_min"),
        (VESDE, {"sigma_min": -1.0}, "sigma_min"),
        (VESDE, {"sigma_min": 2.0, "sigma_max": 2.0}, "sigma_max"),
        (VESDE, {"sigma_min": 3.0, "sigma_max": 2.0}, "sigma_max"),
        (VESDE, {"eps": 0.0}, "eps"),
        (VESDE, {"eps": 1.5}, "eps"),
    ],
)
def test_bad_sde_config_raises_config_error(cls, kwargs: dict, field: str) -> None:
    """Out-of-range SDE fields raise ConfigError whose message names the field."""
    with pytest.raises(ConfigError, match=field):
        cls(**kwargs)


@pytest.mark.parametrize("sde", [VPSDE(), VPSDE(0.2, 10.0, 1e-3), VESDE(),
                                 VESDE(0.05, 50.0, 1e-4)], ids=repr)
def test_sde_from_dict_round_trips(sde) -> None:
    """sde_from_dict(to_dict()) rebuilds an equal SDE of the same kind (also through JSON)
    and does not mutate the dict it is given."""
    fields = sde.to_dict()
    assert fields["kind"] == sde.kind
    snapshot = dict(fields)
    rebuilt = sde_from_dict(fields)
    assert fields == snapshot
    assert type(rebuilt) is type(sde) and rebuilt == sde
    assert sde_from_dict(json.loads(json.dumps(fields))) == sde


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": "subvp", "beta_min": 0.1, "beta_max": 20.0, "eps": 1e-5},
        {"beta_min": 0.1, "beta_max": 20.0, "eps": 1e-5},
        {"kind": None},
        {"kind": "vp", "sigma_min": 0.01},
        {"kind": "ve", "beta_min": 0.1},
        {"kind": "vp", "beta_min": -1.0},
    ],
    ids=["unknown-kind", "missing-kind", "none-kind", "vp-unknown-field", "ve-unknown-field",
         "vp-bad-value"],
)
def test_sde_from_dict_rejects_bad_dicts(fields: dict) -> None:
    """An unknown or missing kind, an unknown field or an out-of-range value raise
    ConfigError."""
    with pytest.raises(ConfigError):
        sde_from_dict(fields)
