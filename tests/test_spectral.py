"""Tests for fdbench.spectral: the unitary-DFT chart, the bins view, Lambda, mirrored noise,
bin energies and the localisation curve (docs/METHOD.md §1, §3 A.1/A.2/A.6).

Every property is checked against a spelled-out reference (numpy's FFT, an explicit DFT
sum, an explicit Hermitian extension) in float64. Randomness comes from explicit
``torch.Generator``s seeded by hypothesis-drawn integers, so CI's derandomised ``ci``
profile makes every run identical.
"""

from __future__ import annotations

import cmath
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fdbench.errors import InputError
from fdbench.spectral import (
    bin_energy,
    bin_multiplicity,
    bins,
    bins_to_chart,
    chart,
    chart_lambda,
    chart_to_bins,
    inverse_bins,
    inverse_chart,
    localisation_curve,
    mirrored_noise,
    n_bins,
    n_imag,
)

F64 = torch.float64
TIGHT = 1e-12  # float64 FFT round-off for N <= 512 and O(1) entries is ~1e-15

lengths = st.integers(2, 512)
channels = st.integers(1, 8)
seeds = st.integers(0, 2**31 - 1)


def _randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _reference_lambda(n: int) -> np.ndarray:
    """Lambda_jj: 1 at DC and even-N Nyquist, 1/sqrt(2) at every other chart position."""
    lam = np.full(n, 1.0 / math.sqrt(2.0))
    lam[0] = 1.0
    if n % 2 == 0:
        lam[n // 2] = 1.0
    return lam


def _chart_from_half_spectrum(c: np.ndarray, n: int) -> np.ndarray:
    """The FourierDiffusion layout, one position at a time: Re c_0..c_{N//2}, then
    Im c_1..c_{ceil(N/2)-1}. ``c`` is (N//2+1, M) complex."""
    phi = np.empty((n, c.shape[1]))
    for k in range(n // 2 + 1):
        phi[k] = c[k].real
    for j, k in enumerate(range(1, math.ceil(n / 2))):
        phi[n // 2 + 1 + j] = c[k].imag
    return phi


def _hermitian_spectrum(phi: np.ndarray, n: int) -> np.ndarray:
    """Full length-N spectrum (N, M) from chart coordinates: c_k from the chart for
    k <= N//2 (zero imaginary part at DC and even-N Nyquist), c_{N-k} = conj(c_k)."""
    c = np.zeros((n, phi.shape[1]), dtype=complex)
    for k in range(n // 2 + 1):
        c[k] = phi[k]
    for j, k in enumerate(range(1, math.ceil(n / 2))):
        c[k] = c[k] + 1j * phi[n // 2 + 1 + j]
    for k in range(n // 2 + 1, n):
        c[k] = np.conj(c[n - k])
    return c


def _max_standardised_cov_error(samples: torch.Tensor, lam: torch.Tensor) -> tuple[float, float]:
    """Max over covariance entries of |S_ij - Sigma_ij| / sd(S_ij), and its threshold.

    samples: (n, N, M) draws of a zero-mean Gaussian with claimed covariance
    Sigma = Lambda^2 (x) I_M (diagonal, chart position-major flattening).

    Derivation. With known zero mean, S = X^T X / n. For a zero-mean Gaussian,
    Var(x_i x_j) = Sigma_ii Sigma_jj + Sigma_ij^2, so sd(S_ii) = sqrt(2/n) Lambda_i^2 and
    sd(S_ij) = Lambda_i Lambda_j / sqrt(n) for i != j. By the CLT each standardised entry is
    ~N(0, 1); a union (Bonferroni) bound over the m = D(D+1)/2 distinct entries with the
    Gaussian tail 2 Phi(-z) <= exp(-z^2/2) gives P(max > z) <= m exp(-z^2/2) = alpha for
    z = sqrt(2 ln(m / alpha)). We take alpha = 1e-6 and add 1 sigma of slack for the
    non-Gaussian (sub-exponential, skewed) tails of S at finite n. A wrong Lambda (e.g.
    Lambda = I) moves a diagonal entry by 1/2 = sqrt(n/8) sigma, ~22 sigma at n = 4000.
    """
    n = samples.shape[0]
    flat = samples.reshape(n, -1)  # (n, N*M), index = position * M + channel
    dim = flat.shape[1]
    sigma_diag = (lam.square()[:, None].expand(-1, samples.shape[-1])).reshape(-1)  # (D,)
    cov = flat.T @ flat / n
    sigma = torch.diag(sigma_diag)
    sd = torch.sqrt((sigma_diag[:, None] * sigma_diag[None, :] + sigma.square()) / n)
    m = dim * (dim + 1) / 2
    threshold = math.sqrt(2.0 * math.log(m / 1e-6)) + 1.0
    return float(((cov - sigma).abs() / sd).max()), threshold


# --------------------------------------------------------------------------- the chart


@settings(max_examples=40, deadline=None)
@given(n=lengths, m=channels, seed=seeds)
def test_inverse_chart_inverts_chart(n: int, m: int, seed: int) -> None:
    """phi^-1(phi(x)) = x for every real series x (phi is a bijection R^N -> R^N)."""
    x = _randn(2, n, m, seed=seed)
    assert torch.allclose(inverse_chart(chart(x)), x, rtol=0, atol=TIGHT)


@settings(max_examples=40, deadline=None)
@given(n=lengths, m=channels, seed=seeds)
def test_chart_matches_numpy_rfft_layout(n: int, m: int, seed: int) -> None:
    """phi(x) = [Re c_0..c_{N//2}, Im c_1..c_{ceil(N/2)-1}] per channel, with
    c = numpy.fft.rfft(x, norm="ortho") along time."""
    x = _randn(n, m, seed=seed)
    c = np.fft.rfft(x.numpy(), axis=0, norm="ortho")
    phi = chart(x)
    assert phi.shape == (n, m) and phi.dtype == F64
    assert np.allclose(phi.numpy(), _chart_from_half_spectrum(c, n), rtol=0, atol=TIGHT)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 12), m=st.integers(1, 3), seed=seeds)
def test_chart_matches_explicit_dft_sum(n: int, m: int, seed: int) -> None:
    """phi(x) agrees with the DFT written as a sum,
    c_k = N^-1/2 sum_t x_t exp(-2 pi i k t / N), laid out as the chart."""
    x = _randn(n, m, seed=seed).numpy()
    c = np.zeros((n // 2 + 1, m), dtype=complex)
    for k in range(n // 2 + 1):
        for ch in range(m):
            c[k, ch] = sum(x[t, ch] * cmath.exp(-2j * math.pi * k * t / n) for t in range(n))
    c /= math.sqrt(n)
    phi = chart(torch.from_numpy(x)).numpy()
    assert np.allclose(phi, _chart_from_half_spectrum(c, n), rtol=0, atol=TIGHT)


@settings(max_examples=40, deadline=None)
@given(n=lengths, m=channels, seed=seeds)
def test_full_dft_of_real_series_is_mirror_symmetric(n: int, m: int, seed: int) -> None:
    """For real x the full DFT satisfies c_k = conj(c_{N-k}) (indices mod N); in particular
    c_0 and, for even N, c_{N/2} are real (E²-CRF A.2)."""
    x = _randn(3, n, m, seed=seed)
    c = torch.fft.fft(x, dim=-2, norm="ortho")  # (3, N, M) complex
    mirror = c[:, [(-k) % n for k in range(n)], :].conj()
    assert torch.allclose(c, mirror, rtol=0, atol=TIGHT)
    assert c[:, 0].imag.abs().max() <= TIGHT
    if n % 2 == 0:
        assert c[:, n // 2].imag.abs().max() <= TIGHT


@settings(max_examples=30, deadline=None)
@given(n=lengths)
def test_chart_matrix_gram_is_lambda_squared(n: int) -> None:
    """Q Q^T = Lambda^2 for Q = [phi(e_0) ... phi(e_{N-1})] (Crabbé et al. Prop. 3.1), and
    chart_lambda is 1 at DC and even-N Nyquist and 1/sqrt(2) elsewhere."""
    q = chart(torch.eye(n, dtype=F64))  # column j = phi(e_j): channel j of the identity
    lam = chart_lambda(n, dtype=F64)
    assert np.array_equal(lam.numpy(), _reference_lambda(n))
    assert torch.allclose(q @ q.T, torch.diag(lam.square()), rtol=0, atol=TIGHT)


def test_token_counts() -> None:
    """n_bins = N//2+1 half-spectrum bins; n_imag = ceil(N/2)-1 imaginary chart positions;
    together the chart has exactly N positions (E²-CRF A.2 token counts)."""
    for n in range(2, 300):
        assert n_bins(n) == n // 2 + 1
        assert n_imag(n) == math.ceil(n / 2) - 1
        assert n_bins(n) + n_imag(n) == n


# --------------------------------------------------------------------------- the bins view


@settings(max_examples=40, deadline=None)
@given(n=lengths, m=channels, seed=seeds)
def test_bins_view_structure_and_round_trip(n: int, m: int, seed: int) -> None:
    """bins(x) has N//2+1 tokens [Re c_k, Im c_k] of 2M reals, Im c_0 = 0 and (even N)
    Im c_{N/2} = 0 exactly, matches numpy's rfft, and inverse_bins(bins(x), N) = x."""
    x = _randn(2, n, m, seed=seed)
    tokens = bins(x)
    assert tokens.shape == (2, n // 2 + 1, 2 * m)
    assert torch.all(tokens[:, 0, m:] == 0)
    if n % 2 == 0:
        assert torch.all(tokens[:, -1, m:] == 0)
    c = np.fft.rfft(x.numpy(), axis=1, norm="ortho")
    c[:, 0].imag = 0.0
    if n % 2 == 0:
        c[:, -1].imag = 0.0
    expected = np.concatenate([c.real, c.imag], axis=-1)
    assert np.allclose(tokens.numpy(), expected, rtol=0, atol=TIGHT)
    assert torch.allclose(inverse_bins(tokens, n), x, rtol=0, atol=TIGHT)


@settings(max_examples=40, deadline=None)
@given(n=lengths, m=channels, seed=seeds)
def test_bins_to_chart_inverts_chart_to_bins_for_any_phi(n: int, m: int, seed: int) -> None:
    """bins_to_chart(chart_to_bins(phi), N) = phi exactly for ANY real phi (the two views
    hold the same N real numbers per channel)."""
    phi = _randn(3, n, m, seed=seed)
    assert torch.equal(bins_to_chart(chart_to_bins(phi), n), phi)
    # the real halves of the tokens are chart positions 0..N//2
    assert torch.equal(chart_to_bins(phi)[..., :m], phi[..., : n // 2 + 1, :])


@settings(max_examples=40, deadline=None)
@given(n=lengths, m=channels, seed=seeds)
def test_inverse_of_any_chart_vector_is_real_and_recharts(n: int, m: int, seed: int) -> None:
    """Every chart vector phi is the chart of a real series: the inverse DFT of its
    Hermitian extension is real, equals inverse_chart(phi), and phi(phi^-1(phi)) = phi."""
    phi = _randn(n, m, seed=seed)
    x = inverse_chart(phi)
    assert not x.is_complex() and x.dtype == F64 and x.shape == (n, m)
    full = np.fft.ifft(_hermitian_spectrum(phi.numpy(), n), axis=0, norm="ortho")
    assert np.abs(full.imag).max() <= TIGHT
    assert np.allclose(x.numpy(), full.real, rtol=0, atol=TIGHT)
    assert torch.allclose(chart(x), phi, rtol=0, atol=TIGHT)


@settings(max_examples=40, deadline=None)
@given(n=lengths, m=channels, seed=seeds)
def test_inverse_of_any_bins_vector_is_real_and_rebins(n: int, m: int, seed: int) -> None:
    """For ANY tokens (even with nonzero Im at DC / even-N Nyquist) inverse_bins gives a
    real series whose bins are the tokens with those structural imaginary parts zeroed."""
    tokens = _randn(2, n // 2 + 1, 2 * m, seed=seed)
    x = inverse_bins(tokens, n)
    assert not x.is_complex() and x.dtype == F64 and x.shape == (2, n, m)
    expected = tokens.clone()
    expected[:, 0, m:] = 0.0
    if n % 2 == 0:
        expected[:, -1, m:] = 0.0
    full = np.fft.ifft(
        _hermitian_spectrum(bins_to_chart(expected, n)[0].numpy(), n), axis=0, norm="ortho"
    )
    assert np.abs(full.imag).max() <= TIGHT
    assert np.allclose(x[0].numpy(), full.real, rtol=0, atol=TIGHT)
    assert torch.allclose(bins(x), expected, rtol=0, atol=TIGHT)


# --------------------------------------------------------------------------- mirrored noise


def _bounded_shape(n: int, m_max: int) -> int:
    """Channels for the covariance tests, keeping D = N*M <= 512 (a D x D covariance)."""
    return max(1, min(m_max, 512 // n))


N_DRAWS = 4000


@settings(max_examples=8, deadline=None)
@given(n=lengths, m=channels, seed=seeds)
def test_mirrored_noise_covariance_is_lambda_squared(n: int, m: int, seed: int) -> None:
    """mirrored_noise ~ N(0, Lambda^2 (x) I_M): its empirical covariance is within a derived
    simultaneous bound of Lambda^2 (see _max_standardised_cov_error)."""
    m = _bounded_shape(n, m)
    gen = torch.Generator().manual_seed(seed)
    noise = mirrored_noise((N_DRAWS, n, m), gen, dtype=F64)
    assert noise.shape == (N_DRAWS, n, m) and noise.dtype == F64
    worst, threshold = _max_standardised_cov_error(noise, torch.tensor(_reference_lambda(n)))
    assert worst <= threshold, (worst, threshold)


@settings(max_examples=8, deadline=None)
@given(n=lengths, m=channels, seed=seeds)
def test_chart_of_white_noise_has_covariance_lambda_squared(n: int, m: int, seed: int) -> None:
    """phi(w), w ~ N(0, I) white in time, has covariance Q Q^T = Lambda^2 (x) I_M: the same
    law as mirrored_noise (Crabbé et al. Prop. 3.1; E²-CRF A.6 at t = 1)."""
    m = _bounded_shape(n, m)
    phi = chart(_randn(N_DRAWS, n, m, seed=seed))
    worst, threshold = _max_standardised_cov_error(phi, torch.tensor(_reference_lambda(n)))
    assert worst <= threshold, (worst, threshold)


def test_covariance_check_rejects_unscaled_noise() -> None:
    """The covariance check can fail: white chart noise (Lambda = I) is rejected."""
    z = _randn(N_DRAWS, 16, 2, seed=0)
    worst, threshold = _max_standardised_cov_error(z, torch.tensor(_reference_lambda(16)))
    assert worst > 3 * threshold


# --------------------------------------------------------------------------- energies


@settings(max_examples=40, deadline=None)
@given(n=lengths, m=channels, seed=seeds)
def test_bin_energy_parseval(n: int, m: int, seed: int) -> None:
    """sum_k mult_k |c_k|^2 = ||x||^2 (Parseval, each half-spectrum bin counted with its
    mirror), bin_energy_k = sum_channels |c_k|^2 (numpy rfft), and the half-spectrum
    identity sum_{k<=N/2} |c_k|^2 = (||x||^2 + |c_0|^2 + [N even] |c_{N/2}|^2) / 2."""
    x = _randn(3, n, m, seed=seed)
    energy = bin_energy(x)  # (3, N//2+1)
    assert energy.shape == (3, n // 2 + 1)
    c = np.fft.rfft(x.numpy(), axis=1, norm="ortho")
    assert np.allclose(energy.numpy(), (np.abs(c) ** 2).sum(-1), rtol=1e-12, atol=TIGHT)
    mult = bin_multiplicity(n)
    expected_mult = np.full(n // 2 + 1, 2.0)
    expected_mult[0] = 1.0
    if n % 2 == 0:
        expected_mult[-1] = 1.0
    assert np.array_equal(mult.numpy(), expected_mult)
    norm2 = x.square().sum(dim=(-2, -1))
    assert torch.allclose((energy * mult).sum(-1), norm2, rtol=1e-12, atol=0)
    edge = energy[:, 0] + (energy[:, -1] if n % 2 == 0 else 0.0)
    assert torch.allclose(energy.sum(-1), (norm2 + edge) / 2, rtol=1e-12, atol=0)


@settings(max_examples=40, deadline=None)
@given(n=lengths, m=channels, seed=seeds, batch=st.integers(1, 3))
def test_localisation_curve_matches_reference(n: int, m: int, seed: int, batch: int) -> None:
    """delta(K) = 1 - sum_{k<=K} mult_k E_k / ||x||^2 (pooled over the batch) is
    non-increasing in K, lies in [0, 1] and ends at delta(N//2) = 0."""
    x = _randn(batch, n, m, seed=seed)
    curve = localisation_curve(x)
    assert curve.shape == (n // 2 + 1,)
    c = np.fft.rfft(x.numpy(), axis=1, norm="ortho")
    pooled = (np.abs(c) ** 2).sum(axis=(0, 2)) * bin_multiplicity(n).numpy()
    reference = 1.0 - np.cumsum(pooled) / (x.numpy() ** 2).sum()
    assert np.allclose(curve.numpy(), reference, rtol=0, atol=1e-12)
    assert torch.all(curve[1:] <= curve[:-1])
    assert torch.all((curve >= 0) & (curve <= 1))
    assert abs(float(curve[-1])) <= 1e-12


@settings(max_examples=40, deadline=None)
@given(n=lengths, data=st.data(), m=channels, seed=seeds)
def test_localisation_curve_of_pure_cosine_is_a_step(n: int, data, m: int, seed: int) -> None:
    """For x_t = a cos(2 pi k0 t / N) all energy sits in bin k0, so delta(K) = 1 for K < k0
    and 0 for K >= k0 (the E²-CRF A.3 counterexample when k0 > K)."""
    k0 = data.draw(st.integers(0, n // 2), label="k0")
    amplitude = 0.5 + torch.rand(m, generator=torch.Generator().manual_seed(seed), dtype=F64)
    t = torch.arange(n, dtype=F64)
    x = torch.cos(2 * math.pi * k0 * t / n)[:, None] * amplitude  # (N, M)
    curve = localisation_curve(x)
    expected = (torch.arange(n // 2 + 1) < k0).to(F64)
    assert torch.allclose(curve, expected, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------- bad inputs

BAD_INPUTS = [
    pytest.param(lambda: chart(torch.zeros(1, 3)), id="chart-N1"),
    pytest.param(lambda: chart(torch.zeros(5)), id="chart-rank1"),
    pytest.param(lambda: bins(torch.zeros(1, 2)), id="bins-N1"),
    pytest.param(lambda: chart_to_bins(torch.zeros(1, 2)), id="chart_to_bins-N1"),
    pytest.param(lambda: chart_to_bins(torch.zeros(4)), id="chart_to_bins-rank1"),
    pytest.param(lambda: inverse_chart(torch.zeros(1, 2)), id="inverse_chart-N1"),
    pytest.param(lambda: inverse_chart(torch.zeros(4)), id="inverse_chart-rank1"),
    pytest.param(lambda: bins_to_chart(torch.zeros(3, 2), 1), id="bins_to_chart-N1"),
    pytest.param(lambda: bins_to_chart(torch.zeros(3, 2), 6), id="bins_to_chart-tokens"),
    pytest.param(lambda: bins_to_chart(torch.zeros(4, 3), 6), id="bins_to_chart-odd-width"),
    pytest.param(lambda: bins_to_chart(torch.zeros(8), 6), id="bins_to_chart-rank1"),
    pytest.param(lambda: inverse_bins(torch.zeros(5, 2), 6), id="inverse_bins-tokens"),
    pytest.param(lambda: inverse_bins(torch.zeros(4, 2), 1), id="inverse_bins-N1"),
    pytest.param(lambda: chart_lambda(1), id="chart_lambda-N1"),
    pytest.param(lambda: mirrored_noise((2, 1, 3)), id="mirrored_noise-N1"),
    pytest.param(lambda: mirrored_noise((5,)), id="mirrored_noise-rank1"),
    pytest.param(lambda: bin_energy(torch.zeros(5)), id="bin_energy-rank1"),
    pytest.param(lambda: bin_energy(torch.zeros(1, 3)), id="bin_energy-N1"),
    pytest.param(lambda: localisation_curve(torch.zeros(5)), id="localisation-rank1"),
    pytest.param(lambda: localisation_curve(torch.zeros(2, 6, 2)), id="localisation-zero"),
]


@pytest.mark.parametrize("call", BAD_INPUTS)
def test_bad_inputs_raise_input_error(call) -> None:
    """N < 2, rank < 2, a bins view of the wrong shape and an all-zero series (no energy
    to localise) raise InputError."""
    with pytest.raises(InputError):
        call()
