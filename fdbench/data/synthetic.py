"""Synthetic series with known spectra: sums of a few random sinusoids (:func:`sines`),
power-law Gaussian series with an exact score (:class:`PowerLawGaussian`), AR(2)
(:class:`AR2`) and Gaussian bumps from time- to frequency-localised (:class:`GaussianBumps`).

Crabbé et al. (2024), "Time Series Diffusion in the Frequency Domain", ICML, evaluate on
synthetic sinusoidal data besides real sets; the recipe below is this package's own (it
is not claimed to reproduce theirs sample for sample), chosen so that all energy sits in
a few low-frequency bins: the regime where frequency-domain models and spectral caching
are expected to help.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from fdbench.errors import ConfigError

SINES_COMPONENTS = 3  # few enough that every series is visibly periodic
SINES_MAX_CYCLES = 10.0  # cycles per series: low-frequency, like the paper's real sets


def sines(n_samples: int, n_steps: int = 100, n_channels: int = 1, *,
          generator: torch.Generator, n_components: int = SINES_COMPONENTS) -> Tensor:
    """Sums of ``n_components`` random sinusoids, float32 tensor (B, N, M).

    For every sample b and channel m, independently::

        x[b, t, m] = (1/K) sum_{k=1..K} a_k sin(2 pi f_k t / N + p_k),   t = 0..N-1

    with K = ``n_components``, cycles per series f_k ~ U[f_max / 10, f_max) where
    f_max = min(10, N / 4) (so every component has at least 4 samples per period, far
    from aliasing), phases p_k ~ U[0, 2 pi) and amplitudes a_k ~ U[0.5, 1.5). The 1/K
    keeps |x| < 1.5 whatever K. f_k are real, not integer, so the energy leaks over
    neighbouring DFT bins as in real data.

    All randomness comes from ``generator`` in one draw of shape (B, 3, K, M), so the
    same generator state gives the same tensor.
    """
    for field, value, low in (("n_samples", n_samples, 1), ("n_steps", n_steps, 2),
                              ("n_channels", n_channels, 1), ("n_components", n_components, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"sines: {field} must be an integer >= {low}, got {value!r}")
    u = torch.rand((n_samples, 3, n_components, n_channels), generator=generator,
                   dtype=torch.float64, device=generator.device)  # (B, 3, K, M)
    f_max = min(SINES_MAX_CYCLES, n_steps / 4)
    cycles = f_max * (0.1 + 0.9 * u[:, 0])  # (B, K, M)
    phase = 2 * math.pi * u[:, 1]
    amplitude = 0.5 + u[:, 2]
    t = torch.arange(n_steps, dtype=torch.float64, device=u.device) / n_steps  # (N,)
    # (B, 1, K, M) * (N, 1, 1) -> (B, N, K, M); sum over components -> (B, N, M)
    angle = 2 * math.pi * cycles.unsqueeze(1) * t[:, None, None] + phase.unsqueeze(1)
    x = (amplitude.unsqueeze(1) * torch.sin(angle)).mean(dim=2)
    return x.to(torch.float32).contiguous()


# ---------------------------------------------------------------------------------------
# Families with a known spectrum. Conventions of fdbench.spectral: unitary DFT
# c_k = N^-1/2 sum_t x_t exp(-2 pi i k t / N) (torch.fft.rfft(norm="ortho")), half
# spectrum k = 0..N//2. For a stationary series the "spectrum" below is E|c_k|^2; white
# noise of unit variance has E|c_k|^2 = 1 at every k.
# ---------------------------------------------------------------------------------------


def _check_int(name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")


@dataclass(frozen=True)
class PowerLawGaussian:
    """Stationary Gaussian series defined in frequency: independent DFT coefficients with
    E|c_k|^2 = S_k = s * max(k, 1)^-exponent, s chosen so the per-step variance is 1.

    Circular stationarity makes the time-domain covariance the circulant
    Sigma = F^H diag(S) F (F the unitary DFT), so the density, and the score of the
    data and of its noised versions a x + b z, are known exactly: proofs and tests can
    measure a learned score's error against :meth:`score`."""

    n_steps: int = 100
    exponent: float = 2.0

    def __post_init__(self) -> None:
        _check_int("PowerLawGaussian.n_steps", self.n_steps, 2)
        if not (isinstance(self.exponent, (int, float)) and 0.0 <= self.exponent <= 6.0):
            raise ConfigError(f"PowerLawGaussian.exponent must be in [0, 6], got "
                              f"{self.exponent!r}")

    def spectrum(self) -> Tensor:
        """S_k = E|c_k|^2 for k = 0..N//2, float64 (N//2+1,); sum_k mult_k S_k = N."""
        k = torch.arange(self.n_steps // 2 + 1, dtype=torch.float64).clamp_min(1.0)
        raw = k ** -float(self.exponent)
        mult = torch.full_like(raw, 2.0)
        mult[0] = 1.0
        if self.n_steps % 2 == 0:
            mult[-1] = 1.0
        return raw * self.n_steps / (mult * raw).sum()  # unit variance per time step

    def covariance(self) -> Tensor:
        """Sigma (N, N) float64: Sigma[s, t] = gamma(s - t), the circular autocovariance."""
        gamma = torch.fft.irfft(self.spectrum().to(torch.complex128), n=self.n_steps,
                                norm="ortho") / math.sqrt(self.n_steps)
        idx = torch.arange(self.n_steps)
        return gamma[(idx[:, None] - idx[None, :]) % self.n_steps]

    def score(self, x: Tensor, *, scale: float = 1.0, noise_std: float = 0.0) -> Tensor:
        """grad log p(x) for x = scale * x0 + noise_std * z (x0 from this family, z white):
        -(scale^2 Sigma + noise_std^2 I)^-1 x, applied per channel through the DFT (the
        covariance is diagonal there). x: (..., N, M); returns x's dtype."""
        variance = scale ** 2 * self.spectrum() + noise_std ** 2  # (N//2+1,)
        if bool((variance <= 0).any()):
            raise ConfigError("score: scale and noise_std must not both be 0")
        c = torch.fft.rfft(x.to(torch.float64), dim=-2, norm="ortho")
        s = torch.fft.irfft(c / variance[:, None], n=self.n_steps, dim=-2, norm="ortho")
        return (-s).to(x.dtype)

    def sample(self, n_samples: int, n_channels: int = 1, *,
               generator: torch.Generator) -> Tensor:
        """(B, N, M) float32; channels independent."""
        _check_int("n_samples", n_samples, 1)
        _check_int("n_channels", n_channels, 1)
        n_half = self.n_steps // 2 + 1
        z = torch.randn((n_samples, 2, n_half, n_channels), generator=generator,
                        dtype=torch.float64)
        # complex coefficient with E|c|^2 = 1: Re, Im ~ N(0, 1/2); irfft keeps only Re of
        # DC (and even-N Nyquist), so give those the full unit variance on the real part
        real, imag = z[:, 0] / math.sqrt(2), z[:, 1] / math.sqrt(2)
        real[:, 0] = z[:, 0, 0]
        if self.n_steps % 2 == 0:
            real[:, -1] = z[:, 0, -1]
        c = torch.complex(real, imag) * self.spectrum().sqrt()[:, None]
        x = torch.fft.irfft(c, n=self.n_steps, dim=1, norm="ortho")
        return x.to(torch.float32).contiguous()


@dataclass(frozen=True)
class AR2:
    """Stationary AR(2) x_t = a1 x_{t-1} + a2 x_{t-2} + e_t, e_t ~ N(0, s^2), with poles
    r exp(+-i theta): a1 = 2 r cos theta, a2 = -r^2; s^2 is chosen so Var x_t = 1.

    The spectral density (Brockwell & Davis 1991, eq. 4.4.3, per unit variance of the
    unitary DFT's convention) is f(w) = s^2 / |1 - a1 e^{-iw} - a2 e^{-2iw}|^2; a finite
    sample's expected periodogram is f smoothed by the Fejer kernel
    (:meth:`expected_periodogram`, exact)."""

    n_steps: int = 100
    radius: float = 0.9
    peak_cycles: float = 0.1  # theta / (2 pi): cycles per step of the spectral peak

    def __post_init__(self) -> None:
        _check_int("AR2.n_steps", self.n_steps, 2)
        if not 0.0 <= self.radius < 1.0:
            raise ConfigError(f"AR2.radius must be in [0, 1) (stationary), got {self.radius}")
        if not 0.0 <= self.peak_cycles <= 0.5:
            raise ConfigError(f"AR2.peak_cycles must be in [0, 0.5], got {self.peak_cycles}")

    @property
    def coefficients(self) -> tuple[float, float]:
        """(a1, a2)."""
        theta = 2 * math.pi * self.peak_cycles
        return 2 * self.radius * math.cos(theta), -self.radius ** 2

    @property
    def innovation_variance(self) -> float:
        """s^2 with gamma(0) = 1: gamma(0) = s^2 (1 - a2) / ((1 + a2)((1 - a2)^2 - a1^2))."""
        a1, a2 = self.coefficients
        return (1 + a2) * ((1 - a2) ** 2 - a1 ** 2) / (1 - a2)

    def autocovariance(self, n_lags: int) -> Tensor:
        """gamma(0..n_lags-1), float64: gamma(1) = a1 / (1 - a2), then the Yule-Walker
        recursion gamma(h) = a1 gamma(h-1) + a2 gamma(h-2)."""
        a1, a2 = self.coefficients
        gamma = [1.0, a1 / (1 - a2)]
        for _ in range(2, n_lags):
            gamma.append(a1 * gamma[-1] + a2 * gamma[-2])
        return torch.tensor(gamma[:n_lags], dtype=torch.float64)

    def spectral_density(self, cycles: Tensor) -> Tensor:
        """f at frequencies ``cycles`` (cycles per step), float64."""
        a1, a2 = self.coefficients
        w = 2 * math.pi * cycles.to(torch.float64)
        transfer = 1 - a1 * torch.exp(-1j * w) - a2 * torch.exp(-2j * w)
        return self.innovation_variance / transfer.abs() ** 2

    def expected_periodogram(self) -> Tensor:
        """E|c_k|^2 for k = 0..N//2 (float64): sum_{|h|<N} (1 - |h|/N) gamma(h) cos(w_k h)."""
        n = self.n_steps
        gamma = self.autocovariance(n)
        h = torch.arange(n, dtype=torch.float64)
        weights = (1 - h / n) * gamma * torch.where(h == 0, 1.0, 2.0)
        w = 2 * math.pi * torch.arange(n // 2 + 1, dtype=torch.float64) / n
        return (weights[None, :] * torch.cos(w[:, None] * h[None, :])).sum(1)

    def sample(self, n_samples: int, n_channels: int = 1, *,
               generator: torch.Generator) -> Tensor:
        """(B, N, M) float32; (x_0, x_1) drawn from the stationary law, so every sample is
        exactly stationary (no burn-in)."""
        _check_int("n_samples", n_samples, 1)
        _check_int("n_channels", n_channels, 1)
        a1, a2 = self.coefficients
        z = torch.randn((n_samples, self.n_steps, n_channels), generator=generator,
                        dtype=torch.float64)
        rho = a1 / (1 - a2)
        x = torch.empty_like(z)
        x[:, 0] = z[:, 0]
        x[:, 1] = rho * z[:, 0] + math.sqrt(1 - rho ** 2) * z[:, 1]
        s = math.sqrt(self.innovation_variance)
        for t in range(2, self.n_steps):
            x[:, t] = a1 * x[:, t - 1] + a2 * x[:, t - 2] + s * z[:, t]
        return x.to(torch.float32).contiguous()


@dataclass(frozen=True)
class GaussianBumps:
    """x_t = A g(t - c): a circularly wrapped Gaussian bump of width ``width`` steps at an
    integer centre c ~ U{0..N-1}, amplitude A ~ N(0, 1).

    Narrow bumps are time-localised with a flat, broadband spectrum; wide ones spread over
    time with their energy in the lowest bins (frequency-localised). Integer centres make
    a shift a pure DFT phase, so |c_k|^2 = A^2 |g_hat_k|^2 exactly (:meth:`spectrum`)."""

    n_steps: int = 100
    width: float = 4.0

    def __post_init__(self) -> None:
        _check_int("GaussianBumps.n_steps", self.n_steps, 2)
        if not 0.05 <= self.width <= self.n_steps:
            raise ConfigError(f"GaussianBumps.width must be in [0.05, N={self.n_steps}], "
                              f"got {self.width}")

    def template(self) -> Tensor:
        """g (N,) float64, centred at 0 and wrapped (3 periods cover width <= N)."""
        t = torch.arange(self.n_steps, dtype=torch.float64)
        shifts = torch.arange(-3, 4, dtype=torch.float64)[:, None] * self.n_steps
        return torch.exp(-((t[None, :] + shifts) ** 2) / (2 * self.width ** 2)).sum(0)

    def spectrum(self) -> Tensor:
        """E|c_k|^2 = E[A^2] |g_hat_k|^2 = |g_hat_k|^2, k = 0..N//2, float64."""
        return torch.fft.rfft(self.template(), norm="ortho").abs() ** 2

    def sample(self, n_samples: int, n_channels: int = 1, *,
               generator: torch.Generator) -> Tensor:
        """(B, N, M) float32; channels independent."""
        _check_int("n_samples", n_samples, 1)
        _check_int("n_channels", n_channels, 1)
        centre = torch.randint(self.n_steps, (n_samples, n_channels), generator=generator)
        amplitude = torch.randn((n_samples, n_channels), generator=generator,
                                dtype=torch.float64)
        t = torch.arange(self.n_steps)
        index = (t[None, :, None] - centre[:, None, :]) % self.n_steps  # (B, N, M)
        x = amplitude[:, None, :] * self.template()[index]
        return x.to(torch.float32).contiguous()
