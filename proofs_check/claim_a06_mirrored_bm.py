"""A.6: mirrored Brownian motion. For a time-domain Brownian motion w_t in R^N,
phi(U w_t) (the chart of w_t) is a Brownian motion with covariance Cov = t Lambda^2.

Simulated: n paths of N-dimensional Brownian motion from Gaussian increments, read at
several times t, mapped by the chart; the empirical covariance S = X^T X / n (the mean is
known to be 0) is compared entry by entry with t Lambda^2 in units of its exact Wishart
standard error: for zero-mean Gaussian data with covariance C,
    Var(S_ij) = (C_ij^2 + C_ii C_jj) / n,
so z_ij = (S_ij - C_ij) / sqrt((C_ij^2 + C_ii C_jj) / n) is ~N(0, 1) for every entry."""

from __future__ import annotations

import math
from collections.abc import Callable
from statistics import NormalDist

import torch
from torch import Tensor

from fdbench.spectral import chart, chart_lambda
from proofs_check.registry import ClaimResult, Context, register

FALSE_ALARM = 1e-3  # family-wise probability of calling a true claim violated

READING = "every covariance entry within z* Wishart standard errors of t Lambda^2"


def wishart_z(samples: Tensor, cov: Tensor) -> Tensor:
    """(n, N) zero-mean samples, (N, N) claimed covariance -> z-scores of the upper
    triangle (incl. diagonal) of the empirical covariance against it."""
    n = samples.shape[0]
    emp = samples.T @ samples / n
    var = (cov.square() + torch.outer(cov.diagonal(), cov.diagonal())) / n
    rows, cols = torch.triu_indices(cov.shape[0], cov.shape[0])
    return ((emp - cov) / var.sqrt())[rows, cols]


@register("A.6", "mirrored Brownian motion: Cov(phi(U w_t)) = t Lambda^2")
def check(ctx: Context, *, chart_fn: Callable[[Tensor], Tensor] = chart) -> ClaimResult:
    """Fault: ``chart_fn`` (e.g. a chart without the 1/sqrt(2) scaling of the paired bins)."""
    sizes = ctx.pick((15, 16), (15, 16, 31, 64))
    n_paths = ctx.pick(4000, 20000)
    n_increments, times = 4, (0.25, 0.5, 1.0)  # exact BM at the grid times
    generator = torch.Generator().manual_seed(ctx.seed)
    zs, rel_diag, per_n = [], [], []
    for n in sizes:
        dt = 1.0 / n_increments
        increments = torch.randn(n_increments, n_paths, n, 1, generator=generator,
                                 dtype=torch.float64) * math.sqrt(dt)
        path = increments.cumsum(0)                                   # w at t = (i+1) dt
        lam2 = chart_lambda(n, dtype=torch.float64).square()
        worst_n = 0.0
        for t in times:
            w_t = path[round(t * n_increments) - 1]                   # (paths, N, 1)
            phi = chart_fn(w_t)[..., 0]                               # (paths, N)
            claimed = torch.diag(t * lam2)
            z = wishart_z(phi, claimed)
            zs.append(z)
            worst_n = max(worst_n, float(z.abs().max()))
            emp_diag = phi.square().mean(0)
            rel_diag.append(float(((emp_diag - t * lam2) / (t * lam2)).abs().max()))
        per_n.append(worst_n)
    z_all = torch.cat(zs)
    # Bonferroni over every compared entry: P(any |z| > z*) <= FALSE_ALARM under the claim
    z_star = NormalDist().inv_cdf(1 - FALSE_ALARM / (2 * len(z_all)))
    max_z = float(z_all.abs().max())
    verdict = "holds" if max_z <= z_star else "violated"
    return ClaimResult(
        "A.6", "Cov(phi(U w_t)) = t Lambda^2", verdict,
        {"max_abs_z": max_z, "z_threshold": z_star, "max_rel_dev_diagonal": max(rel_diag),
         "rms_z": float(z_all.square().mean().sqrt()), "paths": float(n_paths),
         "entries_compared": float(len(z_all))},
        tolerance=(f"every entry of the empirical covariance within z* = {z_star:.2f} exact "
                   "Wishart standard errors sqrt((C_ij^2 + C_ii C_jj)/n) of t Lambda^2 "
                   f"(Bonferroni over all entries: false-alarm probability {FALSE_ALARM:g}); "
                   "rms_z ~ 1 confirms the standard error"),
        measured=max_z, bound=z_star, readings={READING: verdict},
        reading_values={READING: (max_z, z_star)}, decided_by=READING,
        settings=f"N in {list(sizes)}, {n_paths} paths, t in {list(times)}",
        note=(f"N in {list(sizes)}, {n_paths} paths of {n_increments} Gaussian increments, "
              f"t in {list(times)}"),
        series={"N": [float(n) for n in sizes], "max_abs_z_per_N": per_n})
