"""Reverse-time samplers: small pure functions of (score_fn, x, times, sde, lam, noise) in
the style of k-diffusion's ``sample_euler`` / ``sample_dpmpp_2m``.

``score_fn(x, t, step)`` gets the batch (B, N, M), the time as a (B,) tensor and the
integer step index (so a cache can key on the solver's step, not on call count); a
solver with two evaluations per step calls ``score_fn(x, t, step, stage=1)`` for the
second one. ``noise(shape)`` returns standard normal draws (B, *shape) (see
``randomness``). ``times`` is a grid from ``time_grids``: n points = n steps; step i
evaluates at times[i] and moves to times[i + 1], the last step from eps to t = 0.

Non-isotropic noise. The forward marginal is x_t = m(t) x_0 + s(t) Lambda z per chart
position (``sde``), so with the score S = grad log p_t(x):
  * whitened coordinates y = Lambda^{-1} x are the usual isotropic model
    y_t = m y_0 + s z, whose score is Lambda S (chain rule);
  * noise prediction (Ho et al. 2020): eps_hat = -s grad_y log p = -s Lambda S;
  * data prediction (Tweedie): x0_hat = (x - s Lambda eps_hat) / m = (x + s^2 Lambda^2 S) / m.
DDIM and DPM-Solver++ are the textbook updates in y; mapped back by Lambda they read
x' = a x + b x0_hat (+ c Lambda eps_hat + d Lambda z) per position: Lambda enters through
x0_hat and the added noise only. The probability-flow ODE is dx/dt = f - g^2 Lambda^2 S / 2.
All formulas use (m, s) only, so they hold for VP and VE alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor
from tqdm.auto import tqdm

from fdbench.errors import ConfigError
from fdbench.sde import SDE, reverse_drift
from fdbench.time_grids import GRIDS, make_grid, uniform_times

__all__ = ["SOLVERS", "Callback", "NoiseFn", "ScoreFn", "SolverConfig", "SolverSpec",
           "data_prediction", "ddim",
           "dpmpp_2m", "noise_prediction", "ode_euler", "ode_heun",
           "probability_flow_drift", "reverse_euler_maruyama", "uniform_times"]


class ScoreFn(Protocol):
    def __call__(self, x: Tensor, t: Tensor, step: int, stage: int = 0) -> Tensor: ...


NoiseFn = Callable[[tuple[int, ...]], Tensor]
Callback = Callable[[int, Tensor, Tensor, Tensor], None]


def _lam2(lam: Tensor | None) -> Tensor | float:
    """Lambda^2 as an (N, 1) column (broadcasts over (B, N, M)); None -> 1."""
    return 1.0 if lam is None else lam[:, None].square()


def _steps(times: Tensor, progress: bool) -> tqdm:
    return tqdm(range(len(times)), disable=None if progress else True, desc="sampling",
                leave=False)


def _with_end(times: Tensor) -> list[float]:
    """The grid with the terminal time t = 0 appended, as Python floats (no per-step
    host syncs)."""
    return [*times.tolist(), 0.0]


def _coefficients(sde: SDE, times: list[float]) -> tuple[list[float], list[float]]:
    """m(t) and s(t) on the grid, computed once in float64."""
    t = torch.tensor(times, dtype=torch.float64)
    return sde.mean_coeff(t).tolist(), sde.std(t).tolist()


def probability_flow_drift(sde: SDE, x: Tensor, t: Tensor, score: Tensor,
                           lam: Tensor | None) -> Tensor:
    """dx/dt of the probability-flow ODE, f(x, t) - g(t)^2 Lambda^2 score / 2 (Song et al.
    2021, eq. 13, with the mirrored noise's Lambda^2 as in ``sde.reverse_drift``)."""
    g2 = sde.diffusion(t).square().reshape(-1, 1, 1)
    return sde.drift(x, t) - 0.5 * g2 * _lam2(lam) * score


def noise_prediction(score: Tensor, s: float, lam: Tensor | None) -> Tensor:
    """eps_hat = -s Lambda score: the z of x_t = m x_0 + s Lambda z (module docstring)."""
    return -s * (1.0 if lam is None else lam[:, None]) * score


def data_prediction(x: Tensor, score: Tensor, m: float, s: float,
                    lam: Tensor | None) -> Tensor:
    """x0_hat = (x + s^2 Lambda^2 score) / m (Tweedie; module docstring)."""
    return (x + s * s * _lam2(lam) * score) / m


def _time(t: float, x: Tensor) -> Tensor:
    return torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device)


@torch.no_grad()
def reverse_euler_maruyama(score_fn: ScoreFn, x: Tensor, times: Tensor, sde: SDE,
                           lam: Tensor | None, noise: NoiseFn, *,
                           noise_free_last_step: bool = False,
                           callback: Callback | None = None,
                           progress: bool = False) -> Tensor:
    """Reverse Euler–Maruyama (Song et al. 2021, eq. 6; docs/METHOD.md §1).

    For every t_i (T score calls), with dt_i = t_i - t_{i+1}:
        x <- x - dt_i [f(x, t_i) - g(t_i)^2 Lambda^2 s(x, t_i)] + g(t_i) sqrt(dt_i) Lambda z_i.
    The last step repeats the previous spacing (the base code's convention: on its
    uniform grid it ends at eps - dt). A grid uniform up to float rounding uses the one
    constant dt = t_0 - t_1, bit for bit the base code's arithmetic. Like the base code,
    noise is added on every step, the last included, and there is no separate denoising
    call; ``noise_free_last_step`` drops the last step's noise at no extra score call.
    """
    spacing = times[:-1] - times[1:]
    uniform = bool((spacing - spacing[0]).abs().max() <= 1e-12 * spacing[0])
    dts = [float(spacing[0])] * len(times) if uniform else [*spacing.tolist(),
                                                            float(spacing[-1])]
    lam_column = 1.0 if lam is None else lam[:, None]
    batch = x.shape[0]
    last = len(times) - 1
    for i in _steps(times, progress):
        t_batch, dt = times[i].to(x.dtype).expand(batch), dts[i]
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


@torch.no_grad()
def ode_euler(score_fn: ScoreFn, x: Tensor, times: Tensor, sde: SDE, lam: Tensor | None,
              noise: NoiseFn | None = None, *, callback: Callback | None = None,
              progress: bool = False) -> Tensor:
    """Euler on the probability-flow ODE (Song et al. 2021, eq. 13); one call per step:
        d_i = f(x_i, t_i) - g(t_i)^2 Lambda^2 s(x_i, t_i) / 2;  x_{i+1} = x_i + (t_{i+1} - t_i) d_i.
    Deterministic (``noise`` is unused)."""
    ts = _with_end(times)
    for i in _steps(times, progress):
        t_cur = _time(ts[i], x)
        score = score_fn(x, t_cur, i)
        x = x + (ts[i + 1] - ts[i]) * probability_flow_drift(sde, x, t_cur, score, lam)
        if callback is not None:
            callback(i, t_cur, x, score)
    return x


@torch.no_grad()
def ode_heun(score_fn: ScoreFn, x: Tensor, times: Tensor, sde: SDE, lam: Tensor | None,
             noise: NoiseFn | None = None, *, callback: Callback | None = None,
             progress: bool = False) -> Tensor:
    """Heun's 2nd-order method on the probability-flow ODE (Karras et al. 2022, "EDM",
    Alg. 1 lines 4-8, in t instead of sigma): two calls per step (stage 0 at
    t_i, stage 1 at t_{i+1}), one on the last step (to t = 0, where the score is
    undefined: EDM's "if sigma_{i+1} != 0")."""
    ts = _with_end(times)
    last = len(times) - 1
    for i in _steps(times, progress):
        t_cur, t_next, h = _time(ts[i], x), _time(ts[i + 1], x), ts[i + 1] - ts[i]
        score = score_fn(x, t_cur, i)
        # d_i = dx/dt at (x_i, t_i); x_{i+1} = x_i + h d_i
        d = probability_flow_drift(sde, x, t_cur, score, lam)
        x_next = x + h * d
        if i != last:
            # d'_i = dx/dt at (x_{i+1}, t_{i+1}); x_{i+1} = x_i + h (d_i/2 + d'_i/2)
            d_prime = probability_flow_drift(sde, x_next, t_next,
                                             score_fn(x_next, t_next, i, stage=1), lam)
            x_next = x + h * (0.5 * d + 0.5 * d_prime)
        x = x_next
        if callback is not None:
            callback(i, t_cur, x, score)
    return x


@torch.no_grad()
def ddim(score_fn: ScoreFn, x: Tensor, times: Tensor, sde: SDE, lam: Tensor | None,
         noise: NoiseFn | None = None, *, eta: float = 0.0, callback: Callback | None = None,
         progress: bool = False) -> Tensor:
    """DDIM (Song, Meng, Ermon 2021, eq. 12), per chart position in whitened coordinates:
        x_{i+1} = m' x0_hat + sqrt(s'^2 - sigma_i^2) Lambda eps_hat + sigma_i Lambda z_i,
        sigma_i = eta (s'/s) sqrt(s^2 - (m/m')^2 s'^2)
    with (m, s) at t_i and (m', s') at t_{i+1}: sigma_i^2 is eta^2 times the posterior
    variance of x_{t_{i+1}} given (x_{t_i}, x_0) (their eq. 16 in (m, s) form). eta = 0 is
    deterministic (``noise`` may be None); eta = 1 is DDPM's ancestral step."""
    ts = _with_end(times)
    ms, ss = _coefficients(sde, ts)
    lam_column = 1.0 if lam is None else lam[:, None]
    for i in _steps(times, progress):
        (m, s), (m_next, s_next) = (ms[i], ss[i]), (ms[i + 1], ss[i + 1])
        t_cur = _time(ts[i], x)
        score = score_fn(x, t_cur, i)
        eps_hat = noise_prediction(score, s, lam)
        x0_hat = data_prediction(x, score, m, s, lam)
        sigma = eta * (s_next / s) * math.sqrt(max(s * s - (m / m_next * s_next) ** 2, 0.0))
        x = m_next * x0_hat + math.sqrt(max(s_next ** 2 - sigma ** 2, 0.0)) * lam_column * eps_hat
        if sigma > 0:
            x = x + sigma * lam_column * noise(tuple(x.shape[1:]))
        if callback is not None:
            callback(i, t_cur, x, score)
    return x


@torch.no_grad()
def dpmpp_2m(score_fn: ScoreFn, x: Tensor, times: Tensor, sde: SDE, lam: Tensor | None,
             noise: NoiseFn | None = None, *, callback: Callback | None = None,
             progress: bool = False) -> Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Alg. 2; k-diffusion
    ``sample_dpmpp_2m``), data prediction D_i = x0_hat(x_i, t_i), lambda = log(m/s):
        h_i = lambda_{i+1} - lambda_i;  r_i = h_{i-1} / h_i;
        D = (1 + 1/(2 r_i)) D_i - D_{i-1} / (2 r_i)   (D = D_i on the first and last step);
        x_{i+1} = (s'/s) x_i - m' (e^{-h_i} - 1) D.
    Linear in (x, D) per position, so the whitened update maps back with Lambda only
    inside D (module docstring). The last step goes to s = 0 (VP at t = 0): x = m' D_i."""
    ts = _with_end(times)
    ms, ss = _coefficients(sde, ts)
    old_denoised, h_last = None, None
    for i in _steps(times, progress):
        (m, s), (m_next, s_next) = (ms[i], ss[i]), (ms[i + 1], ss[i + 1])
        t_cur = _time(ts[i], x)
        score = score_fn(x, t_cur, i)
        denoised = data_prediction(x, score, m, s, lam)
        if s_next == 0.0:
            x = m_next * denoised      # h = inf: the first-order step lands on D_i
        else:
            h = math.log(m_next / s_next) - math.log(m / s)
            if old_denoised is None:
                d = denoised
            else:
                r = h_last / h
                d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
            x = (s_next / s) * x - m_next * math.expm1(-h) * d
            h_last = h
        old_denoised = denoised
        if callback is not None:
            callback(i, t_cur, x, score)
    return x


@dataclass(frozen=True)
class SolverSpec:
    """A registered solver: its function, score calls for n steps, and the
    ``SolverConfig`` fields it takes besides the grid."""

    fn: Callable[..., Tensor]
    evaluations: Callable[[int], int]
    options: tuple[str, ...] = ()


SOLVERS: dict[str, SolverSpec] = {
    "em": SolverSpec(reverse_euler_maruyama, lambda n: n, ("noise_free_last_step",)),
    "ode_euler": SolverSpec(ode_euler, lambda n: n),
    "ode_heun": SolverSpec(ode_heun, lambda n: 2 * n - 1),
    "ddim": SolverSpec(ddim, lambda n: n, ("eta",)),
    "dpmpp_2m": SolverSpec(dpmpp_2m, lambda n: n),
}


@dataclass(frozen=True)
class SolverConfig:
    """Which solver on which grid. ``n_steps`` solver steps (grid points, see
    ``time_grids``); ``eta`` only for ``ddim`` (0 = deterministic, 1 = DDPM);
    ``rho`` only for the ``edm`` grid; ``noise_free_last_step`` only for ``em`` (the other
    solvers end on the data without added noise)."""

    name: str = "em"
    n_steps: int = 1000
    grid: str = "uniform"
    eta: float = 0.0
    rho: float = 7.0
    noise_free_last_step: bool = False

    def __post_init__(self) -> None:
        checks = (
            ("name", self.name in SOLVERS, f"one of {sorted(SOLVERS)}"),
            ("grid", self.grid in GRIDS, f"one of {sorted(GRIDS)}"),
            ("n_steps", isinstance(self.n_steps, int) and self.n_steps >= 2, "an int >= 2"),
            ("eta", 0.0 <= self.eta <= 1.0, "in [0, 1]"),
            ("eta", self.eta == 0.0 or self.name == "ddim", "0 unless name is 'ddim'"),
            ("rho", self.rho > 0, "> 0"),
            ("noise_free_last_step", not self.noise_free_last_step or self.name == "em",
             "False unless name is 'em'"),
        )
        for field_name, ok, allowed in checks:
            if not ok:
                raise ConfigError(f"SolverConfig.{field_name} must be {allowed}, got "
                                  f"{getattr(self, field_name)!r}")

    @property
    def n_evaluations(self) -> int:
        """Score calls per sample (Heun: 2 per step, 1 on the last)."""
        return SOLVERS[self.name].evaluations(self.n_steps)

    def times(self, sde: SDE, *, device: torch.device | str = "cpu") -> Tensor:
        return make_grid(self.grid, self.n_steps, sde, rho=self.rho, device=device)

    def run(self, score_fn: ScoreFn, x: Tensor, sde: SDE, lam: Tensor | None,
            noise: NoiseFn, *, times: Tensor | None = None, callback: Callback | None = None,
            progress: bool = False) -> Tensor:
        """Solve from the prior draw ``x`` (t = 1) to the data."""
        spec = SOLVERS[self.name]
        times = self.times(sde, device=x.device) if times is None else times
        options = {name: getattr(self, name) for name in spec.options}
        return spec.fn(score_fn, x, times, sde, lam, noise, callback=callback,
                       progress=progress, **options)
