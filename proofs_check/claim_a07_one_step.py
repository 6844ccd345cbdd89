"""A.7: one Euler–Maruyama step with the cached score, from the same state and noise as
the uncached step, differs by at most |dt| (||f|| + g^2 ||Lambda^2|| L ||eps_L||).

Both updates x' = x - dt [f(x,t) - g^2 Lambda^2 s] + g sqrt(dt) Lambda z are formed with
``fdbench.sde.reverse_drift`` at the E²-CRF trajectory's states (same x, t, z), so the
measured gap is exactly |dt| g^2 ||Lambda^2 (shat - s)||: f and the noise cancel. The
stated bound keeps ||f|| (which cancels) and is checked as written; the sharp reading
|dt| g^2 ||Lambda^2|| L ||eps_L|| (L(t) from A.5) is checked too.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from fdbench.sde import reverse_drift
from proofs_check import trajectories
from proofs_check.claim_a05_head_lipschitz import FLOAT32_EPS, shared_head_lipschitz
from proofs_check.registry import ClaimResult, Context, decide, decided_fields, register

REL_TOL = 1e-5


def one_step_bound(dt: float, f_norm: Tensor, g2: float, lam2_norm: float, lip: float,
                   eps_norm: Tensor) -> Tensor:
    """|dt| (||f|| + g^2 ||Lambda^2|| L ||eps_L||) (E²-CRF Lemma A.7)."""
    return abs(dt) * (f_norm + g2 * lam2_norm * lip * eps_norm)


@register("A.7", "one-step drift error <= |dt| (||f|| + g^2 ||L^2|| L ||eps_L||)",
          needs_model=True)
def check(ctx: Context, *, sampler_drops_g2: bool = False) -> ClaimResult:
    """``sampler_drops_g2`` plants a fault in the cached sampler: its update uses the drift
    f - Lambda^2 shat (the g^2 factor of the score term dropped), so the two updates no
    longer differ by the score error alone (the test shows it flips the verdict)."""
    model = trajectories.shared_model(ctx)
    traj = trajectories.record(ctx)
    sde, lam, dt = model.sde, traj.lam, traj.dt
    lip = shared_head_lipschitz(ctx)
    lam2_norm = 1.0 if lam is None else float(lam.max()) ** 2
    gaps, exact, stated, sharp = [], [], [], []
    for i in range(traj.n_steps):
        x = traj.x_cache[i].double()
        t = traj.times[i].expand(x.shape[0])
        noise = traj.noise[i].double()
        g = float(sde.diffusion(traj.times[i]))
        lam_col = 1.0 if lam is None else lam.double()[:, None]
        kick = g * math.sqrt(dt) * lam_col * noise
        s_hat = traj.score_cache[i].double()
        s = s_hat - traj.score_err[i].double()
        lam64 = lam.double() if lam is not None else None
        x_hat = x - dt * reverse_drift(sde, x, t, s_hat, lam64) + kick
        if sampler_drops_g2:   # f - Lambda^2 shat instead of f - g^2 Lambda^2 shat
            x_hat = x_hat - dt * (g * g - 1.0) * (1.0 if lam is None
                                                  else lam64[:, None] ** 2) * s_hat
        x_ref = x - dt * reverse_drift(sde, x, t, s, lam.double() if lam is not None
                                       else None) + kick
        gap = (x_hat - x_ref).flatten(1).norm(dim=1)                          # (B,)
        lam2 = 1.0 if lam is None else lam.double()[:, None] ** 2
        closed = abs(dt) * g * g * (lam2 * (s_hat - s)).flatten(1).norm(dim=1)
        f_norm = sde.drift(x, t).flatten(1).norm(dim=1)
        eps = traj.feat_err[i].double()
        g2 = g * g
        gaps.append(gap)
        exact.append(closed)
        stated.append(one_step_bound(dt, f_norm, g2, lam2_norm, float(lip[i]), eps))
        # + float32 rounding of the two recorded scores (as in A.5)
        rounding = 4 * FLOAT32_EPS * s_hat.flatten(1).norm(dim=1)
        sharp.append(abs(dt) * g2 * lam2_norm * (float(lip[i]) * eps + rounding))
    gap_t, exact_t = torch.stack(gaps), torch.stack(exact)
    stated_t, sharp_t = torch.stack(stated).double(), torch.stack(sharp)
    # the gap is formed in float64 from float32 scores: slack = rounding of the two updates
    slack = REL_TOL * (stated_t + 1e-12)
    stated_ok = bool((gap_t <= stated_t + slack).all())
    sharp_ok = bool((gap_t <= sharp_t * (1 + REL_TOL)).all())
    identity = float(((gap_t - exact_t).abs() / exact_t.clamp_min(1e-300)).max())
    as_stated, sharp_name = ("as stated (with ||f||, which cancels)",
                             "sharp: |dt| g^2 ||Lambda^2|| L ||eps_L||")
    readings = {as_stated: "holds" if stated_ok else "violated",
                sharp_name: "holds" if sharp_ok else "violated"}
    tight_stated = gap_t / stated_t.clamp_min(1e-300)
    tight_sharp = torch.where(sharp_t > 0, gap_t / sharp_t.clamp_min(1e-300), 0.0)
    worst = int(tight_sharp.max(dim=1).values.argmax())
    worst_stated = int(tight_stated.max(dim=1).values.argmax())
    values = {as_stated: (float(gap_t[worst_stated].max()), float(stated_t[worst_stated].max())),
              sharp_name: (float(gap_t[worst].max()), float(sharp_t[worst].max()))}
    verdict, decided = decide(readings, values, [as_stated, sharp_name])
    return ClaimResult(
        claim_id="A.7", statement="one-step drift error <= |dt|(||f|| + g^2||Λ^2|| L ||eps_L||)",
        verdict=verdict,
        numbers={"max_tightness_stated": float(tight_stated.max()),
                 "max_tightness_sharp": float(tight_sharp.max()),
                 "max_gap": float(gap_t.max()),
                 "gap_vs_closed_form_rel": identity},
        tolerance=(f"gap <= bound (1 + {REL_TOL:g}): both updates are exact float64 "
                   "arithmetic on the recorded float32 scores, so only rounding can exceed"),
        **decided_fields(readings, values, decided),
        settings=f"E²-CRF operating point, B x T = {traj.batch}x{traj.n_steps}",
        note=("measured gap equals |dt| g^2 ||Lambda^2 (shat - s)|| (relative deviation "
              "gap_vs_closed_form_rel); the stated ||f|| term makes the bound loose"),
        series={"tightness_stated": [float(x) for x in tight_stated.max(dim=1).values],
                "tightness_sharp": [float(x) for x in tight_sharp.max(dim=1).values]})
