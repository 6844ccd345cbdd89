"""Reverse-time samplers: small pure functions of (score_fn, x, times, ...) in the style of
k-diffusion. ``score_fn(x, t, step)`` gets the batch (B, N, M), the time as a (B,) tensor
and the integer step index (so a cache can key on the solver's step, not on call count).
``noise(shape)`` returns standard normal draws (B, *shape) (see ``randomness``)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor
from tqdm.auto import tqdm

from fdbench.errors import ConfigError
from fdbench.sde import SDE, reverse_drift

ScoreFn = Callable[[Tensor, Tensor, int], Tensor]
NoiseFn = Callable[[tuple[int, ...]], Tensor]
Callback = Callable[[int, Tensor, Tensor, Tensor], None]


def uniform_times(n_steps: int, eps: float, *, device: torch.device | str = "cpu") -> Tensor:
    """The base model's reverse grid: linspace(1, eps, T) (Crabbé et al. 2024, App. C)."""
    if n_steps < 2:
        raise ConfigError(f"the number of sampler steps must be >= 2, got {n_steps}")
    return torch.linspace(1.0, eps, n_steps, dtype=torch.float64, device=device)


@torch.no_grad()
def reverse_euler_maruyama(score_fn: ScoreFn, x: Tensor, times: Tensor, sde: SDE,
                           lam: Tensor | None, noise: NoiseFn, *,
                           noise_free_last_step: bool = False,
                           callback: Callback | None = None,
                           progress: bool = False) -> Tensor:
    """Reverse Euler–Maruyama on a uniform grid (Song et al. 2021, eq. 6; METHOD.md §1).

    With dt = times[0] - times[1], for every t_i (T score calls):
        x <- x - dt [f(x, t_i) - g(t_i)^2 Lambda^2 s(x, t_i)] + g(t_i) sqrt(dt) Lambda z_i.
    Like the base code, noise is added on every step, the last included, and there is no
    separate denoising call; ``noise_free_last_step`` drops the last step's noise (the
    usual "return the mean" convention) at no extra score call.
    """
    dt = float(times[0] - times[1])
    lam_column = 1.0 if lam is None else lam[:, None]
    batch = x.shape[0]
    last = len(times) - 1
    for i, t in enumerate(tqdm(times, disable=None if progress else True, desc="sampling",
                                   leave=False)):
        t_batch = t.to(x.dtype).expand(batch)
        score = score_fn(x, t_batch, i)
        # x_mean = x - dt * reverse drift; then add the mirrored Brownian increment
        x_mean = x - dt * reverse_drift(sde, x, t_batch, score, lam)
        if i == last and noise_free_last_step:
            x = x_mean
        else:
            g = sde.diffusion(t_batch).reshape(-1, 1, 1)
            x = x_mean + g * math.sqrt(dt) * lam_column * noise(tuple(x.shape[1:]))
        if callback is not None:
            callback(i, t_batch, x, score)
    return x
