"""TV.eps: TV(perturbed, exact) scales at most linearly with the score error (the
Girsanov-Pinsker bound's O(eps), decided as eps varies).

The uncached network is sampled with reverse Euler-Maruyama from the recording's prior and
noise, once exactly and once per size eps with a planted score error e_i = eps u_i /
(g_i sqrt(T dt)) (u_i fixed random directions with ||Lambda u_i|| = 1 per sample), so that
the bound 1/2 sqrt(sum_i dt g_i^2 E||Lambda e_i||^2) (``claim_tv.pinsker_girsanov_bound``)
equals eps / 2. The paired lower estimate of TV (``claim_tv.paired_tv_lower``) is taken
for each eps: it must stay below the bound at every eps (within 2 standard errors), and its
log-log slope in eps must be at most 1 + tolerance.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from proofs_check import trajectories
from proofs_check.claim_tv import paired_tv_lower, pinsker_girsanov_bound
from proofs_check.registry import ClaimResult, Context, decide, decided_fields, register
from proofs_check.trajectories import fit_loglog_slope

EPSILONS = (0.1, 0.2, 0.4)
SLOPE_TOL = 0.3


@torch.no_grad()
def perturbed_chain(ctx: Context, eps: float, *, noise_scale: float = 1.0
                    ) -> tuple[Tensor, Tensor]:
    """(final samples, planted score errors (T, B, N, M)) of the uncached sampler with the
    score error e_i above; ``noise_scale`` != 1 plants a sampler fault (its noise kick
    scaled), outside what the bound covers."""
    model = trajectories.shared_model(ctx)
    traj = trajectories.record(ctx)
    sde, dt, lam = model.sde, traj.dt, traj.lam
    lam_col = torch.ones(model.n_steps, 1) if lam is None else lam[:, None]
    generator = torch.Generator().manual_seed(ctx.seed + 1)
    x, errors = traj.x_ref[0].clone(), []
    for i in range(traj.n_steps):
        t = traj.times[i].to(torch.float32).expand(x.shape[0])
        g = sde.diffusion(t).reshape(-1, 1, 1)
        u = torch.randn(x.shape, generator=generator)
        u = u / (lam_col * u).flatten(1).norm(dim=1).reshape(-1, 1, 1)
        err = eps * u / (g * math.sqrt(traj.n_steps * dt))
        score = model.score(model.network(x, t), x, t) + err
        x = x - dt * (sde.drift(x, t) - g.square() * lam_col ** 2 * score) \
            + noise_scale * g * math.sqrt(dt) * lam_col * traj.noise[i]
        errors.append(err)
    return x, torch.stack(errors)


@register("TV.eps", "TV(perturbed, exact) = O(eps): at most linear in the score error",
          needs_model=True)
def check(ctx: Context, *, noise_scale: float = 1.0) -> ClaimResult:
    """``noise_scale`` != 1 plants a sampler fault in the perturbed chains (the test
    shows TV then exceeds the bound)."""
    model = trajectories.shared_model(ctx)
    traj = trajectories.record(ctx)
    g2 = model.sde.diffusion(traj.times).square()
    y = traj.x_ref[-1].flatten(1).double()
    generator = torch.Generator().manual_seed(ctx.seed)
    directions = torch.randn(y.shape[1], ctx.pick(16, 64), generator=generator,
                             dtype=torch.float64)
    tv, se, bounds = [], [], []
    for eps in EPSILONS:
        final, errors = perturbed_chain(ctx, eps, noise_scale=noise_scale)
        x = final.flatten(1).double()
        dirs = torch.cat([(x.mean(0) - y.mean(0))[:, None], directions], dim=1)
        estimates, stderr = paired_tv_lower(x, y, dirs / dirs.norm(dim=0).clamp_min(1e-300))
        best = int(estimates.argmax())
        tv.append(float(estimates[best]))
        se.append(float(stderr[best]))
        bounds.append(pinsker_girsanov_bound(errors, g2, traj.dt, traj.lam)[0])
    slope = fit_loglog_slope(torch.tensor(EPSILONS), torch.tensor(tv))
    margin = [t - 2 * s - b for t, s, b in zip(tv, se, bounds, strict=True)]
    worst = max(range(len(EPSILONS)), key=lambda j: margin[j])
    below = "TV lower estimate <= bound at every eps (2 se)"
    linear = f"log-log slope of TV in eps <= 1 + {SLOPE_TOL}"
    readings = {below: "violated" if max(margin) > 0 else "holds",
                linear: "holds" if slope <= 1 + SLOPE_TOL else "violated"}
    values = {below: (tv[worst], bounds[worst]), linear: (slope, 1.0)}
    verdict, decided = decide(readings, values, [below, linear])
    return ClaimResult(
        "TV.eps", "TV(perturbed, exact) = O(eps)", verdict,
        {"slope_tv_in_eps": slope, **{f"tv_eps{e:g}": v for e, v in zip(EPSILONS, tv,
                                                                         strict=True)},
         **{f"bound_eps{e:g}": b for e, b in zip(EPSILONS, bounds, strict=True)}},
        tolerance=(f"TV estimate - 2 se <= bound; slope <= 1 + {SLOPE_TOL} (three eps, "
                   f"{traj.batch} paired samples)"),
        **decided_fields(readings, values, decided),
        settings=(f"uncached network + planted score error, eps in {list(EPSILONS)}, "
                  f"B x T = {traj.batch}x{traj.n_steps}"
                  + (f"; planted: noise x{noise_scale:g}" if noise_scale != 1 else "")),
        note="the bound equals eps/2 by construction of the planted error",
        series={"tv": tv, "bound": bounds})
