"""lin: "the accumulated error grows at most linearly with the number of cached steps".

In the paper's regime a cache is refreshed every R steps (R = 50, Sec. 4.1), so the
claim is about the error within one refresh window: from a *shared* state of the
uncached trajectory x_ref[i0] (same time, same noise afterwards), a fixed-schedule cache
(``FixedConfig(R)``: one full step, every layer reused for the rest of the window) and the
uncached network run R reverse Euler-Maruyama steps; e(k) = mean_b ||x_cache - x_ref||
after k cached steps, averaged over windows starting at several i0 (so the count of
cached steps is not confounded with diffusion time). e(k) is fitted three ways: linear
(e = a + b k), exponential (log e = a + b k, residual in e) and a power law (log-log slope
p). "At most linear" means p <= 1 + tolerance.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from fdbench.cache import CacheEngine, FixedConfig, make_policy
from proofs_check import trajectories
from proofs_check.registry import ClaimResult, Context, decide, decided_fields, register
from proofs_check.trajectories import fit_loglog_slope

EXPONENT_TOL = 0.15
PAPER_R = 50
FAULTS = (None, "drift", "drop_score", "bias")


def linear_fit(k: Tensor, e: Tensor) -> tuple[float, float, float]:
    """(intercept, slope, residual sum of squares) of e ~ a + b k."""
    design = torch.stack([torch.ones_like(k), k], dim=1)
    coef = torch.linalg.lstsq(design, e[:, None]).solution[:, 0]
    return float(coef[0]), float(coef[1]), float((design @ coef - e).square().sum())


def exponential_fit(k: Tensor, e: Tensor) -> tuple[float, float, float]:
    """(log-intercept, rate, residual sum of squares in e) of log e ~ a + b k."""
    keep = e > 0
    a, b, _ = linear_fit(k[keep], e[keep].log())
    return a, b, float((torch.exp(a + b * k) - e).square().sum())


@torch.no_grad()
def window_gaps(ctx: Context, start: int, window: int, fault: str | None,
                strength: float) -> Tensor:
    """mean_b ||x_cache - x_ref|| after k = 1..window-2 cached steps of a fixed-schedule
    cache started from the uncached state x_ref[start] (same times and noise). Faults
    act inside the cached chain: ``drift`` multiplies the reused score by
    (1 + strength)^k (a cache that drifts); ``drop_score`` is a cached sampler that drops
    the score term of the reverse drift on its cached steps; ``bias`` is a "cache" whose
    reused score is the fresh one plus a constant offset of size ``strength`` per entry
    (a per-step error that does not grow with staleness: its accumulation is linear)."""
    model = trajectories.shared_model(ctx)
    traj = trajectories.record(ctx)
    engine = CacheEngine(model.network, make_policy(FixedConfig(R=window)))
    engine.start_batch(window, torch.arange(traj.batch))
    x = traj.x_ref[start].clone()
    offset = torch.randn(x.shape, generator=torch.Generator().manual_seed(start))
    lam = model.noise_scale()
    lam_col = 1.0 if lam is None else lam[:, None]
    sde, dt = model.sde, traj.dt
    gaps = []
    for j in range(window):
        i = start + j
        t = traj.times[i].to(torch.float32).expand(x.shape[0])
        s_hat = model.score(engine(x, t, j), x, t)
        if j > 0 and fault == "drift":
            s_hat = s_hat * (1.0 + strength) ** j
        elif j > 0 and fault == "drop_score":
            s_hat = torch.zeros_like(s_hat)
        elif j > 0 and fault == "bias":
            s_hat = model.score(model.network(x, t), x, t) + strength * offset
        g = sde.diffusion(t).reshape(-1, 1, 1)
        drift = sde.drift(x, t) - g.square() * lam_col ** 2 * s_hat
        x = x - dt * drift + g * math.sqrt(dt) * lam_col * traj.noise[i]
        gaps.append((x - traj.x_ref[i + 1]).flatten(1).norm(dim=1).mean())
    # state after step j is gaps[j]; step 0 is full, steps 1..window-2 reuse everything
    return torch.stack(gaps[1:window - 1]).double()


@register("lin", "accumulated error grows at most linearly with cached steps",
          needs_model=True)
def check(ctx: Context, *, fault: str | None = None, strength: float = 0.0) -> ClaimResult:
    """Planted faults in the cached chain (``window_gaps``): ``fault="drift"`` (a cache
    whose reused score grows geometrically: the gap grows exponentially),
    ``fault="drop_score"`` (the cached sampler drops the score term), ``fault="bias"``
    (a constant per-step score error of size ``strength``: the gap grows about linearly,
    the case the claim describes, so on a model whose cache error grows super-linearly
    it flips the verdict to holds)."""
    if fault not in FAULTS:
        raise ValueError(f"fault must be one of {FAULTS}, got {fault!r}")
    traj = trajectories.record(ctx)
    window = min(PAPER_R, traj.n_steps // 2)
    starts = torch.linspace(0, traj.n_steps - window, ctx.pick(2, 6)).round().long().tolist()
    cached = torch.stack([window_gaps(ctx, i0, window, fault, strength)
                          for i0 in dict.fromkeys(starts)]).mean(dim=0)
    k = torch.arange(1, cached.shape[0] + 1, dtype=torch.float64)
    a_lin, b_lin, rss_lin = linear_fit(k, cached)
    a_exp, b_exp, rss_exp = exponential_fit(k, cached)
    exponent = fit_loglog_slope(k, cached)
    power = "power law within a refresh window (exponent <= 1)"
    compare = "linear fits better than exponential"
    readings = {power: "holds" if exponent <= 1 + EXPONENT_TOL else "violated",
                compare: "holds" if rss_lin <= rss_exp or b_exp <= 0 else "violated"}
    values = {power: (exponent, 1.0), compare: (rss_lin, rss_exp)}
    verdict, decided = decide(readings, values, [power, compare])
    return ClaimResult(
        claim_id="lin", statement="accumulated error grows at most linearly with cached steps",
        verdict=verdict,
        numbers={"power_exponent": exponent, "rss_linear": rss_lin, "rss_exponential": rss_exp,
                 "exp_rate_per_step": b_exp, "linear_slope": b_lin,
                 "final_gap": float(cached[-1])},
        tolerance=(f"power-law exponent <= 1 + {EXPONENT_TOL}: the log-log fit over "
                   f"{len(k)} cached steps; a sum of linear and saturating terms stays below"),
        **decided_fields(readings, values, decided),
        settings=(f"FixedConfig(R={window}) windows from shared uncached states at steps "
                  f"{sorted(set(starts))} of T = {traj.n_steps}, B = {traj.batch}"
                  + (f"; planted {fault} {strength:g}" if fault in ("drift", "bias") else
                     f"; planted {fault}" if fault else "")),
        note=(f"linear fit {a_lin:.3g} + {b_lin:.3g} k, exponential {math.exp(a_exp):.3g} "
              f"exp({b_exp:.3g} k)"),
        series={"gap": [float(x) for x in cached]})
