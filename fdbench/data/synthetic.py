"""Synthetic series with a known, sparse spectrum: sums of a few random sinusoids.

Crabbé et al. (2024), "Time Series Diffusion in the Frequency Domain", ICML, evaluate on
synthetic sinusoidal data besides real sets; the recipe below is this package's own (it
is not claimed to reproduce theirs sample for sample), chosen so that all energy sits in
a few low-frequency bins: the regime where frequency-domain models and spectral caching
are expected to help.
"""

from __future__ import annotations

import math

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
