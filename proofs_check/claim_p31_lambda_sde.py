"""P3.1: the frequency-domain forward SDE with mirrored noise and its reverse with Lambda^2
in front of the score generate the data law.

Gaussian data x ~ N(0, Sigma) in the time domain is N(0, C0), C0 = Q Sigma Q^T, in chart
coordinates (phi = Q x). The forward VP marginal in chart coordinates is then
N(0, P(t)), P(t) = m(t)^2 C0 + s(t)^2 Lambda^2, so the exact score is -P(t)^-1 x. The
reverse Euler-Maruyama sampler (``fdbench.solvers``) is run with that analytic score
from the prior Lambda z; its sample covariance must reproduce C0. A sampler without
Lambda^2 (identity drift weighting and noise, ``lam=None``) must not."""

from __future__ import annotations

from statistics import NormalDist

import torch
from torch import Tensor

from fdbench.sde import VPSDE, prior_sample
from fdbench.solvers import reverse_euler_maruyama, uniform_times
from fdbench.spectral import chart, chart_lambda
from proofs_check.claim_a06_mirrored_bm import wishart_z
from proofs_check.registry import ClaimResult, Context, register

FALSE_ALARM = 1e-3


def chart_matrix(n: int) -> Tensor:
    """Q (N, N) float64 with chart(x) = Q x for a one-channel series x."""
    return chart(torch.eye(n, dtype=torch.float64)[..., None])[..., 0].T


def gaussian_covariance(n: int, rho: float = 0.8) -> Tensor:
    """Sigma_ij = rho^|i-j| (AR(1)): smooth, so its chart covariance is far from Lambda^2."""
    idx = torch.arange(n, dtype=torch.float64)
    return rho ** (idx[:, None] - idx[None, :]).abs()


def analytic_score(c0: Tensor, sde: VPSDE, lam: Tensor, times: Tensor):
    """score(x, t_i) = -(m^2 C0 + s^2 Lambda^2)^-1 x for x (B, N, 1) at grid step i; the N x N
    precisions of all grid times are inverted once, up front (batched)."""
    m, s = sde.mean_coeff(times), sde.std(times)                          # (T,)
    p = m[:, None, None].square() * c0 + s[:, None, None].square() * torch.diag(lam.square())
    precision = torch.linalg.inv(p)                                      # (T, N, N)

    def score_fn(x: Tensor, t: Tensor, step: int) -> Tensor:
        return -(x[..., 0] @ precision[step])[..., None]                 # P symmetric
    return score_fn


def em_covariance(c0: Tensor, sde: VPSDE, lam: Tensor, times: Tensor) -> Tensor:
    """The exact covariance of the Euler-Maruyama chain with the exact score (everything is
    linear-Gaussian): Cov <- A Cov A^T + g^2 dt Lambda^2 with A = I + dt (beta/2 I -
    beta Lambda^2 P(t)^-1), the last step noise-free. Its gap to C0 is the sampler's
    discretisation bias, which the tolerance allows for."""
    dt = float(times[0] - times[1])
    lam2 = torch.diag(lam.square())
    eye = torch.eye(len(lam), dtype=torch.float64)
    cov = sde.prior_std() ** 2 * lam2
    for i, t in enumerate(times):
        m, s, beta = sde.mean_coeff(t), sde.std(t), sde.beta(t)
        a = eye + dt * (beta / 2 * eye - beta * lam2 @ torch.linalg.inv(m**2 * c0 + s**2 * lam2))
        cov = a @ cov @ a.T
        if i < len(times) - 1:
            cov = cov + beta * dt * lam2
    return cov


@register("P3.1", "frequency-domain SDE with Lambda^2 reproduces the data covariance")
def check(ctx: Context, *, sampler_lam: str = "model") -> ClaimResult:
    """Fault: ``sampler_lam="none"`` runs the sampler (drift weighting, noise, prior)
    without Lambda while the score stays the mirrored-noise one."""
    if sampler_lam not in ("model", "none"):
        raise ValueError(f"sampler_lam must be 'model' or 'none', got {sampler_lam!r}")
    n = ctx.pick(8, 16)
    n_samples, n_steps = ctx.pick((3000, 200), (8000, 500))
    sde = VPSDE()
    lam = chart_lambda(n, dtype=torch.float64)
    q = chart_matrix(n)
    c0 = q @ gaussian_covariance(n) @ q.T                     # chart covariance Q Sigma Q^T
    generator = torch.Generator().manual_seed(ctx.seed)

    def noise(shape: tuple[int, ...]) -> Tensor:
        return torch.randn((n_samples, *shape), generator=generator, dtype=torch.float64)

    sampler_scale = lam if sampler_lam == "model" else None
    x_T = prior_sample(sde, noise((n, 1)), sampler_scale)
    times = uniform_times(n_steps, sde.eps)
    x0 = reverse_euler_maruyama(analytic_score(c0, sde, lam, times), x_T, times, sde, sampler_scale,
                                noise, noise_free_last_step=True)[..., 0]
    z = wishart_z(x0, c0)
    # per-entry allowance: Wishart z* (Bonferroni) plus the exact discretisation bias of
    # the correct (Lambda^2) chain, in standard-error units
    rows, cols = torch.triu_indices(n, n)
    se = ((c0.square() + torch.outer(c0.diagonal(), c0.diagonal())) / n_samples).sqrt()
    bias = (em_covariance(c0, sde, lam, times) - c0).abs()
    z_star = NormalDist().inv_cdf(1 - FALSE_ALARM / (2 * len(z)))
    allowed = z_star + (bias / se)[rows, cols]
    excess = float((z.abs() / allowed).max())
    emp = x0.T @ x0 / n_samples
    rel_frob = float((emp - c0).norm() / c0.norm())
    rel_diag = float(((emp.diagonal() - c0.diagonal()) / c0.diagonal()).abs().max())
    reading = ("sampler with Lambda^2 (the claim)" if sampler_lam == "model" else
               "sampler without Lambda^2 (fault)")
    return ClaimResult(
        "P3.1", "reverse SDE with Lambda^2 samples N(0, Q Sigma Q^T)",
        "holds" if excess <= 1.0 else "violated",
        {"max_z_over_allowed": excess, "max_abs_z": float(z.abs().max()),
         "rel_frobenius_error": rel_frob, "max_rel_dev_diagonal": rel_diag,
         "em_bias_rel": float(bias.max() / c0.diagonal().max()),
         "samples": float(n_samples), "steps": float(n_steps), "N": float(n)},
        tolerance=(f"every covariance entry within z* = {z_star:.2f} Wishart standard errors "
                   f"(Bonferroni, false alarm {FALSE_ALARM:g}) plus the exact Euler-Maruyama "
                   "bias |Cov_EM - C0| of the Lambda^2 chain (linear-Gaussian recursion); "
                   "verdict on max |z| / allowed <= 1"),
        measured=excess, bound=1.0,
        readings={reading: "holds" if excess <= 1.0 else "violated"},
        reading_values={reading: (excess, 1.0)}, decided_by=reading,
        settings=f"N = {n}, T = {n_steps}, {n_samples} samples",
        note=(f"AR(1) Sigma (rho 0.8), N = {n}, VP-SDE defaults, T = {n_steps}, "
              f"{n_samples} samples, score -P(t)^-1 x exact, sampler lam = {sampler_lam}"),
        series={"emp_diag": [round(float(v), 5) for v in emp.diagonal()],
                "c0_diag": [round(float(v), 5) for v in c0.diagonal()]})
