"""Synthetic families vs their analytic spectra, within derived statistical tolerances.

Tolerance: for a zero-mean Gaussian series, the periodogram value P_k = |c_k|^2 has mean
E_k and variance E_k^2 (1 + |pseudo-variance|^2 / E_k^2) <= 2 E_k^2, so the mean of P_k over
B independent series has relative standard deviation <= sqrt(2 / B). Every bin is checked
at 5 of those standard deviations: a false alarm has probability ~6e-7 per bin (CLT, B in
the thousands), while a wrong spectrum (e.g. a factor 2 at any bin) fails by ~40 sigmas.
"""

from __future__ import annotations

import math

import pytest
import torch

from fdbench.data import load_dataset
from fdbench.data.synthetic import AR2, GaussianBumps, PowerLawGaussian
from fdbench.errors import ConfigError
from fdbench.spectral import localisation_curve

B = 4000


def periodogram(x: torch.Tensor) -> torch.Tensor:
    """Mean |c_k|^2 over series, (N//2+1,), from (B, N, 1)."""
    return (torch.fft.rfft(x.to(torch.float64), dim=1, norm="ortho").abs() ** 2).mean((0, 2))


def assert_spectrum(x: torch.Tensor, expected: torch.Tensor) -> None:
    ratio = periodogram(x) / expected
    bound = 5 * math.sqrt(2 / x.shape[0])
    worst = int((ratio - 1).abs().argmax())
    assert float((ratio - 1).abs().max()) < bound, (worst, float(ratio[worst]), bound)


@pytest.mark.parametrize("n_steps,exponent", [(64, 2.0), (33, 1.0), (16, 0.0)])
def test_powerlaw_matches_spectrum_and_unit_variance(n_steps: int, exponent: float) -> None:
    family = PowerLawGaussian(n_steps, exponent)
    x = family.sample(B, generator=torch.Generator().manual_seed(1))
    assert x.shape == (B, n_steps, 1) and x.dtype == torch.float32
    assert_spectrum(x, family.spectrum())
    # per-step variance 1 by construction: trace(Sigma) / N
    assert float(family.covariance().diagonal().mean()) == pytest.approx(1.0, abs=1e-12)


def test_powerlaw_covariance_is_the_sample_covariance_law() -> None:
    family = PowerLawGaussian(12, 1.5)
    x = family.sample(20000, generator=torch.Generator().manual_seed(2))[..., 0]
    empirical = (x.double().T @ x.double()) / x.shape[0]
    sigma = family.covariance()
    # entrywise sd of a sample covariance <= sqrt(2 / n) * max variance (= 1 here)
    assert float((empirical - sigma).abs().max()) < 5 * math.sqrt(2 / x.shape[0])


def test_powerlaw_score_is_minus_inverse_covariance_times_x() -> None:
    family = PowerLawGaussian(10, 2.0)
    x = torch.randn(3, 10, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    for scale, noise in ((1.0, 0.0), (0.7, 0.5)):
        cov = scale ** 2 * family.covariance() + noise ** 2 * torch.eye(10, dtype=torch.float64)
        expected = -torch.linalg.solve(cov, x)
        assert torch.allclose(family.score(x, scale=scale, noise_std=noise), expected,
                              atol=1e-9)
    with pytest.raises(ConfigError):
        family.score(x, scale=0.0, noise_std=0.0)


def test_ar2_matches_expected_periodogram() -> None:
    family = AR2(64, 0.9, 0.1)
    x = family.sample(B, generator=torch.Generator().manual_seed(4))
    assert_spectrum(x, family.expected_periodogram())
    assert float(x.double().var()) == pytest.approx(1.0, abs=0.05)  # stationary, gamma(0)=1


def test_ar2_expected_periodogram_tends_to_spectral_density() -> None:
    """The Fejer-smoothed periodogram approaches f(w) as N grows (bias O(1/N))."""
    gaps = []
    for n in (128, 1024):
        family = AR2(n, 0.8, 0.15)
        k = torch.arange(n // 2 + 1, dtype=torch.float64)
        f = family.spectral_density(k / n)
        gaps.append(float(((family.expected_periodogram() - f) / f).abs().max()))
    assert gaps[1] < 0.02 and gaps[1] < gaps[0] / 4


def test_bumps_spectrum_is_exact_per_sample_and_gaussian() -> None:
    family = GaussianBumps(100, 4.0)
    x = family.sample(64, generator=torch.Generator().manual_seed(5))
    energy = torch.fft.rfft(x.double(), dim=1, norm="ortho").abs() ** 2  # (B, K, 1)
    shape = family.spectrum() / family.spectrum().sum()
    assert torch.allclose(energy[..., 0] / energy[..., 0].sum(1, keepdim=True),
                          shape.expand(64, -1), atol=1e-6)
    # Poisson summation: |g_hat_k|^2 = (2 pi w^2 / N) exp(-(2 pi k w / N)^2), aliasing
    # negligible at w = 4
    k = torch.arange(51, dtype=torch.float64)
    analytic = 2 * math.pi * 16 / 100 * torch.exp(-(2 * math.pi * k * 4 / 100) ** 2)
    big = analytic > 1e-8
    assert torch.allclose(family.spectrum()[big], analytic[big], rtol=1e-6)


def test_bump_width_moves_from_time_to_frequency_localised() -> None:
    deltas = [float(localisation_curve(GaussianBumps(100, w).sample(
        16, generator=torch.Generator().manual_seed(6)))[10]) for w in (0.3, 1.0, 3.0, 10.0)]
    assert deltas == sorted(deltas, reverse=True)
    assert deltas[0] > 0.7 and deltas[-1] < 1e-6


@pytest.mark.parametrize("bad", [
    lambda: PowerLawGaussian(1, 1.0), lambda: PowerLawGaussian(10, -1.0),
    lambda: AR2(10, 1.0), lambda: AR2(10, 0.5, 0.7), lambda: GaussianBumps(10, 0.0),
    lambda: GaussianBumps(10, 2.0).sample(0, generator=torch.Generator())])
def test_bad_parameters_raise_config_error(bad) -> None:
    with pytest.raises(ConfigError):
        bad()


@pytest.mark.parametrize("name", ["powerlaw", "ar2", "bumps"])
def test_registered_and_deterministic(name: str) -> None:
    a, b = load_dataset(name, seed=1), load_dataset(name, seed=1)
    assert a.train.shape == (410, 100, 1) and torch.equal(a.train, b.train)


@pytest.mark.parametrize("name", ["sines", "sines-large", "powerlaw", "ar2", "bumps"])
def test_fresh_samples_come_from_the_family_and_repeat_no_stored_series(name: str) -> None:
    """The exact sampler draws new series of the registered set's shape, deterministically
    per seed, none equal to a stored one (a judge against fresh samples is no replay)."""
    from fdbench.data import fresh_samples

    split = load_dataset(name)
    fresh = fresh_samples(name, 64, seed=3)
    assert fresh.shape == (64, *split.train.shape[1:]) and fresh.dtype == torch.float32
    assert torch.equal(fresh, fresh_samples(name, 64, seed=3))
    assert not torch.equal(fresh, fresh_samples(name, 64, seed=4))
    stored = torch.cat([split.train, split.test]).flatten(1)
    assert torch.cdist(fresh.flatten(1), stored).min() > 1e-3
    # same law: the mean energy per sample agrees with the stored set's within 5 SE
    energy, stored_energy = fresh.square().mean((1, 2)), stored.square().mean(1)
    se = stored_energy.std() / math.sqrt(64)
    assert abs(energy.mean() - stored_energy.mean()) < 5 * se


def test_fresh_samples_refuse_a_set_without_an_exact_sampler() -> None:
    from fdbench.data import fresh_samples

    with pytest.raises(ConfigError, match="no exact sampler"):
        fresh_samples("ecg", 4)
