"""P3.1: the frequency-domain forward SDE with mirrored noise and its reverse with Lambda^2
in front of the score generate the data law — for the VP and the VE SDE, one channel and
several.

Gaussian data x ~ N(0, Sigma) in the time domain (M channels: Sigma = Sigma_t (x) C_ch, an
AR(1) covariance over time and a correlated channel covariance) is N(0, C0),
C0 = Q Sigma Q^T, in chart coordinates (phi = Q x per channel, Q (x) I_M for the flattened
(N, M) series). The forward marginal in chart coordinates is then N(0, P(t)),
P(t) = m(t)^2 C0 + s(t)^2 Lambda^2 (Lambda (x) I_M), so the exact score is -P(t)^-1 x. The
reverse Euler-Maruyama sampler (``fdbench.solvers``) is run with that analytic score from
the prior; its sample covariance must reproduce C0 within Wishart standard errors plus the
chain's exact discretisation (and, for VE, prior-mismatch) bias. A sampler without
Lambda^2 (identity drift weighting and noise, ``lam=None``) must not. Each (SDE, M) is a
reading of its own; one violated reading refutes the claim."""

from __future__ import annotations

from statistics import NormalDist

import torch
from torch import Tensor

from fdbench.sde import SDE, VESDE, VPSDE, prior_sample
from fdbench.solvers import reverse_euler_maruyama, uniform_times
from fdbench.spectral import chart, chart_lambda
from proofs_check.claim_a06_mirrored_bm import wishart_z
from proofs_check.registry import ClaimResult, Context, decide, decided_fields, register

FALSE_ALARM = 1e-3
# VE with sigma_max far above the data's scale, so the prior N(0, sigma_max^2 Lambda^2)
# is close to the true terminal law (the remaining mismatch is in the exact bias term)
VE = VESDE(sigma_min=0.01, sigma_max=50.0)
CHANNEL_CORR = 0.5


def chart_matrix(n: int) -> Tensor:
    """Q (N, N) float64 with chart(x) = Q x for a one-channel series x."""
    return chart(torch.eye(n, dtype=torch.float64)[..., None])[..., 0].T


def gaussian_covariance(n: int, rho: float = 0.8) -> Tensor:
    """Sigma_ij = rho^|i-j| (AR(1)): smooth, so its chart covariance is far from Lambda^2."""
    idx = torch.arange(n, dtype=torch.float64)
    return rho ** (idx[:, None] - idx[None, :]).abs()


def channel_covariance(m: int, corr: float = CHANNEL_CORR) -> Tensor:
    """C_ch (M, M): unit variances, every pair of channels correlated ``corr``."""
    return (1 - corr) * torch.eye(m, dtype=torch.float64) + corr


def chart_covariance(n: int, m: int) -> Tensor:
    """C0 (N M, N M) of the flattened chart (index n M + m): (Q Sigma_t Q^T) (x) C_ch."""
    q = chart_matrix(n)
    return torch.kron(q @ gaussian_covariance(n) @ q.T, channel_covariance(m))


def drift_coefficient(sde: SDE, t: Tensor) -> Tensor:
    """a(t) with f(x, t) = a(t) x (both SDEs have linear drift)."""
    ones = torch.ones(t.shape[0], 1, 1, dtype=torch.float64)
    return sde.drift(ones, t.to(torch.float64))[:, 0, 0]


def marginal_covariances(c0: Tensor, sde: SDE, lam_full: Tensor, times: Tensor) -> Tensor:
    """P(t_i) = m^2 C0 + s^2 Lambda^2 for every grid time, (T, D, D)."""
    m, s = sde.mean_coeff(times), sde.std(times)
    return m[:, None, None].square() * c0 + s[:, None, None].square() * torch.diag(
        lam_full.square())


def analytic_score(c0: Tensor, sde: SDE, lam_full: Tensor, times: Tensor):
    """score(x, t_i) = -P(t_i)^-1 x for x (B, N, M) at grid step i; the precisions of all
    grid times are inverted once, up front (batched)."""
    precision = torch.linalg.inv(marginal_covariances(c0, sde, lam_full, times))

    def score_fn(x: Tensor, t: Tensor, step: int) -> Tensor:
        return -(x.flatten(1) @ precision[step]).reshape(x.shape)          # P symmetric
    return score_fn


def em_covariance(c0: Tensor, sde: SDE, lam_full: Tensor, times: Tensor) -> Tensor:
    """The exact covariance of the Euler-Maruyama chain with the exact score (everything is
    linear-Gaussian): Cov <- A Cov A^T + g^2 dt Lambda^2 with A = I - dt (a I + g^2
    Lambda^2 P(t)^-1) (the reverse drift a x - g^2 Lambda^2 s at s = -P^-1 x), from the
    prior prior_std^2 Lambda^2, the last step noise-free. Its
    gap to C0 is the sampler's discretisation (and prior-mismatch) bias, which the
    tolerance allows for."""
    dt = float(times[0] - times[1])
    lam2 = torch.diag(lam_full.square())
    eye = torch.eye(len(lam_full), dtype=torch.float64)
    precision = torch.linalg.inv(marginal_covariances(c0, sde, lam_full, times))
    a = drift_coefficient(sde, times)
    g2 = sde.diffusion(times).square()
    cov = sde.prior_std() ** 2 * lam2
    for i in range(len(times)):
        step = eye - dt * (a[i] * eye + g2[i] * lam2 @ precision[i])
        cov = step @ cov @ step.T
        if i < len(times) - 1:
            cov = cov + g2[i] * dt * lam2
    return cov


def sample_and_score(sde: SDE, n: int, m: int, n_samples: int, n_steps: int, seed: int,
                     sampler_lam: str) -> dict[str, float]:
    """Run the sampler (with or without Lambda) on N(0, C0) data's exact score and compare
    its sample covariance with C0 entry by entry (Wishart z against z* + exact bias)."""
    lam = chart_lambda(n, dtype=torch.float64)
    lam_full = lam.repeat_interleave(m)
    c0 = chart_covariance(n, m)
    generator = torch.Generator().manual_seed(seed)

    def noise(shape: tuple[int, ...]) -> Tensor:
        return torch.randn((n_samples, *shape), generator=generator, dtype=torch.float64)

    sampler_scale = lam if sampler_lam == "model" else None
    x_T = prior_sample(sde, noise((n, m)), sampler_scale)
    times = uniform_times(n_steps, sde.eps).to(torch.float64)
    x0 = reverse_euler_maruyama(analytic_score(c0, sde, lam_full, times), x_T, times, sde,
                                sampler_scale, noise, noise_free_last_step=True).flatten(1)
    z = wishart_z(x0, c0)
    dim = c0.shape[0]
    rows, cols = torch.triu_indices(dim, dim)
    se = ((c0.square() + torch.outer(c0.diagonal(), c0.diagonal())) / n_samples).sqrt()
    bias = (em_covariance(c0, sde, lam_full, times) - c0).abs()
    z_star = NormalDist().inv_cdf(1 - FALSE_ALARM / (2 * len(z)))
    allowed = z_star + (bias / se)[rows, cols]
    emp = x0.T @ x0 / n_samples
    return {"excess": float((z.abs() / allowed).max()), "max_abs_z": float(z.abs().max()),
            "z_star": z_star,
            "rel_frobenius_error": float((emp - c0).norm() / c0.norm()),
            "em_bias_rel": float(bias.max() / c0.diagonal().max())}


@register("P3.1", "frequency-domain SDE with Lambda^2 reproduces the data covariance")
def check(ctx: Context, *, sampler_lam: str = "model") -> ClaimResult:
    """Fault: ``sampler_lam="none"`` runs the sampler (drift weighting, noise, prior)
    without Lambda while the score stays the mirrored-noise one (every reading)."""
    if sampler_lam not in ("model", "none"):
        raise ValueError(f"sampler_lam must be 'model' or 'none', got {sampler_lam!r}")
    n = ctx.pick(8, 16)
    n_samples, n_steps = ctx.pick((3000, 200), (8000, 500))
    cases = {"VP, M = 1": (VPSDE(), 1), "VE, M = 1": (VE, 1),
             "VP, M = 2": (VPSDE(), 2), "VE, M = 2": (VE, 2)}
    readings: dict[str, str] = {}
    values: dict[str, tuple[float | None, float | None]] = {}
    numbers: dict[str, float] = {}
    for j, (label, (sde, m)) in enumerate(cases.items()):
        out = sample_and_score(sde, n, m, n_samples, n_steps, ctx.seed + j, sampler_lam)
        name = f"{label}: every entry of Cov(samples) within z* + bias of C0"
        readings[name] = "holds" if out["excess"] <= 1.0 else "violated"
        values[name] = (out["excess"], 1.0)
        tag = label.replace(", M = ", "_M")
        numbers.update({f"max_z_over_allowed_{tag}": out["excess"],
                        f"rel_frobenius_error_{tag}": out["rel_frobenius_error"],
                        f"em_bias_rel_{tag}": out["em_bias_rel"]})
    verdict, decided = decide(readings, values, list(readings))
    return ClaimResult(
        "P3.1", "reverse SDE with Lambda^2 samples N(0, Q Sigma Q^T) (VP and VE, M = 1, 2)",
        verdict, {**numbers, "samples": float(n_samples), "steps": float(n_steps),
                  "N": float(n)},
        tolerance=(f"every covariance entry within z* Wishart standard errors (Bonferroni "
                   f"per reading, false alarm {FALSE_ALARM:g}) plus the exact Euler-Maruyama "
                   "bias |Cov_EM - C0| of the Lambda^2 chain (linear-Gaussian recursion); "
                   "each reading on max |z| / allowed <= 1"),
        **decided_fields(readings, values, decided),
        settings=(f"N = {n}, T = {n_steps}, {n_samples} samples; VP defaults, VE sigma "
                  f"{VE.sigma_min:g}..{VE.sigma_max:g}; M = 2 with channel correlation "
                  f"{CHANNEL_CORR:g}; sampler lam = {sampler_lam}"),
        note=("AR(1) Sigma_t (rho 0.8) (x) C_ch; score -P(t)^-1 x exact; a sampler without "
              "Lambda^2 (fault) reproduces a different covariance"))
