"""The unitary DFT chart, the complex-bin token view, Lambda and mirrored noise.

Conventions (Crabbé et al. 2024, Sec. 3; docs/METHOD.md §1). A series is a tensor
``(..., N, M)``: N time steps, M channels, time on axis -2. With the unitary DFT
``c_k = N^-1/2 sum_t x_t exp(-2 pi i k t / N)`` (``torch.fft.rfft(norm="ortho")``):

* the **chart** phi(x) holds, per channel, ``Re c_k`` for k = 0..floor(N/2) at positions
  0..floor(N/2), then ``Im c_k`` for k = 1..ceil(N/2)-1 (FourierDiffusion layout). The
  imaginary parts of DC and, for even N, Nyquist are zero for real x and are dropped;
* the **bins** view holds one token per bin k = 0..floor(N/2): ``[Re c_k, Im c_k]``
  (2M reals), with the structurally-zero imaginary parts kept at zero (E²-CRF Sec. 3.1);
* phi = Q x with ``Q Q^T = Lambda^2``, Lambda_jj = 1 at DC and even-N Nyquist and
  1/sqrt(2) elsewhere, so white time-domain noise is N(0, Lambda^2) in the chart.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from fdbench.errors import InputError

TIME_AXIS = -2


def n_bins(n_steps: int) -> int:
    """Number of half-spectrum bins (spectral tokens) of a length-N real series."""
    return n_steps // 2 + 1


def n_imag(n_steps: int) -> int:
    """Number of chart positions holding imaginary parts: bins 1..ceil(N/2)-1."""
    return (n_steps + 1) // 2 - 1


def _check_series(x: Tensor, what: str) -> int:
    if x.dim() < 2:
        raise InputError(f"{what} must have shape (..., N, M), got {tuple(x.shape)}")
    n_steps = x.shape[TIME_AXIS]
    if n_steps < 2:
        raise InputError(f"{what} needs N >= 2 time steps, got N = {n_steps}")
    return n_steps


def chart(x: Tensor) -> Tensor:
    """phi: real time series (..., N, M) -> real chart coordinates (..., N, M)
    (Crabbé et al. 2024, Sec. 3.1, the FourierDiffusion layout)."""
    n_steps = _check_series(x, "chart input")
    spectrum = torch.fft.rfft(x, dim=TIME_AXIS, norm="ortho")  # (..., N//2+1, M) complex
    imag = spectrum.imag.narrow(TIME_AXIS, 1, n_imag(n_steps))
    return torch.cat([spectrum.real, imag], dim=TIME_AXIS)


def _imag_with_structural_zeros(phi: Tensor, n_steps: int) -> Tensor:
    """Imaginary parts of bins 0..N//2 from the chart (..., N, M), zeros at DC and even-N
    Nyquist. Built with cat (no complex dtype) so it is cheap and differentiable."""
    n_half, n_im = n_bins(n_steps), n_imag(n_steps)
    shape = (*phi.shape[:-2], 1, phi.shape[-1])
    zero = phi.new_zeros(shape)
    parts = [zero, phi.narrow(TIME_AXIS, n_half, n_im)]
    if n_steps % 2 == 0:
        parts.append(zero)
    return torch.cat(parts, dim=TIME_AXIS)


def chart_to_spectrum(phi: Tensor) -> Tensor:
    """Chart coordinates (..., N, M) -> half spectrum (..., N//2+1, M) complex, with zero
    imaginary parts at DC and (even N) Nyquist."""
    n_steps = _check_series(phi, "chart coordinates")
    real = phi.narrow(TIME_AXIS, 0, n_bins(n_steps))
    return torch.complex(real, _imag_with_structural_zeros(phi, n_steps))


def inverse_chart(phi: Tensor) -> Tensor:
    """phi^-1: chart coordinates (..., N, M) -> the real series whose chart they are.

    Every chart vector maps to a real series (the dropped imaginary parts are zero)."""
    n_steps = _check_series(phi, "chart coordinates")
    return torch.fft.irfft(chart_to_spectrum(phi), n=n_steps, dim=TIME_AXIS, norm="ortho")


def chart_to_bins(phi: Tensor) -> Tensor:
    """Chart (..., N, M) -> spectral tokens (..., N//2+1, 2M): token k = [Re c_k, Im c_k]
    (E²-CRF Sec. 3.1: mirror symmetry halves the token count)."""
    n_steps = _check_series(phi, "chart coordinates")
    real = phi.narrow(TIME_AXIS, 0, n_bins(n_steps))
    return torch.cat([real, _imag_with_structural_zeros(phi, n_steps)], dim=-1)


def bins_to_chart(tokens: Tensor, n_steps: int) -> Tensor:
    """Spectral tokens (..., N//2+1, 2M) -> chart (..., N, M). The imaginary parts of DC
    and even-N Nyquist are not chart coordinates and are ignored."""
    if n_steps < 2:
        raise InputError(f"need N >= 2 time steps, got N = {n_steps}")
    n_half = n_bins(n_steps)
    if tokens.dim() < 2 or tokens.shape[TIME_AXIS] != n_half or tokens.shape[-1] % 2:
        raise InputError(
            f"bins view for N = {n_steps} must have shape (..., {n_half}, 2M), "
            f"got {tuple(tokens.shape)}"
        )
    n_channels = tokens.shape[-1] // 2
    real, imag = tokens[..., :n_channels], tokens[..., n_channels:]
    return torch.cat([real, imag.narrow(TIME_AXIS, 1, n_imag(n_steps))], dim=TIME_AXIS)


def bins(x: Tensor) -> Tensor:
    """Real time series (..., N, M) -> spectral tokens (..., N//2+1, 2M)."""
    return chart_to_bins(chart(x))


def inverse_bins(tokens: Tensor, n_steps: int) -> Tensor:
    """Spectral tokens (..., N//2+1, 2M) -> real time series (..., N, M)."""
    return inverse_chart(bins_to_chart(tokens, n_steps))


def chart_lambda(n_steps: int, *, dtype: torch.dtype = torch.float32,
                 device: torch.device | str | None = None) -> Tensor:
    """Diagonal of Lambda for the chart, shape (N,): 1 at DC and even-N Nyquist, 1/sqrt(2)
    elsewhere (Crabbé et al. 2024, Prop. 3.1: white noise is N(0, Lambda^2) in the chart)."""
    if n_steps < 2:
        raise InputError(f"need N >= 2 time steps, got N = {n_steps}")
    lam = torch.full((n_steps,), 1.0 / math.sqrt(2.0), dtype=dtype, device=device)
    lam[0] = 1.0
    if n_steps % 2 == 0:
        lam[n_steps // 2] = 1.0
    return lam


def mirrored_noise(shape: tuple[int, ...], generator: torch.Generator | None = None, *,
                   dtype: torch.dtype = torch.float32,
                   device: torch.device | str | None = None) -> Tensor:
    """Lambda z with z ~ N(0, I): white time-domain noise expressed in chart coordinates.

    ``shape`` is (..., N, M); equal in law to ``chart(randn(shape))``."""
    if len(shape) < 2:
        raise InputError(f"mirrored noise needs a shape (..., N, M), got {tuple(shape)}")
    z = torch.randn(shape, generator=generator, dtype=dtype, device=device)
    return chart_lambda(shape[TIME_AXIS], dtype=dtype, device=device)[:, None] * z


def bin_multiplicity(n_steps: int) -> Tensor:
    """How many full-spectrum bins each half-spectrum bin stands for, shape (N//2+1,):
    1 for DC and even-N Nyquist, 2 for the others (bin k and its mirror N-k)."""
    mult = torch.full((n_bins(n_steps),), 2.0, dtype=torch.float64)
    mult[0] = 1.0
    if n_steps % 2 == 0:
        mult[-1] = 1.0
    return mult


def bin_energy(x: Tensor) -> Tensor:
    """Per-bin energy |c_k|^2 summed over channels, shape (..., N//2+1), from a real series
    (..., N, M). This is the squared norm of spectral token k (E²-CRF ||x_k||^2)."""
    _check_series(x, "series")
    spectrum = torch.fft.rfft(x, dim=TIME_AXIS, norm="ortho")
    return spectrum.abs().square().sum(dim=-1)


def localisation_curve(x: Tensor) -> Tensor:
    """delta(K) = 1 - E_low(K) / E_total for K = 0..N//2, pooled over the batch.

    Energies count each bin with its mirror (``bin_multiplicity``), so E_total = ||x||^2
    by Parseval and delta(K) is the fraction of the signal's energy above bin K
    (E²-CRF Lemma A.1's quantity, with the half-spectrum sum done correctly)."""
    energy = bin_energy(x.to(torch.float64)).reshape(-1, n_bins(x.shape[TIME_AXIS])).sum(0)
    weighted = energy * bin_multiplicity(x.shape[TIME_AXIS]).to(energy.device)
    total = weighted.sum()
    if total <= 0:
        raise InputError("localisation curve is undefined for an all-zero series")
    return (1.0 - weighted.cumsum(0) / total).clamp_min(0.0)
