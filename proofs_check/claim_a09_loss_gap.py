"""A.9: |L_SM(shat) - L_SM(s)| = O(L^2 ||eps||^2).

L_SM(s) = mean_b s(t_b)^2 ||Lambda (s(x_t, t) - grad log p_t(x_t | x_0))||^2 (denoising
score matching with the mirrored noise; x_t = m x_0 + s Lambda z, so the target is
-Lambda^-1 z / s), on x_0 = the uncached samples and a spread of recorded times. With the
residual a = s - target, L(s + e) - L(s) = 2 <a, e>_w + ||e||_w^2: first order in ||e||
unless <a, e>_w = 0. The check perturbs the network's score by r d for decreasing r
(d a random unit direction and the actual cache-error direction shat - s from the
trajectories) and fits the log-log slope of the measured gap against r: 2 supports the
claim, 1 refutes it. At the minimiser (a = 0, or for E[.] over the exact score) the gap
is exactly ||e||^2: that reading is measured with a forced to 0.
"""

from __future__ import annotations

import torch
from torch import Tensor

from fdbench.sde import perturb
from proofs_check import trajectories
from proofs_check.registry import ClaimResult, Context, register
from proofs_check.trajectories import fit_loglog_slope

SLOPE_TOL = 0.2
RADII = torch.logspace(-7, -3, 9, dtype=torch.float64)


def dsm_loss(score: Tensor, target: Tensor, std: Tensor, lam: Tensor | None) -> Tensor:
    """mean_b s(t_b)^2 ||Lambda (score - target)||^2 (the weighted DSM objective, Song et
    al. 2021 eq. 7 with lambda(t) = s(t)^2, Lambda-weighted for the mirrored noise)."""
    lam_col = 1.0 if lam is None else lam[:, None]
    return (std.reshape(-1, 1, 1) ** 2 * (lam_col * (score - target)).square()).flatten(1) \
        .sum(1).mean()


def slope_of_gap(score: Tensor, target: Tensor, std: Tensor, lam: Tensor | None,
                 direction: Tensor) -> tuple[float, list[float]]:
    """Log-log slope of |L(s + r d) - L(s)| vs r over RADII (r scaled by ||a||_w), and
    the gaps themselves."""
    base = dsm_loss(score, target, std, lam)
    scale = float((score - target).norm()) or 1.0
    gaps = torch.stack([(dsm_loss(score + r * scale * direction, target, std, lam) - base).abs()
                        for r in RADII])
    return fit_loglog_slope(RADII * scale, gaps), [float(g) for g in gaps]


@register("A.9", "loss gap |L_SM(shat) - L_SM(s)| = O(L^2 ||eps||^2)", needs_model=True)
def check(ctx: Context, *, zero_residual: bool = False) -> ClaimResult:
    """``zero_residual`` forces a = 0 (target := the network's score): the fault under
    which the slope is 2 and the verdict flips."""
    model = trajectories.shared_model(ctx)
    traj = trajectories.record(ctx)
    lam = None if traj.lam is None else traj.lam.double()
    # evaluation times: spread over the steps where the cache actually erred (so the
    # cache-error direction is defined), all steps if it never did
    erred = (traj.score_err.flatten(1).abs().amax(dim=1) > 0).nonzero()[:, 0]
    pool = erred if erred.numel() else torch.arange(traj.n_steps)
    picks = pool[torch.linspace(0, pool.numel() - 1, ctx.pick(4, 8)).round().long()].unique()
    x0 = traj.x_ref[-1]
    generator = torch.Generator().manual_seed(ctx.seed)
    scores, targets, stds, cache_dirs = [], [], [], []
    with torch.no_grad():
        for j in picks.tolist():
            t = traj.times[j].to(torch.float32).expand(x0.shape[0])
            z = torch.randn(x0.shape, generator=generator)
            xt = perturb(model.sde, x0, t, z, traj.lam)
            s = model.score(model.network(xt, t), xt, t).double()
            std = model.sde.std(t).double()
            lam_col = 1.0 if lam is None else lam[:, None]
            scores.append(s)
            targets.append(-z.double() / (lam_col * std.reshape(-1, 1, 1)))
            stds.append(std)
            cache_dirs.append(traj.score_err[j].double())
    score, target, std = torch.cat(scores), torch.cat(targets), torch.cat(stds)
    real_target = target
    if zero_residual:
        target = score.clone()
    random_dir = torch.randn(score.shape, generator=generator, dtype=torch.float64)
    cache_dir = torch.cat(cache_dirs)
    results = {}
    directions = [("random", random_dir)]
    if float(cache_dir.abs().max()) > 0:
        directions.append(("cache_error", cache_dir))
    for name, d in directions:
        d = d / d.norm().clamp_min(1e-300)
        results[name] = slope_of_gap(score, target, std, lam, d)
        results[name + "_minimiser"] = slope_of_gap(score, score.clone(), std, lam, d)
    slopes = {name: value[0] for name, value in results.items()}
    stated = min(value for name, value in slopes.items() if not name.endswith("_minimiser"))
    at_min = min(value for name, value in slopes.items() if name.endswith("_minimiser"))
    verdict = "holds" if stated >= 2 - SLOPE_TOL else "violated"
    residual = float((score - real_target).norm() / real_target.norm())
    return ClaimResult(
        claim_id="A.9", statement="|L_SM(shat) - L_SM(s)| = O(L^2 ||eps||^2)",
        verdict=verdict,
        numbers={"slope_random": slopes["random"],
                 "slope_cache_error": slopes.get("cache_error", float("nan")),
                 "slope_at_minimiser": at_min, "relative_residual_a": residual},
        tolerance=(f"second order means a log-log slope >= 2 - {SLOPE_TOL}: the fit is over "
                   "4 decades of r, where the quadratic term's share of a first-order gap "
                   "moves the slope by < 0.1"),
        measured=stated, bound=2.0,
        readings={"as stated (trained model, a != 0)": verdict,
                  "at the minimiser / in expectation (a = 0)":
                      "holds" if at_min >= 2 - SLOPE_TOL else "violated"},
        note=("gap = 2<a, e>_w + ||e||_w^2: first order whenever the residual a is not "
              "orthogonal to e; measured = the smaller slope of the two directions"),
        series={name: value[1] for name, value in results.items()})
