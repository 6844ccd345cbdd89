"""A.7 under the full-increment reading: the one-step error is the difference of the two
whole Euler-Maruyama increments, noise included,

    x' = x - dt [f(x,t) - g^2 Lambda^2 s]    + g sqrt(dt) Lambda z,
    x^ = x - dt [f(x,t) - g^2 Lambda^2 shat] + g sqrt(dt) Lambda z^,

from the same state x (the E²-CRF trajectory's states, exact cached and plain scores from
the recording), against the lemma's bound |dt| (||f|| + g^2 ||Lambda^2|| L ||eps_L||).

* **independent noise** (evidence): z^ is a draw independent of z (two samplers that are
  not coupled): the gap carries g sqrt(dt) ||Lambda (z^ - z)||, of order sqrt(dt), which an
  O(|dt|) bound cannot hold for small dt;
* **shared noise** (identity): z^ = z, the noise cancels exactly and the gap is the drift
  gap of claim A.7 (``claim_a07_one_step``): shown, not counted.

Fault: ``sampler_noise_scale`` scales both samplers' noise kicks (0: a sampler that drops
its noise term), inside the updates.
"""

from __future__ import annotations

import math

import torch

from fdbench.sde import reverse_drift
from proofs_check import trajectories
from proofs_check.claim_a05_head_lipschitz import shared_head_lipschitz
from proofs_check.claim_a07_one_step import REL_TOL, one_step_bound
from proofs_check.registry import ClaimResult, Context, decide, decided_fields, register


@register("A.7.inc", "one-step error incl. noise <= |dt| (||f|| + g^2 ||L^2|| L ||eps_L||)",
          needs_model=True)
def check(ctx: Context, *, sampler_noise_scale: float = 1.0) -> ClaimResult:
    """``sampler_noise_scale`` plants a fault in both samplers' noise kick (0 drops it)."""
    model = trajectories.shared_model(ctx)
    traj = trajectories.record(ctx)
    sde, lam, dt = model.sde, traj.lam, traj.dt
    lip = shared_head_lipschitz(ctx)
    lam64 = None if lam is None else lam.double()
    lam_col = 1.0 if lam is None else lam64[:, None]
    lam2_norm = 1.0 if lam is None else float(lam.max()) ** 2
    generator = torch.Generator().manual_seed(ctx.seed + 7)
    gaps: dict[str, list[torch.Tensor]] = {"independent": [], "shared": []}
    bounds = []
    for i in range(traj.n_steps):
        x = traj.x_cache[i].double()
        t = traj.times[i].expand(x.shape[0])
        g = float(sde.diffusion(traj.times[i]))
        z = traj.noise[i].double()
        z_other = torch.randn(z.shape, generator=generator, dtype=torch.float64)
        s_hat = traj.score_cache[i].double()
        s = s_hat - traj.score_err[i].double()
        kick = sampler_noise_scale * g * math.sqrt(dt) * lam_col
        x_ref = x - dt * reverse_drift(sde, x, t, s, lam64) + kick * z
        mean_hat = x - dt * reverse_drift(sde, x, t, s_hat, lam64)
        gaps["independent"].append((mean_hat + kick * z_other - x_ref).flatten(1).norm(dim=1))
        gaps["shared"].append((mean_hat + kick * z - x_ref).flatten(1).norm(dim=1))
        f_norm = sde.drift(x, t).flatten(1).norm(dim=1)
        bounds.append(one_step_bound(dt, f_norm, g * g, lam2_norm, float(lip[i]),
                                     traj.feat_err[i].double()))
    bound_t = torch.stack(bounds).double()
    slack = REL_TOL * (bound_t + 1e-12)
    names = {"independent": "independent noise draws (uncoupled samplers)",
             "shared": "shared noise (cancels: the drift gap of A.7)"}
    readings, values, numbers = {}, {}, {}
    for key, name in names.items():
        gap = torch.stack(gaps[key])                                        # (T, B)
        tight = gap / bound_t.clamp_min(1e-300)
        worst = int(tight.max(dim=1).values.argmax())
        readings[name] = "holds" if bool((gap <= bound_t + slack).all()) else "violated"
        values[name] = (float(gap[worst].max()), float(bound_t[worst].max()))
        numbers[f"max_tightness_{key}"] = float(tight.max())
        numbers[f"share_steps_violated_{key}"] = float((gap > bound_t + slack).any(dim=1)
                                                       .double().mean())
    identities = (names["shared"],)
    verdict, decided = decide(readings, values, list(names.values()), identities)
    return ClaimResult(
        claim_id="A.7.inc", statement="one-step error with the noise in the increment "
        "<= |dt|(||f|| + g^2||Λ^2|| L ||eps_L||)", verdict=verdict, numbers=numbers,
        tolerance=(f"gap <= bound (1 + {REL_TOL:g}) at every step and sample: exact float64 "
                   "arithmetic on the recorded scores; the noise term is of order sqrt(dt)"),
        **decided_fields(readings, values, decided), identities=identities,
        settings=(f"E²-CRF operating point, B x T = {traj.batch}x{traj.n_steps}"
                  + ("" if sampler_noise_scale == 1 else
                     f"; planted: noise kick x{sampler_noise_scale:g}")),
        note=("with shared noise the increment reading is the drift reading (identity); "
              "uncoupled draws add g sqrt(dt) Lambda (z^ - z), outside the O(dt) bound"),
        series={"tightness_independent": [float(v) for v in
                                          (torch.stack(gaps["independent"]) / bound_t)
                                          .max(dim=1).values]})
