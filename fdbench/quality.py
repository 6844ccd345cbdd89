"""Quality of cached sampling against the uncached sampler (E²-CRF issue, item 5).

Two kinds of comparison (docs/BASELINES.md: every method is reported with SW, marginal W,
spectral error and the paired error to the uncached trajectory):

* **paired** — cached and uncached runs share the prior draw and every step's noise (one
  generator per sample, ``fdbench.randomness``, as EDM's per-sample generators and
  k-diffusion's ``noise_sampler``), so sample b of one run is the counterpart of sample b
  of the other and their distance is a direct error of the cache: ``paired_relative_error``,
  ``trajectory_relative_error``, ``summarise_paired``;
* **distributional** — generated samples against held-out reference series: sliced and
  marginal Wasserstein-2 (``fdbench.metrics``) with bootstrap standard errors
  (``bootstrap_se``, ``bootstrap_metric``), and errors of the mean energy spectrum
  (``spectral_band_error``, ``spectral_density_error``).

``quality_summary`` puts all of it in one JSON-ready dict. Time-domain series are
tensors (B, N, M); all numbers are computed in float64 on the device of the input.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from fdbench.errors import InputError
from fdbench.metrics import (  # the validation helpers are shared with metrics
    DistanceSummary,
    _check_finite,
    _check_tensor,
    marginal_wasserstein,
    random_directions,
    wasserstein_1d,
)
from fdbench.spectral import bin_energy, chart

__all__ = [
    "PairedSummary",
    "bootstrap_metric",
    "bootstrap_se",
    "paired_relative_error",
    "quality_summary",
    "spectral_band_error",
    "spectral_density_error",
    "summarise_paired",
    "trajectory_relative_error",
]

#: Floor for denominators of relative errors and arguments of logarithms: the smallest
#: positive normal float64 (~2.2e-308). It only matters when the reference is exactly 0.
TINY = torch.finfo(torch.float64).tiny


# ---------------------------------------------------------------- validation helpers


def _check_nonempty(t: Tensor, what: str) -> None:
    if t.numel() == 0:
        raise InputError(f"{what} is empty (shape {tuple(t.shape)})")


def _same_device_nonempty_finite(a: Tensor, b: Tensor,
                                 names: tuple[str, str]) -> tuple[Tensor, Tensor]:
    """The checks every pair of inputs shares; returns both as float64."""
    if a.device != b.device:
        raise InputError(f"{names[0]} and {names[1]} are on different devices "
                         f"({a.device}, {b.device})")
    for t, what in ((a, names[0]), (b, names[1])):
        _check_nonempty(t, what)
        _check_finite(t, what)
    return a.to(torch.float64), b.to(torch.float64)


def _check_same_shape(a: object, b: object, names: tuple[str, str], *, min_rank: int,
                      max_rank: int | None, shape: str) -> tuple[Tensor, Tensor]:
    """Two real finite non-empty tensors of identical shape and device, as float64."""
    a, b = _check_tensor(a, names[0]), _check_tensor(b, names[1])
    for t, what in ((a, names[0]), (b, names[1])):
        if t.dim() < min_rank or (max_rank is not None and t.dim() > max_rank):
            raise InputError(f"{what} must have shape {shape}, got {tuple(t.shape)}")
    if a.shape != b.shape:
        raise InputError(f"{names[0]} and {names[1]} must have the same shape, got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    return _same_device_nonempty_finite(a, b, names)


def _check_sets(x: object, y: object, names: tuple[str, str]) -> tuple[Tensor, Tensor]:
    """Two series sets (B1, N, M), (B2, N, M) sharing (N, M), as float64."""
    x, y = _check_tensor(x, names[0]), _check_tensor(y, names[1])
    for t, what in ((x, names[0]), (y, names[1])):
        if t.dim() != 3:
            raise InputError(f"{what} must have shape (B, N, M), got {tuple(t.shape)}")
    if x.shape[1:] != y.shape[1:]:
        raise InputError(f"{names[0]} and {names[1]} must agree on (N, M), got "
                         f"{tuple(x.shape)} and {tuple(y.shape)}")
    x, y = _same_device_nonempty_finite(x, y, names)
    if x.shape[1] < 2:
        raise InputError(f"series need N >= 2 time steps, got N = {x.shape[1]}")
    return x, y


def _check_int(value: object, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return value


def _none_if_nan(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


# ---------------------------------------------------------------- paired errors


def _per_sample_relative_error(c: Tensor, r: Tensor) -> Tensor:
    """(B, ...) float64 pair -> (B,): ||c_b - r_b||_2 / max(||r_b||_2, TINY)."""
    diff = (c - r).flatten(1).norm(dim=1)  # (B,)
    return diff / r.flatten(1).norm(dim=1).clamp_min(TINY)


def paired_relative_error(candidate: Tensor, reference: Tensor) -> Tensor:
    """Per-sample relative L2 error of paired samples, (B, N, M) x2 -> (B,) float64:

        e_b = ||c_b - r_b||_2 / max(||r_b||_2, tiny),   ||.||_2 over all N*M entries,

    with tiny = ``TINY`` (smallest normal float64). The floor only avoids 0/0: a
    reference sample that is exactly zero gives e_b = 0 when c_b is zero too and a huge
    (possibly infinite) e_b otherwise, where the relative error has no meaning anyway.

    ``candidate`` (cached) and ``reference`` (uncached) must come from the same prior
    draw and the same per-step noise, so that sample b of one is the counterpart of
    sample b of the other; then e_b measures the cache's error alone, free of sampling
    variability. This is the relative distance used by the caching literature to compare
    a cached output with the full computation (e.g. TeaCache, Liu et al. 2025, Sec. 3).

    >>> r = torch.tensor([[[3.0], [4.0]], [[1.0], [0.0]]])
    >>> paired_relative_error(1.5 * r, r)  # ||0.5 r|| / ||r||
    tensor([0.5000, 0.5000], dtype=torch.float64)
    """
    c, r = _check_same_shape(candidate, reference, ("candidate", "reference"),
                             min_rank=3, max_rank=3, shape="(B, N, M)")
    return _per_sample_relative_error(c, r)


def trajectory_relative_error(candidate_traj: Tensor, reference_traj: Tensor) -> Tensor:
    """Mean paired relative error at each recorded step, (T, B, ...) x2 -> (T,) float64:

        E_t = (1/B) sum_b ||c_{t,b} - r_{t,b}||_2 / max(||r_{t,b}||_2, tiny),

    the norms taken over all trailing axes of a sample (e.g. (N, M) of a series or
    (K, 2M) of spectral tokens). Shows how a cache's error grows or heals along the
    reverse-time trajectory; both trajectories must share the noise (see
    ``paired_relative_error``).

    >>> r = torch.ones(2, 3, 4, 1)
    >>> trajectory_relative_error(torch.stack([r[0], 2 * r[1]]), r)
    tensor([0., 1.], dtype=torch.float64)
    """
    c, r = _check_same_shape(candidate_traj, reference_traj,
                             ("candidate_traj", "reference_traj"),
                             min_rank=3, max_rank=None, shape="(T, B, ...) with rank >= 3")
    n_steps, batch = c.shape[0], c.shape[1]
    errors = _per_sample_relative_error(c.flatten(0, 1), r.flatten(0, 1))  # (T*B,)
    return errors.reshape(n_steps, batch).mean(dim=1)


@dataclass(frozen=True)
class PairedSummary:
    """Paired errors e_1..e_n reduced to the numbers a report prints.

    ``mean = (1/n) sum_b e_b``; ``median`` is the 0.5 quantile with linear
    interpolation (mean of the two middle values for even n); ``max = max_b e_b``;
    ``se = std(e, ddof=1) / sqrt(n)``, the standard error of ``mean`` over the
    noise draws (NaN when n = 1).
    """

    mean: float
    median: float
    max: float
    se: float
    n: int

    def to_dict(self) -> dict[str, float | int | None]:
        """JSON-ready dict (an undefined ``se`` becomes ``None``, not a bare NaN)."""
        return {k: _none_if_nan(v) for k, v in asdict(self).items()}


def summarise_paired(errors: Tensor) -> PairedSummary:
    """Summarise per-sample paired errors (n,) (e.g. from ``paired_relative_error``).

    >>> s = summarise_paired(torch.tensor([1.0, 2.0, 6.0]))
    >>> s.mean, s.median, s.max, s.se, s.n
    (3.0, 2.0, 6.0, 1.5275252316519468, 3)
    """
    e = _check_tensor(errors, "errors")
    if e.dim() != 1:
        raise InputError(f"errors must have shape (n,), got {tuple(e.shape)}")
    _check_nonempty(e, "errors")
    _check_finite(e, "errors")
    e = e.to(torch.float64)
    n = e.numel()
    se = (e.std(correction=1) / math.sqrt(n)).item() if n > 1 else math.nan
    return PairedSummary(mean=e.mean().item(), median=torch.quantile(e, 0.5).item(),
                         max=e.max().item(), se=se, n=n)


# ---------------------------------------------------------------- bootstrap


def _as_float(value: object, what: str) -> float:
    if isinstance(value, DistanceSummary):
        return value.mean
    try:
        return float(value)  # float, int, numpy scalar or one-element tensor
    except (TypeError, ValueError, RuntimeError) as err:
        raise InputError(f"{what} must return a number, got {type(value).__name__}") from err


def bootstrap_se(statistic: Callable[[Tensor], float], samples: Tensor, *,
                 n_boot: int = 200, seed: int = 0) -> float:
    """Bootstrap standard error of ``statistic(samples)`` (Efron & Tibshirani 1993,
    "An Introduction to the Bootstrap", Alg. 6.1 and eq. 6.6):

        s*_j = statistic(samples[I_j]),  I_j = n indices drawn uniformly with
               replacement from 0..n-1 (rows of ``samples``), j = 1..n_boot,
        SE   = sqrt( sum_j (s*_j - mean_j s*_j)^2 / (n_boot - 1) ).

    ``samples`` is (n, ...) with n >= 2; only axis 0 is resampled. The indices come from
    a CPU ``torch.Generator`` seeded with ``seed``, one draw of n per replicate, so the
    result depends only on (statistic, samples, n_boot, seed). ``statistic`` returns a
    float (a 0-d tensor or a ``DistanceSummary``, whose ``mean`` is taken, also work),
    e.g. ``lambda s: sliced_wasserstein(s, reference).mean``; its own randomness must be
    fixed (a fixed ``seed`` for the directions), or the SE mixes in that noise too.
    The Monte Carlo relative error of the estimate is about 1/sqrt(2 (n_boot - 1)).
    """
    if not callable(statistic):
        raise InputError(f"statistic must be callable, got {type(statistic).__name__}")
    x = _check_tensor(samples, "samples")
    if x.dim() < 1 or x.shape[0] < 2:
        raise InputError(f"samples must have shape (n, ...) with n >= 2 rows to "
                         f"resample, got {tuple(x.shape)}")
    _check_nonempty(x, "samples")
    _check_finite(x, "samples")
    n_boot = _check_int(n_boot, "n_boot", 2)
    n = x.shape[0]
    gen = torch.Generator(device="cpu").manual_seed(seed)
    replicates = []
    for _ in range(n_boot):
        idx = torch.randint(n, (n,), generator=gen).to(x.device)  # I_j
        replicates.append(_as_float(statistic(x.index_select(0, idx)), "statistic"))
    return statistics.stdev(replicates)  # correctly rounded: equal replicates give 0.0


def bootstrap_metric(metric_fn: Callable[[Tensor, Tensor], float], samples: Tensor,
                     reference: Tensor, *, n_boot: int = 200,
                     seed: int = 0) -> dict[str, float | int | None]:
    """A distance between sample sets with its bootstrap standard error:

        {"value": metric_fn(samples, reference),
         "se":    bootstrap_se(lambda s: metric_fn(s, reference), samples, ...),
         "n_boot": n_boot}.

    Only the rows of ``samples`` (the generated set) are resampled; ``reference`` stays
    fixed. So ``se`` covers the sampling variability of the generated set only — not
    that of the finite reference set, nor the randomness of projection directions
    (keep ``metric_fn``'s seed fixed). ``metric_fn`` returns a float (or a
    ``DistanceSummary``, whose ``mean`` is taken). A non-finite ``se`` becomes None.
    """
    if not callable(metric_fn):
        raise InputError(f"metric_fn must be callable, got {type(metric_fn).__name__}")
    _check_tensor(reference, "reference")
    se = bootstrap_se(lambda s: metric_fn(s, reference), samples, n_boot=n_boot, seed=seed)
    value = _as_float(metric_fn(samples, reference), "metric_fn")
    return {"value": _none_if_nan(value), "se": _none_if_nan(se), "n_boot": n_boot}


# ---------------------------------------------------------------- spectra


def _mean_energies(samples: Tensor, reference: Tensor) -> tuple[Tensor, Tensor]:
    """Mean per-bin energy over the batch, (K,) each, K = N//2 + 1."""
    x, y = _check_sets(samples, reference, ("samples", "reference"))
    return bin_energy(x).mean(dim=0), bin_energy(y).mean(dim=0)


def _relative_l1(e_s: Tensor, e_r: Tensor) -> float:
    return ((e_s - e_r).abs().sum() / e_r.abs().sum().clamp_min(TINY)).item()


def spectral_band_error(samples: Tensor, reference: Tensor, *,
                        n_bands: int = 4) -> list[dict[str, Any]]:
    """Errors of the mean energy spectrum in ``n_bands`` contiguous bands of bins.

    With E(k) = (1/B) sum_b sum_m |c_{b,k,m}|^2 (``spectral.bin_energy`` averaged over
    the batch; unitary DFT, bins k = 0..N//2, each half-spectrum bin counted once) for
    ``samples`` (E_s) and ``reference`` (E_r), the bins are split into contiguous bands
    as by ``numpy.array_split(arange(N//2 + 1), n_bands)`` (the first bands get one
    extra bin when the split is uneven), and for each band S:

        relative_error = sum_{k in S} |E_s(k) - E_r(k)| / max(sum_{k in S} E_r(k), tiny),
        log_ratio      = (1/|S|) sum_{k in S} log( max(E_s(k), tiny) / max(E_r(k), tiny) ).

    log_ratio > 0 means too much energy in the band (log 4 for doubled amplitudes),
    < 0 too little. Returns one dict per band: {"band": i, "bins": [first, last]
    (inclusive), "relative_error", "log_ratio"}. Needs 1 <= n_bands <= N//2 + 1.
    Spectral errors are the frequency-domain view of the base paper's evaluation
    (Crabbé et al. 2024, Sec. 5) and the quantity E²-CRF's energy weighting targets.

    >>> x = torch.tensor([[[1.0], [-1.0], [1.0], [-1.0]]])  # all energy at Nyquist
    >>> [b["relative_error"] for b in spectral_band_error(2 * x, x, n_bands=3)]
    [0.0, 0.0, 3.0]
    """
    e_s, e_r = _mean_energies(samples, reference)
    n_k = e_r.numel()
    if isinstance(n_bands, bool) or not isinstance(n_bands, int) or not 1 <= n_bands <= n_k:
        raise InputError(f"n_bands must be an integer in [1, {n_k}] (the number of bins "
                         f"N//2 + 1), got {n_bands!r}")
    log_ratio = e_s.clamp_min(TINY).log() - e_r.clamp_min(TINY).log()  # (K,)
    out = []
    for i, band in enumerate(np.array_split(np.arange(n_k), n_bands)):
        first, last = int(band[0]), int(band[-1])
        s = slice(first, last + 1)
        out.append({"band": i, "bins": [first, last],
                    "relative_error": _relative_l1(e_s[s], e_r[s]),
                    "log_ratio": log_ratio[s].mean().item()})
    return out


def spectral_density_error(samples: Tensor, reference: Tensor) -> float:
    """Relative L1 error of the whole mean energy spectrum (bins 0..N//2):

        sum_k |E_s(k) - E_r(k)| / max(sum_k E_r(k), tiny),

    E as in ``spectral_band_error`` (equal to its ``relative_error`` with one band).
    Invariant to a time shift of the series (|c_k| is), unlike the Wasserstein distances.

    >>> x = torch.tensor([[[1.0], [0.0], [-1.0], [0.0]]])
    >>> spectral_density_error(2 * x, x), spectral_density_error(x, x)
    (3.0, 0.0)
    """
    return _relative_l1(*_mean_energies(samples, reference))


# ---------------------------------------------------------------- one report


def _sliced_with_bootstrap(x: Tensor, y: Tensor, *, n_directions: int, seed: int,
                           n_boot: int) -> dict[str, float | int | None]:
    """``sliced_wasserstein(x, y)`` with a bootstrap SE over rows of x, projecting once.

    The directions theta (D, L) are those of ``sliced_wasserstein(..., seed=seed)``; the
    sets are projected once, P_x = x theta (B1, L), P_y = y theta (B2, L), and each
    replicate resamples rows of P_x: SW*_j = mean_l W2(P_x[I_j, l], P_y[:, l]). This is
    the same number as re-running ``sliced_wasserstein`` on x[I_j] (projection commutes
    with row selection), without redoing the (B, D) x (D, L) product per replicate.
    """
    theta = random_directions(x.shape[1] * x.shape[2], n_directions, seed=seed)
    px = x.flatten(1) @ theta.to(x.device)  # (B1, L)
    py = y.flatten(1) @ theta.to(y.device)  # (B2, L)
    w = wasserstein_1d(px, py)  # (L,), identical to sliced_wasserstein's directions
    se = bootstrap_se(lambda p: wasserstein_1d(p, py).mean().item(), px,
                      n_boot=n_boot, seed=seed)
    n_l = w.numel()
    se_dir = (w.std(correction=1) / math.sqrt(n_l)).item() if n_l > 1 else math.nan
    return {"value": w.mean().item(), "se": _none_if_nan(se), "n_boot": n_boot,
            "max": w.max().item(), "se_directions": _none_if_nan(se_dir),
            "n_directions": n_l}


def quality_summary(samples: Tensor, reference: Tensor, *,
                    paired_reference: Tensor | None = None, n_directions: int = 1000,
                    seed: int = 0, n_boot: int = 100) -> dict[str, Any]:
    """All quality numbers for generated ``samples`` (B1, N, M) against ``reference``
    (B2, N, M) held-out series, as one JSON-ready dict (NaN -> None):

    * "sw_time", "sw_freq": sliced W2 in the time domain and of the charts
      (``metrics.sliced_wasserstein`` / ``frequency_sliced_wasserstein``, directions
      from ``seed``): {"value" (mean over directions), "se" (bootstrap SE over the rows
      of ``samples``, reference fixed, ``n_boot`` replicates), "n_boot", "max",
      "se_directions" (spread over directions, see ``DistanceSummary``),
      "n_directions"}. Both sets are projected once and the bootstrap resamples rows of
      the projected samples (same result as re-running SW on resampled rows, cheaper);
      time and frequency use the same resampling indices (same ``seed``);
    * "marginal_w_time", "marginal_w_freq": {"value", "max"} of
      ``metrics.marginal_wasserstein`` on the series / charts (no SE);
    * "spectral_bands": ``spectral_band_error`` with 4 bands (fewer if N//2 + 1 < 4);
    * "spectral_density_error": ``spectral_density_error``;
    * "paired": ``summarise_paired(paired_relative_error(samples, paired_reference))``
      as a dict when ``paired_reference`` — the uncached samples drawn with the same
      prior and step noise as ``samples`` — is given, else None;
    * "n_samples", "n_reference", "settings": {"n_directions", "seed", "n_boot"}.
    """
    n_directions = _check_int(n_directions, "n_directions", 1)
    n_boot = _check_int(n_boot, "n_boot", 2)
    x, y = _check_sets(samples, reference, ("samples", "reference"))
    fx, fy = chart(x), chart(y)  # float64, so the rFFT runs in float64
    paired = None
    if paired_reference is not None:
        paired = summarise_paired(paired_relative_error(samples, paired_reference)).to_dict()
    mw_time, mw_freq = marginal_wasserstein(x, y), marginal_wasserstein(fx, fy)
    kw = dict(n_directions=n_directions, seed=seed, n_boot=n_boot)
    return {
        "n_samples": x.shape[0],
        "n_reference": y.shape[0],
        "settings": {"n_directions": n_directions, "seed": seed, "n_boot": n_boot},
        "sw_time": _sliced_with_bootstrap(x, y, **kw),
        "sw_freq": _sliced_with_bootstrap(fx, fy, **kw),
        "marginal_w_time": {"value": mw_time.mean, "max": mw_time.max},
        "marginal_w_freq": {"value": mw_freq.mean, "max": mw_freq.max},
        "spectral_bands": spectral_band_error(x, y, n_bands=min(4, x.shape[1] // 2 + 1)),
        "spectral_density_error": spectral_density_error(x, y),
        "paired": paired,
    }
