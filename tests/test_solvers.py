"""Reverse Euler–Maruyama, per-sample noise and sample generation."""

from __future__ import annotations

import math

import pytest
import torch

from fdbench.errors import ConfigError
from fdbench.generate import generate
from fdbench.randomness import PerSampleNoise, sample_seed
from fdbench.sde import VPSDE, prior_sample
from fdbench.solvers import reverse_euler_maruyama, uniform_times
from fdbench.spectral import chart_lambda
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
    (METHOD.md §1), with the score evaluated at t_i."""
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
