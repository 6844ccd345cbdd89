"""Reverse-time grids, apart from the solvers (any solver consumes any grid).

Convention: a grid is a float64 tensor of ``n_steps`` times from t = 1 down to ``sde.eps``,
one per solver step: step i evaluates the score at ``times[i]`` (first stage) and moves
to ``times[i + 1]``; the last step moves from ``sde.eps`` to t = 0 (reverse EM instead
repeats the last spacing, the base code's convention; see ``solvers``). So
n points = n solver steps = n first-stage score calls, as for the base code's reverse
Euler–Maruyama. Grids other than ``uniform`` are defined through a monotone function of
t (log-SNR, sigma = s/m) and mapped back to t by bisection, so they work for any SDE
with ``mean_coeff`` and ``std`` (k-diffusion ``get_sigmas_karras`` / ``get_sigmas_vp``,
written in t instead of sigma because our networks take t).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from fdbench.errors import ConfigError
from fdbench.sde import SDE

Grid = Callable[..., Tensor]  # grid(n_steps, sde, *, rho, device) -> (n_steps,) float64


def _check_n(n_steps: int) -> None:
    if n_steps < 2:
        raise ConfigError(f"the number of sampler steps must be >= 2, got {n_steps}")


def uniform_times(n_steps: int, eps: float, *, device: torch.device | str = "cpu") -> Tensor:
    """The base model's reverse grid: linspace(1, eps, T) (Crabbé et al. 2024, App. C)."""
    _check_n(n_steps)
    return torch.linspace(1.0, eps, n_steps, dtype=torch.float64, device=device)


def _invert(fn: Callable[[Tensor], Tensor], targets: Tensor, low: float, high: float) -> Tensor:
    """t in [low, high] with fn(t) = targets for fn increasing in t (bisection, float64;
    60 halvings take the bracket below float64 resolution)."""
    lo = torch.full_like(targets, low)
    hi = torch.full_like(targets, high)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        above = fn(mid) > targets
        hi, lo = torch.where(above, mid, hi), torch.where(above, lo, mid)
    return 0.5 * (lo + hi)


def _pin_ends(times: Tensor, eps: float) -> Tensor:
    """Exact end points 1 and eps (bisection leaves them ~1e-16 off)."""
    times[0], times[-1] = 1.0, eps
    return times


def half_log_snr(sde: SDE, t: Tensor) -> Tensor:
    """lambda(t) = log(m(t) / s(t)), half the log signal-to-noise ratio (Lu et al. 2022,
    DPM-Solver, Sec. 3.1); decreasing in t."""
    return torch.log(sde.mean_coeff(t)) - torch.log(sde.std(t))


def log_snr_times(n_steps: int, sde: SDE, *, rho: float = 7.0,
                  device: torch.device | str = "cpu") -> Tensor:
    """Uniform in log-SNR log(m^2/s^2) between t = 1 and t = eps (Lu et al. 2022, DPM-Solver,
    Sec. 3.3 "uniform logSNR"; k-diffusion ``get_sigmas_vp`` spirit). ``rho`` is unused."""
    _check_n(n_steps)
    ends = torch.tensor([1.0, sde.eps], dtype=torch.float64, device=device)
    lam_1, lam_eps = half_log_snr(sde, ends).tolist()
    targets = torch.linspace(lam_1, lam_eps, n_steps, dtype=torch.float64, device=device)
    # invert the increasing function -lambda(t)
    times = _invert(lambda t: -half_log_snr(sde, t), -targets, sde.eps, 1.0)
    return _pin_ends(times, sde.eps)


def edm_times(n_steps: int, sde: SDE, *, rho: float = 7.0,
              device: torch.device | str = "cpu") -> Tensor:
    """EDM's rho-spacing of sigma = s/m (Karras et al. 2022, eq. 5):
    sigma_i = (sigma_max^(1/rho) + i/(n-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho,
    sigma_max = sigma(1), sigma_min = sigma(eps), mapped back to t."""
    _check_n(n_steps)
    if not rho > 0:
        raise ConfigError(f"rho must be > 0, got {rho}")

    def sigma(t: Tensor) -> Tensor:
        return sde.std(t) / sde.mean_coeff(t)

    ends = torch.tensor([1.0, sde.eps], dtype=torch.float64, device=device)
    sigma_max, sigma_min = sigma(ends).tolist()
    ramp = torch.linspace(0.0, 1.0, n_steps, dtype=torch.float64, device=device)
    targets = (sigma_max ** (1 / rho) + ramp * (sigma_min ** (1 / rho)
                                                - sigma_max ** (1 / rho))) ** rho
    return _pin_ends(_invert(sigma, targets, sde.eps, 1.0), sde.eps)


def _uniform(n_steps: int, sde: SDE, *, rho: float = 7.0,
             device: torch.device | str = "cpu") -> Tensor:
    return uniform_times(n_steps, sde.eps, device=device)


GRIDS: dict[str, Grid] = {"uniform": _uniform, "log_snr": log_snr_times, "edm": edm_times}


def make_grid(name: str, n_steps: int, sde: SDE, *, rho: float = 7.0,
              device: torch.device | str = "cpu") -> Tensor:
    """The grid ``name`` (one of ``GRIDS``) with ``n_steps`` times from 1 down to sde.eps."""
    if name not in GRIDS:
        raise ConfigError(f"unknown time grid {name!r}; known: {sorted(GRIDS)}")
    return GRIDS[name](n_steps, sde, rho=rho, device=device)
