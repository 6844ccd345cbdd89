"""P3.2: score-matching equivalence between the frequency and the time domain.

The exact relation. With phi = Q x, Q Q^T = Lambda^2, the matrix O = Lambda^-1 Q is
orthogonal. Time-domain perturbation x_t = m x_0 + s w, w ~ N(0, I), is in the chart
phi_t = m phi_0 + s Lambda z with z = O w ~ N(0, I). A chart-domain network f defines the
time-domain score s_time(x) = Q^T f(Q x) (change of variables: grad_x = Q^T grad_phi), and
Lambda (f + z / (s Lambda)) = Lambda^-1 Q Q^T f + O w / s = O (s_time + w / s), hence per
sample, exactly,
    sum_j Lambda_j^2 (f_j(phi_t) - (-z_j / (s Lambda_j)))^2 = ||s_time(x_t) - (-w / s)||^2,
i.e. the frequency DSM loss with per-coordinate weight Lambda^2 IS the time-domain DSM
loss (any per-sample time weight multiplies both sides). Without the Lambda^2 weight (what
``fdbench.train.dsm_loss`` and the base code train with) the two differ: both are still
minimised by the true score, but they are different objectives."""

from __future__ import annotations

import torch
from torch import Tensor

from fdbench.model import ModelConfig, build_model
from fdbench.sde import VPSDE, marginal_std
from fdbench.spectral import chart, chart_lambda
from fdbench.train import dsm_loss
from proofs_check.claim_p31_lambda_sde import chart_matrix
from proofs_check.registry import ClaimResult, Context, register

REL_TOL = 1e-10  # float64: both sides are sums of ~N M squares of O(1/s) terms; ~1e-13 seen


def _apply(matrix: Tensor, x: Tensor) -> Tensor:
    """(N, N) matrix on the time axis of (B, N, M)."""
    return torch.einsum("jn,bnm->bjm", matrix, x)


@register("P3.2", "frequency DSM loss with Lambda^2 weight = time-domain DSM loss")
def check(ctx: Context, *, weighting: str = "lambda2") -> ClaimResult:
    """Fault: ``weighting="none"`` drops the Lambda^2 weight of the frequency loss."""
    if weighting not in ("lambda2", "none"):
        raise ValueError(f"weighting must be 'lambda2' or 'none', got {weighting!r}")
    sizes = ctx.pick((15, 16), (15, 16, 31, 64))
    n_networks, batch, n_channels = ctx.pick(2, 4), ctx.pick(32, 128), 2
    sde = VPSDE()
    generator = torch.Generator().manual_seed(ctx.seed)
    rel_gap, code_gap, ratio = [], [], []
    for n in sizes:
        lam = chart_lambda(n, dtype=torch.float64)
        q = chart_matrix(n)
        for index in range(n_networks):
            config = ModelConfig.from_preset("tiny", n, n_channels, layout="bins", dropout=0.0)
            f = build_model(config, seed=ctx.seed + 1000 * n + index).double().eval()
            x0 = torch.randn(batch, n, n_channels, generator=generator, dtype=torch.float64)
            w = torch.randn(batch, n, n_channels, generator=generator, dtype=torch.float64)
            t = sde.eps + (1 - sde.eps) * torch.rand(batch, generator=generator,
                                                     dtype=torch.float64)
            m, s = sde.mean_coeff(t)[:, None, None], sde.std(t)[:, None, None]
            with torch.no_grad():
                # time domain: x_t = m x0 + s w, s_time(x) = Q^T f(Q x)
                x_t = m * x0 + s * w
                s_time = _apply(q.T, f(chart(x_t), t))
                time_loss = (s_time + w / s).square().sum(dim=(1, 2))
                # frequency domain: phi_t = m phi0 + s Lambda z, z = Lambda^-1 Q w
                z = chart(w) / lam[:, None]
                phi_t = m * chart(x0) + s * lam[:, None] * z
                residual = (f(phi_t, t) + z / (s * lam[:, None])).square()  # (score-target)^2
                lam2 = lam.square()[:, None] if weighting == "lambda2" else 1.0
                freq_loss = (lam2 * residual).sum(dim=(1, 2))
                rel_gap.append(float(((freq_loss - time_loss).abs() / time_loss).max()))
                # the repo's training loss: per-sample weight, no per-coordinate Lambda^2
                std = marginal_std(sde, t, lam)
                weight = 1.0 / std.square().reciprocal().expand_as(x0).sum(dim=(1, 2))
                code = dsm_loss(f, chart(x0), sde, lam, t, z)
                mine = (weight * residual.sum(dim=(1, 2))).mean()
                code_gap.append(float((code - mine).abs() / mine))
                weighted = (weight * (lam.square()[:, None] * residual).sum(dim=(1, 2))).mean()
                ratio.append(float(code / weighted))
    gap = max(rel_gap)
    reading = f"frequency loss weighting={weighting!r} vs time loss"
    return ClaimResult(
        "P3.2", "L_freq(Lambda^2-weighted) = L_time per sample",
        "holds" if gap <= REL_TOL else "violated",
        {"max_rel_gap": gap, "code_loss_over_weighted_mean": sum(ratio) / len(ratio),
         "code_loss_over_weighted_min": min(ratio), "code_loss_over_weighted_max": max(ratio),
         "dsm_loss_reimplementation_gap": max(code_gap)},
        tolerance=(f"per-sample relative gap <= {REL_TOL:g}: float64 rounding of sums of "
                   "N M squares is ~1e-14; any real mismatch is O(1) (e.g. dropping Lambda^2 "
                   "halves most terms)"),
        measured=gap, bound=REL_TOL,
        readings={reading: "holds" if gap <= REL_TOL else "violated"},
        reading_values={reading: (gap, REL_TOL)}, decided_by=reading,
        settings=f"N in {list(sizes)}, M = {n_channels}",
        note=("exact relation: sum_j Lambda_j^2 (f_j + z_j/(s Lambda_j))^2 = "
              "||Q^T f(Qx_t) + w/s||^2 with z = Lambda^-1 Q w. fdbench.train.dsm_loss is "
              "unweighted per coordinate (per-sample weight 1/sum (s Lambda_j)^-2); "
              "code_loss_over_weighted = dsm_loss / the same loss with Lambda^2 weights, "
              f"random tiny networks (float64), N in {list(sizes)}, M = {n_channels}"),
        series={"code_over_weighted": [round(r, 5) for r in ratio]})
