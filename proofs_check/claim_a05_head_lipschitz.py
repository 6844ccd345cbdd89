"""A.5: ||shat - s|| <= L ||eps_L||, eps_L the error of the final residual stream z_L.

The head is linear: z_L (n_tokens, d) -> unembedder -> chart layout (a selection of
coordinates) -> the parametrisation's output conversion, which is affine in the network
output F with a per-coordinate, time-dependent gain c_j(t) (``output_to_score``):
1 for ``score``, -1/(s Lambda_j) for ``noise``, -(m / sqrt(v_j)) / (s Lambda_j) for
``preconditioned`` (v_j = m^2 + s^2 Lambda_j^2). The x-dependent skip term is the same for
the cached and the uncached call and cancels, so shat - s = diag(c(t)) A eps_L with A the
(N M) x (n d) matrix of unembedder + layout and the sharp constant is
L(t) = sigma_max(diag(c(t)) A): time dependent for the noise and preconditioned
parametrisations (it grows like 1/s(t) as t -> 0), a constant sigma_max(W) only for
``score``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from fdbench.pipeline import ScoreModel
from proofs_check import trajectories
from proofs_check.registry import ClaimResult, Context, decide, decided_fields, register

REL_TOL = 1e-6
FLOAT32_EPS = float(torch.finfo(torch.float32).eps)


def head_matrix(model: ScoreModel) -> Tensor:
    """A: (N*M, n_tokens*d) float64, the linear part of z_L -> network output F."""
    network = model.network
    n, d = network.config.n_tokens, network.config.d_model
    basis = torch.eye(n * d, dtype=torch.float32).reshape(n * d, n, d)
    with torch.no_grad():
        columns = network.head(basis) - network.head(torch.zeros(1, n, d))
    return columns.reshape(n * d, -1).T.double()


def output_gain(model: ScoreModel, times: Tensor) -> Tensor:
    """c(t): (T, N*M) the per-coordinate gain d score / d F of the output conversion
    (exact: the conversion is affine in F)."""
    t = times.to(torch.float32)
    shape = (t.shape[0], model.n_steps, model.n_channels)
    zeros = torch.zeros(shape)
    gain = model.score(torch.ones(shape), zeros, t) - model.score(zeros, zeros, t)
    return gain.reshape(t.shape[0], -1).double()


def head_lipschitz(model: ScoreModel, times: Tensor, *, unit_gain: bool = False) -> Tensor:
    """L(t) = sigma_max(diag(c(t)) A) per time, via the eigenvalues of the (N M)^2 Gram
    (``unit_gain``: c = 1, the head matrix without the output conversion)."""
    a = head_matrix(model)
    gram = a @ a.T
    gain = output_gain(model, times)
    if unit_gain:
        gain = torch.ones_like(gain)
    values = []
    for chunk in gain.split(100):
        scaled = chunk[:, :, None] * gram[None] * chunk[:, None, :]
        values.append(torch.linalg.eigvalsh(scaled)[:, -1].clamp_min(0).sqrt())
    return torch.cat(values)


def shared_head_lipschitz(ctx: Context) -> Tensor:
    """L(t) on the recorded time grid, computed once per context."""
    key = "a05.head_lipschitz"
    if key not in ctx.memo:
        ctx.memo[key] = head_lipschitz(trajectories.shared_model(ctx),
                                       trajectories.record(ctx).times)
    return ctx.memo[key]


@register("A.5", "head Lipschitz: ||shat - s|| <= L ||eps_L||", needs_model=True)
def check(ctx: Context, *, no_conversion: bool = False, cached_gain: float = 1.0
          ) -> ClaimResult:
    """``no_conversion`` plants a fault in the computation: both scores taken without the
    parametrisation's output conversion (shat - s measured as the network-output
    difference F^ - F = (shat - s) / c(t), L(t) with c = 1), as a head that forgot the
    -1/(s Lambda) factor would give. ``cached_gain`` != 1 plants a cached sampler whose
    output conversion has a wrong gain (shat -> cached_gain * shat, as a wrong Lambda in
    the conversion gives), recorded as its own trajectory (the sampler steps with the
    faulty score): its error is no longer a function of eps_L alone."""
    model = trajectories.shared_model(ctx)
    traj = trajectories.record(ctx, cached_gain=cached_gain)
    gain = output_gain(model, traj.times)                                 # (T, N*M)
    err = traj.score_err.double().flatten(2)                              # (T, B, N*M)
    score_scale = traj.score_cache.double().flatten(2).norm(dim=2)
    if no_conversion:
        lip = head_lipschitz(model, traj.times, unit_gain=True)
        err = err / gain[:, None, :]
        score_scale = score_scale / gain.abs().min(dim=1).values[:, None]
    else:
        lip = shared_head_lipschitz(ctx)                                  # (T,)
    feat = traj.feat_err.double()                                         # (T, B)
    score_norm = err.norm(dim=2)                                          # (T, B)
    cached = feat > 0
    ratio = torch.where(cached, score_norm / feat.clamp_min(1e-300), torch.zeros_like(feat))
    # float32 rounding of the two scores (same magnitude) is the only slack beyond REL_TOL
    rounding = 4 * FLOAT32_EPS * score_scale / feat.clamp_min(1e-300)
    allowed = lip[:, None] * (1 + REL_TOL) + torch.where(cached, rounding, 0.0)
    over = cached & (ratio > allowed)
    tight = torch.where(cached, ratio / lip[:, None], torch.zeros_like(ratio))
    worst = int(tight.max(dim=1).values.argmax())
    weight = model.network.unembedder.weight.detach().double()
    sigma_w = float(torch.linalg.matrix_norm(weight, ord=2))
    over_w = cached & (ratio > sigma_w * (1 + REL_TOL) + rounding)
    sharp = "L(t) = sigma_max(diag(c(t)) A) (sharp, time dependent)"
    head = "L = sigma_max(W) (the head matrix's constant, no output conversion)"
    readings = {sharp: "violated" if bool(over.any()) else "holds",
                head: "violated" if bool(over_w.any()) else "holds"}
    values = {sharp: (float(ratio[worst].max()), float(lip[worst])),
              head: (float(ratio.max()), sigma_w)}
    # the sharp constant bounds a linear map's output by definition of the operator norm
    identities = (sharp,)
    verdict, decided = decide(readings, values, [head, sharp], identities)
    steps = [float(x) for x in tight.max(dim=1).values]
    return ClaimResult(
        claim_id="A.5", statement="||shat - s|| <= L ||eps_L|| (head Lipschitz)",
        verdict=verdict,
        numbers={"max_ratio_over_L": float(tight.max()), "L_min": float(lip.min()),
                 "L_max": float(lip.max()), "sigma_max_W": sigma_w,
                 "violating_pairs": float(over.sum()), "cached_pairs": float(cached.sum())},
        tolerance=(f"ratio <= L (1 + {REL_TOL:g}) + 4 eps32 ||shat|| / ||eps_L||: the map is "
                   "exactly linear, so only float32 rounding of the two scores can exceed L"),
        **decided_fields(readings, values, decided), identities=identities,
        settings=f"E²-CRF operating point, B x T = {traj.batch}x{traj.n_steps}",
        note=(f"parametrisation {model.network.config.parametrisation!r}: L is time "
              "dependent unless it is 'score'; the sharp L(t) is an operator-norm identity "
              "(shown, not evidence); per step: max over samples of ratio / L(t)"
              + ("; planted: no output conversion" if no_conversion else "")),
        series={"ratio_over_L": steps, "L": [float(x) for x in lip]})
